//! When ClickHouse refuses writes for good (a schema that no longer matches the rows, wrong
//! credentials, a missing grant): the decoder keeps its batch and commits nothing, so nothing is
//! lost, but it must not wait silently. While any table is refused, the `clickhouse_inserts`
//! readiness check fails, `sck_decoder_insert_blocked{table,reason}` is 1 (the `SckInsertsFailing`
//! alert fires on it), and the error is logged with its table and code, at once when it starts
//! or changes and then once per [`LOG_INTERVAL`]. The writers retry every [`RETRY_INTERVAL`], so
//! the decoder resumes by itself once an operator has fixed the cause; the first write that
//! succeeds clears it all.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::IntGaugeVec;
use sck_runtime::http::Readiness;
use sck_runtime::log_limit::LogLimiter;
use sck_store::ErrorClass;

use crate::metrics::Metrics;

/// The readiness check that fails while a table refuses writes.
pub const READINESS_CHECK: &str = "clickhouse_inserts";
/// How often a refused write is tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// How often a persisting refusal is logged again.
pub const LOG_INTERVAL: Duration = Duration::from_secs(30);

/// The tables whose last write was refused for good, and why.
pub struct Blocked {
    gauge: IntGaugeVec,
    readiness: Arc<Readiness>,
    tables: Mutex<BTreeMap<&'static str, ErrorClass>>,
    log: LogLimiter,
}

impl Blocked {
    /// Nothing blocked; marks the readiness check as passing.
    pub fn new(metrics: &Metrics, readiness: Arc<Readiness>) -> Blocked {
        readiness.set(READINESS_CHECK, true);
        Blocked {
            gauge: metrics.insert_blocked.clone(),
            readiness,
            tables: Mutex::new(BTreeMap::new()),
            log: LogLimiter::new(LOG_INTERVAL),
        }
    }

    /// A write to `table` succeeded, or failed in a way that passes by itself: not blocked.
    pub fn clear(&self, table: &'static str) {
        self.update(table, None);
    }

    /// A write to `table` failed with `error` of class `class`. Returns whether the class is
    /// permanent (then the table is blocked, and the caller waits [`RETRY_INTERVAL`]).
    pub fn failed(
        &self,
        table: &'static str,
        class: ErrorClass,
        error: &clickhouse::error::Error,
    ) -> bool {
        if !class.is_permanent() {
            self.clear(table);
            return false;
        }
        let changed = self.update(table, Some(class));
        let suppressed = self.log.allow();
        if changed || suppressed.is_some() {
            tracing::error!(
                table,
                reason = class.as_str(),
                code = sck_store::error::server_code(error),
                suppressed = suppressed.unwrap_or(0),
                error = %error,
                "ClickHouse refuses the write ({}); the batch is kept and nothing is committed; \
                 retrying every {}s until an operator fixes it",
                match class {
                    ErrorClass::Access => "credentials or grants",
                    _ => "the table does not match the rows: run the migrations or undo the ALTER",
                },
                RETRY_INTERVAL.as_secs()
            );
        }
        true
    }

    /// Sets `table`'s state; returns whether it changed.
    fn update(&self, table: &'static str, class: Option<ErrorClass>) -> bool {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let before = match class {
            Some(c) => tables.insert(table, c),
            None => tables.remove(table),
        };
        for reason in ErrorClass::PERMANENT {
            self.gauge
                .with_label_values(&[table, reason.as_str()])
                .set(i64::from(class == Some(reason)));
        }
        self.readiness.set(READINESS_CHECK, tables.is_empty());
        before != class
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(m: &Metrics, table: &str, reason: &str) -> i64 {
        m.insert_blocked.with_label_values(&[table, reason]).get()
    }

    #[test]
    fn refusals_block_readiness_until_each_table_succeeds() {
        let metrics = Metrics::new().expect("metrics");
        let readiness = Readiness::new(&["kafka", READINESS_CHECK]);
        let b = Blocked::new(&metrics, readiness.clone());
        assert_eq!(readiness.failing(), ["kafka"]);

        let refused = clickhouse::error::Error::BadResponse("Code: 16".into());
        let down = clickhouse::error::Error::TimedOut;
        assert!(!b.failed("readings", ErrorClass::Transient, &down));
        assert_eq!(readiness.failing(), ["kafka"]);
        assert_eq!(gauge(&metrics, "readings", "schema"), 0);

        assert!(b.failed("readings", ErrorClass::Schema, &refused));
        assert_eq!(readiness.failing(), ["kafka", READINESS_CHECK]);
        assert_eq!(gauge(&metrics, "readings", "schema"), 1);
        assert_eq!(gauge(&metrics, "readings", "access"), 0);
        // The same refusal again changes nothing; another reason replaces the first.
        assert!(!b.update("readings", Some(ErrorClass::Schema)));
        assert!(b.update("readings", Some(ErrorClass::Access)));
        assert_eq!(gauge(&metrics, "readings", "schema"), 0);
        assert_eq!(gauge(&metrics, "readings", "access"), 1);

        // Two tables blocked: ready only when both wrote again.
        assert!(b.failed("schema_migrations", ErrorClass::Access, &refused));
        b.clear("readings");
        assert_eq!(gauge(&metrics, "readings", "access"), 0);
        assert_eq!(readiness.failing(), ["kafka", READINESS_CHECK]);
        b.clear("schema_migrations");
        assert_eq!(readiness.failing(), ["kafka"]);
        assert_eq!(gauge(&metrics, "schema_migrations", "access"), 0);

        // A transient failure after a refusal: the refusal is over (the ping reports outages).
        assert!(b.failed("device_info", ErrorClass::Access, &refused));
        assert!(!b.failed("device_info", ErrorClass::Transient, &down));
        assert!(readiness.failing().contains(&"kafka"));
        assert!(!readiness.failing().contains(&READINESS_CHECK));
    }
}
