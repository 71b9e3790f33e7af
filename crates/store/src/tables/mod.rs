//! The tables, one module each: its name, its `CREATE TABLE` (with `{db}` for the database, per
//! server [`Features`](crate::Features)) and its row type. Queries elsewhere name tables through
//! these constants, never with a string literal.

pub mod device_hello;
pub mod device_info;
pub mod device_inventory;
pub mod device_latest;
pub mod ingest_errors;
pub mod readings;
pub mod schema_migrations;

pub use device_hello::{HelloRow, NAME as DEVICE_HELLO};
pub use device_info::{InfoRow, NAME as DEVICE_INFO};
pub use device_inventory::{InventoryRow, NAME as DEVICE_INVENTORY};
pub use device_latest::NAME as DEVICE_LATEST;
pub use ingest_errors::{IngestErrorRow, NAME as INGEST_ERRORS};
pub use readings::{ReadingRow, NAME as READINGS};
pub use schema_migrations::NAME as SCHEMA_MIGRATIONS;

/// The tables the decoder writes rows to, in the order it inserts a batch.
pub const DATA: [&str; 5] = [
    READINGS,
    INGEST_ERRORS,
    DEVICE_HELLO,
    DEVICE_INFO,
    DEVICE_INVENTORY,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Features;
    use clickhouse::Row;

    /// The column names of a `CREATE TABLE` as rendered here: one column per line up to `)`.
    fn columns(ddl: &str) -> Vec<&str> {
        ddl.lines()
            .skip(1)
            .take_while(|l| !l.starts_with(')'))
            .filter_map(|l| l.split_whitespace().next())
            .collect()
    }

    /// The columns every migration's `ALTER TABLE {db}.<table> ADD COLUMN …` adds to `table`,
    /// in order.
    fn added_columns(table: &str, f: Features) -> Vec<String> {
        let prefix = format!("ALTER TABLE {{db}}.{table} ADD COLUMN ");
        crate::migrations::MIGRATIONS
            .iter()
            .flat_map(|m| (m.statements)(f))
            .filter_map(|sql| {
                let rest = sql.strip_prefix(&prefix)?;
                let rest = rest.strip_prefix("IF NOT EXISTS ").unwrap_or(rest);
                rest.split_whitespace().next().map(str::to_string)
            })
            .collect()
    }

    /// Each row type writes exactly its table's columns (its `CREATE TABLE`, then the columns
    /// later migrations add), in the table's order, on old and new servers: a field added to a
    /// row without a migration (or the reverse) fails here.
    #[test]
    fn rows_match_their_tables() {
        for version in ["18.16.1", "25.3.2.39"] {
            let f = Features::from_version(version);
            let cases: [(&str, String, &[&str]); 5] = [
                (READINGS, readings::create(f), ReadingRow::COLUMN_NAMES),
                (
                    INGEST_ERRORS,
                    ingest_errors::create(f),
                    IngestErrorRow::COLUMN_NAMES,
                ),
                (DEVICE_HELLO, device_hello::create(), HelloRow::COLUMN_NAMES),
                (DEVICE_INFO, device_info::create(f), InfoRow::COLUMN_NAMES),
                (
                    DEVICE_INVENTORY,
                    device_inventory::create(f),
                    InventoryRow::COLUMN_NAMES,
                ),
            ];
            for (table, ddl, row) in cases {
                assert!(ddl.contains(&format!("{{db}}.{table} (")), "{ddl}");
                let added = added_columns(table, f);
                let mut all = columns(&ddl);
                all.extend(added.iter().map(String::as_str));
                assert_eq!(all, row, "{table} on {version}");
            }
        }
        assert_eq!(
            added_columns(READINGS, Features::from_version("18.16.1")),
            readings::ADDED_COLUMNS
        );
        assert_eq!(
            columns(&schema_migrations::create()),
            ["version", "name", "applied_at"]
        );
    }
}
