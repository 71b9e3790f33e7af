//! Publishing: MQTT connections (QoS 1), a pacer that holds the target rate (with a ramp), and
//! the bookkeeping the verifier needs (what was sent, when, per device).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use crate::config::Args;
use crate::payload::{sensor_ids, Device};

/// Shared counters and per-device publish log.
#[derive(Debug, Default)]
pub struct Sent {
    pub messages: AtomicU64,
    pub readings: AtomicU64,
    pub acked: AtomicU64,
    /// Per device: (last recorded_at of a message, ms since the run's start when published),
    /// oldest first; the latency tracker pops what ClickHouse shows.
    pub pending: Mutex<Vec<VecDeque<(i64, u64)>>>,
}

/// One MQTT connection with a task driving its event loop and counting PUBACKs.
struct Connection {
    client: AsyncClient,
    task: tokio::task::JoinHandle<()>,
}

async fn connect(args: &Args, id: String, sent: Arc<Sent>) -> anyhow::Result<Connection> {
    let mut o = MqttOptions::new(id, &args.mqtt_host, args.mqtt_port);
    o.set_clean_session(true)
        .set_inflight(1000)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    if let (Some(u), Some(p)) = (&args.mqtt_username, &args.mqtt_password) {
        o.set_credentials(u, p.expose());
    }
    let (client, mut el) = AsyncClient::new(o, 10_000);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut errors = 0u64;
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    sent.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    errors += 1;
                    if errors.is_power_of_two() {
                        eprintln!("MQTT connection error ({errors}): {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("MQTT broker did not accept the connection within 10 s")?
        .context("MQTT connection task ended")?;
    Ok(Connection { client, task })
}

/// What publishing produced.
#[derive(Debug)]
pub struct Published {
    pub elapsed: Duration,
    /// Messages published in each second of the run.
    pub per_second: Vec<u64>,
    /// Messages per second after the ramp (the sustained rate).
    pub steady_rate: f64,
}

/// The target number of messages sent after `t` seconds: 10% → 100% of the rate over the ramp.
pub fn target(rate: f64, ramp: f64, t: f64) -> f64 {
    if ramp <= 0.0 || t >= ramp {
        let ramp_msgs = if ramp > 0.0 { rate * ramp * 0.55 } else { 0.0 };
        ramp_msgs + rate * (t - ramp.max(0.0))
    } else {
        // Integral of rate * (0.1 + 0.9 t/ramp).
        rate * (0.1 * t + 0.45 * t * t / ramp)
    }
}

/// Publishes the run's load and returns when done (PUBACKs may still be arriving).
pub async fn run(
    args: &Args,
    run_id: &str,
    start_t: i64,
    started: Instant,
    sent: Arc<Sent>,
) -> anyhow::Result<Published> {
    let sensors = sensor_ids(args.sensors);
    let mut devices: Vec<Device> = (0..args.devices)
        .map(|i| Device::new(run_id, i, start_t))
        .collect();
    if let Ok(mut p) = sent.pending.lock() {
        *p = vec![VecDeque::new(); args.devices];
    }
    let mut conns = Vec::with_capacity(args.connections);
    for c in 0..args.connections {
        conns.push(connect(args, format!("{run_id}-pub{c}"), sent.clone()).await?);
    }
    let mut rng = fastrand::Rng::with_seed(
        u64::from_str_radix(run_id.trim_start_matches("lt"), 16).unwrap_or(7),
    );
    let total_secs = args.duration.as_secs_f64();
    let ramp = args.ramp.as_secs_f64().min(total_secs);
    let mut per_second = vec![0u64; total_secs.ceil() as usize + 1];
    let mut next_device = 0usize;
    let mut count = 0u64;
    let mut last_report = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        let due = target(args.rate, ramp, t.min(total_secs)) as u64;
        while count < due {
            let d = next_device;
            next_device = (next_device + 1) % devices.len();
            let raw = rng.f64() < args.raw_share;
            let entries = if !raw && rng.f64() < args.multi_share {
                rng.usize(2..=5)
            } else {
                1
            };
            let m = devices[d].next_message(&sensors, raw, entries);
            let now_ms = started.elapsed().as_millis() as u64;
            if let Ok(mut p) = sent.pending.lock() {
                p[d].push_back((m.last_t, now_ms));
            }
            conns[d % conns.len()]
                .client
                .publish(m.topic, QoS::AtLeastOnce, false, m.payload)
                .await
                .context("queueing a publish")?;
            count += 1;
            sent.messages.fetch_add(1, Ordering::Relaxed);
            sent.readings
                .fetch_add(m.readings as u64, Ordering::Relaxed);
            let sec = (now_ms / 1000) as usize;
            if let Some(slot) = per_second.get_mut(sec) {
                *slot += 1;
            }
        }
        let sec = started.elapsed().as_secs();
        if sec > last_report {
            last_report = sec;
            let acked = sent.acked.load(Ordering::Relaxed);
            let rate = per_second.get(sec as usize - 1).copied().unwrap_or(0);
            eprintln!("[{sec:>4}s] sent {count} acked {acked} rate {rate} msg/s");
        }
        if t >= total_secs {
            break;
        }
    }
    let elapsed = started.elapsed();
    // Wait (bounded) for the broker to acknowledge everything before disconnecting.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sent.acked.load(Ordering::Relaxed) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in &conns {
        let _ = c.client.disconnect().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    for c in conns {
        c.task.abort();
    }
    per_second.truncate(total_secs.ceil() as usize);
    let ramp_msgs = target(args.rate, ramp, ramp).min(count as f64);
    let steady_secs = elapsed.as_secs_f64() - ramp;
    let steady_rate = if steady_secs > 0.5 {
        (count as f64 - ramp_msgs) / steady_secs
    } else {
        count as f64 / elapsed.as_secs_f64().max(1e-9)
    };
    Ok(Published {
        elapsed,
        per_second,
        steady_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_ramps_then_holds_the_rate() {
        assert_eq!(target(1000.0, 2.0, 0.0), 0.0);
        // Continuous at the end of the ramp, then exactly `rate` per second.
        let end = target(1000.0, 2.0, 2.0);
        assert!((end - 1100.0).abs() < 1e-6, "{end}");
        assert!((target(1000.0, 2.0, 3.0) - end - 1000.0).abs() < 1e-6);
        assert!((target(500.0, 0.0, 4.0) - 2000.0).abs() < 1e-6);
        // Monotonic.
        let mut last = -1.0;
        for i in 0..100 {
            let v = target(800.0, 2.0, i as f64 * 0.05);
            assert!(v >= last);
            last = v;
        }
    }
}
