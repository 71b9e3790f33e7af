//! sck-loadtest through the real pipeline (MQTT → bridge → Kafka → decoder → ClickHouse): a
//! short load of a few thousand readings must arrive complete, and its RESULT line and report
//! must agree with what ClickHouse itself counts.

use std::process::Command;

use sck_testkit::*;

fn field(result: &str, key: &str) -> f64 {
    result
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} missing in {result:?}"))
}

#[test]
fn a_short_load_arrives_complete_and_the_counts_agree() {
    serial(async {
        let topics = Topics::unique();
        let db = unique("db_");
        let group = unique("g");
        let bridge = Bridge::start(&BridgeSpec::new(&topics, &group));
        let decoder = Decoder::start(&topics, &unique("group"), &db, &[]);
        let run_id = unique("lt");
        let dir = repo_root().join("target/test-logs");
        let report = dir.join(format!("{run_id}.json"));
        let s = stack();
        let out = Command::new(env!("CARGO_BIN_EXE_sck-loadtest"))
            .args([
                "--devices",
                "20",
                "--rate",
                "100",
                "--duration",
                "5s",
                "--ramp",
                "1s",
            ])
            .args([
                "--connections",
                "2",
                "--verify-timeout",
                "60s",
                "--run-id",
                &run_id,
            ])
            .arg("--report")
            .arg(&report)
            .env("MQTT_HOST", &s.mqtt_host)
            .env("MQTT_PORT", s.mqtt_port.to_string())
            .env("CLICKHOUSE_URL", format!("http://{}", s.clickhouse_http))
            .env("CLICKHOUSE_DATABASE", &db)
            .output()
            .expect("run sck-loadtest");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "exit {:?}\n{stdout}\n{stderr}",
            out.status
        );
        let result = stdout.lines().last().unwrap_or_default().to_string();
        assert!(result.starts_with("RESULT sent_messages="), "{result}");
        let sent = field(&result, "sent_readings") as u64;
        assert!(sent >= 3_000, "a few thousand readings, got {sent}");
        assert_eq!(field(&result, "missing_readings"), 0.0);
        assert_eq!(field(&result, "duplicate_readings"), 0.0);
        assert_eq!(field(&result, "stored_readings") as u64, sent);
        assert!(field(&result, "p99_ms") >= field(&result, "p50_ms"));
        // ClickHouse's own count of the run.
        let counted = clickhouse_count(&format!(
            "SELECT count() FROM {db}.{} FINAL WHERE device_token LIKE '{run_id}d%'",
            tables::READINGS
        ));
        assert_eq!(counted, sent);
        // The report says the same, and the chart is next to it.
        let json = std::fs::read_to_string(&report).expect("report");
        for key in [
            "\"sent_messages\"",
            "\"missing_readings\": 0",
            "\"latency_ms\"",
            "\"p90\"",
        ] {
            assert!(json.contains(key), "{key} not in {json}");
        }
        assert!(json.contains(&format!("\"sent_readings\": {sent}")));
        let svg = std::fs::read_to_string(report.with_extension("svg")).expect("svg");
        assert!(svg.starts_with("<svg"));
        // The decoder saw it too.
        assert!(
            decoder
                .metric_with("sck_decoder_rows_inserted_total", "table=\"readings\"")
                .unwrap_or(0.0)
                >= sent as f64
        );
        drop(decoder);
        retire(vec![bridge]).await;
        drop_database(&db);
    });
}
