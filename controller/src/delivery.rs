//! How the rollout engine reaches agents: one small interface in domain
//! terms. The gRPC session registry implements it (and turns a delivery
//! into a protobuf command); tests record what would have gone out.

use tierwise_common::rollout::Delivery;

/// Hands deliveries to the sessions of connected agents.
pub trait Deliver: Send + Sync + std::fmt::Debug {
    /// Queues one delivery on its host's session if the host is connected
    /// to this controller; false when it is not (it goes out on the host's
    /// next hello) or its queue is full.
    fn deliver(&self, delivery: &Delivery) -> bool;
}
