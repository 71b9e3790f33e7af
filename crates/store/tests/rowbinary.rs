//! The bytes the decoder's sink sends for each table, captured: `sck_store::insert` (the one
//! insert the sink uses) against an in-process HTTP listener standing in for ClickHouse. The test
//! checks the request (the INSERT names the table and every column of its row type, the body is
//! RowBinary of the rows); with `SCK_CAPTURE_DIR` set it also writes, for
//! `scripts/check-current-clickhouse.py`, the migrations rendered for a current server
//! (`migrations.sql`), each table's INSERT and body (`<table>.sql`, `<table>.rowbinary`) and the
//! rows as JSON (`<table>.json`), so that check can run them in chdb (ClickHouse 26.x in-process)
//! and read the rows back. No ClickHouse is needed here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;

use clickhouse::{Client, Row, RowWrite};
use sck_store::tables::{
    HelloRow, InfoRow, IngestErrorRow, InventoryRow, ReadingRow, DEVICE_HELLO, DEVICE_INFO,
    DEVICE_INVENTORY, INGEST_ERRORS, READINGS,
};
use serde_json::json;

/// The current-server version the migrations are rendered for.
const CURRENT: &str = "26.9.2.1";

/// One captured request: the decoded `query` parameter and the (de-chunked) body.
struct Captured {
    query: String,
    body: Vec<u8>,
}

/// Accepts one HTTP request, answers 200, returns what it carried.
fn serve_once(listener: TcpListener) -> Captured {
    let (stream, _) = listener.accept().expect("accept");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    reader.read_line(&mut request_line).expect("request line");
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .expect("hex chunk size");
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body).expect("body");
    }
    let mut out = stream;
    out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .expect("respond");
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("query="))
        .map(percent_decode)
        .unwrap_or_default();
    Captured { query, body }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(h, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Inserts `rows` into `table` through the sink's insert; the request ClickHouse would get.
async fn capture<'r, R: RowWrite>(table: &str, rows: Vec<R::Value<'r>>) -> Captured {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = std::thread::spawn(move || serve_once(listener));
    let client = Client::default()
        .with_url(url)
        .with_database("sck")
        .with_validation(false)
        .with_compression(clickhouse::Compression::None);
    let written = sck_store::insert::<R>(&client, table, rows, None)
        .await
        .expect("insert");
    assert!(written > 0);
    server.join().expect("server")
}

fn out_dir() -> Option<PathBuf> {
    std::env::var_os("SCK_CAPTURE_DIR").map(PathBuf::from)
}

fn save(table: &str, c: &Captured, rows: serde_json::Value) {
    let Some(dir) = out_dir() else { return };
    std::fs::create_dir_all(&dir).expect("capture dir");
    std::fs::write(dir.join(format!("{table}.sql")), &c.query).expect("write sql");
    std::fs::write(dir.join(format!("{table}.rowbinary")), &c.body).expect("write body");
    std::fs::write(dir.join(format!("{table}.json")), rows.to_string()).expect("write json");
}

fn check_request<R: Row>(table: &str, c: &Captured) {
    assert!(
        c.query.starts_with(&format!("INSERT INTO `{table}`(")),
        "{}",
        c.query
    );
    for column in R::COLUMN_NAMES {
        assert!(
            c.query.contains(&format!("`{column}`")),
            "{column} missing from {}",
            c.query
        );
    }
    assert!(c.query.contains("FORMAT RowBinary"), "{}", c.query);
    assert!(!c.body.is_empty());
}

#[tokio::test]
async fn the_sinks_rowbinary_for_every_table_is_captured() {
    if let Some(dir) = out_dir() {
        std::fs::create_dir_all(&dir).expect("capture dir");
        std::fs::write(
            dir.join("migrations.sql"),
            sck_store::migrations::all_statements(CURRENT).join(";\n\n"),
        )
        .expect("write migrations");
    }
    let readings = vec![
        ReadingRow {
            device_token: "tokA",
            sensor_id: 55,
            recorded_at: 1_700_000_000,
            value: 21.5,
            received_at: 1_700_000_010,
            format: "raw",
            device_id: 7,
        },
        ReadingRow {
            device_token: "tokA",
            sensor_id: 56,
            recorded_at: 1_700_000_000,
            value: -0.25,
            received_at: 1_700_000_010,
            format: "json",
            device_id: 7,
        },
    ];
    let c = capture::<ReadingRow<'_>>(READINGS, readings.clone()).await;
    check_request::<ReadingRow<'_>>(READINGS, &c);
    // Per row: device_token 1 + 4 bytes, sensor_id 4, recorded_at 4, value 8, received_at 4,
    // format 1 + 3 ("raw") or 1 + 4 ("json"), device_id 4.
    assert_eq!(c.body.len(), (5 + 4 + 4 + 8 + 4 + 1 + 4) * 2 + 3 + 4);
    save(
        READINGS,
        &c,
        json!([
            {"device_token":"tokA","sensor_id":55,"recorded_at":1_700_000_000,"value":21.5,"received_at":1_700_000_010,"format":"raw","device_id":7},
            {"device_token":"tokA","sensor_id":56,"recorded_at":1_700_000_000,"value":-0.25,"received_at":1_700_000_010,"format":"json","device_id":7}
        ]),
    );

    // Within the table's 90-day TTL on current servers (an older row may be dropped at any merge).
    let recent = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as u32
        - 3600;
    let errors = vec![IngestErrorRow {
        received_at: recent,
        mqtt_topic: "device/sck/tokA/readings/raw".into(),
        device_token: "tokA".into(),
        error_kind: "invalid_value".into(),
        error_message: "sensor 1: value \"x\" is not a number".into(),
        payload: b"{t:2023-11-14T22:13:20Z,1:x,}\xff".to_vec(),
        kafka_topic: "sck.readings".into(),
        kafka_partition: 3,
        kafka_offset: 42,
        error_index: 0,
    }];
    let c = capture::<IngestErrorRow>(INGEST_ERRORS, errors).await;
    check_request::<IngestErrorRow>(INGEST_ERRORS, &c);
    save(
        INGEST_ERRORS,
        &c,
        json!([
            {"received_at":recent,"device_token":"tokA","error_kind":"invalid_value","kafka_partition":3,"kafka_offset":42,"payload_hex":"7B743A323032332D31312D31345432323A31333A32305A2C313A782C7DFF"}
        ]),
    );

    let c = capture::<HelloRow>(
        DEVICE_HELLO,
        vec![HelloRow {
            device_token: "tokA".into(),
            last_seen: 1_700_000_030,
        }],
    )
    .await;
    check_request::<HelloRow>(DEVICE_HELLO, &c);
    save(
        DEVICE_HELLO,
        &c,
        json!([{"device_token":"tokA","last_seen":1_700_000_030}]),
    );

    let c = capture::<InfoRow>(
        DEVICE_INFO,
        vec![InfoRow {
            device_token: "tokA".into(),
            received_at: 1_700_000_040,
            info: r#"{"hw_ver":"2.1"}"#.into(),
        }],
    )
    .await;
    check_request::<InfoRow>(DEVICE_INFO, &c);
    save(
        DEVICE_INFO,
        &c,
        json!([{"device_token":"tokA","received_at":1_700_000_040,"info":"{\"hw_ver\":\"2.1\"}"}]),
    );

    let c = capture::<InventoryRow>(
        DEVICE_INVENTORY,
        vec![InventoryRow {
            received_at: 1_700_000_050,
            report: r#"{"ok":true}"#.into(),
            kafka_partition: 1,
            kafka_offset: 9,
        }],
    )
    .await;
    check_request::<InventoryRow>(DEVICE_INVENTORY, &c);
    save(
        DEVICE_INVENTORY,
        &c,
        json!([{"received_at":1_700_000_050,"report":"{\"ok\":true}","kafka_partition":1,"kafka_offset":9}]),
    );
}
