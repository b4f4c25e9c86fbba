//! Evaluation of frozen representations.

pub mod features;
pub mod geometry;
pub mod knn;
pub mod probe;
