//! Frozen features: the encoder's h (or the head's z) of every image's evaluation view, in eval mode.

use crate::augment::AugmentConfig;
use crate::data::Dataset;
use crate::model::net::Net;
use crate::nn::{Mode, Tensor};
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// Which representation to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Features {
    /// The encoder output h (what SimCLR evaluates).
    H,
    /// The projection head output z (for comparison only).
    Z,
    /// The raw pixels of the whole image, scaled to [0, 1] (the baseline a representation must beat).
    Pixels,
}

impl Features {
    /// The name used in option values, file names and records ("h", "z", "pixels").
    pub fn name(self) -> &'static str {
        match self {
            Features::H => "h",
            Features::Z => "z",
            Features::Pixels => "pixels",
        }
    }
}

/// Images per forward pass when encoding.
const ENCODE_BATCH: usize = 500;

/// Encodes every image of `ds` (evaluation view, eval-mode batch-norm); returns `[n, dim]`.
/// `Pixels` needs no network: the raw images, flattened.
pub fn encode(net: &mut Net<f32>, aug: &AugmentConfig, ds: &Dataset, which: Features) -> Result<Tensor<f32>> {
    if which == Features::Pixels {
        return Tensor::from_vec(&[ds.len(), ds.image_len()], ds.pixels.iter().map(|&v| v as f32 / 255.0).collect());
    }
    let dim = if which == Features::H { net.encoder.dim() } else { net.head.out_dim() };
    let mut out = Vec::with_capacity(ds.len() * dim);
    let mut x = Tensor::default();
    for start in (0..ds.len()).step_by(ENCODE_BATCH) {
        let len = ENCODE_BATCH.min(ds.len() - start);
        aug.eval_batch(ds, start, len, &mut x);
        let values = if which == Features::H { net.encoder.forward(&x, Mode::Eval)? } else { net.forward(&x, Mode::Eval)? };
        out.extend_from_slice(values.data());
    }
    Tensor::from_vec(&[ds.len(), dim], out)
}
