//! The gRPC edge of the controller. Protobuf types live here and in
//! `tierwise_proto::convert`; everything behind this module speaks domain types.

pub mod admin;
pub mod agent;
pub mod auth;
pub mod commands;
pub mod error;
pub mod health;
pub mod limits;
pub mod sessions;
pub mod web_upload;

pub use error::ApiError;

/// Text from a peer made safe to store, log or echo: at most `max_chars`
/// characters, control and format characters shown as U+FFFD
/// (`tierwise_common::text`).
pub(crate) fn printable(text: &str, max_chars: usize) -> String {
    tierwise_common::text::neutralise(text)
        .chars()
        .take(max_chars)
        .collect()
}
