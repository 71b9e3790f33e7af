//! The schema as versioned, idempotent migrations.
//!
//! Every statement is `CREATE … IF NOT EXISTS` or `ALTER … ADD COLUMN IF NOT EXISTS`, so running
//! them twice (two decoders starting at once, a crash half way) is harmless; `schema_migrations`
//! records which versions ran. The SQL is rendered for the server it runs on (see [`Features`]):
//! old servers have no `ADD COLUMN IF NOT EXISTS`, so there an `ADD COLUMN` refused because the
//! column exists counts as done ([`column_exists`]).

use clickhouse::Client;

use crate::tables::{
    device_hello, device_info, device_inventory, device_latest, ingest_errors, readings,
    schema_migrations,
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
    Migration {
        version: 3,
        name: "readings.device_id",
        statements: |f| vec![readings::add_device_id(f)],
    },
    Migration {
        version: 4,
        name: "device_latest and its view on readings",
        statements: |_| vec![device_latest::create(), device_latest::create_view()],
    },
];

/// Every statement `migrate` would run on a new database of a server of `version`, in order
/// (`schema_migrations` first), with `{db}` left in: for checks against other servers.
pub fn all_statements(version: &str) -> Vec<String> {
    let f = Features::from_version(version);
    std::iter::once(schema_migrations::create())
        .chain(MIGRATIONS.iter().flat_map(|m| (m.statements)(f)))
        .collect()
}

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
            match exec(client, &sql.replace("{db}", db)).await {
                Err(e) if column_exists(&sql, &e.source) => {
                    tracing::info!(
                        statement = first_line(&sql),
                        "column already there (a previous run added it)"
                    );
                }
                result => result?,
            }
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

/// `sql` is an `ADD COLUMN` that the server refused because the column exists
/// (`ILLEGAL_COLUMN`, code 44: "column with this name already exists"): it ran before.
fn column_exists(sql: &str, error: &clickhouse::error::Error) -> bool {
    let clickhouse::error::Error::BadResponse(body) = error else {
        return false;
    };
    sql.contains(" ADD COLUMN ")
        && crate::error::exception_code(body) == Some(44)
        && body.contains("already exists")
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
        // Five tables of migrations 1-2, device_latest and its view (4); none on 18.16's ALTER.
        assert_eq!(old.matches("IF NOT EXISTS").count(), 7);
        assert!(old.contains("ALTER TABLE {db}.readings ADD COLUMN device_id UInt32 DEFAULT 0"));
        let new: String = MIGRATIONS
            .iter()
            .flat_map(|m| (m.statements)(Features::from_version("24.8.1")))
            .collect();
        assert!(new.contains("CODEC(DoubleDelta, LZ4)") && new.contains("LowCardinality(String)"));
        assert!(new.contains("TTL received_at + INTERVAL 90 DAY"));
        assert!(new.contains("ORDER BY (device_token, sensor_id, recorded_at)"));
        assert!(new.contains(
            "ALTER TABLE {db}.readings ADD COLUMN IF NOT EXISTS device_id UInt32 DEFAULT 0"
        ));
    }

    #[test]
    fn an_add_column_refused_because_the_column_exists_counts_as_done() {
        use clickhouse::error::Error;
        let add = "ALTER TABLE {db}.readings ADD COLUMN device_id UInt32 DEFAULT 0";
        let exists = || {
            Error::BadResponse(
                "Code: 44, e.displayText() = DB::Exception: Cannot add column device_id: column with this name already exists, e.what() = DB::Exception".into(),
            )
        };
        assert!(column_exists(add, &exists()));
        assert!(!column_exists(
            "CREATE TABLE IF NOT EXISTS {db}.x (",
            &exists()
        ));
        let other =
            Error::BadResponse("Code: 44. DB::Exception: Cannot add column: bad type".into());
        assert!(!column_exists(add, &other));
        let syntax = Error::BadResponse(
            "Code: 62, e.displayText() = DB::Exception: Syntax error: already exists".into(),
        );
        assert!(!column_exists(add, &syntax));
        assert!(!column_exists(add, &Error::TimedOut));
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
        // The data tables and device_latest (filled by its view, not by the decoder).
        let creates = sql.iter().filter(|s| s.starts_with("CREATE TABLE"));
        assert_eq!(creates.count(), crate::tables::DATA.len() + 1);
        assert!(sql
            .iter()
            .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS {db}.")
                || s.starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.")
                || s.starts_with("ALTER TABLE {db}.")));
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
