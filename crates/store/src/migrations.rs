//! The schema as versioned, idempotent migrations.
//!
//! Every statement is `CREATE … IF NOT EXISTS`, so running them twice (two decoders starting at
//! once, a crash half way) is harmless; `schema_migrations` records which versions ran. The SQL
//! is rendered for the server it runs on (see [`Features`]).

use clickhouse::Client;

use crate::tables::{
    device_hello, device_info, device_inventory, ingest_errors, readings, schema_migrations,
};
use crate::Features;

/// One schema version: statements with `{db}` for the database.
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub statements: fn(Features) -> Vec<String>,
}

/// All migrations, in order. Append only: never edit one that has shipped.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "readings and ingest_errors",
        statements: |f| vec![readings::create(f), ingest_errors::create(f)],
    },
    Migration {
        version: 2,
        name: "device hello, info and inventory",
        statements: |f| {
            vec![
                device_hello::create(),
                device_info::create(f),
                device_inventory::create(f),
            ]
        },
    },
];

/// A migration step ClickHouse refused or did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct MigrateError {
    /// What was being done (the statement's first line, or the query's purpose).
    pub step: String,
    #[source]
    pub source: clickhouse::error::Error,
}

/// Runs the migrations not yet recorded in `{db}.schema_migrations`. Returns the server version.
/// `client` must not have a default database set (the database may not exist yet).
pub async fn migrate(client: &Client, db: &str) -> Result<String, MigrateError> {
    let version: String = client
        .query("SELECT version()")
        .fetch_one()
        .await
        .map_err(|source| MigrateError {
            step: "asking ClickHouse for its version".into(),
            source,
        })?;
    let features = Features::from_version(&version);
    exec(client, &format!("CREATE DATABASE IF NOT EXISTS {db}")).await?;
    exec(client, &schema_migrations::create().replace("{db}", db)).await?;
    let table = schema_migrations::NAME;
    let applied: Vec<u32> = client
        .query(&format!("SELECT DISTINCT version FROM {db}.{table}"))
        .fetch_all()
        .await
        .map_err(|source| MigrateError {
            step: format!("reading {table}"),
            source,
        })?;
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
                "INSERT INTO {db}.{table} (version, name, applied_at) VALUES ({}, '{}', now())",
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

async fn exec(client: &Client, sql: &str) -> Result<(), MigrateError> {
    client
        .query(sql)
        .execute()
        .await
        .map_err(|source| MigrateError {
            step: format!("ClickHouse statement failed: {}", first_line(sql)),
            source,
        })
}

fn first_line(sql: &str) -> &str {
    sql.lines().next().unwrap_or(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_data_table_is_created_once_under_its_name() {
        let sql: Vec<String> = MIGRATIONS
            .iter()
            .flat_map(|m| (m.statements)(Features::from_version("18.16.1")))
            .collect();
        for table in crate::tables::DATA {
            let create = format!("CREATE TABLE IF NOT EXISTS {{db}}.{table} (");
            assert_eq!(
                sql.iter().filter(|s| s.starts_with(&create)).count(),
                1,
                "{table}"
            );
        }
        assert_eq!(sql.len(), crate::tables::DATA.len());
        assert!(schema_migrations::create()
            .starts_with("CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("));
    }

    #[test]
    fn first_line_of_a_statement() {
        assert_eq!(
            first_line("CREATE TABLE x (\n a UInt8\n)"),
            "CREATE TABLE x ("
        );
        assert_eq!(first_line(""), "");
    }
}
