//! sck-store: the one home of every ClickHouse table of sck-ingest.
//!
//! Each table has a module in [`tables`] holding its name, its `CREATE TABLE` per server version
//! and its `#[derive(Row)]` type; [`migrations`] applies the DDL in order, [`insert()`] writes any
//! row type, and [`error`] says whether a failed request will pass by itself (retry) or needs an
//! operator (schema, permissions). The decoder's sink, its migrations, the load test's insert
//! ceiling and the test helpers all use this crate, so a table is described once.
//!
//! No service configuration here: callers pass a [`clickhouse::Client`] and plain values.

pub mod error;
pub mod features;
mod insert;
pub mod migrations;
pub mod tables;

pub use error::{classify, ErrorClass};
pub use features::Features;
pub use insert::insert;
pub use migrations::{migrate, MigrateError};
