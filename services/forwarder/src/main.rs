//! sck-forwarder: Kafka (the bridge's readings records) -> the readings of the devices that
//! forward -> MQTT `/forward/<owner forwarding_token>/device/<device id>/readings`, QoS 1, at
//! least once. It replaces the platform's `MQTTForwardingJob`.
//!
//! # Why a service of its own, not a stage of the decoder
//!
//! It consumes `sck.readings` in its **own consumer group** (KAFKA_GROUP, default
//! `sck-forwarder`), so:
//! - **lag**: a slow or failing forwarding broker never adds lag to ClickHouse ingestion; the
//!   decoder commits and moves on whatever MQTT does, and the forwarder's backlog is its own
//!   metric (`sck_forwarder_consumer_lag`, `sck_forwarder_queued_records`);
//! - **failure isolation**: a forwarding failure holds at most one device's records (retries,
//!   then dead letters: see [`pipeline::state`]); a crash or a restart of the forwarder touches
//!   no insert;
//! - **scaling**: it scales (up to the readings partitions) and restarts on its own, sized for
//!   the few forwarding devices rather than for the whole stream.
//!
//! # "After they are stored"
//!
//! The decoder commits a partition's offsets only after the ClickHouse insert holding its
//! records succeeded. The forwarder reads the decoder group's committed offsets
//! (FORWARD_AFTER_GROUP, every FORWARD_GATE_POLL_MS; [`kafka::gate`]) and publishes a record only
//! once that offset is past it: what is forwarded is stored. Forwarding therefore follows the
//! decoder by about one of its batches; when the decoder stops, forwarding waits (and the
//! forwarder's lag shows it). An empty FORWARD_AFTER_GROUP forwards as soon as consumed.
//!
//! # Which devices
//!
//! `devices.enable_forwarding` and the owner's `users.forwarding_token`, read from the platform's
//! PostgreSQL (REGISTRY_POSTGRES_URL) into a cache ([`registry`]): every forwarding device each
//! FORWARDER_REFRESH_SECS, a token seen for the first time at once, a bounded negative set for
//! the others. Nothing is consumed before the first load. While PostgreSQL is down the cache
//! answers; a token it has never seen is not forwarded then (counted as
//! `registry_unavailable`): its readings are stored all the same.

mod config;
mod kafka;
mod metrics;
mod mqtt;
mod payload;
mod pipeline;
mod registry;

use std::process::ExitCode;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rumqttc::v5::AsyncClient;
use sck_core::backoff::Backoff;
use sck_runtime::log_limit::LogLimiter;
use sck_runtime::{hostname, http, shutdown_signal, telemetry};
use tokio::sync::{mpsc, watch};

fn main() -> ExitCode {
    let args = config::Args::parse();
    if args.print.printed::<config::Args>() {
        return ExitCode::SUCCESS;
    }
    telemetry::init(args.service.log_format);
    let cfg = match args.validate(&hostname()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("invalid configuration: {e}");
            eprintln!("sck-forwarder: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sck-forwarder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sck-forwarder failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pg: tokio_postgres::Config = cfg
        .registry_url
        .expose()
        .parse()
        .context("REGISTRY_POSTGRES_URL")?;
    tracing::info!(
        client_id = %cfg.client_id,
        kafka = %cfg.kafka_brokers,
        group = %cfg.group,
        after_group = cfg.after_group.as_deref().unwrap_or("(none: forward at once)"),
        mqtt = %format!("{}:{}", cfg.mqtt_host, cfg.mqtt_port),
        registry = %registry::postgres::describe(&pg),
        "starting sck-forwarder"
    );
    let metrics = metrics::Metrics::new().context("registering metrics")?;
    let readiness =
        http::Readiness::new(&["kafka", mqtt::READINESS_CHECK, registry::READINESS_CHECK]);
    http::serve(
        cfg.metrics_addr,
        metrics.registry.clone(),
        readiness.clone(),
    )
    .await?;

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn({
        let readiness = readiness.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            readiness.stopping();
            let _ = stop_tx.send(true);
        }
    });

    let registry = Arc::new(registry::Registry {
        cache: Mutex::new(registry::cache::Cache::new(cfg.negative_cache)),
        postgres: registry::postgres::Postgres::new(pg, cfg.registry_timeout),
        refresh: cfg.refresh,
        metrics: metrics.clone(),
        lookup_failures: Default::default(),
    });
    let refresher = tokio::spawn(registry.clone().refresh(readiness.clone()));

    // MQTT: the publisher task owns the connection.
    let (client, eventloop) = AsyncClient::new(mqtt::options(&cfg)?, mqtt::channel_capacity(&cfg));
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
    let (connected_tx, connected_rx) = watch::channel(false);
    let publisher = tokio::spawn(
        mqtt::Publisher {
            client,
            eventloop,
            commands: commands_rx,
            outcomes: outcomes_tx,
            connected: connected_tx,
            max_in_flight: cfg.max_in_flight,
            reconnect: Backoff {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(10),
            },
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        }
        .run(),
    );

    // Nothing is consumed before the forwarding devices are known.
    while !registry.loaded() {
        tokio::select! {
            _ = stop_rx.changed() => {
                let _ = commands_tx.send(mqtt::Command::Disconnect);
                let _ = publisher.await;
                return Ok(());
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }

    let assignment = Arc::new(kafka::Assignment::default());
    let consumer = kafka::consumer(
        &cfg,
        kafka::Ctx {
            assignment: assignment.clone(),
            consumer_lag: metrics.consumer_lag.clone(),
            commit_errors: metrics.commit_errors.clone(),
        },
    )?;
    let gates = match &cfg.after_group {
        Some(group) => {
            let watcher = Arc::new(kafka::gate::watcher(&cfg, group)?);
            let (tx, rx) = watch::channel(kafka::gate::Gates::new());
            tokio::spawn(kafka::gate::poll(
                watcher,
                cfg.readings_topic.clone(),
                assignment.clone(),
                cfg.gate_poll,
                tx,
            ));
            Some(rx)
        }
        None => None,
    };
    let dead_letters = Arc::new(kafka::DeadLetterWriter {
        producer: kafka::producer(&cfg)?,
        topic: cfg.dlq_topic.clone(),
        metrics: metrics.clone(),
        retry: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        },
        warnings: LogLimiter::new(Duration::from_secs(5)),
    });
    let probes = tokio::spawn(watch_kafka(
        Arc::downgrade(&consumer),
        readiness.clone(),
        metrics.clone(),
    ));
    let pipeline = pipeline::Pipeline {
        consumer,
        assignment,
        registry,
        dead_letters,
        metrics,
        mqtt: commands_tx,
        outcomes: outcomes_rx,
        connected: connected_rx,
        gates,
        limits: pipeline::state::Limits {
            device_queue: cfg.device_queue,
            max_attempts: cfg.max_attempts,
            retry: cfg.retry,
        },
        capacity: cfg.queue_capacity,
        max_future_secs: cfg.max_future_secs,
        readings_topic: cfg.readings_topic.clone(),
        drain_timeout: cfg.drain_timeout,
    };
    let result = pipeline.run(stop_rx).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
    probes.abort();
    refresher.abort();
    tracing::info!("sck-forwarder stopped");
    result
}

/// Sets the `kafka` readiness check and `sck_forwarder_kafka_up` every few seconds.
async fn watch_kafka(
    consumer: Weak<kafka::ForwarderConsumer>,
    readiness: Arc<http::Readiness>,
    metrics: metrics::Metrics,
) {
    let mut was = None;
    loop {
        let ok = match consumer.upgrade() {
            Some(c) => tokio::task::spawn_blocking(move || kafka::probe(&c))
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
            None => return,
        };
        readiness.set("kafka", ok.is_ok());
        metrics.kafka_up.set(ok.is_ok() as i64);
        if was != Some(ok.is_ok()) {
            match &ok {
                Ok(()) => tracing::info!("Kafka reachable"),
                Err(e) => tracing::warn!(error = %e, "Kafka not reachable"),
            }
            was = Some(ok.is_ok());
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
