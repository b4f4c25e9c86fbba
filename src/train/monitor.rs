//! Per-epoch monitors of the representation h: kNN accuracy on held-out images and the geometry
//! of positive pairs (alignment, uniformity, spread), in eval mode.

use crate::augment::AugmentConfig;
use crate::config::MonitorConfig;
use crate::data::Dataset;
use crate::eval::features::{encode, Features};
use crate::eval::geometry::{geometry, Geometry};
use crate::eval::knn::knn_accuracy;
use crate::model::net::Net;
use crate::nn::{Mode, Tensor};
use anyhow::Result;

/// What the monitors measured after one epoch.
#[derive(Clone, Copy, Debug)]
pub struct MonitorReport {
    /// Weighted kNN accuracy of the held-out images against the training bank.
    pub knn_accuracy: f64,
    /// Geometry of positive pairs of held-out images.
    pub geometry: Geometry,
}

/// The fixed images the monitors use, chosen once per run.
pub struct Monitor {
    config: MonitorConfig,
    bank: Dataset,
    queries: Dataset,
    pairs: Dataset,
    seed: u64,
}

impl Monitor {
    /// Monitors for a run, or `None` when they are disabled, the data has no labels, or fewer
    /// than two held-out images exist.
    pub fn new(config: &MonitorConfig, train: &Dataset, held_out: Option<&Dataset>, seed: u64) -> Option<Self> {
        let held_out = held_out?;
        if !config.enabled || train.labels.is_none() || held_out.labels.is_none() || held_out.len() < 2 {
            return None;
        }
        Some(Monitor {
            config: config.clone(),
            bank: train.take(config.knn_bank),
            queries: held_out.take(config.knn_queries),
            pairs: held_out.take(config.pairs),
            seed,
        })
    }

    /// Measures the network as it is now.
    pub fn measure(&self, net: &mut Net<f32>, aug: &AugmentConfig) -> Result<MonitorReport> {
        let bank = encode(net, aug, &self.bank, Features::H)?;
        let queries = encode(net, aug, &self.queries, Features::H)?;
        let labels = |d: &Dataset| d.labels.clone().expect("checked in new");
        let knn_accuracy =
            knn_accuracy(&bank, &labels(&self.bank), &queries, &labels(&self.queries), self.config.knn_k, self.config.knn_temperature)?;
        // The same views every epoch (epoch 0 of the monitor's own stream), so the curves compare.
        let n = self.pairs.len();
        let mut views = Tensor::default();
        let indices: Vec<usize> = (0..n).collect();
        aug.pair_batch(&self.pairs, &indices, self.seed ^ 0x006d_6f6e_6974_6f72, 0, &mut views);
        let h = net.representation(&views, Mode::Eval)?;
        let dim = h.rows_cols().1;
        let a = Tensor::from_vec(&[n, dim], h.data()[..n * dim].to_vec())?;
        let b = Tensor::from_vec(&[n, dim], h.data()[n * dim..].to_vec())?;
        Ok(MonitorReport { knn_accuracy, geometry: geometry(&a, &b)? })
    }
}
