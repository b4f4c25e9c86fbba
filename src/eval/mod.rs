//! Evaluation of frozen representations.

pub mod features;
pub mod geometry;
pub mod knn;
pub mod map2d;
pub mod probe;
pub mod supervised;
