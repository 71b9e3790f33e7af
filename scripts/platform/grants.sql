-- What the decoder's role sck_registry (REGISTRY_POSTGRES_URL) may do on the platform's tables:
-- read the registry (devices, users, orphan_devices, sensors, components) and update only the
-- columns issue 13 writes. Nothing else: no INSERT, no DELETE, no other column, no DDL.
--
-- Run as the tables' owner after schema.sql; idempotent (the REVOKE first drops whatever the role
-- was granted before, column privileges included). `scripts/stack.sh start postgres` creates the
-- role and applies this file at every start. On a platform database: create the role
-- (CREATE ROLE sck_registry LOGIN PASSWORD '…'), then run this file as the tables' owner.

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO sck_registry', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO sck_registry;

REVOKE ALL ON devices, users, orphan_devices, sensors, components FROM sck_registry;

GRANT SELECT ON devices, users, orphan_devices, sensors, components TO sck_registry;

-- `info` (hardware_info) and each decoder batch's latest state (last_reading_at, data, state).
GRANT UPDATE (hardware_info, last_reading_at, data, state) ON devices TO sck_registry;
-- The onboarding handshake of a `hello`.
GRANT UPDATE (device_handshake) ON orphan_devices TO sck_registry;
-- The sensors seen in a batch.
GRANT UPDATE (last_reading_at) ON components TO sck_registry;
