//! What the forwarder publishes for one readings record: the MQTT topic of a device and the JSON
//! messages of its readings. Pure: the shape is a contract with the users who subscribe, so it
//! is decided (and tested) here and nowhere else.
//!
//! One MQTT message per timestamp of the record, in the order the timestamps first appear, its
//! sensors in payload order; the shape of one entry of the device's own JSON readings (and of the
//! platform's device JSON `data`), plus the device id:
//!
//! ```text
//! /forward/<owner forwarding_token>/device/<device id>/readings
//! {"device_id":2,"recorded_at":"2025-01-01T12:00:00Z","sensors":[{"id":55,"value":21.5},{"id":56,"value":48.0}]}
//! ```
//!
//! Only readings the decoder stores are forwarded (the same [`sck_core::decode::Decoder`] and
//! validation): a record's invalid readings are left out, a record with none gives no message.

use serde::Serialize;

use sck_core::reading::Reading;
use sck_core::timestamp::format_utc;

/// The forward topic of a device, or `None` when the forwarding token cannot stand in a topic
/// level (empty, or with `/`, `+`, `#` or NUL: it would publish somewhere else, or nowhere).
pub fn topic(forwarding_token: &str, device_id: i32) -> Option<String> {
    let usable = !forwarding_token.is_empty()
        && !forwarding_token
            .chars()
            .any(|c| matches!(c, '/' | '+' | '#' | '\0'));
    usable.then(|| format!("/forward/{forwarding_token}/device/{device_id}/readings"))
}

#[derive(Serialize)]
struct Message<'a> {
    device_id: i32,
    recorded_at: String,
    sensors: &'a [Sensor],
}

#[derive(Serialize, Clone, Copy)]
struct Sensor {
    id: u32,
    value: f64,
}

/// The JSON messages of a record's valid readings: one per timestamp.
pub fn messages(device_id: i32, readings: &[Reading]) -> Vec<Vec<u8>> {
    let mut groups: Vec<(u32, Vec<Sensor>)> = Vec::new();
    for r in readings {
        let sensor = Sensor {
            id: r.sensor_id,
            value: r.value,
        };
        match groups.iter_mut().find(|(t, _)| *t == r.recorded_at) {
            Some((_, sensors)) => sensors.push(sensor),
            None => groups.push((r.recorded_at, vec![sensor])),
        }
    }
    groups
        .iter()
        .map(|(t, sensors)| {
            let m = Message {
                device_id,
                recorded_at: format_utc(i64::from(*t)),
                sensors,
            };
            // A struct of numbers and strings always serializes.
            serde_json::to_vec(&m).unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(sensor_id: u32, recorded_at: u32, value: f64) -> Reading {
        Reading {
            sensor_id,
            recorded_at,
            value,
        }
    }

    fn text(m: &[Vec<u8>]) -> Vec<String> {
        m.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn the_topic_of_the_owner_token_and_the_device() {
        assert_eq!(
            topic("fwdDemoToken2xA7", 2).as_deref(),
            Some("/forward/fwdDemoToken2xA7/device/2/readings")
        );
        assert_eq!(
            topic("a-b_c", 12345).as_deref(),
            Some("/forward/a-b_c/device/12345/readings")
        );
        for bad in ["", "a/b", "a+", "#", "x\0"] {
            assert_eq!(topic(bad, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn one_message_per_timestamp_in_payload_order() {
        let t1 = 1_735_732_800; // 2025-01-01 12:00:00 UTC
        let t0 = t1 - 60;
        let readings = [
            r(55, t1, 21.5),
            r(56, t1, 48.0),
            r(10, t0, 87.0),
            r(14, t1, 0.25),
        ];
        assert_eq!(
            text(&messages(2, &readings)),
            [
                r#"{"device_id":2,"recorded_at":"2025-01-01T12:00:00Z","sensors":[{"id":55,"value":21.5},{"id":56,"value":48.0},{"id":14,"value":0.25}]}"#,
                r#"{"device_id":2,"recorded_at":"2025-01-01T11:59:00Z","sensors":[{"id":10,"value":87.0}]}"#,
            ]
        );
    }

    #[test]
    fn no_readings_no_message_and_every_message_is_json_of_the_shape() {
        assert!(messages(1, &[]).is_empty());
        let m = messages(7, &[r(1, 0, -3.5e-7)]);
        let v: serde_json::Value = serde_json::from_slice(&m[0]).expect("json");
        assert_eq!(v["device_id"], 7);
        assert_eq!(v["recorded_at"], "1970-01-01T00:00:00Z");
        assert_eq!(v["sensors"][0]["id"], 1);
        assert_eq!(v["sensors"][0]["value"].as_f64(), Some(-3.5e-7));
    }
}
