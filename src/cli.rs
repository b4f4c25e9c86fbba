//! The command line: subcommands and their options (clap).

use crate::data::source::DatasetName;
use crate::eval::features::Features;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// simclr: self-supervised contrastive representation learning (SimCLR) on images.
///
/// Learns an image encoder without labels by pulling together two random augmentations of the
/// same image and pushing apart all others (NT-Xent loss), then measures what it learned with a
/// linear probe on the frozen features. Runs on the CPU with a pure-Rust engine.
///
/// Quick start: `simclr pretrain` pre-trains on Fashion-MNIST with the tutorial's defaults and
/// prints the linear-probe test accuracy.
#[derive(Parser, Debug)]
#[command(name = "simclr", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pre-train an encoder with SimCLR, then run the linear probe and write the run report.
    ///
    /// Writes into the run directory: config.toml (the resolved configuration), metrics.jsonl,
    /// model.safetensors (PyTorch state-dict names) and train_state.safetensors (checkpointed each
    /// epoch, atomically), probe.json, report.html and plots/. Ctrl-C checkpoints and stops;
    /// continue with --resume.
    Pretrain(PretrainArgs),
    /// Linear probe of a trained encoder: logistic regression on frozen features.
    ///
    /// Encodes the train and test sets in eval mode (no augmentation beyond the evaluation view),
    /// standardises the features, chooses the L2 penalty on a validation split, and prints and
    /// records train and test accuracy.
    Probe(ProbeArgs),
    /// Write representations (h, optionally z) and labels as .npy files.
    ///
    /// h is flattened in PyTorch's channel-major order, so it equals `net.encoder(x)` of the
    /// PyTorch modules in python/simclr_torch.py loaded from the same checkpoint.
    Embed(EmbedArgs),
    /// Compare a run with baselines: the linear probe on raw pixels, on the untrained encoder, and
    /// on the same encoder trained end to end with labels.
    ///
    /// Prints the ladder beside the run's own probe, saves it as baselines.json and redraws
    /// report.html. The supervised encoder starts from the run's initial weights and trains on the
    /// same augmented views with the same optimizer and schedule.
    Baselines(BaselinesArgs),
    /// Redraw a run's report.html and plots/ (also for an unfinished run).
    ///
    /// The report embeds its pictures: training curves, kNN and probe accuracy, representation
    /// geometry, PCA and t-SNE maps of h, the probe's confusion matrix and the augmentations.
    Report(ReportArgs),
    /// Draw a PNG grid: each row an image and several random views of it.
    Augment(AugmentArgs),
    /// Benchmark the reference training step and inference (views/s, per-layer times).
    Bench(BenchArgs),
}

/// Options that override the configuration file.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file (see README for every key); options below override it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Dataset.
    #[arg(long, value_enum)]
    pub dataset: Option<DatasetName>,
    /// Where the dataset's files are (else the standard places are searched).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Use only the first N training images.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Never download datasets (else a missing Fashion-MNIST or MNIST is fetched from its
    /// canonical mirrors, or from the base URL in SIMCLR_MIRROR, and checked by SHA-256).
    #[arg(long)]
    pub offline: bool,
    /// Pre-training epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Images per step (2N views).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// NT-Xent temperature.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Seed of every random choice.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// `simclr pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
    /// Run directory (default: runs/<dataset>-<UTC time>).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint.
    #[arg(long, conflicts_with = "overwrite", requires = "run_dir")]
    pub resume: bool,
    /// Replace the run in --run-dir.
    #[arg(long)]
    pub overwrite: bool,
    /// Start from the weights of this model checkpoint.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Stop after N steps in total (0: save the untrained network, e.g. to probe it as a baseline).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Skip the linear probe at the end.
    #[arg(long)]
    pub no_probe: bool,
}

/// `simclr probe`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// Run directory (with config.toml and model.safetensors).
    pub run_dir: PathBuf,
    /// Which representation to probe.
    #[arg(long, value_enum, default_value = "h")]
    pub features: Features,
}

/// `simclr baselines`.
#[derive(Args, Debug)]
pub struct BaselinesArgs {
    /// Run directory (with config.toml; its probe.json, when present, is shown beside).
    pub run_dir: PathBuf,
    /// Epochs of supervised training (0 skips the supervised baseline).
    #[arg(long, default_value_t = 10)]
    pub supervised_epochs: usize,
}

/// `simclr report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directory.
    pub run_dir: PathBuf,
}

/// `simclr embed`.
#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Run directory (with config.toml and model.safetensors).
    pub run_dir: PathBuf,
    /// Output folder for h.npy, labels.npy (and z.npy).
    #[arg(long)]
    pub out: PathBuf,
    /// Which split.
    #[arg(long, default_value = "test", value_parser = ["train", "test"])]
    pub split: String,
    /// Also write z, the projection head's output.
    #[arg(long)]
    pub z: bool,
}

/// `simclr augment`.
#[derive(Args, Debug)]
pub struct AugmentArgs {
    #[command(flatten)]
    /// Configuration.
    pub config: ConfigArgs,
    /// Output PNG.
    #[arg(long, default_value = "augment.png")]
    pub out: PathBuf,
    /// Images (rows).
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Views per image (columns after the original).
    #[arg(long, default_value_t = 6)]
    pub views: usize,
    /// Pixels per view pixel in the picture.
    #[arg(long, default_value_t = 4)]
    pub zoom: usize,
}

/// `simclr bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Source images per step (2N views).
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// View side length.
    #[arg(long, default_value_t = 24)]
    pub size: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Print only the JSON result.
    #[arg(long)]
    pub json: bool,
}
