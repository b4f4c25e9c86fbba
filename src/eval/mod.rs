//! Evaluation of frozen representations.

pub mod features;
pub mod probe;
