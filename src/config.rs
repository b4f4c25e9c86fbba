//! The run configuration (TOML): defaults, presets, validation with messages that name the option.

use crate::augment::{AugmentConfig, Preset};
use crate::data::source::DatasetName;
use crate::model::encoder::Architecture;
use crate::model::net::NetSpec;
use crate::optim::schedule::WarmupCosine;
use crate::optim::OptimizerConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the images come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset name.
    pub dataset: DatasetName,
    /// Explicit location (a folder of IDX files, CIFAR-10 batches, or images).
    pub path: Option<PathBuf>,
    /// Channels to load image folders as (1 or 3); other datasets keep their own.
    pub channels: usize,
    /// Decode size for image folders (views are then cropped from it).
    pub folder_size: usize,
    /// Use at most this many training images (0 = all).
    pub limit: usize,
    /// Download built-in datasets that are not found locally.
    pub download: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig { dataset: DatasetName::FashionMnist, path: None, channels: 3, folder_size: 32, limit: 0, download: true }
    }
}

/// The network's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Encoder architecture.
    pub architecture: Architecture,
    /// Projection head layer widths; the last is z's size.
    pub head_widths: Vec<usize>,
    /// Batch-norm between the head's hidden layers (SimCLRv2).
    pub head_batch_norm: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig { architecture: Architecture::Tutorial, head_widths: vec![256, 128], head_batch_norm: false }
    }
}

/// Pre-training settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per step (2N views); an incomplete last batch is dropped.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up length, in epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Final learning rate of the cosine decay, as a fraction of `lr`.
    pub lr_floor: f64,
    /// NT-Xent temperature.
    pub temperature: f64,
    /// Also checkpoint every this many steps (0 = only at the end of each epoch).
    pub checkpoint_every_steps: u64,
    /// Skip a step whose loss or gradient is not finite instead of stopping.
    pub skip_nonfinite_steps: bool,
}

impl TrainConfig {
    /// The learning-rate schedule of `epochs` epochs of `steps_per_epoch` steps: warm-up over
    /// `warmup_epochs`, then cosine decay to `lr * lr_floor`.
    pub fn schedule(&self, steps_per_epoch: u64, epochs: usize) -> WarmupCosine {
        WarmupCosine {
            base: self.lr,
            warmup: (self.warmup_epochs * steps_per_epoch as f64).round() as u64,
            total: steps_per_epoch * epochs as u64,
            floor: self.lr_floor,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            batch_size: 256,
            lr: 3e-4,
            warmup_epochs: 1.0,
            lr_floor: 0.0,
            temperature: 0.5,
            checkpoint_every_steps: 0,
            skip_nonfinite_steps: false,
        }
    }
}

/// Linear-probe settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// Share of the training images held out to choose the weight decay.
    pub validation_fraction: f64,
    /// Candidate L2 penalties for the logistic regression.
    pub weight_decays: Vec<f64>,
    /// Passes of full-batch-equivalent optimisation per candidate.
    pub epochs: usize,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig { validation_fraction: 0.1, weight_decays: vec![0.0, 1e-4, 1e-3, 1e-2], epochs: 60 }
    }
}

/// What is measured after each epoch of pre-training (on labelled data only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Whether to run the monitors.
    pub enabled: bool,
    /// Neighbours that vote in the kNN accuracy.
    pub knn_k: usize,
    /// Temperature of the kNN vote weights exp(similarity / t).
    pub knn_temperature: f64,
    /// Training images (evaluation view) in the kNN memory bank.
    pub knn_bank: usize,
    /// Held-out (test) images classified by kNN.
    pub knn_queries: usize,
    /// Held-out images whose two augmented views give the geometry metrics.
    pub pairs: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig { enabled: true, knn_k: 200, knn_temperature: 0.1, knn_bank: 5000, knn_queries: 2000, pairs: 256 }
    }
}

/// A whole run's configuration; saved, fully resolved, as `config.toml` in the run directory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The seed every random choice flows from.
    pub seed: u64,
    /// Data source.
    pub data: DataConfig,
    /// Augmentation.
    pub augment: AugmentConfig,
    /// Network.
    pub model: ModelConfig,
    /// Pre-training.
    pub train: TrainConfig,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
    /// Linear probe.
    pub probe: ProbeConfig,
    /// Per-epoch monitors.
    pub monitor: MonitorConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 0,
            data: DataConfig::default(),
            augment: Preset::Mnist.config(24),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            optimizer: OptimizerConfig::default(),
            probe: ProbeConfig::default(),
            monitor: MonitorConfig::default(),
        }
    }
}

/// Overlays `top` onto `base`, table by table.
fn overlay(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(b), toml::Value::Table(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

impl RunConfig {
    /// Parses TOML over the defaults. `[augment] preset = "..."` starts the augmentation from that
    /// preset (at the given `size`); other keys override. Unknown keys and wrong types are errors.
    pub fn from_toml(text: &str) -> Result<Self> {
        let user: toml::Value = toml::from_str(text)?;
        let mut base = toml::Value::try_from(RunConfig::default())?;
        if let Some(aug) = user.get("augment") {
            let preset: Preset = match aug.get("preset") {
                Some(p) => p.clone().try_into().context("augment.preset: expected \"simclr\", \"mnist\" or \"none\"")?,
                None => Preset::Mnist,
            };
            let size = match aug.get("size") {
                Some(s) => s.as_integer().filter(|&s| s > 0).context("augment.size: expected a positive integer")? as usize,
                None => 24,
            };
            base["augment"] = toml::Value::try_from(preset.config(size))?;
        }
        overlay(&mut base, user);
        let cfg: RunConfig = base.try_into()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses a TOML file; errors name the file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        Self::from_toml(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim().replace('\n', " ")))
    }

    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string(self)?)
    }

    /// Rejects values that cannot work, naming the option.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        if t.epochs == 0 {
            bail!("train.epochs must be at least 1");
        }
        if t.batch_size < 2 {
            bail!("train.batch_size must be at least 2 (NT-Xent needs negatives), got {}", t.batch_size);
        }
        if !(t.lr > 0.0 && t.lr.is_finite()) {
            bail!("train.lr must be > 0, got {}", t.lr);
        }
        if !(t.temperature > 0.0 && t.temperature.is_finite()) {
            bail!("train.temperature must be > 0, got {}", t.temperature);
        }
        if !(t.warmup_epochs >= 0.0 && t.warmup_epochs.is_finite()) {
            bail!("train.warmup_epochs must be >= 0, got {}", t.warmup_epochs);
        }
        if !(0.0..=1.0).contains(&t.lr_floor) {
            bail!("train.lr_floor must be in [0, 1], got {}", t.lr_floor);
        }
        if self.model.head_widths.is_empty() || self.model.head_widths.contains(&0) {
            bail!("model.head_widths must be a non-empty list of positive sizes, got {:?}", self.model.head_widths);
        }
        if !(self.data.channels == 1 || self.data.channels == 3) {
            bail!("data.channels must be 1 or 3, got {}", self.data.channels);
        }
        let p = &self.probe;
        if !(p.validation_fraction > 0.0 && p.validation_fraction < 0.5) {
            bail!("probe.validation_fraction must be in (0, 0.5), got {}", p.validation_fraction);
        }
        if p.weight_decays.is_empty() || p.weight_decays.iter().any(|w| !(*w >= 0.0 && w.is_finite())) {
            bail!("probe.weight_decays must be a non-empty list of values >= 0, got {:?}", p.weight_decays);
        }
        if p.epochs == 0 {
            bail!("probe.epochs must be at least 1");
        }
        let m = &self.monitor;
        if m.enabled && (m.knn_k == 0 || m.knn_bank == 0 || m.knn_queries == 0 || m.pairs < 2) {
            bail!("monitor: knn_k, knn_bank and knn_queries must be at least 1 and pairs at least 2");
        }
        if !(m.knn_temperature > 0.0 && m.knn_temperature.is_finite()) {
            bail!("monitor.knn_temperature must be > 0, got {}", m.knn_temperature);
        }
        self.augment.validate()?;
        self.optimizer.validate()
    }

    /// The network spec for images with `channels` channels.
    pub fn net_spec(&self, channels: usize) -> NetSpec {
        NetSpec {
            architecture: self.model.architecture,
            channels,
            size: self.augment.size,
            head_widths: self.model.head_widths.clone(),
            head_batch_norm: self.model.head_batch_norm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_tutorial_recipe() {
        let c = RunConfig::from_toml("").unwrap();
        assert_eq!((c.train.epochs, c.train.batch_size, c.train.lr, c.train.temperature), (30, 256, 3e-4, 0.5));
        assert_eq!((c.augment.size, c.augment.crop_scale), (24, (0.3, 1.0)));
        assert_eq!(RunConfig::from_toml(&c.to_toml().unwrap()).unwrap(), c);
    }

    #[test]
    fn presets_and_overrides() {
        let c = RunConfig::from_toml("[augment]\npreset = \"simclr\"\nsize = 32\nblur_p = 0.0\n").unwrap();
        assert_eq!((c.augment.size, c.augment.blur_p, c.augment.grayscale_p), (32, 0.0, 0.2));
    }

    #[test]
    fn errors_name_the_option() {
        let cases = [
            ("[train]\nlr = 0.0", "train.lr"),
            ("[train]\ntemperature = -1.0", "train.temperature"),
            ("[augment]\ncrop_scale = [0.5, 1.5]", "augment.crop_scale"),
            ("[train]\nlearning_rate = 0.1", "learning_rate"),
            ("[train]\nepochs = \"ten\"", "epochs"),
            ("[augment]\npreset = \"fancy\"", "augment.preset"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", RunConfig::from_toml(text).unwrap_err());
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
