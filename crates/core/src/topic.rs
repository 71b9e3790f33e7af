//! MQTT topic routing: what a topic carries and which device sent it.
//!
//! The bridge routes on the topic alone (Kafka topic and key) and the decoder picks a parser from
//! it (never by sniffing the payload), so both call this one pure function.
//!
//! Accepted topics, each optionally under a `bridge/` prefix (relayed devices):
//! `device/sck/<token>/readings`, `device/sck/<token>/readings/raw`, `device/sck/<token>/hello`,
//! `device/sck/<token>/info` and `device/inventory`. [`filter`] checks subscription filters.

mod filter;

pub use filter::{check_filter, check_share_group, FilterError, MAX_FILTER_BYTES};

use std::fmt;

/// The kinds of message devices send. The string forms are metric labels and header values, so
/// they are part of the contract: do not rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `…/readings`: JSON readings.
    Readings,
    /// `…/readings/raw`: the short non-JSON readings form.
    ReadingsRaw,
    /// `…/hello`: the device is alive.
    Hello,
    /// `…/info`: hardware info JSON.
    Info,
    /// `device/inventory`: factory test report JSON (no device token).
    Inventory,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Readings,
        Kind::ReadingsRaw,
        Kind::Hello,
        Kind::Info,
        Kind::Inventory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Readings => "readings",
            Kind::ReadingsRaw => "readings_raw",
            Kind::Hello => "hello",
            Kind::Info => "info",
            Kind::Inventory => "inventory",
        }
    }

    /// Readings (both formats) travel on the readings topic; everything else is a device event.
    pub fn is_reading(self) -> bool {
        matches!(self, Kind::Readings | Kind::ReadingsRaw)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a topic leads: its kind and the device token (none for inventory). A topic relayed
/// under `bridge/` routes like the same topic without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub kind: Kind,
    pub token: Option<&'a str>,
}

/// Why a topic could not be routed. [`RouteError::reason`] is the dead-letter reason label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("topic is not one of device/sck/<token>/{{readings,readings/raw,hello,info}} or device/inventory")]
    UnknownTopic,
    #[error("topic has an empty device token")]
    EmptyToken,
}

impl RouteError {
    pub fn reason(self) -> &'static str {
        match self {
            RouteError::UnknownTopic => "unknown_topic",
            RouteError::EmptyToken => "empty_token",
        }
    }
}

const BRIDGE_PREFIX: &str = "bridge/";
const DEVICE_PREFIX: &str = "device/sck/";
const INVENTORY: &str = "device/inventory";

/// Routes an MQTT topic name (not a filter: wildcards are just characters here).
pub fn route(topic: &str) -> Result<Route<'_>, RouteError> {
    let rest = topic.strip_prefix(BRIDGE_PREFIX).unwrap_or(topic);
    if rest == INVENTORY {
        return Ok(Route {
            kind: Kind::Inventory,
            token: None,
        });
    }
    let rest = rest
        .strip_prefix(DEVICE_PREFIX)
        .ok_or(RouteError::UnknownTopic)?;
    let (token, suffix) = rest.split_once('/').ok_or(RouteError::UnknownTopic)?;
    let kind = match suffix {
        "readings" => Kind::Readings,
        "readings/raw" => Kind::ReadingsRaw,
        "hello" => Kind::Hello,
        "info" => Kind::Info,
        _ => return Err(RouteError::UnknownTopic),
    };
    if token.is_empty() {
        return Err(RouteError::EmptyToken);
    }
    Ok(Route {
        kind,
        token: Some(token),
    })
}

/// The MQTT subscription filters that cover every routable topic.
pub fn default_filters() -> Vec<String> {
    let base = [
        "device/sck/+/readings",
        "device/sck/+/readings/raw",
        "device/sck/+/hello",
        "device/sck/+/info",
        INVENTORY,
    ];
    base.iter()
        .map(|f| f.to_string())
        .chain(base.iter().map(|f| format!("{BRIDGE_PREFIX}{f}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(kind: Kind, token: Option<&str>) -> Result<Route<'_>, RouteError> {
        Ok(Route { kind, token })
    }

    #[test]
    fn routes_every_known_topic() {
        let cases = [
            (
                "device/sck/aA1234/readings",
                ok(Kind::Readings, Some("aA1234")),
            ),
            (
                "device/sck/aA1234/readings/raw",
                ok(Kind::ReadingsRaw, Some("aA1234")),
            ),
            ("device/sck/aA1234/hello", ok(Kind::Hello, Some("aA1234"))),
            ("device/sck/aA1234/info", ok(Kind::Info, Some("aA1234"))),
            ("device/inventory", ok(Kind::Inventory, None)),
            (
                "bridge/device/sck/x9/readings",
                ok(Kind::Readings, Some("x9")),
            ),
            (
                "bridge/device/sck/x9/readings/raw",
                ok(Kind::ReadingsRaw, Some("x9")),
            ),
            ("bridge/device/sck/x9/hello", ok(Kind::Hello, Some("x9"))),
            ("bridge/device/sck/x9/info", ok(Kind::Info, Some("x9"))),
            ("bridge/device/inventory", ok(Kind::Inventory, None)),
        ];
        for (topic, want) in cases {
            assert_eq!(route(topic), want, "{topic}");
        }
    }

    #[test]
    fn rejects_empty_tokens() {
        for topic in [
            "device/sck//readings",
            "device/sck//readings/raw",
            "device/sck//hello",
            "bridge/device/sck//info",
        ] {
            assert_eq!(route(topic), Err(RouteError::EmptyToken), "{topic}");
        }
    }

    #[test]
    fn rejects_unknown_topics() {
        for topic in [
            "",
            "device",
            "device/sck",
            "device/sck/",
            "device/sck/abc",
            "device/sck/abc/",
            "device/sck/abc/readings/",
            "device/sck/abc/readings/raw/x",
            "device/sck/abc/readingsraw",
            "device/sck/abc/def/readings",
            "device/sck/abc/READINGS",
            "device/inventory/x",
            "device/other/abc/readings",
            "bridge/bridge/device/sck/abc/readings",
            "bridge/",
            "/device/sck/abc/readings",
            "xdevice/sck/abc/readings",
        ] {
            assert_eq!(route(topic), Err(RouteError::UnknownTopic), "{topic:?}");
        }
    }

    #[test]
    fn reason_labels_are_stable() {
        assert_eq!(RouteError::UnknownTopic.reason(), "unknown_topic");
        assert_eq!(RouteError::EmptyToken.reason(), "empty_token");
        let labels: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            ["readings", "readings_raw", "hello", "info", "inventory"]
        );
    }

    #[test]
    fn only_readings_are_readings() {
        assert!(Kind::Readings.is_reading());
        assert!(Kind::ReadingsRaw.is_reading());
        assert!(!Kind::Hello.is_reading());
        assert!(!Kind::Info.is_reading());
        assert!(!Kind::Inventory.is_reading());
    }

    #[test]
    fn default_filters_cover_all_kinds_direct_and_bridged() {
        let filters = default_filters();
        assert_eq!(filters.len(), 10);
        for concrete in [
            "device/sck/t/readings",
            "device/sck/t/readings/raw",
            "device/sck/t/hello",
            "device/sck/t/info",
            "device/inventory",
        ] {
            for topic in [concrete.to_string(), format!("bridge/{concrete}")] {
                let matched = filters.iter().filter(|f| filter_matches(f, &topic)).count();
                assert_eq!(matched, 1, "{topic} must match exactly one filter");
                assert!(route(&topic).is_ok());
            }
        }
    }

    /// MQTT `+` matching, enough to check the filter list above.
    fn filter_matches(filter: &str, topic: &str) -> bool {
        let f: Vec<_> = filter.split('/').collect();
        let t: Vec<_> = topic.split('/').collect();
        f.len() == t.len() && f.iter().zip(&t).all(|(f, t)| *f == "+" || f == t)
    }
}
