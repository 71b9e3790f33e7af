//! The ClickHouse schema as versioned, idempotent migrations.
//!
//! Every statement is `CREATE … IF NOT EXISTS`, so running them twice (two decoders starting at
//! once, a crash half way) is harmless; `schema_migrations` records which versions ran. The SQL
//! is rendered for the server it runs on: ClickHouse 18.16 (what CI has) gets plain types,
//! servers that have them get `LowCardinality`, column codecs and a TTL on `ingest_errors`.

use anyhow::Context;
use clickhouse::Client;

/// What the server supports, from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `LowCardinality(String)` without an experimental flag (19.1+ ; we require 20.1).
    pub low_cardinality: bool,
    /// Column `CODEC(...)` (19.1+; we require 20.1).
    pub codecs: bool,
    /// Table `TTL` (19.6+; we require 20.1).
    pub ttl: bool,
}

impl Features {
    /// From `SELECT version()`, e.g. `18.16.1` or `25.3.2.39`.
    pub fn from_version(version: &str) -> Features {
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let modern = major >= 20;
        Features {
            low_cardinality: modern,
            codecs: modern,
            ttl: modern,
        }
    }
}

/// One schema version: statements with `{db}` for the database.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: fn(Features) -> Vec<String>,
}

fn lc(f: Features) -> &'static str {
    if f.low_cardinality {
        "LowCardinality(String)"
    } else {
        "String"
    }
}

fn codec(f: Features, codec: &'static str) -> String {
    if f.codecs {
        format!(" CODEC({codec})")
    } else {
        String::new()
    }
}

/// All migrations, in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "readings and ingest_errors",
        statements: |f| {
            vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {{db}}.readings (
                        device_token String,
                        sensor_id UInt32,
                        recorded_at DateTime{},
                        value Float64{},
                        received_at DateTime{},
                        format {}
                    ) ENGINE = ReplacingMergeTree()
                    PARTITION BY toYYYYMM(recorded_at)
                    ORDER BY (device_token, sensor_id, recorded_at)",
                    codec(f, "DoubleDelta, LZ4"),
                    codec(f, "Gorilla, LZ4"),
                    codec(f, "DoubleDelta, LZ4"),
                    lc(f)
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {{db}}.ingest_errors (
                        received_at DateTime,
                        mqtt_topic String,
                        device_token String,
                        error_kind {},
                        error_message String,
                        payload String{},
                        kafka_topic {},
                        kafka_partition UInt32,
                        kafka_offset UInt64,
                        error_index UInt32
                    ) ENGINE = ReplacingMergeTree()
                    PARTITION BY toYYYYMM(received_at)
                    ORDER BY (received_at, kafka_topic, kafka_partition, kafka_offset, error_index){}",
                    lc(f),
                    codec(f, "ZSTD(3)"),
                    lc(f),
                    if f.ttl {
                        "\n                    TTL received_at + INTERVAL 90 DAY"
                    } else {
                        ""
                    }
                ),
            ]
        },
    },
    Migration {
        version: 2,
        name: "device hello, info and inventory",
        statements: |f| {
            vec![
                "CREATE TABLE IF NOT EXISTS {db}.device_hello (
                    device_token String,
                    last_seen DateTime
                ) ENGINE = ReplacingMergeTree(last_seen)
                ORDER BY device_token"
                    .to_string(),
                format!(
                    "CREATE TABLE IF NOT EXISTS {{db}}.device_info (
                        device_token String,
                        received_at DateTime,
                        info String{}
                    ) ENGINE = ReplacingMergeTree()
                    PARTITION BY toYYYYMM(received_at)
                    ORDER BY (device_token, received_at)",
                    codec(f, "ZSTD(3)")
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {{db}}.device_inventory (
                        received_at DateTime,
                        report String{},
                        kafka_partition UInt32,
                        kafka_offset UInt64
                    ) ENGINE = ReplacingMergeTree()
                    PARTITION BY toYYYYMM(received_at)
                    ORDER BY (received_at, kafka_partition, kafka_offset)",
                    codec(f, "ZSTD(3)")
                ),
            ]
        },
    },
];

/// Runs the migrations not yet recorded in `{db}.schema_migrations`. Returns the server version.
/// `client` must not have a default database set (the database may not exist yet).
pub async fn migrate(client: &Client, db: &str) -> anyhow::Result<String> {
    let version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .context("asking ClickHouse for its version")?;
    let features = Features::from_version(&version);
    exec(client, &format!("CREATE DATABASE IF NOT EXISTS {db}")).await?;
    exec(
        client,
        &format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (
                version UInt32,
                name String,
                applied_at DateTime
            ) ENGINE = ReplacingMergeTree() ORDER BY version"
        ),
    )
    .await?;
    let applied: Vec<u32> = client
        .query(&format!(
            "SELECT DISTINCT version FROM {db}.schema_migrations"
        ))
        .fetch_all()
        .await
        .context("reading schema_migrations")?;
    for m in MIGRATIONS {
        if applied.contains(&m.version) {
            continue;
        }
        for sql in (m.statements)(features) {
            exec(client, &sql.replace("{db}", db)).await?;
        }
        exec(
            client,
            &format!(
                "INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES ({}, '{}', now())",
                m.version,
                m.name.replace('\'', "")
            ),
        )
        .await?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied ClickHouse migration"
        );
    }
    Ok(version)
}

async fn exec(client: &Client, sql: &str) -> anyhow::Result<()> {
    client
        .query(sql)
        .execute()
        .await
        .with_context(|| format!("ClickHouse statement failed: {}", first_line(sql)))
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_by_version() {
        let old = Features::from_version("18.16.1");
        assert!(!old.low_cardinality && !old.codecs && !old.ttl);
        let new = Features::from_version("25.3.2.39");
        assert!(new.low_cardinality && new.codecs && new.ttl);
        assert_eq!(Features::from_version("garbage"), old);
    }

    #[test]
    fn versions_are_increasing_and_sql_is_rendered_per_server() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        let old: String = MIGRATIONS
            .iter()
            .flat_map(|m| (m.statements)(Features::from_version("18.16.1")))
            .collect();
        assert!(!old.contains("CODEC") && !old.contains("LowCardinality") && !old.contains("TTL"));
        assert_eq!(old.matches("IF NOT EXISTS").count(), 5);
        let new: String = MIGRATIONS
            .iter()
            .flat_map(|m| (m.statements)(Features::from_version("24.8.1")))
            .collect();
        assert!(new.contains("CODEC(DoubleDelta, LZ4)") && new.contains("LowCardinality(String)"));
        assert!(new.contains("TTL received_at + INTERVAL 90 DAY"));
        assert!(new.contains("ORDER BY (device_token, sensor_id, recorded_at)"));
    }
}
