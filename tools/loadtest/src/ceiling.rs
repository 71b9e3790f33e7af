//! The ceilings the pipeline is measured against, on the same machine in the same run:
//! - broker: a bare subscriber (same shared subscription, QoS 1, does nothing with a message)
//!   receiving the load the pipeline gets;
//! - database: bulk RowBinary inserts of reading rows straight into a scratch copy of the
//!   `readings` table, one INSERT at a time in decoder-sized batches, with the decoder's row type
//!   and insert (`sck-store`).
//!
//! Each prints one `CEILING …` line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sck_store::tables::{ReadingRow, READINGS};

use crate::config::Args;
use crate::payload::sensor_ids;
use crate::publish;

/// Receive-side counters of the bare subscriber.
#[derive(Default)]
struct Received {
    count: AtomicU64,
    first: Mutex<Option<Instant>>,
    last: Mutex<Option<Instant>>,
}

pub async fn subscriber(args: &Args, group: &str) -> anyhow::Result<()> {
    let mut o = MqttOptions::new(
        format!("sck-loadtest-ceiling-{}", fastrand::u32(..)),
        &args.mqtt_host,
        args.mqtt_port,
    );
    o.set_clean_session(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    if let (Some(u), Some(p)) = (&args.mqtt_username, &args.mqtt_password) {
        o.set_credentials(u, p.expose());
    }
    let (client, mut el) = AsyncClient::new(o, 1000);
    for filter in ["device/sck/+/readings", "device/sck/+/readings/raw"] {
        client
            .subscribe(format!("$share/{group}/{filter}"), QoS::AtLeastOnce)
            .await
            .context("subscribing")?;
    }
    let received = Arc::new(Received::default());
    let (suback_tx, mut suback_rx) = tokio::sync::mpsc::channel(2);
    let task = tokio::spawn({
        let received = received.clone();
        async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(_))) => {
                        let now = Instant::now();
                        received.count.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut f) = received.first.lock() {
                            f.get_or_insert(now);
                        }
                        if let Ok(mut l) = received.last.lock() {
                            *l = Some(now);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = suback_tx.send(()).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("subscriber connection error: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
    });
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), suback_rx.recv())
            .await
            .context("no SUBACK within 10 s")?;
    }

    let run_id = args.run_id();
    let sent = Arc::new(publish::Sent::default());
    let start_t = crate::start_time(args);
    let published = publish::run(args, &run_id, start_t, Instant::now(), sent.clone()).await?;
    let sent_messages = sent.messages.load(Ordering::Relaxed);
    // Wait until everything arrived or nothing has arrived for 5 s.
    let mut last_count = 0;
    let mut quiet_since = Instant::now();
    loop {
        let n = received.count.load(Ordering::Relaxed);
        if n >= sent_messages || quiet_since.elapsed() > Duration::from_secs(5) {
            break;
        }
        if n != last_count {
            last_count = n;
            quiet_since = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    let n = received.count.load(Ordering::Relaxed);
    let first = received.first.lock().ok().and_then(|f| *f);
    let last = received.last.lock().ok().and_then(|l| *l);
    let window = match (first, last) {
        (Some(f), Some(l)) if l > f => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    let rate = if window > 0.0 { n as f64 / window } else { 0.0 };
    println!(
        "CEILING kind=broker received={n} sent={sent_messages} subscriber_msgs_per_s={rate:.1} published_msgs_per_s={:.1}",
        sent_messages as f64 / published.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

pub async fn insert(args: &Args, rows: usize, batch: usize) -> anyhow::Result<()> {
    let db = &args.clickhouse.clickhouse_database;
    let ch = crate::verify::client(&args.clickhouse)
        .with_compression(clickhouse::Compression::Lz4)
        .with_database(db);
    let table = format!("ceiling_readings_{:08x}", fastrand::u32(..));
    ch.query(&format!("CREATE TABLE {table} AS {db}.{READINGS}"))
        .execute()
        .await
        .context("creating the scratch table (run the decoder's migrations first)")?;
    let tokens: Vec<String> = (0..args.devices).map(|i| format!("ceil{i}")).collect();
    let sensors = sensor_ids(args.sensors);
    let start_t = crate::now_secs() as u32 - 86_400;
    let started = Instant::now();
    let mut written = 0usize;
    let result: anyhow::Result<()> = async {
        while written < rows {
            let n = batch.min(rows - written);
            let rows = (written..written + n).map(|k| {
                let device = k % tokens.len();
                let step = k / tokens.len();
                ReadingRow {
                    device_token: &tokens[device],
                    sensor_id: sensors[step % sensors.len()],
                    recorded_at: start_t + (step / sensors.len()) as u32,
                    value: (k % 10_000) as f64 / 100.0,
                    received_at: start_t,
                    format: "raw",
                    device_id: device as u32 + 1,
                }
            });
            sck_store::insert::<ReadingRow>(&ch, &table, rows, None).await?;
            written += n;
        }
        Ok(())
    }
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let _ = ch
        .query(&format!("DROP TABLE IF EXISTS {table}"))
        .execute()
        .await;
    result?;
    println!(
        "CEILING kind=database rows={written} batch={batch} seconds={elapsed:.2} insert_rows_per_s={:.1}",
        written as f64 / elapsed.max(1e-9)
    );
    Ok(())
}
