//! The linear probe: multinomial logistic regression on standardised frozen features, with the
//! L2 penalty chosen on a validation split of the training set.

use crate::loss::cross_entropy::softmax_cross_entropy;
use crate::nn::linear::Linear;
use crate::nn::Tensor;
use crate::optim::schedule::WarmupCosine;
use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Probe settings.
#[derive(Clone, Debug)]
pub struct ProbeSettings {
    /// Share of training rows held out for choosing the penalty.
    pub validation_fraction: f64,
    /// Candidate L2 penalties.
    pub weight_decays: Vec<f64>,
    /// Passes over the training rows per fit.
    pub epochs: usize,
    /// Seed for the split and the mini-batch order.
    pub seed: u64,
}

/// What the probe measured.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeResult {
    /// The chosen penalty.
    pub weight_decay: f64,
    /// Validation accuracy of each candidate, in order.
    pub validation_accuracy: Vec<(f64, f64)>,
    /// Accuracy on the whole training set (after refitting on it).
    pub train_accuracy: f64,
    /// Accuracy on the test set.
    pub test_accuracy: f64,
    /// Per-test-row predicted class.
    pub test_predictions: Vec<u16>,
}

/// Per-feature mean and standard deviation of `[n, d]` rows.
fn moments(x: &Tensor<f32>) -> (Vec<f32>, Vec<f32>) {
    let (n, d) = x.rows_cols();
    let mut mean = vec![0.0f64; d];
    let mut sq = vec![0.0f64; d];
    for r in x.data().chunks_exact(d) {
        for j in 0..d {
            mean[j] += r[j] as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for r in x.data().chunks_exact(d) {
        for j in 0..d {
            sq[j] += (r[j] as f64 - mean[j]).powi(2);
        }
    }
    let std = sq.iter().map(|s| ((s / n as f64).sqrt().max(1e-6)) as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), std)
}

fn standardise(x: &mut Tensor<f32>, mean: &[f32], std: &[f32]) {
    let d = mean.len();
    for r in x.data_mut().chunks_exact_mut(d) {
        for j in 0..d {
            r[j] = (r[j] - mean[j]) / std[j];
        }
    }
}

fn rows(x: &Tensor<f32>, idx: &[usize]) -> Tensor<f32> {
    let d = x.rows_cols().1;
    let data = idx.iter().flat_map(|&i| x.data()[i * d..(i + 1) * d].iter().copied()).collect();
    Tensor::from_vec(&[idx.len(), d], data).expect("shape")
}

/// Mini-batch size of the probe's optimiser.
const BATCH: usize = 1024;
/// Fewest optimiser steps per fit.
const MIN_STEPS: usize = 1000;
/// Peak learning rate (Adam, on standardised features).
const LR: f64 = 3e-3;

/// A trained softmax-regression classifier.
struct Classifier(Linear<f32>);

impl Classifier {
    /// Fits on standardised rows with Adam, cosine-decayed learning rate, and L2 penalty `wd`.
    fn fit(x: &Tensor<f32>, y: &[u16], classes: usize, wd: f64, epochs: usize, seed: u64) -> Result<Self> {
        let (n, d) = x.rows_cols();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut lin = Linear::new("probe", d, classes, true, &mut rng);
        lin.weight.value.fill(0.0);
        let per_epoch = n.div_ceil(BATCH);
        // Small sets get more passes: at least MIN_STEPS updates, so that the fit converges.
        let epochs = epochs.max(MIN_STEPS.div_ceil(per_epoch));
        let schedule = WarmupCosine { base: LR, warmup: 0, total: (epochs * per_epoch) as u64, floor: 0.01 };
        let mut opt = Optimizer::new(OptimizerConfig { kind: OptimizerKind::Adam, weight_decay: wd, ..Default::default() });
        let mut order: Vec<usize> = (0..n).collect();
        let (mut logits, mut dl) = (Tensor::default(), Tensor::default());
        for _ in 0..epochs {
            order.shuffle(&mut rng);
            for batch in order.chunks(BATCH) {
                let xb = rows(x, batch);
                let yb: Vec<u16> = batch.iter().map(|&i| y[i]).collect();
                lin.forward(&xb, &mut logits)?;
                softmax_cross_entropy(&logits, &yb, &mut dl)?;
                lin.weight.zero_grad();
                if let Some(b) = &mut lin.bias {
                    b.zero_grad();
                }
                lin.backward(&xb, &dl, None)?;
                opt.step(&mut lin, schedule.lr(opt.step));
            }
        }
        Ok(Classifier(lin))
    }

    fn predict(&self, x: &Tensor<f32>) -> Result<Vec<u16>> {
        let mut logits = Tensor::default();
        self.0.forward(x, &mut logits)?;
        Ok(predicted_classes(&logits))
    }
}

/// The highest-scoring class of each row of `scores` `[n, classes]` (the first on ties).
pub fn predicted_classes(scores: &Tensor<f32>) -> Vec<u16> {
    let k = scores.rows_cols().1;
    scores.data().chunks_exact(k).map(|r| (0..k).fold(0, |b, j| if r[j] > r[b] { j } else { b }) as u16).collect()
}

/// Counts of (true class, predicted class) pairs: `matrix[truth][prediction]`, `classes` square.
pub fn confusion(predictions: &[u16], truth: &[u16], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&p, &t) in predictions.iter().zip(truth) {
        if (p as usize) < classes && (t as usize) < classes {
            m[t as usize][p as usize] += 1;
        }
    }
    m
}

/// Share of `pred` equal to `y`.
pub fn accuracy(pred: &[u16], y: &[u16]) -> f64 {
    pred.iter().zip(y).filter(|(a, b)| a == b).count() as f64 / y.len().max(1) as f64
}

/// Runs the probe: standardise with training statistics, choose the penalty on a held-out split,
/// refit on all training rows, and score train and test.
pub fn linear_probe(
    train_x: &Tensor<f32>,
    train_y: &[u16],
    test_x: &Tensor<f32>,
    test_y: &[u16],
    s: &ProbeSettings,
) -> Result<ProbeResult> {
    let (n, d) = train_x.rows_cols();
    if n < 10 || train_y.len() != n || test_x.rows_cols() != (test_y.len(), d) {
        bail!(
            "linear probe: needs at least 10 labelled training rows and matching test features (got {n} train rows, {} test rows)",
            test_y.len()
        );
    }
    let classes = train_y.iter().chain(test_y).map(|&c| c as usize + 1).max().unwrap_or(1);
    let (mean, std) = moments(train_x);
    let mut tx = train_x.clone();
    standardise(&mut tx, &mean, &std);
    let mut ex = test_x.clone();
    standardise(&mut ex, &mean, &std);

    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(s.seed));
    let n_val = ((n as f64 * s.validation_fraction).round() as usize).clamp(1, n - 1);
    let (val_idx, fit_idx) = idx.split_at(n_val);
    let (fx, vx) = (rows(&tx, fit_idx), rows(&tx, val_idx));
    let fy: Vec<u16> = fit_idx.iter().map(|&i| train_y[i]).collect();
    let vy: Vec<u16> = val_idx.iter().map(|&i| train_y[i]).collect();
    let mut validation_accuracy = Vec::new();
    for &wd in &s.weight_decays {
        let clf = Classifier::fit(&fx, &fy, classes, wd, s.epochs, s.seed)?;
        validation_accuracy.push((wd, accuracy(&clf.predict(&vx)?, &vy)));
    }
    let weight_decay = validation_accuracy.iter().fold((f64::NAN, -1.0), |best, &(wd, acc)| if acc > best.1 { (wd, acc) } else { best }).0;
    let clf = Classifier::fit(&tx, train_y, classes, weight_decay, s.epochs, s.seed)?;
    let test_predictions = clf.predict(&ex)?;
    Ok(ProbeResult {
        weight_decay,
        validation_accuracy,
        train_accuracy: accuracy(&clf.predict(&tx)?, train_y),
        test_accuracy: accuracy(&test_predictions, test_y),
        test_predictions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separates_linearly_separable_classes() {
        // Three Gaussian blobs in 5-D with large, unequal feature scales.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        use rand::Rng;
        let mut make = |n: usize| {
            let mut x = Vec::new();
            let mut y = Vec::new();
            for i in 0..n {
                let c = (i % 3) as u16;
                for j in 0..5 {
                    let centre = if j == c as usize { 3.0 } else { 0.0 };
                    x.push((centre + rng.random_range(-1.0..1.0)) * (j as f32 + 1.0) * 100.0);
                }
                y.push(c);
            }
            (Tensor::from_vec(&[n, 5], x).unwrap(), y)
        };
        let (tx, ty) = make(300);
        let (ex, ey) = make(150);
        let s = ProbeSettings { validation_fraction: 0.2, weight_decays: vec![0.0, 1e-2], epochs: 30, seed: 1 };
        let r = linear_probe(&tx, &ty, &ex, &ey, &s).unwrap();
        assert!(r.test_accuracy > 0.95 && r.train_accuracy > 0.95, "{r:?}");
        assert_eq!(r.validation_accuracy.len(), 2);
        let m = confusion(&r.test_predictions, &ey, 3);
        assert_eq!(m.iter().flatten().sum::<u64>(), 150);
        assert_eq!((0..3).map(|c| m[c][c]).sum::<u64>() as f64 / 150.0, r.test_accuracy);
    }
}
