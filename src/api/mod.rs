//! Thin adapters from the network to the protocol cores: gRPC services (tonic), HTTP routes
//! (axum), and the
//! mapping of every module's errors to gRPC status codes, in one place.

pub mod access;
pub mod csc;
pub mod grpc;
pub mod http;
pub mod http_server;
pub mod limits;
pub mod metrics;
pub mod standby;
pub mod status;

/// Generated gRPC types for `trust.v1` (protos in `proto/`).
pub mod pb {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("trust.v1");

    /// The encoded file descriptors, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("trust_descriptor");
}
