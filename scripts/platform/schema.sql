-- The Smart Citizen platform's tables that sck-ingest reads and updates (issue 13), for the local
-- stack and the tests. They mirror smartcitizen-api's db/schema.rb (Rails 6.1, schema version
-- 2025_09_22_093907, read at commit e813c66): only these five tables and only the columns the
-- pipeline uses, with the platform's names, types, defaults, NULL constraints, indexes and
-- foreign keys, so that queries and their write cost match production.
--
-- Rails to PostgreSQL: t.string = character varying (no limit); t.datetime = timestamp without
-- time zone (the platform stores UTC in it); id: :serial = integer; a table without `id:` (here
-- components) has Rails' default bigint (bigserial) key. Columns kept beyond the issue's list:
-- the primary keys of orphan_devices and components (every platform table has one).
--
-- Where a choice was made:
-- - devices.data is jsonb, the column the platform's Storer writes (`update_columns(data: …)`).
--   The platform also has a legacy hstore `latest_data`, which nothing writes any more: left out
--   (so no hstore extension either).
-- - sensors.default_key is nullable as in schema.rb, although the 2023 RefactorKits migration set
--   it NOT NULL at the time: schema.rb is what a platform database has today.
-- - components has two identical unique indexes on (device_id, sensor_id) in the platform
--   (index_components_on_device_id_and_sensor_id, unique_sensor_for_device): one is enough here.
--
-- Idempotent: `scripts/stack.sh start postgres` applies it at every start, as the tables' owner.

CREATE TABLE IF NOT EXISTS users (
    id serial PRIMARY KEY,
    role_mask integer NOT NULL DEFAULT 0,
    forwarding_token character varying,
    forwarding_username character varying
);
CREATE INDEX IF NOT EXISTS index_users_on_forwarding_token ON users (forwarding_token);

-- owner_id references users without a foreign key, as in the platform.
CREATE TABLE IF NOT EXISTS devices (
    id serial PRIMARY KEY,
    owner_id integer,
    last_reading_at timestamp without time zone,
    data jsonb,
    state character varying,
    device_token character varying,
    hardware_info jsonb,
    enable_forwarding boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS index_devices_on_device_token ON devices (device_token);
-- The platform's other indexes on these columns: they make every update of last_reading_at or
-- state a non-HOT update, as in production.
CREATE INDEX IF NOT EXISTS index_devices_on_last_reading_at ON devices (last_reading_at);
CREATE INDEX IF NOT EXISTS index_devices_on_owner_id ON devices (owner_id);
CREATE INDEX IF NOT EXISTS index_devices_on_state ON devices (state);

CREATE TABLE IF NOT EXISTS orphan_devices (
    id serial PRIMARY KEY,
    device_token character varying NOT NULL,
    onboarding_session character varying,
    device_handshake boolean DEFAULT false
);
CREATE UNIQUE INDEX IF NOT EXISTS index_orphan_devices_on_device_token ON orphan_devices (device_token);

CREATE TABLE IF NOT EXISTS sensors (
    id serial PRIMARY KEY,
    default_key character varying
);

CREATE TABLE IF NOT EXISTS components (
    id bigserial PRIMARY KEY,
    sensor_id integer REFERENCES sensors (id),
    device_id integer NOT NULL REFERENCES devices (id),
    key character varying,
    last_reading_at timestamp without time zone
);
CREATE UNIQUE INDEX IF NOT EXISTS unique_key_for_device ON components (device_id, key);
CREATE UNIQUE INDEX IF NOT EXISTS index_components_on_device_id_and_sensor_id ON components (device_id, sensor_id);
