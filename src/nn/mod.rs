//! The engine: tensors and layers, each with a hand-written forward and backward.

pub mod batchnorm;
pub mod bn_relu_pool;
pub mod conv;
pub mod conv_direct;
#[cfg(test)]
pub mod gradcheck;
pub mod linear;
pub mod matmul;
pub mod param;
pub mod pool;
pub mod profile;
pub mod real;
pub mod scratch;
pub mod tensor;
pub mod winograd;

pub use real::Real;
pub use tensor::Tensor;

/// Whether layers use batch statistics (and update running ones) or the running statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Training: batch statistics.
    Train,
    /// Evaluation: running statistics, nothing updated.
    Eval,
}
