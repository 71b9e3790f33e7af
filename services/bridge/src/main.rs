//! sck-bridge: MQTT (shared subscription) -> Kafka, acknowledging each MQTT message only after
//! Kafka has acknowledged its record. Stateless: run as many as the broker load needs.

mod config;
mod forward;
mod kafka;
mod metrics;
mod mqtt;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use sck_core::backoff::Backoff;
use sck_runtime::{http, shutdown_signal, telemetry};
use tokio::sync::{watch, Semaphore};

fn main() -> ExitCode {
    let args = config::Args::parse();
    if args.print.printed::<config::Args>() {
        return ExitCode::SUCCESS;
    }
    telemetry::init(args.service.log_format);
    let cfg = match args.validate() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            eprintln!("sck-bridge: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sck-bridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sck-bridge failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    // rumqttc's TLS uses the process-wide rustls provider; ring is the one compiled in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing::info!(
        client_id = %cfg.client_id,
        mqtt = %format!("{}:{}", cfg.mqtt_host, cfg.mqtt_port),
        kafka = %cfg.kafka_brokers,
        subscriptions = ?cfg.subscriptions,
        max_in_flight = cfg.max_in_flight,
        "starting sck-bridge"
    );

    let metrics = metrics::Metrics::new().context("registering metrics")?;
    let readiness = http::Readiness::new(&["mqtt", "kafka"]);
    http::serve(
        cfg.metrics_addr,
        metrics.registry.clone(),
        readiness.clone(),
    )
    .await?;

    if let Some((partitions, replication)) = cfg.create_topics {
        kafka::create_topics(&cfg, partitions, replication).await?;
    }
    let producer = kafka::producer(&cfg)?;
    let topics = vec![
        cfg.readings_topic.clone(),
        cfg.events_topic.clone(),
        cfg.dlq_topic.clone(),
    ];
    let (stop_tx, stop_rx) = watch::channel(false);
    let fatal = tokio::spawn({
        let (producer, readiness, metrics, stop_tx) = (
            producer.clone(),
            readiness.clone(),
            metrics.clone(),
            stop_tx.clone(),
        );
        async move {
            let error = kafka::watch(producer, topics, readiness, metrics).await;
            tracing::error!(%error, "Kafka producer failed fatally; stopping");
            let _ = stop_tx.send(true);
            error
        }
    });

    let (client, eventloop) =
        rumqttc::v5::AsyncClient::new(mqtt::options(&cfg)?, mqtt::channel_capacity(&cfg));
    let max_in_flight = u32::try_from(cfg.max_in_flight).context("MAX_IN_FLIGHT too large")?;
    let (delivered_tx, delivered_rx) = tokio::sync::mpsc::unbounded_channel();
    let forwarder = Arc::new(forward::Forwarder {
        producer,
        delivered: delivered_tx,
        topics: forward::Topics {
            readings: cfg.readings_topic.clone(),
            events: cfg.events_topic.clone(),
            dead_letter: cfg.dlq_topic.clone(),
        },
        bridge_id: cfg.client_id.clone(),
        max_payload_bytes: cfg.max_payload_bytes,
        metrics: metrics.clone(),
        retry: Backoff::default(),
        produce_warnings: sck_runtime::log_limit::LogLimiter::new(std::time::Duration::from_secs(
            5,
        )),
    });
    let intake = mqtt::Intake {
        client,
        eventloop,
        subscriptions: cfg.subscriptions.clone(),
        forwarder,
        delivered: delivered_rx,
        permits: Arc::new(Semaphore::new(cfg.max_in_flight)),
        max_in_flight,
        drain_timeout: cfg.drain_timeout,
        readiness,
        metrics,
        reconnect: Backoff {
            initial: std::time::Duration::from_millis(200),
            max: std::time::Duration::from_secs(30),
        },
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received");
        let _ = stop_tx.send(true);
    });
    intake.run(stop_rx).await?;
    if fatal.is_finished() {
        let error = fatal.await.unwrap_or_else(|e| e.to_string());
        anyhow::bail!("stopped after a fatal Kafka error: {error}");
    }
    tracing::info!("sck-bridge stopped");
    Ok(())
}
