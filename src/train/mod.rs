//! Pre-training: the loop, its run directory, metrics and checkpoints.

pub mod metrics;
pub mod monitor;
pub mod pretrain;
pub mod run_dir;
