//! The `tierwise.v1` wire protocol, generated from `proto/tierwise.proto`.
//!
//! This crate holds generated code and protocol-wide constants only. Its types
//! never travel past the edges of the controller and the agent: both convert
//! them into the domain types of `tierwise-common` right where they arrive.

#![allow(missing_debug_implementations)]

pub mod codec;

pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("tierwise.v1");
}

/// The protocol's file descriptors, encoded (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/tierwise_descriptor.bin"));

/// Largest message an agent may send on its session stream. An inventory is a
/// few KiB; anything near this limit is a broken or hostile peer.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 256 * 1024;

/// Largest message the controller sends to an agent.
pub const MAX_CONTROLLER_MESSAGE_BYTES: usize = 1024 * 1024;

/// Largest admin response (a host list of a large estate).
pub const MAX_ADMIN_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Default port of the controller's gRPC listener.
pub const DEFAULT_PORT: u16 = 7700;

pub mod convert;
