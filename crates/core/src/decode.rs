//! One Kafka record (its `mqtt_topic` header and payload) to what the decoder stores.
//!
//! The format comes from the topic, never from the payload: `…/readings` is JSON,
//! `…/readings/raw` is raw. Hello / info / inventory messages become device events; info and
//! inventory must be JSON. Everything that cannot be stored ends up in [`Decoded::problems`].

use crate::json::JsonDecoder;
use crate::raw;
use crate::reading::{Decoded, ErrorKind, Format, Limits, Problem};
use crate::topic::{self, Kind};

/// What a record turned out to be. Readings and problems are in the [`Decoded`] passed along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// A readings message (its valid readings may be none, its problems some).
    Readings {
        token: &'a str,
        format: Format,
    },
    Hello {
        token: &'a str,
    },
    /// Hardware info; the payload is valid JSON.
    Info {
        token: &'a str,
    },
    /// A factory test report; the payload is valid JSON.
    Inventory,
    /// Nothing storable: the reason is the single problem in [`Decoded::problems`].
    Rejected {
        token: &'a str,
        kind: Option<Kind>,
    },
}

impl Outcome<'_> {
    /// The device token, empty when there is none (inventory, unroutable topics).
    pub fn token(&self) -> &str {
        match self {
            Outcome::Readings { token, .. }
            | Outcome::Hello { token }
            | Outcome::Info { token }
            | Outcome::Rejected { token, .. } => token,
            Outcome::Inventory => "",
        }
    }
}

/// Decodes records; holds the JSON scratch buffers, so keep one per worker.
#[derive(Debug, Default)]
pub struct Decoder {
    json: JsonDecoder,
}

impl Decoder {
    /// The sensor catalogue's keys, for JSON readings that name a sensor by key.
    pub fn set_sensor_keys(&mut self, keys: std::sync::Arc<crate::registry::SensorKeys>) {
        self.json.set_sensor_keys(keys);
    }

    /// Decodes one record. `out` is cleared first.
    pub fn decode<'a>(
        &mut self,
        mqtt_topic: Option<&'a str>,
        payload: &[u8],
        limits: &Limits,
        out: &mut Decoded,
    ) -> Outcome<'a> {
        out.clear();
        let Some(mqtt_topic) = mqtt_topic else {
            out.problems.push(Problem::new(
                ErrorKind::MissingHeader,
                "record has no mqtt_topic header",
            ));
            return Outcome::Rejected {
                token: "",
                kind: None,
            };
        };
        let route = match topic::route(mqtt_topic) {
            Ok(r) => r,
            Err(e) => {
                out.problems
                    .push(Problem::new(ErrorKind::UnknownTopic, e.to_string()));
                return Outcome::Rejected {
                    token: "",
                    kind: None,
                };
            }
        };
        let token = route.token.unwrap_or("");
        let rejected = |out: &mut Decoded, kind: ErrorKind, message: String| {
            out.readings.clear();
            out.problems.clear();
            out.problems.push(Problem::new(kind, message));
            Outcome::Rejected {
                token,
                kind: Some(route.kind),
            }
        };
        match route.kind {
            Kind::Readings => match self.json.decode(payload, limits, out) {
                Ok(()) => Outcome::Readings {
                    token,
                    format: Format::Json,
                },
                Err(e) => rejected(out, ErrorKind::MalformedJson, e.0),
            },
            Kind::ReadingsRaw => match raw::decode(payload, limits, out) {
                Ok(()) => Outcome::Readings {
                    token,
                    format: Format::Raw,
                },
                Err(e) => rejected(out, ErrorKind::MalformedRaw, e.to_string()),
            },
            Kind::Hello => Outcome::Hello { token },
            Kind::Info | Kind::Inventory => match self.json.check(payload) {
                Ok(()) if route.kind == Kind::Info => Outcome::Info { token },
                Ok(()) => Outcome::Inventory,
                Err(e) => rejected(
                    out,
                    ErrorKind::MalformedEvent,
                    format!("{} payload is not JSON: {}", route.kind.as_str(), e.0),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reading::Reading;

    const LIMITS: Limits = Limits {
        now: 1_800_000_000,
        max_future_secs: 86_400,
    };

    fn run(topic: Option<&str>, payload: &str) -> (Outcome<'static>, Decoded) {
        let topic: Option<&'static str> =
            topic.map(|t| &*Box::leak(t.to_string().into_boxed_str()));
        let mut out = Decoded::default();
        let o = Decoder::default().decode(topic, payload.as_bytes(), &LIMITS, &mut out);
        (o, out)
    }

    #[test]
    fn the_examples_of_the_issue() {
        let (o, d) = run(
            Some("device/sck/aA1234/readings"),
            r#"{"data": [{"recorded_at": "2016-06-08 10:30:00Z","sensors": [{"id": 1,"value": 21}]}]}"#,
        );
        assert_eq!(
            o,
            Outcome::Readings {
                token: "aA1234",
                format: Format::Json
            }
        );
        assert_eq!(
            d.readings,
            vec![Reading {
                sensor_id: 1,
                recorded_at: 1_465_381_800,
                value: 21.0
            }]
        );

        let (o, d) = run(
            Some("device/sck/aA1234/readings/raw"),
            "{ t:2017-03-24T13:35:14Z, 1:48.45, 13:66, 12:28, 10:4.45 }",
        );
        assert_eq!(
            o,
            Outcome::Readings {
                token: "aA1234",
                format: Format::Raw
            }
        );
        let got: Vec<_> = d.readings.iter().map(|r| (r.sensor_id, r.value)).collect();
        assert_eq!(got, vec![(1, 48.45), (13, 66.0), (12, 28.0), (10, 4.45)]);
        assert!(d.readings.iter().all(|r| r.recorded_at == 1_490_362_514));

        let (o, d) = run(
            Some("device/sck/aA1234/readings/raw"),
            "ceci n'est pas un message",
        );
        assert_eq!(
            o,
            Outcome::Rejected {
                token: "aA1234",
                kind: Some(Kind::ReadingsRaw)
            }
        );
        assert!(d.readings.is_empty());
        assert_eq!(d.problems.len(), 1);
        assert_eq!(d.problems[0].kind, ErrorKind::MalformedRaw);
        assert!(
            d.problems[0].message.contains("at byte 0"),
            "{}",
            d.problems[0]
        );
    }

    #[test]
    fn the_format_comes_from_the_topic_not_the_payload() {
        let (o, d) = run(
            Some("device/sck/tok/readings"),
            "{t:2017-03-24T13:35:14Z,1:21}",
        );
        assert!(matches!(o, Outcome::Rejected { .. }));
        assert_eq!(d.problems[0].kind, ErrorKind::MalformedJson);
        // Braces make it a raw message; its one "pair" is not a sensor reading.
        let (o, d) = run(
            Some("bridge/device/sck/tok/readings/raw"),
            r#"{"data":[1]}"#,
        );
        assert!(matches!(o, Outcome::Readings { .. }));
        assert!(d.readings.is_empty());
        assert_eq!(d.problems[0].kind, ErrorKind::MissingTimestamp);
        let (o, d) = run(Some("bridge/device/sck/tok/readings/raw"), r#"["data"]"#);
        assert!(matches!(o, Outcome::Rejected { .. }));
        assert_eq!(d.problems[0].kind, ErrorKind::MalformedRaw);
    }

    #[test]
    fn events() {
        assert_eq!(
            run(Some("device/sck/tok/hello"), "anything").0,
            Outcome::Hello { token: "tok" }
        );
        assert_eq!(
            run(
                Some("bridge/device/sck/tok/info"),
                r#"{"time":"x","hw_ver":"2.1"}"#
            )
            .0,
            Outcome::Info { token: "tok" }
        );
        assert_eq!(
            run(Some("device/inventory"), r#"{"report":[1]}"#).0,
            Outcome::Inventory
        );
        let (o, d) = run(Some("device/sck/tok/info"), "not json");
        assert_eq!(
            o,
            Outcome::Rejected {
                token: "tok",
                kind: Some(Kind::Info)
            }
        );
        assert_eq!(d.problems[0].kind, ErrorKind::MalformedEvent);
    }

    #[test]
    fn records_the_bridge_would_not_write() {
        let (o, d) = run(None, "{}");
        assert_eq!(o.token(), "");
        assert_eq!(d.problems[0].kind, ErrorKind::MissingHeader);
        let (_, d) = run(Some("device/other/x"), "{}");
        assert_eq!(d.problems[0].kind, ErrorKind::UnknownTopic);
    }

    #[test]
    fn out_is_cleared_between_records() {
        let mut dec = Decoder::default();
        let mut out = Decoded::default();
        dec.decode(
            Some("device/sck/t/readings/raw"),
            b"{t:2017-03-24T13:35:14Z,1:1,2:x}",
            &LIMITS,
            &mut out,
        );
        assert_eq!(out.problems.len(), 1);
        dec.decode(
            Some("device/sck/t/readings/raw"),
            b"{t:2017-03-24T13:35:14Z,1:1}",
            &LIMITS,
            &mut out,
        );
        assert_eq!((out.readings.len(), out.problems.len()), (1, 0));
    }
}
