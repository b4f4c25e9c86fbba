//! The supervised baseline: the same encoder trained end to end with labels (softmax
//! cross-entropy of a linear classifier on h), from the same initialisation, on the same augmented
//! views, with the same optimizer, batch size and learning-rate schedule as pre-training.

use crate::config::RunConfig;
use crate::data::Dataset;
use crate::eval::features::{encode, Features};
use crate::eval::probe::{accuracy, predicted_classes};
use crate::loss::cross_entropy::softmax_cross_entropy;
use crate::model::net::Net;
use crate::nn::{Mode, Tensor};
use crate::optim::Optimizer;
use crate::train::pretrain::epoch_order;
use anyhow::{bail, Context, Result};
use std::time::Instant;

/// A network whose head is one linear layer from h to class scores, initialised from `cfg.seed`
/// exactly as the run's encoder was.
pub fn classifier_net(cfg: &RunConfig, channels: usize, classes: usize) -> Result<Net<f32>> {
    let mut spec = cfg.net_spec(channels);
    spec.head_widths = vec![classes];
    spec.head_batch_norm = false;
    Net::new(&spec, cfg.seed)
}

/// Trains [`classifier_net`] on the labelled `train` images for `epochs` epochs; both views of each
/// image count as labelled examples. Prints one line per epoch.
pub fn train_supervised(cfg: &RunConfig, train: &Dataset, epochs: usize) -> Result<Net<f32>> {
    let labels = train.labels.as_ref().context("the training images have no labels; the supervised baseline needs them")?;
    let classes = train.num_classes().unwrap_or(1);
    let n = cfg.train.batch_size;
    if n > train.len() {
        bail!("train.batch_size ({n}) is larger than the dataset ({} images)", train.len());
    }
    let mut net = classifier_net(cfg, train.channels, classes)?;
    let mut opt = Optimizer::new(cfg.optimizer.clone());
    let steps_per_epoch = (train.len() / n) as u64;
    let schedule = cfg.train.schedule(steps_per_epoch, epochs);
    let (mut views, mut dlogits) = (Tensor::default(), Tensor::default());
    let mut step = 0u64;
    for epoch in 0..epochs as u64 {
        let started = Instant::now();
        // Its own order stream, apart from pre-training's.
        let order = epoch_order(train.len(), cfg.seed ^ 0x7375_7065_7276, epoch);
        let (mut loss_sum, mut correct) = (0.0, 0usize);
        for batch in order.chunks_exact(n) {
            cfg.augment.pair_batch(train, batch, cfg.seed, epoch, &mut views);
            let y: Vec<u16> = batch.iter().chain(batch).map(|&i| labels[i]).collect();
            net.zero_grad();
            let logits = net.forward(&views, Mode::Train)?;
            let (loss, right) = softmax_cross_entropy(logits, &y, &mut dlogits)?;
            if !loss.is_finite() {
                bail!(
                    "supervised baseline, step {}: the loss is {loss}; the learning rate ({:.3e}) may be too high",
                    step + 1,
                    schedule.lr(step)
                );
            }
            net.backward(&views, &dlogits, None)?;
            opt.step(&mut net, schedule.lr(step));
            step += 1;
            loss_sum += loss;
            correct += right;
        }
        let batches = steps_per_epoch.max(1) as f64;
        println!(
            "supervised epoch {:>3}/{epochs}  loss {:.4}  train accuracy (augmented) {:.2}%  {:.1} s",
            epoch + 1,
            loss_sum / batches,
            100.0 * correct as f64 / (2.0 * n as f64 * batches),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(net)
}

/// Accuracy of the network's own class scores on the evaluation views of `ds`.
pub fn classifier_accuracy(net: &mut Net<f32>, cfg: &RunConfig, ds: &Dataset) -> Result<f64> {
    let labels = ds.labels.as_ref().context("the images have no labels")?;
    let scores = encode(net, &cfg.augment, ds, Features::Z)?;
    Ok(accuracy(&predicted_classes(&scores), labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Preset;

    #[test]
    fn learns_to_tell_bright_from_dark_images() {
        // Two classes told apart by where a bright square sits: top-left or bottom-right.
        let (n, s) = (64, 12);
        let mut pixels = vec![0u8; n * s * s];
        let labels: Vec<u16> = (0..n).map(|i| (i % 2) as u16).collect();
        for i in 0..n {
            let off = if labels[i] == 0 { 0 } else { 6 };
            for y in 0..6 {
                for x in 0..6 {
                    pixels[i * s * s + (y + off) * s + x + off] = 255;
                }
            }
        }
        let ds = Dataset::new(pixels, s, s, 1, Some(labels)).unwrap();
        let mut cfg = RunConfig { augment: Preset::None.config(s), ..Default::default() };
        cfg.train.batch_size = 16;
        cfg.train.lr = 3e-3;
        cfg.train.warmup_epochs = 0.0;
        let mut net = train_supervised(&cfg, &ds, 4).unwrap();
        assert!(classifier_accuracy(&mut net, &cfg, &ds).unwrap() > 0.95);
        let unlabeled = Dataset::new(vec![0; 4 * s * s], s, s, 1, None).unwrap();
        assert!(train_supervised(&cfg, &unlabeled, 1).is_err());
    }
}
