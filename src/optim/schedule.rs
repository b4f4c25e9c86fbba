//! Learning-rate schedule: linear warm-up, then cosine decay to a floor, as a function of the step.

use serde::{Deserialize, Serialize};

/// Linear warm-up from `base / warmup` to `base` over `warmup` steps, then cosine decay from
/// `base` to `base * floor` at step `total`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WarmupCosine {
    /// Peak learning rate.
    pub base: f64,
    /// Warm-up steps.
    pub warmup: u64,
    /// Total steps of the run.
    pub total: u64,
    /// Final learning rate as a fraction of `base`.
    pub floor: f64,
}

impl WarmupCosine {
    /// Learning rate for the optimizer step with 0-based index `step`.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.base * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let progress = ((step - self.warmup) as f64 / span).min(1.0);
        let low = self.base * self.floor;
        low + (self.base - low) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_floor() {
        let s = WarmupCosine { base: 1.0, warmup: 10, total: 110, floor: 0.1 };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
        for k in 10..110 {
            assert!(s.lr(k + 1) <= s.lr(k));
        }
    }
}
