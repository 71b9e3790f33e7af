//! The platform's PostgreSQL and Redis from the tests' side: SQL as the tables' owner through
//! `psql` (installed with the server), so tests can register devices and read what the
//! services wrote, without a second PostgreSQL client library in the harness.

use std::process::Command;

use crate::*;

/// Runs SQL as the platform tables' owner; the unaligned, tuples-only output (`|`-separated
/// columns, one row per line), or the error text.
pub fn platform_sql(sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .arg(&stack().platform_postgres_url)
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .map_err(|e| format!("run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// [`platform_sql`], panicking with the SQL and the error when it fails.
pub fn platform(sql: &str) -> String {
    platform_sql(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}
