//! The SimCLR pre-training loop: augmented pairs -> network -> NT-Xent -> backward -> optimizer,
//! with per-step learning-rate schedule, metrics, atomic checkpoints and exact resumption.

use super::metrics::{read_metrics, write_epoch_csv, MetricsWriter};
use super::monitor::Monitor;
use super::run_dir::{Existing, RunDir};
use crate::augment::pipeline::mix;
use crate::checkpoint::{load_model, load_train_state, read_spec, save_model, save_train_state};
use crate::config::RunConfig;
use crate::data::Dataset;
use crate::eval::geometry::{COLLAPSE_RANK, COLLAPSE_SPREAD};
use crate::io::write_atomic;
use crate::loss::nt_xent::nt_xent;
use crate::model::net::Net;
use crate::nn::param::HasParams;
use crate::nn::{Mode, Tensor};
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

/// How to run pre-training, beyond the configuration.
#[derive(Clone, Debug)]
pub struct PretrainOptions {
    /// The run directory.
    pub run_dir: PathBuf,
    /// What to do when it already holds a run.
    pub existing: Existing,
    /// Start from these weights (a model checkpoint of the same network).
    pub init: Option<PathBuf>,
    /// Stop after this many steps in total (the schedule still spans all epochs).
    pub max_steps: Option<u64>,
    /// Draw a progress bar (on a terminal).
    pub progress: bool,
}

/// How pre-training ended.
#[derive(Clone, Debug)]
pub struct PretrainOutcome {
    /// Steps completed in total.
    pub steps: u64,
    /// Seconds of each epoch completed in this invocation.
    pub epoch_seconds: Vec<f64>,
    /// Whether it stopped because of an interruption request.
    pub interrupted: bool,
}

/// The order of the training images in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(seed ^ mix(epoch))));
    order
}

/// The name of the first parameter whose gradient is not finite.
fn first_nonfinite_grad(net: &mut Net<f32>) -> Option<String> {
    let mut bad = None;
    net.visit_params(&mut |p| {
        if bad.is_none() && p.grad.iter().any(|g| !g.is_finite()) {
            bad = Some(p.name.clone());
        }
    });
    bad
}

fn save_checkpoint(dir: &RunDir, net: &mut Net<f32>, opt: &Optimizer, step: u64) -> Result<()> {
    let meta = [("step", step.to_string())];
    // The training state is the resume point, complete in one file; the model file (for users
    // and PyTorch) follows. A crash between the two only leaves the model file one checkpoint old.
    save_train_state(net, opt, &dir.train_state(), &meta)?;
    save_model(net, &dir.model(), &meta)
}

/// Restores network, optimizer and step from the run directory's last checkpoint (step 0 when
/// there is none yet).
fn restore(dir: &RunDir, net: &mut Net<f32>, opt: &mut Optimizer) -> Result<u64> {
    if !dir.train_state().exists() {
        return Ok(0);
    }
    let meta = load_train_state(net, opt, &dir.train_state())?;
    meta.get("step").and_then(|s| s.parse().ok()).with_context(|| format!("{}: no step in its metadata", dir.train_state().display()))
}

/// Sums of loss and positive top-1 over the recorded, not skipped, steps of `epoch` up to `step`.
fn epoch_sums_so_far(dir: &RunDir, epoch: u64, step: u64) -> Result<(f64, f64, u64)> {
    if !dir.metrics().exists() {
        return Ok((0.0, 0.0, 0));
    }
    let records = read_metrics(&dir.metrics())?;
    let steps = records
        .iter()
        .filter(|r| r["kind"] == "step" && r["epoch"] == epoch && r["step"].as_u64().is_some_and(|s| s <= step) && r["skipped"] != true);
    Ok(steps.fold((0.0, 0.0, 0), |(l, t, n), r| {
        (l + r["loss"].as_f64().unwrap_or(f64::NAN), t + r["positive_top1"].as_f64().unwrap_or(f64::NAN), n + 1)
    }))
}

/// Pre-trains on `train` according to `cfg`. Checks `stop` after every step; when it is set the
/// run checkpoints and returns with `interrupted`.
/// `held_out` (labelled images not trained on, e.g. the test split) feeds the per-epoch monitors.
pub fn pretrain(
    cfg: &RunConfig,
    train: &Dataset,
    held_out: Option<&Dataset>,
    opts: &PretrainOptions,
    stop: &AtomicBool,
) -> Result<PretrainOutcome> {
    let t = &cfg.train;
    if t.batch_size > train.len() {
        bail!("train.batch_size ({}) is larger than the dataset ({} images)", t.batch_size, train.len());
    }
    let dir = RunDir::prepare(&opts.run_dir, opts.existing)?;
    if opts.existing == Existing::Resume {
        let saved = RunConfig::load(&dir.config())?;
        if saved != *cfg {
            bail!("{}: the run was made with a different configuration; resume it without changing options", dir.config().display());
        }
    } else {
        write_atomic(&dir.config(), cfg.to_toml()?.as_bytes())?;
    }

    let spec = cfg.net_spec(train.channels);
    let mut net = Net::<f32>::new(&spec, cfg.seed)?;
    let mut opt = Optimizer::new(cfg.optimizer.clone());
    let mut step = restore(&dir, &mut net, &mut opt)?;
    if step == 0 {
        if let Some(init) = &opts.init {
            let init_spec = read_spec(init)?;
            if init_spec != spec {
                bail!("{}: --init checkpoint is for a different network ({:?}) than this run's ({:?})", init.display(), init_spec, spec);
            }
            load_model(&mut net, init)?;
        }
    }
    let steps_per_epoch = (train.len() / t.batch_size) as u64;
    let total = steps_per_epoch * t.epochs as u64;
    let schedule = t.schedule(steps_per_epoch, t.epochs);
    let end = opts.max_steps.map_or(total, |m| m.min(total));
    let mut metrics = MetricsWriter::open(&dir.metrics(), Some(step))?;
    let monitor = Monitor::new(&cfg.monitor, train, held_out, cfg.seed);
    let mut outcome = PretrainOutcome { steps: step, epoch_seconds: Vec::new(), interrupted: false };
    if step >= end {
        // Nothing to train (e.g. `--steps 0`): still leave a checkpoint of the network as it
        // starts, so that the untrained encoder can be probed as a baseline.
        if !dir.train_state().exists() {
            save_checkpoint(&dir, &mut net, &opt, step)?;
        }
        return Ok(outcome);
    }

    let (seed, aug, n) = (cfg.seed, &cfg.augment, t.batch_size);
    std::thread::scope(|scope| -> Result<()> {
        // Augmentation runs ahead of the network on its own thread.
        let (tx, rx) = sync_channel::<Tensor<f32>>(2);
        let first = step;
        scope.spawn(move || {
            let mut s = first;
            let mut order = (u64::MAX, Vec::new());
            while s < end {
                let epoch = s / steps_per_epoch;
                if order.0 != epoch {
                    order = (epoch, epoch_order(train.len(), seed, epoch));
                }
                let k = (s % steps_per_epoch) as usize;
                let mut views = Tensor::default();
                aug.pair_batch(train, &order.1[k * n..(k + 1) * n], seed, epoch, &mut views);
                if tx.send(views).is_err() {
                    return;
                }
                s += 1;
            }
        });

        let mut dz = Tensor::default();
        while step < end {
            let epoch = step / steps_per_epoch;
            let epoch_end = ((epoch + 1) * steps_per_epoch).min(end);
            let bar = if opts.progress { ProgressBar::new(epoch_end - step) } else { ProgressBar::hidden() };
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", epoch + 1, t.epochs));
            let started = Instant::now();
            let first_step = step;
            // A resumed epoch's averages include the steps it ran before the interruption.
            let (mut loss_sum, mut top1_sum, mut counted) = epoch_sums_so_far(&dir, epoch + 1, step)?;
            while step < epoch_end {
                let views = rx.recv().context("the augmentation thread stopped")?;
                let lr = schedule.lr(step);
                net.zero_grad();
                let z = net.forward(&views, Mode::Train)?;
                let out = nt_xent(z, t.temperature, &mut dz)?;
                net.backward(&views, &dz, None)?;
                let bad = if out.loss.is_finite() {
                    first_nonfinite_grad(&mut net).map(|p| format!("the gradient of {p} is not finite"))
                } else {
                    Some(format!("the loss is {}", out.loss))
                };
                let skipped = bad.is_some();
                match bad {
                    Some(why) if !t.skip_nonfinite_steps => bail!(
                        "step {}: {why}; the learning rate ({lr:.3e}) may be too high or the temperature ({}) too low; {} (train.skip_nonfinite_steps = true skips such steps)",
                        step + 1,
                        t.temperature,
                        if dir.train_state().exists() { format!("the last good checkpoint in {} is kept", dir.root.display()) } else { "no checkpoint had been written yet".into() }
                    ),
                    Some(why) => bar.println(format!("warning: step {} skipped: {why}", step + 1)),
                    None => {
                        opt.step(&mut net, lr);
                        loss_sum += out.loss;
                        top1_sum += out.positive_top1;
                        counted += 1;
                    }
                }
                step += 1;
                let done = (step - first_step) as f64;
                let vps = done * 2.0 * n as f64 / started.elapsed().as_secs_f64();
                metrics.write(&json!({"kind": "step", "step": step, "epoch": epoch + 1, "loss": out.loss, "positive_top1": out.positive_top1, "lr": lr, "skipped": skipped}))?;
                bar.set_message(format!("loss {:.4} lr {lr:.2e} {vps:.0} views/s", out.loss));
                bar.inc(1);
                // At the end of an epoch its record is written and then it is checkpointed below;
                // checkpointing here first would lose that record if the run died in between.
                if step % steps_per_epoch != 0 {
                    let stopping = stop.load(Ordering::SeqCst);
                    if stopping || (t.checkpoint_every_steps > 0 && step % t.checkpoint_every_steps == 0) {
                        save_checkpoint(&dir, &mut net, &opt, step)?;
                    }
                    if stopping {
                        bar.abandon();
                        outcome.interrupted = true;
                        break;
                    }
                }
            }
            let secs = started.elapsed().as_secs_f64();
            let loss = loss_sum / counted.max(1) as f64;
            if outcome.interrupted {
                break;
            }
            bar.finish_and_clear();
            let views_per_s = (step - first_step) as f64 * 2.0 * n as f64 / secs;
            let complete = step % steps_per_epoch == 0;
            let (top1, last_lr) = (top1_sum / counted.max(1) as f64, schedule.lr(step - 1));
            let mut monitored = String::new();
            if complete {
                outcome.epoch_seconds.push(secs);
                let mut record = json!({"kind": "epoch", "step": step, "epoch": epoch + 1, "loss": loss, "positive_top1": top1, "lr": last_lr, "seconds": secs, "views_per_s": views_per_s});
                // The InfoNCE bound: I(view; view+) >= log(candidates) - loss, 2N - 1 candidates.
                record["mi_lower_bound"] = json!(((2 * n - 1) as f64).ln() - loss);
                if let Some(m) = &monitor {
                    let started = Instant::now();
                    let r = m.measure(&mut net, &cfg.augment)?;
                    let g = r.geometry;
                    record["knn_accuracy"] = json!(r.knn_accuracy);
                    record["alignment"] = json!(g.alignment);
                    record["uniformity"] = json!(g.uniformity);
                    record["spread"] = json!(g.spread);
                    record["effective_rank"] = json!(g.effective_rank);
                    record["monitor_seconds"] = json!(started.elapsed().as_secs_f64());
                    monitored = format!(
                        "  kNN {:.2}%  align {:.3}  unif {:.3}  rank {:.1}",
                        100.0 * r.knn_accuracy,
                        g.alignment,
                        g.uniformity,
                        g.effective_rank
                    );
                    if g.collapsing() {
                        eprintln!(
                            "warning: the representation is collapsing (spread {:.3}, threshold {COLLAPSE_SPREAD}; effective rank {:.2}, threshold {COLLAPSE_RANK}): try a higher temperature, a lower learning rate or stronger augmentation",
                            g.spread, g.effective_rank
                        );
                    }
                }
                // The record goes first: a crash before the checkpoint replays the epoch, and the
                // resumed run drops records past its checkpoint, so no record is lost or doubled.
                metrics.write(&record)?;
                write_epoch_csv(&dir.metrics(), &dir.metrics_csv())?;
                save_checkpoint(&dir, &mut net, &opt, step)?;
            }
            println!(
                "epoch {:>3}/{}  loss {loss:.4}  positive top-1 {:.3}  lr {:.2e}  {secs:.1} s  {views_per_s:.0} views/s{monitored}{}",
                epoch + 1,
                t.epochs,
                top1,
                last_lr,
                if complete { "" } else { "  (stopped early)" }
            );
            // An interruption during an epoch's last step stops after that epoch's checkpoint.
            if complete && step < end && stop.load(Ordering::SeqCst) {
                outcome.interrupted = true;
                break;
            }
        }
        if !outcome.interrupted && step % steps_per_epoch != 0 {
            save_checkpoint(&dir, &mut net, &opt, step)?;
        }
        drop(rx);
        Ok(())
    })?;
    outcome.steps = step;
    Ok(outcome)
}
