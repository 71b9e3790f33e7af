//! `schema_migrations`: which migrations ran (see [`crate::migrations`]).

pub const NAME: &str = "schema_migrations";

/// Created before any migration runs, on every server version alike.
pub(crate) fn create() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {{db}}.{NAME} (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree() ORDER BY version"
    )
}
