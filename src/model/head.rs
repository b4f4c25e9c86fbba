//! The projection head g: an MLP from h to z, used only by the contrastive loss.

use crate::nn::batchnorm::BatchNorm;
use crate::nn::linear::{relu_backward, relu_forward, Linear};
use crate::nn::param::{HasParams, Param, TorchLayout};
use crate::nn::{Mode, Real, Tensor};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;

/// One linear layer of the head, optionally followed by batch-norm, and by ReLU unless last.
#[derive(Clone, Debug)]
struct HeadLayer<T> {
    linear: Linear<T>,
    bn: Option<BatchNorm<T>>,
    relu: bool,
    y: Tensor<T>,
    a: Tensor<T>,
    g: Tensor<T>,
}

/// MLP projection head. Hidden layers are Linear (-> BatchNorm1d) -> ReLU; the last is Linear.
/// Parameters are named as the indices of a PyTorch `nn.Sequential` under `head.`.
#[derive(Clone, Debug)]
pub struct ProjectionHead<T> {
    layers: Vec<HeadLayer<T>>,
    g_a: Tensor<T>,
}

impl<T: Real> ProjectionHead<T> {
    /// A head from the encoder's feature map `[h, w, c]` through `widths` (the last is z's size).
    /// With `batch_norm`, hidden layers get BatchNorm1d and no linear bias (SimCLRv2).
    pub fn new(feature_map: [usize; 3], widths: &[usize], batch_norm: bool, rng: &mut ChaCha8Rng) -> Result<Self> {
        if widths.is_empty() || widths.contains(&0) {
            bail!("projection head: widths must be a non-empty list of positive sizes, got {widths:?}");
        }
        let [h, w, c] = feature_map;
        let mut fan_in = h * w * c;
        let mut index = 0;
        let mut layers = Vec::new();
        for (i, &out) in widths.iter().enumerate() {
            let last = i + 1 == widths.len();
            let bn = batch_norm && !last;
            let name = format!("head.{index}");
            let layout =
                if i == 0 && h * w > 1 { TorchLayout::LinearFromNhwc { out, h, w, c } } else { TorchLayout::Same(vec![out, fan_in]) };
            let linear = Linear::with_layout(&name, layout, !bn, rng);
            index += 1;
            let bn = bn.then(|| {
                index += 1;
                BatchNorm::new(&format!("head.{}", index - 1), out)
            });
            if !last {
                index += 1; // ReLU
            }
            layers.push(HeadLayer { linear, bn, relu: !last, y: Tensor::default(), a: Tensor::default(), g: Tensor::default() });
            fan_in = out;
        }
        Ok(ProjectionHead { layers, g_a: Tensor::default() })
    }

    /// z's size.
    pub fn out_dim(&self) -> usize {
        self.layers.last().expect("heads have layers").linear.fan_out
    }

    fn layer_output(l: &HeadLayer<T>) -> &Tensor<T> {
        if l.bn.is_some() {
            &l.a
        } else {
            &l.y
        }
    }

    /// z `[n, out]` from h `[n, ...]`.
    pub fn forward(&mut self, h: &Tensor<T>, mode: Mode) -> Result<&Tensor<T>> {
        for i in 0..self.layers.len() {
            let (done, rest) = self.layers.split_at_mut(i);
            let input = done.last().map_or(h, Self::layer_output);
            let l = &mut rest[0];
            l.linear.forward(input, &mut l.y)?;
            match &mut l.bn {
                Some(bn) => bn.forward(&l.y, &mut l.a, mode, l.relu, None)?,
                None if l.relu => relu_forward(&mut l.y),
                None => {}
            }
        }
        Ok(Self::layer_output(self.layers.last().expect("heads have layers")))
    }

    /// Backward from dz; accumulates parameter gradients and writes dh (shaped like h).
    pub fn backward(&mut self, h: &Tensor<T>, dz: &Tensor<T>, dh: &mut Tensor<T>) -> Result<()> {
        self.g_a.clone_from(dz);
        for i in (0..self.layers.len()).rev() {
            let (done, rest) = self.layers.split_at_mut(i);
            let input = done.last().map_or(h, Self::layer_output);
            let l = &mut rest[0];
            let dy = match &mut l.bn {
                Some(bn) => {
                    bn.backward(&l.y, &l.a, &self.g_a, &mut l.g, l.relu, None)?;
                    &l.g
                }
                None => {
                    if l.relu {
                        relu_backward(&l.y, &mut self.g_a);
                    }
                    &self.g_a
                }
            };
            l.linear.backward(input, dy, Some(dh))?;
            if i > 0 {
                std::mem::swap(&mut self.g_a, dh);
            }
        }
        Ok(())
    }
}

impl<T: Real> HasParams<T> for ProjectionHead<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        for l in &mut self.layers {
            l.linear.visit_params(f);
            if let Some(bn) = &mut l.bn {
                bn.visit_params(f);
            }
        }
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        for l in &mut self.layers {
            if let Some(bn) = &mut l.bn {
                f(bn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use rand::SeedableRng;

    #[test]
    fn gradients_plain_and_batch_norm_heads() {
        for bn in [false, true] {
            let mut head = ProjectionHead::<f64>::new([2, 2, 3], &[7, 6, 4], bn, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
            let x = random_tensor(&[5, 2, 2, 3], 41);
            check_layer(
                &x,
                &mut head,
                |hd, x, y| *y = hd.forward(x, Mode::Train).unwrap().clone(),
                |hd, x, _y, dy, dx| hd.backward(x, dy, dx).unwrap(),
            );
        }
    }

    #[test]
    fn sequential_names() {
        let mut head = ProjectionHead::<f32>::new([6, 6, 64], &[256, 256, 128], true, &mut ChaCha8Rng::seed_from_u64(6)).unwrap();
        let mut names = Vec::new();
        head.visit_params(&mut |p| names.push(p.name.clone()));
        assert_eq!(
            names,
            [
                "head.0.weight",
                "head.1.weight",
                "head.1.bias",
                "head.3.weight",
                "head.4.weight",
                "head.4.bias",
                "head.6.weight",
                "head.6.bias"
            ]
        );
    }
}
