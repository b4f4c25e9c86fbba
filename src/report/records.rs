//! What a run directory has recorded, read back for the report: the configuration, the metrics
//! records, the probe results and the baseline ladder. Missing files mean "not yet".

use crate::config::RunConfig;
use crate::train::metrics::read_metrics;
use crate::train::run_dir::RunDir;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::Path;

/// A run's records.
#[derive(Clone, Debug)]
pub struct RunRecords {
    /// The resolved configuration.
    pub config: RunConfig,
    /// config.toml as written.
    pub config_text: String,
    /// Per-step records (`kind = "step"`), in order.
    pub steps: Vec<Value>,
    /// Per-epoch records (`kind = "epoch"`), in order.
    pub epochs: Vec<Value>,
    /// Probe results of h, z and pixels, when run (`probe.json`, `probe_z.json`, `probe_pixels.json`).
    pub probes: Vec<Value>,
    /// The baseline ladder, when run (`baselines.json`).
    pub baselines: Option<Value>,
}

/// The JSON value in `path`, or `None` when there is no such file.
pub fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map(Some).with_context(|| format!("{}: not valid JSON", path.display()))
}

impl RunRecords {
    /// Reads the records of the run in `dir`.
    pub fn read(dir: &RunDir) -> Result<Self> {
        let config_text = std::fs::read_to_string(dir.config())
            .with_context(|| format!("{} holds no run (cannot read {})", dir.root.display(), dir.config().display()))?;
        let config = RunConfig::load(&dir.config())?;
        let metrics = if dir.metrics().exists() { read_metrics(&dir.metrics())? } else { Vec::new() };
        let of_kind = |k: &str| metrics.iter().filter(|r| r["kind"] == k).cloned().collect::<Vec<_>>();
        let mut probes = Vec::new();
        for path in [dir.probe(), dir.probe_of("z"), dir.probe_of("pixels")] {
            probes.extend(read_json(&path)?);
        }
        Ok(RunRecords {
            config,
            config_text,
            steps: of_kind("step"),
            epochs: of_kind("epoch"),
            probes,
            baselines: read_json(&dir.baselines())?,
        })
    }

    /// The probe record of `features` ("h", "z" or "pixels").
    pub fn probe(&self, features: &str) -> Option<&Value> {
        self.probes.iter().find(|p| p["features"] == features)
    }

    /// (epoch, value) of an epoch-record key, for the epochs that have it.
    pub fn per_epoch(&self, key: &str) -> Vec<(f64, f64)> {
        self.epochs.iter().filter_map(|r| Some((r["epoch"].as_f64()?, r[key].as_f64()?))).collect()
    }

    /// (step, value) of a step-record key.
    pub fn per_step(&self, key: &str) -> Vec<(f64, f64)> {
        self.steps.iter().filter_map(|r| Some((r["step"].as_f64()?, r[key].as_f64()?))).collect()
    }

    /// Whether every configured epoch has its record.
    pub fn complete(&self) -> bool {
        self.epochs.last().and_then(|r| r["epoch"].as_u64()) == Some(self.config.train.epochs as u64)
    }

    /// Mean of an epoch-record key over the epochs that have it.
    pub fn epoch_mean(&self, key: &str) -> Option<f64> {
        let v: Vec<f64> = self.per_epoch(key).into_iter().map(|p| p.1).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}
