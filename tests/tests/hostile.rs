//! Malformed and oversized messages end only the session that sent them:
//! the controller logs them, and every other agent keeps being served.

#![allow(clippy::unwrap_used)] // A failed unwrap is a failed test, with its message.

use bytes::{Buf, BufMut};
use std::time::Duration;
use tierwise_e2e::wire::{hello, session_outcome};
use tierwise_e2e::{wait_for, Agent, Controller, Plays};
use tierwise_proto::v1::{agent_message, AgentMessage, Component, Heartbeat, Inventory};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

/// Sends bytes as they are, so the test can put anything on the wire.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.chunk().to_vec();
        src.advance(bytes.len());
        Ok(Some(bytes))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_end_only_their_own_session() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let controller = Controller::start(&root.path().join("controller"), "127.0.0.1:0")?;
    let url = controller.url();
    let _good = Agent::start(root.path(), &url, "cl-good", Plays::Client, "9.3.1.33994")?;
    let last_seen = |c: &Controller| -> anyhow::Result<Option<String>> {
        Ok(c.host("cl-good")?
            .filter(|h| h["online"] == true)
            .map(|h| h["last_seen"].as_str().unwrap_or_default().to_owned()))
    };
    let (seen_before, _) = tokio::task::block_in_place(|| {
        wait_for("the good agent online", Duration::from_secs(20), || {
            last_seen(&controller)
        })
    })?;

    // A rogue peer with a valid certificate of its own (as cl-rogue).
    let rogue = controller.agent_channel("cl-rogue").await?;
    // Bytes that are no protobuf at all.
    let mut grpc = tonic::client::Grpc::new(rogue.clone());
    grpc.ready().await?;
    let garbage = vec![0xff_u8; 64];
    let request = tonic::Request::new(tokio_stream::iter(vec![garbage]));
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/tierwise.v1.AgentService/Session");
    let refused = grpc.streaming(request, path, RawCodec).await.unwrap_err();
    assert_eq!(refused.code(), Code::Internal, "{refused:?}");

    // A message over the size limit.
    let oversized = hello(
        "cl-big",
        "9.3.1.33994",
        "x".repeat(tierwise_proto::MAX_AGENT_MESSAGE_BYTES + 1),
    );
    let status = session_outcome(&rogue, vec![oversized], true).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");

    // A hello that is well-formed protobuf but not a valid report.
    let status = session_outcome(&rogue, vec![hello("cl-bad", "9.3", String::new())], true).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("`9.3` has 2 part(s)"),
        "{status:?}"
    );
    let status = session_outcome(
        &rogue,
        vec![hello("bad host", "9.3.1.33994", String::new())],
        true,
    )
    .await;
    assert!(
        status.message().contains("host id `bad host` contains ` `"),
        "{status:?}"
    );

    // A session that does not start with Hello.
    let heartbeat = AgentMessage {
        body: Some(agent_message::Body::Heartbeat(Heartbeat {})),
    };
    let status = session_outcome(&rogue, vec![heartbeat], true).await;
    assert!(status.message().contains("must be Hello"), "{status:?}");

    // A valid session that later sends a malformed inventory is closed.
    let bad_inventory = AgentMessage {
        body: Some(agent_message::Body::Inventory(Inventory {
            components: vec![Component {
                role: 42,
                version: "9.3.1.33994".into(),
                probe_error: String::new(),
                facts: None,
            }],
            volumes: Vec::new(),
        })),
    };
    let status = session_outcome(
        &rogue,
        vec![
            hello("cl-rogue", "9.3.1.33994", String::new()),
            bad_inventory,
        ],
        true,
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("role is missing or unknown (42)"),
        "{status:?}"
    );

    // None of it was stored, except the rogue's valid hello, now offline.
    let hosts = tokio::task::block_in_place(|| controller.hosts())?;
    let ids: Vec<&str> = hosts.iter().filter_map(|h| h["host_id"].as_str()).collect();
    assert_eq!(ids, ["cl-good", "cl-rogue"]);
    assert_eq!(hosts[1]["online"], false);

    // The good agent was served all along: still online, heartbeats recorded.
    tokio::task::block_in_place(|| {
        wait_for(
            "a newer heartbeat from the good agent",
            Duration::from_secs(10),
            || Ok(last_seen(&controller)?.filter(|seen| *seen != seen_before)),
        )
    })?;

    // Every refusal was logged with the peer.
    let log = controller.process.log_text();
    assert!(log.matches("session refused").count() >= 4, "{log}");
    assert!(
        log.contains("message rejected; closing the session"),
        "{log}"
    );
    Ok(())
}
