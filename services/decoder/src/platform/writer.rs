//! What a decoder batch changes in the Smart Citizen platform once its rows are in ClickHouse
//! (before its offsets are committed), as the original MQTT handler did per message, here per
//! batch: one statement per table, never one per reading.
//!
//! - readings: `devices.last_reading_at` (never moved back), `devices.data` (each sensor's
//!   newest value merged in, only from a batch not older than what the device has),
//!   `devices.state = 'has_published'`, and `components.last_reading_at` of the sensors seen;
//! - info: `devices.hardware_info` (the batch's newest info per device);
//! - hello: `orphan_devices.device_handshake = true`, and the device's onboarding session
//!   published on the Redis channel `token-received`, exactly once per hello message: the
//!   publish runs in a Lua script that first sets a key named after the message
//!   (`sck:handshake:<token>:<received_at_ms>`, kept 8 days: longer than Kafka keeps the
//!   record), so a redelivered hello (a retried batch, a decoder restart) publishes nothing.
//!
//! Every statement is idempotent, so a failed batch is simply written again.

use std::time::Duration;

use sck_core::backoff::Backoff;
use sck_core::latest::BatchLatest;
use sck_runtime::log_limit::LogLimiter;

use crate::batch::Batch;
use crate::metrics::Metrics;
use crate::platform::postgres::PgError;
use crate::platform::Postgres;

/// The Redis channel the platform's onboarding page waits on.
pub const HANDSHAKE_CHANNEL: &str = "token-received";
/// The longest one batch's platform changes may take before they are tried again.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a hello's "already published" key lives, seconds.
const HANDSHAKE_KEY_TTL_SECS: u64 = 8 * 24 * 3600;

/// One hello message: its device and when the bridge received it (with the token, its identity
/// across redeliveries: both come from the Kafka record, unchanged when it is read again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub token: String,
    pub received_at_ms: i64,
}

/// What one batch changes in the platform.
#[derive(Debug, Default)]
pub struct PlatformBatch {
    pub latest: BatchLatest,
    /// (token, info JSON); a later entry of a token replaces an earlier one.
    pub infos: Vec<(String, String)>,
    pub hellos: Vec<Hello>,
}

impl PlatformBatch {
    /// What an inserted batch changes: its stored readings (per device), its info messages,
    /// and its hello messages.
    pub fn of(batch: &Batch) -> PlatformBatch {
        let mut latest = BatchLatest::default();
        let mut start = 0;
        for g in &batch.groups {
            for r in &batch.readings[start..g.end] {
                latest.add(&g.device_token, r.sensor_id, r.recorded_at, r.value);
            }
            start = g.end;
        }
        PlatformBatch {
            latest,
            infos: batch
                .infos
                .iter()
                .map(|i| (i.device_token.clone(), i.info.clone()))
                .collect(),
            hellos: batch.hello_events.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty() && self.infos.is_empty() && self.hellos.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("PostgreSQL: {0}")]
    Pg(#[from] PgError),
    #[error("PostgreSQL is not connected")]
    NotConnected,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Writes each inserted batch's platform changes, retrying (with backoff, nothing committed
/// meanwhile) until they are written.
pub struct PlatformWriter {
    pub pg: Postgres,
    /// `None` without REDIS_URL.
    pub redis: Option<redis::Client>,
    pub metrics: Metrics,
    pub retry: Backoff,
    pub warnings: LogLimiter,
}

impl PlatformWriter {
    pub async fn write_until_done(&self, batch: &PlatformBatch) {
        if batch.is_empty() {
            return;
        }
        let mut attempt = 0u32;
        loop {
            match self.try_write(batch).await {
                Ok(published) => {
                    self.metrics.handshakes_published.inc_by(published as u64);
                    return;
                }
                Err(e) => {
                    self.metrics.platform_update_errors.inc();
                    if let Some(suppressed) = self.warnings.allow() {
                        tracing::warn!(
                            error = %e, attempt, suppressed, postgres = self.pg.target(),
                            "platform update failed; retrying (offsets wait)"
                        );
                    }
                    sck_runtime::backoff_sleep(&self.retry, attempt).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    async fn try_write(&self, batch: &PlatformBatch) -> Result<usize, PlatformError> {
        let client = self.pg.client().ok_or(PlatformError::NotConnected)?;
        let mut redis = match &self.redis {
            Some(r) => Some(
                tokio::time::timeout(Duration::from_secs(5), r.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| {
                        redis::RedisError::from((redis::ErrorKind::IoError, "connect timed out"))
                    })??,
            ),
            None => None,
        };
        // A timeout part way is harmless: every statement is idempotent and the publish is
        // guarded by its key.
        match tokio::time::timeout(WRITE_TIMEOUT, write(&client, redis.as_mut(), batch)).await {
            Ok(result) => result,
            Err(_) => Err(PgError::Timeout(WRITE_TIMEOUT).into()),
        }
    }
}

const UPDATE_DEVICES: &str = "UPDATE devices d SET
    last_reading_at = GREATEST(d.last_reading_at, to_timestamp(v.t) AT TIME ZONE 'UTC'),
    data = CASE WHEN d.last_reading_at IS NULL
                  OR to_timestamp(v.t) AT TIME ZONE 'UTC' >= d.last_reading_at
                THEN COALESCE(d.data, '{}'::jsonb) || v.data::jsonb
                ELSE d.data END,
    state = 'has_published'
FROM unnest($1::text[], $2::float8[], $3::text[]) AS v(token, t, data)
WHERE d.device_token = v.token";

const UPDATE_COMPONENTS: &str = "UPDATE components c SET
    last_reading_at = GREATEST(c.last_reading_at, to_timestamp(v.t) AT TIME ZONE 'UTC')
FROM unnest($1::text[], $2::int8[], $3::float8[]) AS v(token, sensor_id, t)
JOIN devices d ON d.device_token = v.token
WHERE c.device_id = d.id AND c.sensor_id = v.sensor_id";

const UPDATE_HARDWARE_INFO: &str = "UPDATE devices d SET hardware_info = v.info::jsonb
FROM unnest($1::text[], $2::text[]) AS v(token, info)
WHERE d.device_token = v.token";

const HANDSHAKE: &str = "UPDATE orphan_devices SET device_handshake = true
WHERE device_token = ANY($1::text[])
RETURNING device_token, onboarding_session";

/// Sets the message's key if absent and only then publishes: atomic in Redis.
const PUBLISH_ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  return redis.call('PUBLISH', ARGV[1], ARGV[2])
end
return -1";

/// The parameters of [`UPDATE_DEVICES`] and [`UPDATE_COMPONENTS`] for a batch.
#[allow(clippy::type_complexity)]
pub fn latest_params(
    latest: &BatchLatest,
) -> (
    (Vec<String>, Vec<f64>, Vec<String>),
    (Vec<String>, Vec<i64>, Vec<f64>),
) {
    let mut devices = (Vec::new(), Vec::new(), Vec::new());
    let mut components = (Vec::new(), Vec::new(), Vec::new());
    for (token, d) in latest.devices() {
        devices.0.push(token.to_string());
        devices.1.push(f64::from(d.last_reading_at));
        devices.2.push(d.data_json());
        for (sensor, (t, _)) in &d.sensors {
            components.0.push(token.to_string());
            components.1.push(i64::from(*sensor));
            components.2.push(f64::from(*t));
        }
    }
    (devices, components)
}

/// The newest info of each token (a later entry wins), in token order.
pub fn newest_infos(infos: &[(String, String)]) -> (Vec<String>, Vec<String>) {
    let mut newest = std::collections::BTreeMap::new();
    for (token, info) in infos {
        newest.insert(token.as_str(), info.as_str());
    }
    newest
        .into_iter()
        .map(|(t, i)| (t.to_string(), i.to_string()))
        .unzip()
}

/// The JSON the onboarding page expects on [`HANDSHAKE_CHANNEL`].
pub fn handshake_message(session: &str) -> String {
    let mut out = String::from("{\"onboarding_session\":\"");
    for c in session.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}

/// The key that marks a hello message as published.
pub fn handshake_key(hello: &Hello) -> String {
    format!("sck:handshake:{}:{}", hello.token, hello.received_at_ms)
}

/// Writes a batch's platform changes. `redis` is `None` without `REDIS_URL` (no handshake
/// publish; the flag is still set). Returns how many handshakes were published.
pub async fn write(
    pg: &tokio_postgres::Client,
    redis: Option<&mut redis::aio::MultiplexedConnection>,
    batch: &PlatformBatch,
) -> Result<usize, PlatformError> {
    if !batch.latest.is_empty() {
        let ((tokens, times, data), (c_tokens, c_sensors, c_times)) = latest_params(&batch.latest);
        pg.execute(UPDATE_DEVICES, &[&tokens, &times, &data])
            .await?;
        pg.execute(UPDATE_COMPONENTS, &[&c_tokens, &c_sensors, &c_times])
            .await?;
    }
    if !batch.infos.is_empty() {
        let (tokens, infos) = newest_infos(&batch.infos);
        pg.execute(UPDATE_HARDWARE_INFO, &[&tokens, &infos]).await?;
    }
    let mut published = 0;
    if !batch.hellos.is_empty() {
        let tokens: Vec<String> = batch.hellos.iter().map(|h| h.token.clone()).collect();
        let rows = pg.query(HANDSHAKE, &[&tokens]).await?;
        if let Some(conn) = redis {
            let script = redis::Script::new(PUBLISH_ONCE);
            for row in rows {
                let token: String = row.get(0);
                let Some(session): Option<String> = row.get(1) else {
                    continue;
                };
                let message = handshake_message(&session);
                for hello in batch.hellos.iter().filter(|h| h.token == token) {
                    let sent: i64 = script
                        .key(handshake_key(hello))
                        .arg(HANDSHAKE_CHANNEL)
                        .arg(&message)
                        .arg(HANDSHAKE_KEY_TTL_SECS)
                        .invoke_async(conn)
                        .await?;
                    if sent >= 0 {
                        published += 1;
                    }
                }
            }
        }
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_params_hold_one_row_per_device_and_per_sensor() {
        let mut latest = BatchLatest::default();
        latest.add("b", 2, 200, 2.0);
        latest.add("a", 1, 100, 1.0);
        latest.add("a", 3, 150, 3.5);
        let ((tokens, times, data), (c_tokens, c_sensors, c_times)) = latest_params(&latest);
        assert_eq!(tokens, ["a", "b"]);
        assert_eq!(times, [150.0, 200.0]);
        assert_eq!(data, [r#"{"1":1,"3":3.5}"#, r#"{"2":2}"#]);
        assert_eq!(c_tokens, ["a", "a", "b"]);
        assert_eq!(c_sensors, [1, 3, 2]);
        assert_eq!(c_times, [100.0, 150.0, 200.0]);
    }

    #[test]
    fn the_newest_info_of_a_token_wins() {
        let infos = vec![
            ("b".to_string(), "{\"v\":1}".to_string()),
            ("a".to_string(), "{\"v\":2}".to_string()),
            ("b".to_string(), "{\"v\":3}".to_string()),
        ];
        let (tokens, values) = newest_infos(&infos);
        assert_eq!(tokens, ["a", "b"]);
        assert_eq!(values, ["{\"v\":2}", "{\"v\":3}"]);
    }

    #[test]
    fn handshake_message_is_json_and_keys_name_the_message() {
        assert_eq!(handshake_message("s-1"), r#"{"onboarding_session":"s-1"}"#);
        assert_eq!(
            handshake_message("a\"b\\c\n"),
            r#"{"onboarding_session":"a\"b\\c\u000a"}"#
        );
        let h = Hello {
            token: "tok".into(),
            received_at_ms: 1_700_000_000_123,
        };
        assert_eq!(handshake_key(&h), "sck:handshake:tok:1700000000123");
    }
}
