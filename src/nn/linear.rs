//! Fully connected layer and ReLU over `[rows, features]`.

use super::matmul::{matmul, Layout};
use super::param::{HasParams, Param, ParamKind, TorchLayout};
use super::tensor::check_shape;
use super::{Real, Tensor};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;

/// Linear: `y = x W^T + b`, weight `[out, in]` as in PyTorch.
#[derive(Clone, Debug)]
pub struct Linear<T> {
    /// Input features.
    pub fan_in: usize,
    /// Output features.
    pub fan_out: usize,
    /// `[out, in]`.
    pub weight: Param<T>,
    /// `[out]`, when present.
    pub bias: Option<Param<T>>,
}

impl<T: Real> Linear<T> {
    /// A linear layer initialised as PyTorch does (U(+-1/sqrt(in)) for weight and bias).
    pub fn new(name: &str, fan_in: usize, fan_out: usize, bias: bool, rng: &mut ChaCha8Rng) -> Self {
        Self::with_layout(name, TorchLayout::Same(vec![fan_out, fan_in]), bias, rng)
    }

    /// A linear layer whose PyTorch weight layout is given (for inputs flattened from NHWC maps).
    pub fn with_layout(name: &str, layout: TorchLayout, bias: bool, rng: &mut ChaCha8Rng) -> Self {
        let [fan_out, fan_in] = layout.shape()[..] else { panic!("linear layout must be 2-D") };
        let bound = 1.0 / (fan_in as f64).sqrt();
        Linear {
            fan_in,
            fan_out,
            weight: Param::uniform(format!("{name}.weight"), layout, bound, ParamKind::Weight, rng),
            bias: bias.then(|| Param::uniform(format!("{name}.bias"), TorchLayout::Same(vec![fan_out]), bound, ParamKind::NoDecay, rng)),
        }
    }

    fn rows(&self, x: &Tensor<T>) -> Result<usize> {
        let (rows, cols) = x.rows_cols();
        if cols != self.fan_in {
            bail!("linear {}: expected {} input features, got shape {:?}", self.weight.name, self.fan_in, x.shape());
        }
        Ok(rows)
    }

    /// `y[rows, out] = x[rows, in] W^T + b` (any input shape whose trailing dims flatten to `in`).
    pub fn forward(&self, x: &Tensor<T>, y: &mut Tensor<T>) -> Result<()> {
        let rows = self.rows(x)?;
        y.resize(&[rows, self.fan_out]);
        if let Some(b) = &self.bias {
            for r in y.data_mut().chunks_exact_mut(self.fan_out) {
                r.copy_from_slice(&b.value);
            }
        }
        matmul(
            y.data_mut(),
            x.data(),
            Layout::Normal,
            &self.weight.value,
            Layout::Transposed,
            (rows, self.fan_in, self.fan_out),
            self.bias.is_some(),
            true,
        );
        Ok(())
    }

    /// Accumulates dW and db; writes dx (shaped like x) when asked.
    pub fn backward(&mut self, x: &Tensor<T>, dy: &Tensor<T>, dx: Option<&mut Tensor<T>>) -> Result<()> {
        let rows = self.rows(x)?;
        check_shape(&format!("linear {} output gradient", self.weight.name), dy.shape(), &[rows, self.fan_out])?;
        matmul(
            &mut self.weight.grad,
            dy.data(),
            Layout::Transposed,
            x.data(),
            Layout::Normal,
            (self.fan_out, rows, self.fan_in),
            true,
            true,
        );
        if let Some(b) = &mut self.bias {
            for r in dy.data().chunks_exact(self.fan_out) {
                for (g, &d) in b.grad.iter_mut().zip(r) {
                    *g += d;
                }
            }
        }
        if let Some(dx) = dx {
            dx.resize(x.shape());
            matmul(
                dx.data_mut(),
                dy.data(),
                Layout::Normal,
                &self.weight.value,
                Layout::Normal,
                (rows, self.fan_out, self.fan_in),
                false,
                true,
            );
        }
        Ok(())
    }
}

impl<T: Real> HasParams<T> for Linear<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}

/// In-place ReLU.
pub fn relu_forward<T: Real>(x: &mut Tensor<T>) {
    for v in x.data_mut() {
        *v = v.max(T::ZERO);
    }
}

/// ReLU backward from its output `y`: zeroes `dy` where the unit was off.
pub fn relu_backward<T: Real>(y: &Tensor<T>, dy: &mut Tensor<T>) {
    for (g, &v) in dy.data_mut().iter_mut().zip(y.data()) {
        if v <= T::ZERO {
            *g = T::ZERO;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use rand::SeedableRng;

    #[test]
    fn linear_gradients_on_flattened_images() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut lin = Linear::<f64>::new("fc", 12, 5, true, &mut rng);
        let x = random_tensor(&[3, 2, 2, 3], 13);
        check_layer(&x, &mut lin, |l, x, y| l.forward(x, y).unwrap(), |l, x, _y, dy, dx| l.backward(x, dy, Some(dx)).unwrap());
    }

    #[test]
    fn relu_gradients() {
        let x = random_tensor(&[4, 6], 14);
        let mut lin = Linear::<f64>::new("fc", 6, 6, false, &mut ChaCha8Rng::seed_from_u64(3));
        // Linear then ReLU, so that the check covers the ReLU mask through a parameterised layer.
        check_layer(
            &x,
            &mut lin,
            |l, x, y| {
                l.forward(x, y).unwrap();
                relu_forward(y);
            },
            |l, x, y, dy, dx| {
                let mut g = dy.clone();
                relu_backward(y, &mut g);
                l.backward(x, &g, Some(dx)).unwrap();
            },
        );
    }

    #[test]
    fn wrong_width_names_layer_and_shape() {
        let lin = Linear::<f32>::new("head.0", 8, 2, true, &mut ChaCha8Rng::seed_from_u64(1));
        let err = lin.forward(&Tensor::zeros(&[2, 7]), &mut Tensor::default()).unwrap_err().to_string();
        assert!(err.contains("head.0") && err.contains("[2, 7]"), "{err}");
    }
}
