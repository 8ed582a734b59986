//! What the controller makes of an agent's messages: arbitrary bytes
//! decoded as the protobuf `AgentMessage` (`prost::Message::decode`), then
//! the checks and conversions a session applies before the store sees
//! them — `Hello` to a host report, an inventory report to the domain's
//! inventory, a step result to the record the store keeps (outcome,
//! printable output, backup files, duration). Any bytes get a result or an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use tierwise_controller::grpc::agent::fuzzing;
use tierwise_proto::v1::{agent_message::Body, AgentMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = AgentMessage::decode(data) else {
        return;
    };
    match &message.body {
        Some(Body::Hello(hello)) => {
            let _ = fuzzing::hello(hello);
        }
        Some(Body::Inventory(inventory)) => {
            let _ = fuzzing::inventory(inventory);
        }
        Some(Body::StepResult(result)) => {
            let _ = fuzzing::step_result(result);
        }
        _ => {}
    }
});
