//! One INSERT (RowBinary, with the client's compression) of any row type: every table is
//! written by this one function.

use std::borrow::Borrow;
use std::time::Duration;

use clickhouse::{Client, RowWrite};

/// Inserts `rows` into `table` in one INSERT, `timeout` bounding each send and the server's
/// answer. Returns the number of rows written. Owned rows are passed by reference (`&[R]`),
/// borrowing rows (`ReadingRow<'_>`) by value, built on the fly.
pub async fn insert<'r, R: RowWrite>(
    client: &Client,
    table: &str,
    rows: impl IntoIterator<Item = impl Borrow<R::Value<'r>>>,
    timeout: Option<Duration>,
) -> clickhouse::error::Result<u64> {
    let mut ins = client
        .insert::<R>(table)
        .await?
        .with_timeouts(timeout, timeout);
    let mut written = 0;
    for row in rows {
        ins.write(row.borrow()).await?;
        written += 1;
    }
    ins.end().await?;
    Ok(written)
}
