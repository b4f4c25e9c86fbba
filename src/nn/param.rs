//! Trainable parameters: value, gradient, PyTorch name, and whether weight decay applies.

use super::Real;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What a parameter is, which decides weight decay and LARS adaptation (weights only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A convolution or linear weight: decayed and LARS-adapted.
    Weight,
    /// A bias or a batch-norm affine parameter: neither decayed nor adapted.
    NoDecay,
}

/// One trainable tensor with its gradient (accumulated by backward, cleared by `zero_grad`).
#[derive(Clone, Debug)]
pub struct Param<T> {
    /// The PyTorch state-dict name, e.g. `encoder.conv1.weight`.
    pub name: String,
    /// The values, in the engine's internal layout.
    pub value: Vec<T>,
    /// The gradient, same layout as `value`.
    pub grad: Vec<T>,
    /// Weight or no-decay parameter.
    pub kind: ParamKind,
}

impl<T: Real> Param<T> {
    /// A parameter filled with `fill`.
    pub fn filled(name: impl Into<String>, len: usize, fill: f64, kind: ParamKind) -> Self {
        Param { name: name.into(), value: vec![T::from_f64(fill); len], grad: vec![T::ZERO; len], kind }
    }

    /// A parameter drawn from U(-bound, bound), PyTorch's default for conv and linear layers with
    /// `bound = 1 / sqrt(fan_in)` (Kaiming-uniform with a = sqrt(5) gives the same bound).
    pub fn uniform(name: impl Into<String>, len: usize, bound: f64, kind: ParamKind, rng: &mut ChaCha8Rng) -> Self {
        let value = (0..len).map(|_| T::from_f64(rng.random_range(-bound..=bound))).collect();
        Param { name: name.into(), value, grad: vec![T::ZERO; len], kind }
    }

    /// Clears the gradient.
    pub fn zero_grad(&mut self) {
        self.grad.fill(T::ZERO);
    }
}

/// Something that owns parameters: layers, blocks and models.
pub trait HasParams<T> {
    /// Calls `f` on every parameter, in a fixed order.
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>));
}
