//! The Tierwise controller: `tierwise serve` (the gRPC endpoint for agents and
//! operators, the store and the rollout engine) and the operator CLI
//! that talks to a running controller.
//!
//! The controller owns desired state; agents own observed state. It must never
//! send an agent anything but typed messages from `tierwise.v1` - no command
//! text - and it must never lose what agents reported when it is killed:
//! everything it knows lives in the store, written in transactions.

pub mod artifacts;
pub mod audit_key;
pub mod cli;
pub mod delivery;
pub mod demo;
pub mod engine;
pub mod grpc;
pub mod history_view;
pub mod metrics;
pub mod notify;
pub mod paths;
pub mod pki;
pub mod rollout_view;
pub mod server;
pub mod store;
#[cfg(test)]
mod test_fixtures;
pub mod ui;
pub mod web_packages;
pub mod wire;
