//! The decoder's view of the Smart Citizen platform's PostgreSQL: the connection, kept open
//! and shared ([`postgres`]: whoever needs the database takes its client), and the device
//! registry built on it ([`registry`]: token → device, cached), and what an inserted batch
//! changes in the platform ([`writer`]: latest state, hardware info, the onboarding handshake). Optional: without
//! `REGISTRY_POSTGRES_URL` none of it runs and readings are stored with `device_id` 0.

pub mod postgres;
pub mod registry;
pub mod writer;

pub use postgres::Postgres;
pub use registry::{Registry, Resolved};
