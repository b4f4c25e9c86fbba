//! Optimizers (Adam, AdamW, SGD with momentum, LARS) and the learning-rate schedule.

pub mod schedule;

use crate::nn::param::{HasParams, ParamKind};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam with L2 weight decay added to the gradient.
    Adam,
    /// Adam with decoupled weight decay.
    Adamw,
    /// SGD with (heavy-ball) momentum.
    Sgd,
    /// LARS: SGD with momentum and a per-layer trust ratio (You et al., 2017).
    Lars,
}

/// Optimizer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Update rule.
    pub kind: OptimizerKind,
    /// Weight decay, applied to weights only (biases and batch-norm parameters are excluded).
    pub weight_decay: f64,
    /// Adam's beta1, or the momentum of SGD and LARS.
    pub momentum: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Adam's epsilon.
    pub eps: f64,
    /// LARS trust coefficient (eta).
    pub trust_coefficient: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig { kind: OptimizerKind::Adam, weight_decay: 0.0, momentum: 0.9, beta2: 0.999, eps: 1e-8, trust_coefficient: 0.001 }
    }
}

impl OptimizerConfig {
    /// Rejects values that cannot train, naming the option.
    pub fn validate(&self) -> Result<()> {
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            bail!("optimizer.weight_decay must be >= 0, got {}", self.weight_decay);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("optimizer.momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(0.0..1.0).contains(&self.beta2) {
            bail!("optimizer.beta2 must be in [0, 1), got {}", self.beta2);
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            bail!("optimizer.eps must be > 0, got {}", self.eps);
        }
        if self.trust_coefficient.is_nan() || self.trust_coefficient <= 0.0 {
            bail!("optimizer.trust_coefficient must be > 0, got {}", self.trust_coefficient);
        }
        Ok(())
    }
}

/// An optimizer with its per-parameter state (first and second moments or momentum buffers).
#[derive(Clone, Debug)]
pub struct Optimizer {
    /// Settings.
    pub config: OptimizerConfig,
    /// Steps taken so far.
    pub step: u64,
    /// First moment (Adam) or momentum buffer (SGD, LARS), one per parameter in visit order.
    pub m: Vec<Vec<f32>>,
    /// Second moment (Adam only; empty otherwise).
    pub v: Vec<Vec<f32>>,
}

impl Optimizer {
    /// A fresh optimizer; state is created on the first step.
    pub fn new(config: OptimizerConfig) -> Self {
        Optimizer { config, step: 0, m: Vec::new(), v: Vec::new() }
    }

    /// Applies one update with learning rate `lr` from the gradients held by `model`.
    pub fn step(&mut self, model: &mut impl HasParams<f32>, lr: f64) {
        let c = self.config.clone();
        let adam = matches!(c.kind, OptimizerKind::Adam | OptimizerKind::Adamw);
        let t = (self.step + 1) as i32;
        let (bc1, bc2) = (1.0 - c.momentum.powi(t), 1.0 - c.beta2.powi(t));
        let mut index = 0;
        let (ms, vs) = (&mut self.m, &mut self.v);
        model.visit_params(&mut |p| {
            if ms.len() <= index {
                ms.push(vec![0.0; p.value.len()]);
                vs.push(if adam { vec![0.0; p.value.len()] } else { Vec::new() });
            }
            let (m, v) = (&mut ms[index], &mut vs[index]);
            index += 1;
            let decay = if p.kind == ParamKind::Weight { c.weight_decay } else { 0.0 } as f32;
            let (lr32, mom) = (lr as f32, c.momentum as f32);
            match c.kind {
                OptimizerKind::Adam | OptimizerKind::Adamw => {
                    let (b2, eps) = (c.beta2 as f32, c.eps as f32);
                    let (step_size, bc2_sqrt) = (lr32 / bc1 as f32, (bc2 as f32).sqrt());
                    let coupled = c.kind == OptimizerKind::Adam;
                    for i in 0..p.value.len() {
                        let w = p.value[i];
                        let g = if coupled { p.grad[i] + decay * w } else { p.grad[i] };
                        let w = if coupled { w } else { w * (1.0 - lr32 * decay) };
                        m[i] = mom * m[i] + (1.0 - mom) * g;
                        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                        p.value[i] = w - step_size * m[i] / (v[i].sqrt() / bc2_sqrt + eps);
                    }
                }
                OptimizerKind::Sgd => {
                    for i in 0..p.value.len() {
                        let g = p.grad[i] + decay * p.value[i];
                        m[i] = mom * m[i] + g;
                        p.value[i] -= lr32 * m[i];
                    }
                }
                OptimizerKind::Lars => {
                    let local = if p.kind == ParamKind::Weight {
                        let wn = p.value.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
                        let gn = p.grad.iter().zip(&p.value).map(|(&g, &w)| ((g + decay * w) as f64).powi(2)).sum::<f64>().sqrt();
                        if wn > 0.0 && gn > 0.0 {
                            c.trust_coefficient * wn / gn
                        } else {
                            1.0
                        }
                    } else {
                        1.0
                    };
                    let scaled = (lr * local) as f32;
                    for i in 0..p.value.len() {
                        let g = p.grad[i] + decay * p.value[i];
                        m[i] = mom * m[i] + scaled * g;
                        p.value[i] -= m[i];
                    }
                }
            }
        });
        self.step += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::param::{Param, TorchLayout};

    struct Quad(Param<f32>, Param<f32>);
    impl HasParams<f32> for Quad {
        fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<f32>)) {
            f(&mut self.0);
            f(&mut self.1);
        }
    }

    fn quad() -> Quad {
        Quad(
            Param::filled("w", TorchLayout::Same(vec![3]), 2.0, ParamKind::Weight),
            Param::filled("b", TorchLayout::Same(vec![1]), -1.0, ParamKind::NoDecay),
        )
    }

    /// Minimises 0.5 * |params|^2 (gradient = params) and checks it shrinks towards zero.
    fn minimises(kind: OptimizerKind, lr: f64) {
        let mut q = quad();
        let mut opt = Optimizer::new(OptimizerConfig { kind, trust_coefficient: 0.1, ..Default::default() });
        for _ in 0..200 {
            q.0.grad = q.0.value.clone();
            q.1.grad = q.1.value.clone();
            opt.step(&mut q, lr);
        }
        assert!(q.0.value[0].abs() < 0.2 && q.1.value[0].abs() < 0.2, "{kind:?}: {:?} {:?}", q.0.value, q.1.value);
    }

    #[test]
    fn every_optimizer_minimises_a_quadratic() {
        minimises(OptimizerKind::Adam, 0.05);
        minimises(OptimizerKind::Adamw, 0.05);
        minimises(OptimizerKind::Sgd, 0.05);
        minimises(OptimizerKind::Lars, 0.5);
    }

    #[test]
    fn first_adam_step_matches_pytorch() {
        // PyTorch's Adam moves every coordinate by lr on its first step (m/sqrt(v) = sign(g)).
        let mut q = quad();
        q.0.grad = vec![0.3, -2.0, 5.0];
        q.1.grad = vec![1e-3];
        let mut opt = Optimizer::new(OptimizerConfig::default());
        opt.step(&mut q, 0.01);
        assert!((q.0.value[0] - 1.99).abs() < 1e-6 && (q.0.value[1] - 2.01).abs() < 1e-6);
        assert!((q.1.value[0] + 1.01).abs() < 1e-5);
    }

    #[test]
    fn weight_decay_skips_biases_and_adamw_decouples() {
        let mut q = quad();
        let mut opt = Optimizer::new(OptimizerConfig { kind: OptimizerKind::Adamw, weight_decay: 0.5, ..Default::default() });
        opt.step(&mut q, 0.1);
        // Zero gradient: AdamW only decays the weight (2 * (1 - 0.05)); the bias is untouched.
        assert!((q.0.value[0] - 1.9).abs() < 1e-6);
        assert_eq!(q.1.value[0], -1.0);
    }
}
