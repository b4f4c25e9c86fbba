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
