//! The reference benchmark step of `shared/peers/README.md`: tutorial encoder + head on
//! 512 views of 24x24, NT-Xent (tau 0.5), backward, Adam 3e-4; eval-mode inference; and the
//! time to augment one batch.

use crate::augment::Preset;
use crate::data::source::embedded_sample;
use crate::loss::nt_xent::nt_xent;
use crate::model::encoder::Architecture;
use crate::model::net::{Net, NetSpec};
use crate::nn::{profile, Mode, Tensor};
use crate::optim::{Optimizer, OptimizerConfig};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Instant;

/// Benchmark settings.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// Source images per step (2N views).
    pub batch: usize,
    /// View side length.
    pub size: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// Timed steps.
    pub steps: usize,
    /// Images per inference batch.
    pub infer_batch: usize,
}

/// Benchmark results (medians).
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Worker threads.
    pub threads: usize,
    /// Median train step, milliseconds.
    pub step_ms_median: f64,
    /// Views through forward + backward + Adam per second.
    pub train_views_per_s: f64,
    /// Eval-mode images per second.
    pub infer_images_per_s: f64,
    /// Loss of the first and last step.
    pub loss_first: f64,
    /// Loss of the last step.
    pub loss_last: f64,
    /// Per-layer milliseconds per step (forward and backward), from a separate profiled run.
    pub layers_ms: Vec<(String, f64)>,
    /// Milliseconds to augment one batch (2N views of the embedded Fashion-MNIST sample, the
    /// default `mnist` preset), all threads; pre-training overlaps this with the step.
    pub augment_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn random_views(n: usize, size: usize, rng: &mut ChaCha8Rng) -> Tensor<f32> {
    Tensor::from_vec(&[n, size, size, 1], (0..n * size * size).map(|_| rng.random_range(-1.0..1.0)).collect()).expect("shape")
}

/// Runs the reference step and inference; see the module doc.
pub fn run(cfg: &BenchConfig) -> Result<BenchResult> {
    let spec =
        NetSpec { architecture: Architecture::Tutorial, channels: 1, size: cfg.size, head_widths: vec![256, 128], head_batch_norm: false };
    let mut net = Net::<f32>::new(&spec, 0)?;
    let mut opt = Optimizer::new(OptimizerConfig::default());
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let views = random_views(2 * cfg.batch, cfg.size, &mut rng);
    let mut dz = Tensor::default();
    let mut step = |net: &mut Net<f32>| -> Result<f64> {
        net.zero_grad();
        let z = net.forward(&views, Mode::Train)?;
        let out = nt_xent(z, 0.5, &mut dz)?;
        net.backward(&views, &dz, None)?;
        opt.step(net, 3e-4);
        Ok(out.loss)
    };
    let mut losses = Vec::new();
    for _ in 0..cfg.warmup {
        losses.push(step(&mut net)?);
    }
    let mut times = Vec::new();
    for _ in 0..cfg.steps {
        let t = Instant::now();
        losses.push(step(&mut net)?);
        times.push(t.elapsed().as_secs_f64());
    }
    let step_s = median(times);
    let profiled = 3;
    profile::enable(true);
    for _ in 0..profiled {
        step(&mut net)?;
    }
    let layers_ms = profile::report().into_iter().map(|(k, d, _)| (k, d.as_secs_f64() * 1e3 / profiled as f64)).collect();
    profile::enable(false);

    let xb = random_views(cfg.infer_batch, cfg.size, &mut rng);
    for _ in 0..2 {
        net.forward(&xb, Mode::Eval)?;
    }
    let mut it = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        net.forward(&xb, Mode::Eval)?;
        it.push(t.elapsed().as_secs_f64());
    }
    let sample = embedded_sample()?.train;
    let aug = Preset::Mnist.config(cfg.size);
    let indices: Vec<usize> = (0..cfg.batch).map(|i| i % sample.len()).collect();
    let mut views = Tensor::default();
    let mut at = Vec::new();
    for epoch in 0..5 {
        let t = Instant::now();
        aug.pair_batch(&sample, &indices, 0, epoch, &mut views);
        at.push(t.elapsed().as_secs_f64());
    }
    Ok(BenchResult {
        threads: rayon::current_num_threads(),
        step_ms_median: step_s * 1e3,
        train_views_per_s: 2.0 * cfg.batch as f64 / step_s,
        infer_images_per_s: cfg.infer_batch as f64 / median(it),
        loss_first: losses[0],
        loss_last: *losses.last().expect("steps"),
        layers_ms,
        augment_ms: median(at) * 1e3,
    })
}
