//! The residual basic block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`, where the
//! shortcut is the identity or, when the shape changes, a strided 1x1 conv + batch-norm.

use crate::nn::batchnorm::BatchNorm;
use crate::nn::conv::{add_into, Conv2d, ConvSpec};
use crate::nn::param::{HasParams, Param};
use crate::nn::{Mode, Real, Tensor};
use anyhow::Result;
use rand_chacha::ChaCha8Rng;

/// A 1x1 strided projection shortcut (PyTorch names `downsample.0` and `downsample.1`).
#[derive(Clone, Debug)]
struct Projection<T> {
    conv: Conv2d<T>,
    bn: BatchNorm<T>,
    c: Tensor<T>,
    out: Tensor<T>,
}

/// A residual basic block that owns its activations and gradient scratch buffers.
#[derive(Clone, Debug)]
pub struct BasicBlock<T> {
    conv1: Conv2d<T>,
    bn1: BatchNorm<T>,
    conv2: Conv2d<T>,
    bn2: BatchNorm<T>,
    shortcut: Option<Projection<T>>,
    c1: Tensor<T>,
    a1: Tensor<T>,
    c2: Tensor<T>,
    out: Tensor<T>,
    g_a: Tensor<T>,
    g_b: Tensor<T>,
    g_skip: Tensor<T>,
}

impl<T: Real> BasicBlock<T> {
    /// A block from `cin` to `cout` channels; the first conv has `stride`. A projection shortcut
    /// is added when the stride or channel count changes. `conv_bias` gives the 3x3 convs biases
    /// (the tutorial's blocks have them; ResNet's do not).
    pub fn new(prefix: &str, cin: usize, cout: usize, stride: usize, conv_bias: bool, rng: &mut ChaCha8Rng) -> Self {
        let conv = |name: &str, cin, stride, rng: &mut ChaCha8Rng| {
            Conv2d::new(&format!("{prefix}.{name}"), ConvSpec { cin, cout, kernel: 3, stride, padding: 1 }, conv_bias, rng)
        };
        let conv1 = conv("conv1", cin, stride, rng);
        let conv2 = conv("conv2", cout, 1, rng);
        let shortcut = (stride != 1 || cin != cout).then(|| Projection {
            conv: Conv2d::new(&format!("{prefix}.downsample.0"), ConvSpec { cin, cout, kernel: 1, stride, padding: 0 }, false, rng),
            bn: BatchNorm::new(&format!("{prefix}.downsample.1"), cout),
            c: Tensor::default(),
            out: Tensor::default(),
        });
        BasicBlock {
            conv1,
            bn1: BatchNorm::new(&format!("{prefix}.bn1"), cout),
            conv2,
            bn2: BatchNorm::new(&format!("{prefix}.bn2"), cout),
            shortcut,
            c1: Tensor::default(),
            a1: Tensor::default(),
            c2: Tensor::default(),
            out: Tensor::default(),
            g_a: Tensor::default(),
            g_b: Tensor::default(),
            g_skip: Tensor::default(),
        }
    }

    /// The output of the last forward.
    pub fn output(&self) -> &Tensor<T> {
        &self.out
    }

    /// Runs the block on `x` `[n, h, w, cin]`; the result is in `output()`.
    pub fn forward(&mut self, x: &Tensor<T>, mode: Mode) -> Result<()> {
        self.conv1.forward(x, &mut self.c1)?;
        self.bn1.forward(&self.c1, &mut self.a1, mode, true, None)?;
        self.conv2.forward(&self.a1, &mut self.c2)?;
        let skip = match &mut self.shortcut {
            Some(p) => {
                p.conv.forward(x, &mut p.c)?;
                p.bn.forward(&p.c, &mut p.out, mode, false, None)?;
                &p.out
            }
            None => x,
        };
        self.bn2.forward(&self.c2, &mut self.out, mode, true, Some(skip))
    }

    /// Backward from `dy` (gradient of `output()`); accumulates parameter gradients and writes
    /// the input gradient into `dx`.
    pub fn backward(&mut self, x: &Tensor<T>, dy: &Tensor<T>, dx: &mut Tensor<T>) -> Result<()> {
        self.bn2.backward(&self.c2, &self.out, dy, &mut self.g_a, true, Some(&mut self.g_skip))?;
        self.conv2.backward(&self.a1, &self.g_a, Some(&mut self.g_b))?;
        self.bn1.backward(&self.c1, &self.a1, &self.g_b, &mut self.g_a, true, None)?;
        self.conv1.backward(x, &self.g_a, Some(dx))?;
        match &mut self.shortcut {
            Some(p) => {
                p.bn.backward(&p.c, &p.out, &self.g_skip, &mut self.g_a, false, None)?;
                p.conv.backward(x, &self.g_a, Some(&mut self.g_b))?;
                add_into(dx.data_mut(), self.g_b.data());
            }
            None => add_into(dx.data_mut(), self.g_skip.data()),
        }
        Ok(())
    }
}

impl<T: Real> HasParams<T> for BasicBlock<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        self.conv1.visit_params(f);
        self.bn1.visit_params(f);
        self.conv2.visit_params(f);
        self.bn2.visit_params(f);
        if let Some(p) = &mut self.shortcut {
            p.conv.visit_params(f);
            p.bn.visit_params(f);
        }
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        f(&mut self.bn1);
        f(&mut self.bn2);
        if let Some(p) = &mut self.shortcut {
            f(&mut p.bn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use rand::SeedableRng;

    fn check(cin: usize, cout: usize, stride: usize, bias: bool) {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut block = BasicBlock::<f64>::new("b", cin, cout, stride, bias, &mut rng);
        let x = random_tensor(&[3, 4, 4, cin], 21);
        check_layer(
            &x,
            &mut block,
            |b, x, y| {
                b.forward(x, Mode::Train).unwrap();
                *y = b.output().clone();
            },
            |b, x, _y, dy, dx| b.backward(x, dy, dx).unwrap(),
        );
    }

    #[test]
    fn identity_block_gradients() {
        check(3, 3, 1, true);
    }

    #[test]
    fn projection_block_gradients() {
        check(2, 4, 2, false);
    }
}
