-- Demo rows of the platform's registry tables for the local stack (`make demo`, tests, the load
-- test, which registers its own simulated devices next to these). Applied after schema.sql by
-- `scripts/stack.sh start postgres`, as the tables' owner, at every start.
--
-- Idempotent and never destructive: ON CONFLICT DO NOTHING keeps rows that exist, including what
-- the pipeline or a test changed since (last_reading_at, data, device_handshake…), so a restart
-- of PostgreSQL in the middle of a test changes nothing. Ids are fixed and low; the sequences are
-- moved past them at the end, so rows inserted without an id never collide with these.
--
-- What the rows cover:
--   device 1 (demo01): published before (data, hardware_info, last_reading_at), owner 1, no forwarding
--   device 2 (demo02): forwarding on, owner 2 has a forwarding token: its readings are forwarded
--   device 3 (demo03): forwarding off, owner 2 has a token: not forwarded
--   device 4 (demo04): forwarding on, owner 1 has no token: not forwarded
--   orphan device orph01: registered on the onboarding page, no hello yet
-- Device tokens look like the platform's (SecureRandom.alphanumeric(6).downcase); forwarding
-- tokens and usernames like its SecureRandom.urlsafe_base64(12).

-- role_mask: 0 citizen, 2..4 researcher, 5+ admin. The platform gives researchers and admins
-- forwarding tokens.
INSERT INTO users (id, role_mask, forwarding_token, forwarding_username) VALUES
    (1, 0, NULL, NULL),
    (2, 2, 'fwdDemoToken2xA7', 'fwdDemoUser2xQ9'),
    (3, 5, NULL, NULL)
ON CONFLICT DO NOTHING;

-- The sensors of a Smart Citizen Kit 2.1, the ids sck-loadtest cycles through
-- (tools/loadtest/src/payload.rs SCK_SENSORS); titles from the kit's firmware
-- (smartcitizen-kit-2x lib/Sensors/Sensors.h). default_key is what a JSON reading may give
-- instead of an id ("id": "temp"); the platform derives them from its kits' sensor maps.
INSERT INTO sensors (id, default_key) VALUES
    (10, 'bat'),          -- battery %
    (14, 'light'),        -- light, lux
    (53, 'noise_dBA'),    -- noise dBA
    (55, 'temp'),         -- temperature, SHT31
    (56, 'hum'),          -- humidity, SHT31
    (58, 'press'),        -- barometric pressure, kPa
    (87, 'pm_avg_2.5'),   -- PMS5003 PM 2.5
    (88, 'pm_avg_10'),    -- PMS5003 PM 10
    (89, 'pm_avg_1'),     -- PMS5003 PM 1
    (112, 'eco2'),        -- eCO2, CCS811
    (113, 'tvoc'),        -- VOC, CCS811
    (114, 'sensor_114')   -- not in the kit's firmware table; the load test uses the id
ON CONFLICT DO NOTHING;

INSERT INTO devices (id, owner_id, device_token, state, enable_forwarding, last_reading_at, data, hardware_info) VALUES
    (1, 1, 'demo01', 'has_published', false, '2025-01-01 12:00:00',
     '{"": "2025-01-01T12:00:00Z", "55": 21.5, "55_raw": 21.5, "56": 48.0, "56_raw": 48.0, "10": 87, "10_raw": 87}',
     '{"id": "demo01", "mac": "AA:BB:CC:00:00:01", "hw_ver": "2.1", "sam_ver": "0.9.8", "esp_ver": "0.9.8"}'),
    (2, 2, 'demo02', 'never_published', true, NULL, NULL, NULL),
    (3, 2, 'demo03', 'never_published', false, NULL, NULL, NULL),
    (4, 1, 'demo04', 'never_published', true, NULL, NULL, NULL)
ON CONFLICT DO NOTHING;

INSERT INTO orphan_devices (id, device_token, onboarding_session, device_handshake) VALUES
    (1, 'orph01', 'demo-onboarding-session-0001', false)
ON CONFLICT DO NOTHING;

-- Each demo device has every SCK 2.1 sensor, keyed by the sensor's default key as the platform
-- does for a device's first component of a sensor.
INSERT INTO components (device_id, sensor_id, key)
SELECT d.id, s.id, s.default_key
FROM devices d CROSS JOIN sensors s
WHERE d.id BETWEEN 1 AND 4 AND s.id IN (10, 14, 53, 55, 56, 58, 87, 88, 89, 112, 113, 114)
ON CONFLICT DO NOTHING;

-- Past every fixed id, never backwards (rows may have been added and removed since).
DO $$
DECLARE
    t text;
    seq text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'devices', 'orphan_devices', 'sensors', 'components'] LOOP
        seq := pg_get_serial_sequence(t, 'id');
        EXECUTE format(
            'SELECT setval(%L, GREATEST((SELECT coalesce(max(id), 0) FROM %I), (SELECT last_value FROM %s), 1))',
            seq, t, seq);
    END LOOP;
END
$$;
