//! The gRPC edge of the controller. Protobuf types live here and in
//! `tierwise_proto::convert`; everything behind this module speaks domain types.

pub mod admin;
pub mod agent;
pub mod auth;
mod error;
pub mod sessions;

pub use error::ApiError;
