//! Rollout execution as a pure function: given what the store knows about a
//! rollout (its steps and their states) and what the agents report (the
//! inventory), `decide` says what to do next. The controller loads a
//! snapshot, calls `decide`, and applies the decisions in one transaction,
//! so a restart at any moment loses nothing: the next snapshot simply leads
//! to the same decisions again.

mod admission;
mod attempts;
mod command;
mod decide;
mod decider;
#[cfg(test)]
mod decider_tests;
mod dispatch;
mod download;
mod eta;
mod measure;
mod options;
mod state;
mod steps;
#[cfg(test)]
mod task_tests;
#[cfg(test)]
mod tests;

pub use admission::*;
pub use attempts::*;
pub use command::*;
pub use decide::*;
pub use decider::*;
pub use dispatch::*;
pub use download::*;
pub use eta::*;
pub use measure::*;
pub use options::*;
pub use state::*;
pub use steps::*;
