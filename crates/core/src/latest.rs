//! The latest state of each device in one decoder batch, for the platform's PostgreSQL: per
//! device the newest `recorded_at`, the value of each sensor at its own newest reading, and when
//! each sensor was last seen. Pure: built from the batch's readings, written by the service in
//! one statement per table per batch (never one per reading).
//!
//! Out-of-order batches are the database statement's concern (it never moves a timestamp back);
//! within a batch, a later reading of a sensor wins over an earlier one, and of two readings of
//! one sensor at the same second the one added last wins (Kafka order).

use std::collections::BTreeMap;

/// One device's newest readings in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceLatest {
    /// Newest `recorded_at` of any sensor, seconds since the epoch.
    pub last_reading_at: u32,
    /// Per sensor id: (its newest `recorded_at`, the value then).
    pub sensors: BTreeMap<u32, (u32, f64)>,
}

impl DeviceLatest {
    /// The `devices.data` object to merge: sensor id as a string → the value, for the sensors
    /// read at the device's newest `recorded_at` or before (every sensor of the batch).
    pub fn data_json(&self) -> String {
        let mut out = String::from("{");
        for (i, (id, (_, value))) in self.sensors.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(&id.to_string());
            out.push_str("\":");
            if value.is_finite() {
                out.push_str(&value.to_string());
            } else {
                out.push_str("null");
            }
        }
        out.push('}');
        out
    }
}

/// Per device token, the newest state seen in a batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchLatest {
    devices: BTreeMap<String, DeviceLatest>,
}

impl BatchLatest {
    pub fn add(&mut self, token: &str, sensor_id: u32, recorded_at: u32, value: f64) {
        let device = match self.devices.get_mut(token) {
            Some(d) => d,
            None => self
                .devices
                .entry(token.to_string())
                .or_insert(DeviceLatest {
                    last_reading_at: recorded_at,
                    sensors: BTreeMap::new(),
                }),
        };
        device.last_reading_at = device.last_reading_at.max(recorded_at);
        let slot = device
            .sensors
            .entry(sensor_id)
            .or_insert((recorded_at, value));
        if recorded_at >= slot.0 {
            *slot = (recorded_at, value);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Devices in token order (a stable order keeps concurrent decoders' row locks in one order).
    pub fn devices(&self) -> impl Iterator<Item = (&str, &DeviceLatest)> {
        self.devices.iter().map(|(t, d)| (t.as_str(), d))
    }

    pub fn clear(&mut self) {
        self.devices.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_reading_of_each_sensor_wins() {
        let mut b = BatchLatest::default();
        b.add("a", 1, 100, 1.0);
        b.add("a", 1, 300, 3.0);
        b.add("a", 1, 200, 2.0); // older than what the batch has: ignored
        b.add("a", 2, 150, 9.5);
        b.add("b", 7, 50, -1.0);
        let devices: Vec<_> = b.devices().collect();
        assert_eq!(devices.len(), 2);
        let (token, a) = devices[0];
        assert_eq!(token, "a");
        assert_eq!(a.last_reading_at, 300);
        assert_eq!(a.sensors[&1], (300, 3.0));
        assert_eq!(a.sensors[&2], (150, 9.5));
        assert_eq!(a.data_json(), r#"{"1":3,"2":9.5}"#);
        assert_eq!(devices[1].1.data_json(), r#"{"7":-1}"#);
    }

    #[test]
    fn same_second_later_in_kafka_order_wins_and_non_finite_is_null() {
        let mut b = BatchLatest::default();
        b.add("a", 1, 100, 1.0);
        b.add("a", 1, 100, 2.0);
        b.add("a", 3, 90, f64::NAN);
        let (_, a) = b.devices().next().expect("one device");
        assert_eq!(a.sensors[&1], (100, 2.0));
        assert_eq!(a.data_json(), r#"{"1":2,"3":null}"#);
        b.clear();
        assert!(b.is_empty());
    }
}
