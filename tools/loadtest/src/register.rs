//! Registering the run's simulated devices in the platform's PostgreSQL before publishing (as
//! the platform registers a kit before it sends), and checking afterwards that every stored
//! reading carries its device's id: with a registry, the decoder keys readings by the
//! platform's public id as well as the token.
//!
//! Needs the tables' owner (`PLATFORM_POSTGRES_URL`), not the decoder's read-only user. The
//! devices stay registered after the run (a replay or a second look needs them); their tokens
//! are unique per run.

use std::collections::HashMap;

use anyhow::Context;
use clickhouse::Client;
use sck_runtime::secret::Secret;
use sck_store::tables::READINGS;

/// Inserts the devices that are not registered yet and returns token → id for all of them.
pub async fn devices(url: &Secret, tokens: &[String]) -> anyhow::Result<HashMap<String, u32>> {
    let (client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
        .await
        .context("connecting to the platform's PostgreSQL (PLATFORM_POSTGRES_URL)")?;
    let conn = tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO devices (device_token, state) SELECT t, 'never_published' \
             FROM unnest($1::text[]) AS t ON CONFLICT (device_token) DO NOTHING",
            &[&tokens],
        )
        .await
        .context("registering the run's devices")?;
    let rows = client
        .query(
            "SELECT device_token, id FROM devices WHERE device_token = ANY($1::text[])",
            &[&tokens],
        )
        .await
        .context("reading the run's device ids")?;
    drop(client);
    let _ = conn.await;
    rows.iter()
        .map(|r| {
            let id: i32 = r.get(1);
            let id = u32::try_from(id).context("a negative device id")?;
            Ok((r.get::<_, String>(0), id))
        })
        .collect()
}

/// How many stored readings of the run carry a device id other than their device's.
pub async fn wrong_device_ids(
    ch: &Client,
    db: &str,
    run_id: &str,
    ids: &HashMap<String, u32>,
) -> anyhow::Result<u64> {
    let stored: Vec<(String, u32, u64)> = ch
        .query(&format!(
            "SELECT device_token, device_id, count() FROM {db}.{READINGS} \
             WHERE device_token LIKE '{run_id}d%' GROUP BY device_token, device_id"
        ))
        .fetch_all()
        .await
        .context("reading the device ids of the run's readings")?;
    Ok(mismatches(&stored, ids))
}

/// Rows whose (token, device id) group does not match the registered id.
fn mismatches(stored: &[(String, u32, u64)], ids: &HashMap<String, u32>) -> u64 {
    stored
        .iter()
        .filter(|(token, id, _)| ids.get(token) != Some(id))
        .map(|(_, _, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_another_id_or_an_unregistered_token_count() {
        let ids = HashMap::from([("r1d0".to_string(), 7), ("r1d1".to_string(), 8)]);
        let stored = vec![
            ("r1d0".to_string(), 7, 100),
            ("r1d0".to_string(), 0, 3),
            ("r1d1".to_string(), 8, 50),
            ("r1d9".to_string(), 9, 2),
        ];
        assert_eq!(mismatches(&stored, &ids), 5);
        assert_eq!(mismatches(&stored[..1], &ids), 0);
    }
}
