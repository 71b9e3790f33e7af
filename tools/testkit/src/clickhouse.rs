//! ClickHouse queries over HTTP for the tests' assertions, naming tables through `sck-store`'s
//! constants (`tables::READINGS`, …) as the services do.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::*;

/// The tables' names (and row types), from the one place that defines them.
pub use sck_store::tables;

/// Runs a ClickHouse query over HTTP as the administrator (on a secure stack, with its
/// password); the body (TabSeparated by default), or the error text.
pub fn clickhouse(sql: &str) -> Result<String, String> {
    clickhouse_at(&stack().clickhouse_http, sql)
}

/// [`clickhouse`] against another server's HTTP interface (`host:port`), as the administrator.
pub fn clickhouse_at(http: &str, sql: &str) -> Result<String, String> {
    let admin = stack().secure.as_ref().map(|s| &s.clickhouse_admin);
    post(http, admin, sql)
}

/// Runs a ClickHouse query over HTTP as `login` (X-ClickHouse-User / X-ClickHouse-Key), or
/// without credentials; the body, or the error text.
pub fn clickhouse_as(login: Option<&Login>, sql: &str) -> Result<String, String> {
    post(&stack().clickhouse_http, login, sql)
}

fn post(http: &str, login: Option<&Login>, sql: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(http).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let auth = login.map_or_else(String::new, |l| {
        format!(
            "X-ClickHouse-User: {}\r\nX-ClickHouse-Key: {}\r\n",
            l.user, l.password
        )
    });
    write!(
        s,
        "POST / HTTP/1.0\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n{sql}",
        sql.len()
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let code: u16 = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    if code == 200 {
        Ok(body)
    } else {
        Err(format!("HTTP {code}: {body}"))
    }
}

/// A query returning one number.
pub fn clickhouse_count(sql: &str) -> u64 {
    let out = clickhouse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{sql}: not a number: {out:?}"))
}

/// Drops a test database.
pub fn drop_database(db: &str) {
    let _ = clickhouse(&format!("DROP DATABASE IF EXISTS {db}"));
}
