//! The operator CLI: subcommands that talk to a running controller.

pub mod artifacts;
pub mod hosts;
pub mod plan;
pub mod policy;
pub mod rollout;
pub mod table;

use anyhow::Context;
use std::time::Duration;
use tierwise_proto::v1::admin_service_client::AdminServiceClient;
use tierwise_proto::MAX_ADMIN_MESSAGE_BYTES;
use tonic::transport::{Channel, Endpoint};

/// Connects to the controller's admin API, with an error that says what to
/// check when it is not there.
pub async fn connect(controller: &str) -> anyhow::Result<AdminServiceClient<Channel>> {
    let endpoint = Endpoint::from_shared(controller.to_owned())
        .with_context(|| {
            format!("`{controller}` is not a controller URL; write it like http://127.0.0.1:7700")
        })?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60));
    let channel = endpoint.connect().await.with_context(|| {
        format!(
            "cannot reach the controller at {controller}: is `tierwise serve` running there? \
             Set the address with --controller or TIERWISE_CONTROLLER"
        )
    })?;
    Ok(AdminServiceClient::new(channel).max_decoding_message_size(MAX_ADMIN_MESSAGE_BYTES))
}

/// Turns a gRPC status from the controller into an error that reads well.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("the controller refused: {}", status.message())
}
