//! The SimCLR network: encoder f (giving h) followed by projection head g (giving z).

use super::encoder::{Architecture, Encoder};
use super::head::ProjectionHead;
use crate::nn::batchnorm::BatchNorm;
use crate::nn::param::{HasParams, Param};
use crate::nn::{profile, Mode, Real, Tensor};
use anyhow::Result;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Everything needed to build a network with the same shapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSpec {
    /// Encoder architecture.
    pub architecture: Architecture,
    /// Image channels (1 grayscale, 3 RGB).
    pub channels: usize,
    /// View side length in pixels.
    pub size: usize,
    /// Widths of the head's layers; the last is z's size.
    pub head_widths: Vec<usize>,
    /// Batch-norm between the head's hidden layers (SimCLRv2 head).
    pub head_batch_norm: bool,
}

/// Encoder + projection head, with the activations of the last forward.
#[derive(Clone, Debug)]
pub struct Net<T> {
    /// The spec it was built from.
    pub spec: NetSpec,
    /// f: images -> h.
    pub encoder: Encoder<T>,
    /// g: h -> z.
    pub head: ProjectionHead<T>,
    dh: Tensor<T>,
}

impl<T: Real> Net<T> {
    /// Builds the network with PyTorch's default initialisation drawn from `seed`.
    pub fn new(spec: &NetSpec, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let encoder = Encoder::new(spec.architecture, spec.channels, spec.size, &mut rng)?;
        let head = ProjectionHead::new(encoder.feature_map_shape(), &spec.head_widths, spec.head_batch_norm, &mut rng)?;
        Ok(Net { spec: spec.clone(), encoder, head, dh: Tensor::default() })
    }

    /// Runs encoder and head on `x`; returns z. h stays available through `encoder`'s output.
    pub fn forward(&mut self, x: &Tensor<T>, mode: Mode) -> Result<&Tensor<T>> {
        let h = self.encoder.forward(x, mode)?;
        let _t = profile::scope(|| "head forward".into());
        self.head.forward(h, mode)
    }

    /// Encodes `x` and returns h as `[n, dim]` (the head is not run).
    pub fn representation(&mut self, x: &Tensor<T>, mode: Mode) -> Result<Tensor<T>> {
        let dim = self.encoder.dim();
        let h = self.encoder.forward(x, mode)?;
        Tensor::from_vec(&[h.shape()[0], dim], h.data().to_vec())
    }

    /// Backward from dz for the last forward on `x`; accumulates all parameter gradients.
    pub fn backward(&mut self, x: &Tensor<T>, dz: &Tensor<T>, dx: Option<&mut Tensor<T>>) -> Result<()> {
        let mut dh = std::mem::take(&mut self.dh);
        let h = self.encoder.forward_output();
        let t = profile::scope(|| "head backward".into());
        self.head.backward(h, dz, &mut dh)?;
        drop(t);
        self.encoder.backward(x, &dh, dx)?;
        self.dh = dh;
        Ok(())
    }

    /// Clears every parameter gradient.
    pub fn zero_grad(&mut self) {
        self.visit_params(&mut |p| p.zero_grad());
    }

    /// Number of trainable values.
    pub fn num_params(&mut self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |p| n += p.value.len());
        n
    }
}

impl<T: Real> HasParams<T> for Net<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        self.encoder.visit_params(f);
        self.head.visit_params(f);
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        self.encoder.visit_batchnorms(f);
        self.head.visit_batchnorms(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::nt_xent::nt_xent;
    use crate::nn::gradcheck::{check_layer_probing, random_tensor};

    fn spec(size: usize) -> NetSpec {
        NetSpec { architecture: Architecture::Tutorial, channels: 1, size, head_widths: vec![16, 8], head_batch_norm: true }
    }

    #[test]
    fn whole_network_gradients() {
        let mut net = Net::<f64>::new(&spec(8), 3).unwrap();
        let x = random_tensor(&[4, 8, 8, 1], 61);
        check_layer_probing(
            8,
            &x,
            &mut net,
            |n, x, z| *z = n.forward(x, Mode::Train).unwrap().clone(),
            |n, x, _z, dz, dx| n.backward(x, dz, Some(dx)).unwrap(),
        );
    }

    #[test]
    fn training_steps_lower_the_loss_on_a_fixed_batch() {
        let mut net = Net::<f32>::new(&spec(12), 4).unwrap();
        let mut opt = crate::optim::Optimizer::new(Default::default());
        let x = random_tensor(&[16, 12, 12, 1], 62).cast::<f32>();
        let mut dz = Tensor::default();
        let mut losses = Vec::new();
        for _ in 0..15 {
            net.zero_grad();
            let z = net.forward(&x, Mode::Train).unwrap();
            losses.push(nt_xent(z, 0.5, &mut dz).unwrap().loss);
            net.backward(&x, &dz, None).unwrap();
            opt.step(&mut net, 1e-3);
        }
        assert!(losses[14] < losses[0] - 0.1, "{losses:?}");
    }

    #[test]
    fn eval_mode_uses_running_statistics() {
        let mut net = Net::<f32>::new(&spec(8), 5).unwrap();
        let x = random_tensor(&[6, 8, 8, 1], 63).cast::<f32>();
        let before: Vec<f32> = net.forward(&x, Mode::Eval).unwrap().data().to_vec();
        // Eval mode changes nothing and does not depend on the rest of the batch.
        let again: Vec<f32> = net.forward(&x, Mode::Eval).unwrap().data().to_vec();
        assert_eq!(before, again);
        let mut first = Tensor::zeros(&[1, 8, 8, 1]);
        first.data_mut().copy_from_slice(&x.data()[..64]);
        let alone = net.forward(&first, Mode::Eval).unwrap().data().to_vec();
        assert!(alone.iter().zip(&before).all(|(a, b)| (a - b).abs() < 1e-5));
        // Training mode updates the running statistics, which then change eval outputs.
        net.forward(&x, Mode::Train).unwrap();
        let after: Vec<f32> = net.forward(&x, Mode::Eval).unwrap().data().to_vec();
        assert_ne!(before, after);
    }
}
