//! sck-decoder: Kafka (the bridge's records) -> decode both readings formats and the device
//! events -> batched RowBinary inserts into ClickHouse, committing Kafka offsets only after the
//! insert holding them succeeded. Run as many as there are readings partitions.

mod batch;
mod clickhouse;
mod config;
mod inspect;
mod kafka;
mod metrics;
mod pipeline;
mod platform;
mod replay;

/// The pipeline's path to the sink (`crate::sink::Sink`).
use crate::clickhouse::sink;

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sck_core::backoff::Backoff;
use sck_runtime::log_limit::LogLimiter;
use sck_runtime::{hostname, http, shutdown_signal, telemetry};
use tokio::sync::watch;

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
            eprintln!("sck-decoder: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // `decode` needs no async runtime; the others run on one.
    let migrate_only = match &cfg.command {
        config::Command::Decode(args) => return decode(args, cfg.max_future_secs),
        config::Command::Migrate | config::Command::Replay(_) => true,
        config::Command::Run => false,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sck-decoder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if let config::Command::Replay(args) = &cfg.command {
        runtime.block_on(replay_once(&cfg, args))
    } else if migrate_only {
        runtime
            .block_on(clickhouse::migrate::once(&cfg))
            .map(|_| ())
    } else {
        runtime.block_on(run(cfg))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("sck-decoder failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sck-decoder replay`: the kept messages of devices registered since, stored now.
async fn replay_once(cfg: &config::Config, args: &config::ReplayArgs) -> anyhow::Result<()> {
    let since = inspect::parse_now(&args.since).map_err(|e| anyhow::anyhow!("--since: {e}"))?;
    let registry = cfg
        .registry
        .as_ref()
        .context("replay needs REGISTRY_POSTGRES_URL (the devices to replay for)")?;
    let pg = platform::Postgres::start(&registry.url, registry.query_timeout)?;
    if !pg.connected(registry.query_timeout * 2).await {
        anyhow::bail!("cannot connect to PostgreSQL ({})", pg.target());
    }
    let ch = clickhouse::client(cfg, true)?;
    let ids = |tokens: Vec<String>| async move {
        let client = pg.client().context("PostgreSQL connection lost")?;
        let rows = pg
            .timed(client.query(
                "SELECT device_token, id FROM devices WHERE device_token = ANY($1::text[])",
                &[&tokens],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                let id: i32 = r.get(1);
                Ok((r.get::<_, String>(0), u32::try_from(id)?))
            })
            .collect::<anyhow::Result<std::collections::HashMap<String, u32>>>()
    };
    let summary = replay::run(
        &ch,
        &cfg.database,
        since,
        args.device_token.as_deref(),
        cfg.max_future_secs,
        ids,
    )
    .await?;
    println!(
        "replayed messages={} readings={} still_unknown={}",
        summary.messages, summary.readings, summary.still_unknown
    );
    Ok(())
}

/// `sck-decoder decode`: stdin/argument in, JSON lines out (the logic is in [`inspect`]).
fn decode(args: &config::DecodeArgs, max_future_secs: i64) -> ExitCode {
    let usage = |e: &dyn std::fmt::Display| {
        eprintln!("sck-decoder decode: {e}");
        ExitCode::from(2)
    };
    let now = match &args.now {
        Some(s) => match inspect::parse_now(s) {
            Ok(n) => n,
            Err(e) => return usage(&e),
        },
        None => sck_runtime::clock::now_secs(),
    };
    let limits = sck_core::reading::Limits {
        now,
        max_future_secs,
    };
    let input = match args.payload.as_deref() {
        Some(p) if p != "-" => p.as_bytes().to_vec(),
        None if !args.lines => {
            return usage(&"give the payload as an argument, or - to read it from stdin")
        }
        _ => {
            let mut buf = Vec::new();
            if let Err(e) = std::io::stdin().lock().read_to_end(&mut buf) {
                return usage(&format!("reading stdin: {e}"));
            }
            buf
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = if args.lines {
        inspect::decode_lines(&mut out, &args.topic, &input, &limits)
    } else {
        let mut decoder = sck_core::decode::Decoder::default();
        inspect::decode_one(&mut out, &mut decoder, &args.topic, &input, &limits, None)
            .map_err(inspect::LinesError::from)
    };
    match result.and_then(|t| out.flush().map(|()| t).map_err(Into::into)) {
        Ok(tally) => ExitCode::from(tally.exit_code()),
        Err(e) => usage(&e),
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing::info!(
        client_id = %cfg.client_id,
        kafka = %cfg.kafka_brokers,
        group = %cfg.group,
        clickhouse = %cfg.clickhouse_url,
        database = %cfg.database,
        batch_rows = cfg.batch.max_rows,
        batch_age_ms = cfg.batch.max_age.as_millis() as u64,
        "starting sck-decoder"
    );
    let metrics = metrics::Metrics::new().context("registering metrics")?;
    let readiness =
        http::Readiness::new(&["kafka", "clickhouse", clickhouse::blocked::READINESS_CHECK]);
    http::serve(
        cfg.metrics_addr,
        metrics.registry.clone(),
        readiness.clone(),
    )
    .await?;

    let blocked = Arc::new(clickhouse::Blocked::new(&metrics, readiness.clone()));
    if cfg.migrate {
        clickhouse::migrate::until_done(&cfg, &blocked).await?;
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
    let retry = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(10),
    };
    let sink = Arc::new(clickhouse::Sink {
        client: clickhouse::client(&cfg, true)?,
        metrics: metrics.clone(),
        insert_timeout: cfg.insert_timeout,
        retry,
        warnings: LogLimiter::new(Duration::from_secs(5)),
        blocked,
    });
    let dead_letters = Arc::new(kafka::DeadLetterWriter {
        producer: kafka::producer(&cfg)?,
        topic: cfg.dlq_topic.clone(),
        metrics: metrics.clone(),
        retry,
        warnings: LogLimiter::new(Duration::from_secs(5)),
    });
    let (registry, platform) = match start_registry(&cfg, &metrics).await? {
        Some((registry, pg)) => {
            let platform = platform_writer(&cfg, pg, &metrics)?;
            (Some(registry), platform)
        }
        None => (None, None),
    };
    let probes = tokio::spawn(watch_dependencies(
        Arc::downgrade(&consumer),
        sink.clone(),
        readiness.clone(),
        metrics.clone(),
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn({
        let readiness = readiness.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received");
            readiness.stopping();
            let _ = stop_tx.send(true);
        }
    });
    let pipeline = pipeline::Pipeline {
        consumer,
        assignment,
        sink,
        dead_letters,
        metrics,
        limits: cfg.batch,
        max_future_secs: cfg.max_future_secs,
        dlq_topic: cfg.dlq_topic.clone(),
        drain_timeout: cfg.drain_timeout,
        registry,
        platform,
    };
    let result = pipeline.run(stop_rx).await;
    probes.abort();
    tracing::info!("sck-decoder stopped");
    result
}

/// The device registry, when REGISTRY_POSTGRES_URL is set: connected, loaded (or not: decoding
/// starts anyway, PostgreSQL is not a readiness check) and kept fresh.
async fn start_registry(
    cfg: &config::Config,
    metrics: &metrics::Metrics,
) -> anyhow::Result<Option<(Arc<platform::Registry>, platform::Postgres)>> {
    let Some(settings) = &cfg.registry else {
        tracing::info!(
            "no device registry (REGISTRY_POSTGRES_URL unset): readings are stored with device_id 0"
        );
        return Ok(None);
    };
    metrics
        .register_registry()
        .context("registering the registry metrics")?;
    let pg = platform::Postgres::start(&settings.url, settings.query_timeout)?;
    tracing::info!(
        postgres = pg.target(),
        refresh_secs = settings.refresh.as_secs(),
        "device registry: the platform's PostgreSQL"
    );
    let registry = Arc::new(platform::Registry::new(pg.clone(), settings, metrics));
    registry.first_refresh(settings.query_timeout * 2).await;
    tokio::spawn(registry.clone().keep_fresh());
    Ok(Some((registry, pg)))
}

/// The platform writer (PLATFORM_UPDATES, on by default with a registry), with Redis for the
/// onboarding handshake when REDIS_URL is set.
fn platform_writer(
    cfg: &config::Config,
    pg: platform::Postgres,
    metrics: &metrics::Metrics,
) -> anyhow::Result<Option<Arc<platform::writer::PlatformWriter>>> {
    if !cfg.platform_updates {
        tracing::info!("platform updates off (PLATFORM_UPDATES=false)");
        return Ok(None);
    }
    let redis = match &cfg.redis_url {
        Some(url) => Some(
            redis::Client::open(url.expose())
                .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL ({:?})", e.kind()))?,
        ),
        None => {
            tracing::info!(
                "no REDIS_URL: orphan devices' hellos set the handshake flag but publish nothing"
            );
            None
        }
    };
    Ok(Some(Arc::new(platform::writer::PlatformWriter {
        pg,
        redis,
        metrics: metrics.clone(),
        retry: Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
        },
        warnings: LogLimiter::new(Duration::from_secs(10)),
    })))
}

/// Sets the `kafka` and `clickhouse` readiness checks every few seconds.
async fn watch_dependencies(
    consumer: Weak<kafka::DecoderConsumer>,
    sink: Arc<clickhouse::Sink>,
    readiness: Arc<http::Readiness>,
    metrics: metrics::Metrics,
) {
    let mut was = (None, None);
    loop {
        let kafka_ok = match consumer.upgrade() {
            Some(c) => tokio::task::spawn_blocking(move || kafka::probe(&c))
                .await
                .unwrap_or_else(|e| Err(e.to_string())),
            None => return,
        };
        let ch_ok = sink.ping().await;
        readiness.set("kafka", kafka_ok.is_ok());
        readiness.set("clickhouse", ch_ok);
        metrics.kafka_up.set(kafka_ok.is_ok() as i64);
        metrics.clickhouse_up.set(ch_ok as i64);
        let now = (Some(kafka_ok.is_ok()), Some(ch_ok));
        if now != was {
            match &kafka_ok {
                Ok(()) => tracing::info!(clickhouse = ch_ok, "Kafka reachable"),
                Err(e) => tracing::warn!(error = %e, clickhouse = ch_ok, "Kafka not reachable"),
            }
            was = now;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}
