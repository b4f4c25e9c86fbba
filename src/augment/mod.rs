//! Data augmentation: one file per transform, and the pipeline that composes them per view.

pub mod blur;
pub mod color;
pub mod crop;
pub mod flip;
pub mod image;
pub mod pipeline;
pub mod solarize;

pub use pipeline::{AugmentConfig, Preset};
