//! The agent protocol spoken by hand, for tests that play a misbehaving or
//! racing agent.

use std::time::Duration;
use tierwise_proto::v1::{
    agent_message, agent_service_client::AgentServiceClient, AgentMessage, Component, Hello,
    Inventory, Role,
};
use tonic::transport::Channel;
use tonic::Status;

/// A client's Hello for installation `prod`.
pub fn hello(host_id: &str, version: &str, os: String) -> AgentMessage {
    AgentMessage {
        body: Some(agent_message::Body::Hello(Hello {
            host_id: host_id.into(),
            installation: "prod".into(),
            hostname: host_id.into(),
            os,
            agent_version: "test".into(),
            heartbeat_seconds: 5,
            boot_ms: 0,
            inventory: Some(Inventory {
                components: vec![Component {
                    role: Role::Client.into(),
                    version: version.into(),
                    probe_error: String::new(),
                    facts: None,
                }],
                volumes: Vec::new(),
            }),
        })),
    }
}

/// Opens a session that sends `messages` and returns how the controller
/// ended it (the first error on the response side).
pub async fn session_outcome(
    channel: &Channel,
    messages: Vec<AgentMessage>,
    keep_open: bool,
) -> Status {
    let mut client = AgentServiceClient::new(channel.clone());
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    for message in messages {
        if tx.send(message).await.is_err() {
            return Status::internal("the request stream closed before the test wrote to it");
        }
    }
    if !keep_open {
        drop(tx);
    }
    let response = client
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    match response {
        Err(status) => status,
        Ok(response) => {
            let mut inbound = response.into_inner();
            loop {
                match tokio::time::timeout(Duration::from_secs(10), inbound.message()).await {
                    Err(_) => panic!("the controller kept a bad session open"),
                    Ok(Err(status)) => return status,
                    Ok(Ok(None)) => return Status::ok("closed"),
                    Ok(Ok(Some(_))) => continue,
                }
            }
        }
    }
}
