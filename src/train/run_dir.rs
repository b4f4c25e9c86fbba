//! The run directory: its files, and the rules for creating, resuming or overwriting it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Paths of the files in a run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// The directory.
    pub root: PathBuf,
}

/// How to treat a directory that already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Refuse (the default).
    Refuse,
    /// Continue it from its last checkpoint.
    Resume,
    /// Delete its files and start again.
    Overwrite,
}

impl RunDir {
    /// The resolved configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// The latest model checkpoint.
    pub fn model(&self) -> PathBuf {
        self.root.join("model.safetensors")
    }
    /// The optimizer state and training position matching `model()`.
    pub fn train_state(&self) -> PathBuf {
        self.root.join("train_state.safetensors")
    }
    /// Metrics, JSON lines.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// The epoch records of the metrics as CSV, for spreadsheets.
    pub fn metrics_csv(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }
    /// The probe's results.
    pub fn probe(&self) -> PathBuf {
        self.root.join("probe.json")
    }

    /// The probe's results on another representation (`z` or `pixels`).
    pub fn probe_of(&self, features: &str) -> PathBuf {
        self.root.join(format!("probe_{features}.json"))
    }
    /// The baseline ladder (`simclr baselines`).
    pub fn baselines(&self) -> PathBuf {
        self.root.join("baselines.json")
    }
    /// The self-contained HTML report.
    pub fn report(&self) -> PathBuf {
        self.root.join("report.html")
    }
    /// The report's pictures as PNG files.
    pub fn plots(&self) -> PathBuf {
        self.root.join("plots")
    }

    /// Whether the directory holds a run (a config file).
    pub fn holds_run(&self) -> bool {
        self.config().exists()
    }

    /// Prepares `root` for a run according to `existing`.
    pub fn prepare(root: &Path, existing: Existing) -> Result<RunDir> {
        let dir = RunDir { root: root.to_path_buf() };
        match (dir.holds_run(), existing) {
            (true, Existing::Refuse) => bail!(
                "run directory {} already holds a run: pass --resume to continue it, --overwrite to replace it, or choose another --run-dir",
                root.display()
            ),
            (false, Existing::Resume) => bail!("run directory {} holds no run to resume (no config.toml)", root.display()),
            (true, Existing::Overwrite) => {
                let files = [dir.config(), dir.model(), dir.train_state(), dir.metrics(), dir.metrics_csv(), dir.probe(), dir.baselines(), dir.report()];
                for f in files.into_iter().chain(["z", "pixels"].map(|f| dir.probe_of(f))) {
                    if f.exists() {
                        std::fs::remove_file(&f).with_context(|| format!("cannot remove {}", f.display()))?;
                    }
                }
                if dir.plots().exists() {
                    std::fs::remove_dir_all(dir.plots()).with_context(|| format!("cannot remove {}", dir.plots().display()))?;
                }
            }
            _ => {}
        }
        std::fs::create_dir_all(root).with_context(|| format!("cannot create run directory {}", root.display()))?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_existing_runs_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("run");
        assert!(RunDir::prepare(&root, Existing::Resume).is_err());
        let d = RunDir::prepare(&root, Existing::Refuse).unwrap();
        std::fs::write(d.config(), "seed = 1").unwrap();
        let err = RunDir::prepare(&root, Existing::Refuse).unwrap_err().to_string();
        assert!(err.contains("--resume") && err.contains("run"), "{err}");
        assert!(RunDir::prepare(&root, Existing::Resume).is_ok());
        RunDir::prepare(&root, Existing::Overwrite).unwrap();
        assert!(!d.config().exists());
    }
}
