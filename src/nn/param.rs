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

/// How a parameter is laid out in a PyTorch state dict, relative to the engine's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TorchLayout {
    /// The same values in the same order, with this shape.
    Same(Vec<usize>),
    /// Conv weight: engine `[cout, k, k, cin]`, PyTorch `[cout, cin, k, k]`.
    Conv { cout: usize, k: usize, cin: usize },
    /// Linear weight whose input is a flattened NHWC map: engine columns in (h, w, c) order,
    /// PyTorch's NCHW flatten in (c, h, w) order.
    LinearFromNhwc { out: usize, h: usize, w: usize, c: usize },
}

impl TorchLayout {
    /// The PyTorch shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            TorchLayout::Same(s) => s.clone(),
            TorchLayout::Conv { cout, k, cin } => vec![*cout, *cin, *k, *k],
            TorchLayout::LinearFromNhwc { out, h, w, c } => vec![*out, c * h * w],
        }
    }

    /// For each PyTorch position, the engine position it comes from.
    pub fn torch_to_engine(&self) -> Vec<usize> {
        match *self {
            TorchLayout::Same(ref s) => (0..s.iter().product()).collect(),
            TorchLayout::Conv { cout, k, cin } => {
                let mut idx = Vec::with_capacity(cout * cin * k * k);
                for o in 0..cout {
                    for i in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                idx.push(((o * k + ky) * k + kx) * cin + i);
                            }
                        }
                    }
                }
                idx
            }
            TorchLayout::LinearFromNhwc { out, h, w, c } => {
                let mut idx = Vec::with_capacity(out * h * w * c);
                for o in 0..out {
                    for ch in 0..c {
                        for y in 0..h {
                            for x in 0..w {
                                idx.push(o * h * w * c + (y * w + x) * c + ch);
                            }
                        }
                    }
                }
                idx
            }
        }
    }
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
    /// Its layout in a PyTorch state dict.
    pub layout: TorchLayout,
}

impl<T: Real> Param<T> {
    /// A parameter filled with `fill`.
    pub fn filled(name: impl Into<String>, layout: TorchLayout, fill: f64, kind: ParamKind) -> Self {
        let len = layout.shape().iter().product();
        Param { name: name.into(), value: vec![T::from_f64(fill); len], grad: vec![T::ZERO; len], kind, layout }
    }

    /// A parameter drawn from U(-bound, bound), PyTorch's default for conv and linear layers with
    /// `bound = 1 / sqrt(fan_in)` (Kaiming-uniform with a = sqrt(5) gives the same bound).
    pub fn uniform(name: impl Into<String>, layout: TorchLayout, bound: f64, kind: ParamKind, rng: &mut ChaCha8Rng) -> Self {
        let len: usize = layout.shape().iter().product();
        let value = (0..len).map(|_| T::from_f64(rng.random_range(-bound..=bound))).collect();
        Param { name: name.into(), value, grad: vec![T::ZERO; len], kind, layout }
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

    /// Calls `f` on every batch-norm (for its running statistics), in a fixed order.
    fn visit_batchnorms(&mut self, _f: &mut dyn FnMut(&mut super::batchnorm::BatchNorm<T>)) {}
}
