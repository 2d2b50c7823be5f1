//! trustd: certificate authority, time-stamping and document signing with every private key
//! in a PKCS#11 HSM.

pub mod access;
pub mod api;
pub mod batch;
pub mod ca;
pub mod ca_certificates;
pub mod ca_id;
pub mod ceremony;
pub mod clock;
pub mod config;
pub mod connections;
pub mod credentials;
pub mod csc;
pub mod daemon;
pub mod diagnostics;
pub mod digest;
pub mod health;
pub mod hsm;
pub mod incident;
pub mod keys;
pub mod lease;
pub mod loadgen;
pub mod log;
pub mod metrics;
pub mod oauth2;
pub mod ocsp;
pub mod policy;
pub mod qc;
pub mod records;
pub mod revocation;
pub mod rollover;
pub mod serial;
pub mod service_role;
pub mod signed_data;
pub mod signing;
pub mod store;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod tls;
pub mod tsa;
pub mod unix_time;
