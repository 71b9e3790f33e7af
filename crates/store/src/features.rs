//! What the ClickHouse server supports, from its version: the DDL is rendered for the server it
//! runs on. ClickHouse 18.16 (what CI has) gets plain types; servers that have them get
//! `LowCardinality`, column codecs and table TTLs.

/// What the server supports, from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `LowCardinality(String)` without an experimental flag (19.1+ ; we require 20.1).
    pub low_cardinality: bool,
    /// Column `CODEC(...)` (19.1+; we require 20.1).
    pub codecs: bool,
    /// Table `TTL` (19.6+; we require 20.1).
    pub ttl: bool,
    /// `ALTER TABLE … ADD COLUMN IF NOT EXISTS` (not in 18.16; we require 20.1).
    pub add_column_if_not_exists: bool,
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
            add_column_if_not_exists: modern,
        }
    }

    /// `IF NOT EXISTS ` after `ADD COLUMN`, or nothing.
    pub(crate) fn if_not_exists(self) -> &'static str {
        if self.add_column_if_not_exists {
            "IF NOT EXISTS "
        } else {
            ""
        }
    }

    /// The type of a string column with few distinct values.
    pub(crate) fn low_cardinality_string(self) -> &'static str {
        if self.low_cardinality {
            "LowCardinality(String)"
        } else {
            "String"
        }
    }

    /// ` CODEC(codec)` after a column's type, or nothing.
    pub(crate) fn codec(self, codec: &str) -> String {
        if self.codecs {
            format!(" CODEC({codec})")
        } else {
            String::new()
        }
    }

    /// A `TTL` clause line ending a `CREATE TABLE`, or nothing.
    pub(crate) fn ttl(self, ttl: &str) -> String {
        if self.ttl {
            format!("\n    TTL {ttl}")
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_by_version() {
        let old = Features::from_version("18.16.1");
        assert!(!old.low_cardinality && !old.codecs && !old.ttl && !old.add_column_if_not_exists);
        let new = Features::from_version("25.3.2.39");
        assert!(new.low_cardinality && new.codecs && new.ttl && new.add_column_if_not_exists);
        assert_eq!(Features::from_version("garbage"), old);
        assert_eq!(Features::from_version("20.1.2"), new);
        assert_eq!(Features::from_version("19.17.1"), old);
    }
}
