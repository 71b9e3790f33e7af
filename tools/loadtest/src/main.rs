//! sck-loadtest: simulates Smart Citizen Kit devices against the real MQTT broker, then checks
//! in ClickHouse that every reading arrived (none missing, none left duplicated) and how late.
//! Also measures the ceilings the pipeline is compared against: a bare MQTT subscriber, a bare
//! Kafka producer and consumer group, and bulk inserts straight into ClickHouse.

mod ceiling;
mod config;
mod kafka_ceiling;
mod payload;
mod publish;
mod register;
mod report;
mod verify;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sck_runtime::clock::now_secs;

use crate::config::{Args, Mode};
use crate::report::{Latency, Report};

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print.printed::<Args>() {
        return ExitCode::SUCCESS;
    }
    if let Err(e) = args.check() {
        eprintln!("sck-loadtest: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sck-loadtest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.mode.clone().unwrap_or(Mode::Run) {
        Mode::Run => runtime.block_on(run(&args)),
        Mode::SubscribeCeiling { group } => runtime
            .block_on(ceiling::subscriber(&args, &group))
            .map(|()| true),
        Mode::KafkaCeiling {
            brokers,
            topic,
            partitions,
            messages,
            compression,
            linger_ms,
        } => {
            let spec = kafka_ceiling::Spec {
                brokers: brokers.kafka_brokers,
                topic: topic.unwrap_or_else(|| format!("sck.ceiling.{:08x}", fastrand::u32(..))),
                partitions,
                messages,
                compression,
                linger_ms,
            };
            kafka_ceiling::run(&args, &spec).map(|()| true)
        }
        Mode::InsertCeiling { rows, batch } => runtime
            .block_on(ceiling::insert(&args, rows, batch))
            .map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sck-loadtest failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The `recorded_at` of every device's first reading: far enough in the past that its last
/// reading (one second per timestamp, at most 5 per message) is still not in the future.
fn start_time(args: &Args) -> i64 {
    let per_device = (args.rate * args.duration.as_secs_f64() / args.devices as f64).ceil() as i64;
    now_secs() - per_device * 5 - 60
}

/// Publish, verify, report. Ok(false) when readings are missing.
async fn run(args: &Args) -> anyhow::Result<bool> {
    let run_id = args.run_id();
    let ch = verify::client(&args.clickhouse);
    let db = args.clickhouse.clickhouse_database.clone();
    eprintln!(
        "run {run_id}: {} devices, {} msg/s for {:?} over {} connections, {} sensors, raw share {}",
        args.devices, args.rate, args.duration, args.connections, args.sensors, args.raw_share
    );
    let device_ids = match &args.platform_postgres_url {
        Some(url) => {
            let tokens: Vec<String> = (0..args.devices)
                .map(|i| payload::token(&run_id, i))
                .collect();
            let ids = register::devices(url, &tokens).await?;
            eprintln!(
                "registered {} devices in the platform's PostgreSQL",
                ids.len()
            );
            Some(ids)
        }
        None => None,
    };
    let sent = Arc::new(publish::Sent::default());
    let started = Instant::now();
    let publisher = tokio::spawn({
        let (args, run_id, sent) = (args.clone(), run_id.clone(), sent.clone());
        async move { publish::run(&args, &run_id, start_time(&args), started, sent).await }
    });

    let mut tracker = verify::Tracker::default();
    let probe = verify::Probe {
        ch: &ch,
        db: &db,
        run_id: &run_id,
        sent: &sent,
        started,
    };
    let far = Instant::now() + args.duration + Duration::from_secs(3600);
    // Poll ClickHouse for visible readings while publishing (latency of the early messages).
    let published = tokio::select! {
        done = publisher => done??,
        _ = verify::track_until(&mut tracker, &probe, far, |_| false) => {
            anyhow::bail!("latency tracking ended before publishing did")
        }
    };
    let sent_messages = sent.messages.load(Ordering::Relaxed);
    let sent_readings = sent.readings.load(Ordering::Relaxed);
    eprintln!(
        "published {sent_messages} messages ({sent_readings} readings) in {:.1}s; acked {}; verifying",
        published.elapsed.as_secs_f64(),
        sent.acked.load(Ordering::Relaxed)
    );

    let deadline = Instant::now() + args.verify_timeout;
    let all_visible = |s: &Arc<publish::Sent>| {
        s.pending
            .lock()
            .map(|p| p.iter().all(|q| q.is_empty()))
            .unwrap_or(false)
    };
    let sent_for_check = sent.clone();
    verify::track_until(&mut tracker, &probe, deadline, |_| {
        all_visible(&sent_for_check)
    })
    .await;
    let mut counts = verify::counts(&ch, &db, &run_id).await?;
    while counts.distinct < sent_readings && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        counts = verify::counts(&ch, &db, &run_id).await?;
    }
    // One last poll so the stored-over-time series ends at the final count.
    let _ = tracker.poll(&probe).await;

    let wrong_device_ids = match &device_ids {
        Some(ids) => Some(register::wrong_device_ids(&ch, &db, &run_id, ids).await?),
        None => None,
    };
    let mut lat = tracker.latencies_ms.clone();
    lat.sort_unstable();
    let report = Report {
        run_id: run_id.clone(),
        sent_messages,
        sent_readings,
        acked_messages: sent.acked.load(Ordering::Relaxed),
        stored_readings: counts.distinct,
        missing_readings: sent_readings.saturating_sub(counts.distinct),
        duplicate_readings: counts.final_rows.saturating_sub(counts.distinct),
        redelivered_rows: counts.rows.saturating_sub(counts.distinct),
        msgs_per_s: published.steady_rate,
        readings_per_s: sent_readings as f64 / published.elapsed.as_secs_f64().max(1e-9),
        stored_readings_per_s: stored_rate(&tracker.stored),
        latency_ms: Latency {
            p50: verify::quantile(&lat, 0.50),
            p90: verify::quantile(&lat, 0.90),
            p99: verify::quantile(&lat, 0.99),
            max: lat.last().copied().unwrap_or(0),
        },
        latency_samples: lat.len(),
        duration_s: published.elapsed.as_secs_f64(),
        catch_up_s: catch_up(&tracker.stored, published.elapsed.as_secs_f64()),
        sent_per_second: published.per_second,
        stored_over_time: tracker.stored.clone(),
        wrong_device_ids,
    };
    if let Some(path) = &args.report {
        let svg = report.write(path, &lat)?;
        eprintln!("report: {} and {}", path.display(), svg.display());
    }
    if report.missing_readings > 0 {
        eprintln!(
            "MISSING: {} of {} readings are not in ClickHouse after {:?}",
            report.missing_readings, sent_readings, args.verify_timeout
        );
    }
    if let Some(n) = wrong_device_ids.filter(|n| *n > 0) {
        eprintln!("WRONG DEVICE IDS: {n} stored readings do not carry their device's id");
    }
    println!("{}", report.result_line());
    Ok(report.missing_readings == 0 && wrong_device_ids.unwrap_or(0) == 0)
}

/// Rows stored per second while rows were arriving: from the first poll that saw rows to the
/// first poll that saw the final count.
fn stored_rate(stored: &[(f64, u64)]) -> f64 {
    let Some(&(_, last)) = stored.last() else {
        return 0.0;
    };
    let first = stored.iter().find(|(_, n)| *n > 0);
    let done = stored.iter().find(|(_, n)| *n >= last);
    match (first, done) {
        (Some(&(t0, n0)), Some(&(t1, n1))) if t1 > t0 => (n1 - n0) as f64 / (t1 - t0),
        _ => 0.0,
    }
}

/// Seconds after `end` (publishing finished) at which the final count was first seen.
fn catch_up(stored: &[(f64, u64)], end: f64) -> f64 {
    let Some(&(_, last)) = stored.last() else {
        return 0.0;
    };
    stored
        .iter()
        .find(|(_, n)| *n >= last)
        .map_or(0.0, |(t, _)| t - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_up_is_measured_from_the_end_of_publishing() {
        let s = [(9.0, 100), (10.5, 150), (12.0, 200), (12.5, 200)];
        assert_eq!(catch_up(&s, 10.0), 2.0);
        assert_eq!(catch_up(&[], 10.0), 0.0);
    }

    #[test]
    fn stored_rate_spans_the_arrival_window() {
        let s = [
            (0.0, 0),
            (1.0, 0),
            (2.0, 100),
            (3.0, 300),
            (4.0, 500),
            (5.0, 500),
        ];
        assert_eq!(stored_rate(&s), 200.0);
        assert_eq!(stored_rate(&[]), 0.0);
        assert_eq!(stored_rate(&[(1.0, 5)]), 0.0);
    }
}
