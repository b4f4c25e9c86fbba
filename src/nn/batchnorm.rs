//! Batch normalisation over the last (channel) dimension, optionally fused with a residual
//! addition and ReLU: `y = relu(bn(x) + skip)`. On NHWC images this is BatchNorm2d (statistics over
//! n, h, w); on `[rows, features]` it is BatchNorm1d.

use super::param::{HasParams, Param, ParamKind, TorchLayout};
use super::tensor::check_shape;
use super::{profile, Mode, Real, Tensor};
use anyhow::{bail, Result};
use rayon::prelude::*;

/// PyTorch's default epsilon.
pub const BN_EPS: f64 = 1e-5;
/// PyTorch's default running-statistics momentum.
pub const BN_MOMENTUM: f64 = 0.1;
/// Rows per parallel work item.
pub(crate) const CHUNK_ROWS: usize = 1024;

/// BatchNorm with affine parameters and running statistics (unbiased running variance).
#[derive(Clone, Debug)]
pub struct BatchNorm<T> {
    /// The state-dict prefix, e.g. `encoder.bn1`.
    pub prefix: String,
    /// gamma, `[c]`.
    pub weight: Param<T>,
    /// beta, `[c]`.
    pub bias: Param<T>,
    /// Running mean, `[c]`.
    pub running_mean: Vec<T>,
    /// Running unbiased variance, `[c]`.
    pub running_var: Vec<T>,
    /// Training-mode forward passes so far (PyTorch's `num_batches_tracked`).
    pub num_batches_tracked: i64,
    /// Mean used by the last forward (batch mean in training, running mean in eval).
    mean: Vec<T>,
    /// 1 / sqrt(var + eps) used by the last forward.
    invstd: Vec<T>,
    /// Mode of the last forward.
    last_mode: Mode,
}

impl<T: Real> BatchNorm<T> {
    /// A batch-norm over `channels` with gamma = 1, beta = 0, running mean 0 and variance 1.
    pub fn new(prefix: &str, channels: usize) -> Self {
        BatchNorm {
            prefix: prefix.to_string(),
            weight: Param::filled(format!("{prefix}.weight"), TorchLayout::Same(vec![channels]), 1.0, ParamKind::NoDecay),
            bias: Param::filled(format!("{prefix}.bias"), TorchLayout::Same(vec![channels]), 0.0, ParamKind::NoDecay),
            running_mean: vec![T::ZERO; channels],
            running_var: vec![T::ONE; channels],
            num_batches_tracked: 0,
            mean: vec![T::ZERO; channels],
            invstd: vec![T::ONE; channels],
            last_mode: Mode::Train,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.value.len()
    }

    fn rows(&self, x: &Tensor<T>) -> Result<usize> {
        let c = self.channels();
        if x.shape().last() != Some(&c) {
            bail!("batch-norm {}: expected {} channels in the last dimension, got shape {:?}", self.prefix, c, x.shape());
        }
        Ok(x.len() / c)
    }

    /// Sets the statistics used for normalising (batch ones in training, which also updates the
    /// running ones; running ones in eval) and returns the per-channel affine map
    /// `y = x * scale + shift` they give.
    pub(crate) fn set_statistics(&mut self, x: &Tensor<T>, rows: usize, mode: Mode) -> Result<(Vec<T>, Vec<T>)> {
        let c = self.channels();
        match mode {
            Mode::Train => {
                if rows < 2 {
                    bail!("batch-norm {}: training needs more than one value per channel, got shape {:?}", self.prefix, x.shape());
                }
                let (mean, var) = channel_mean_var(x.data(), c);
                let m = BN_MOMENTUM;
                let unbias = rows as f64 / (rows - 1) as f64;
                for ch in 0..c {
                    let rm = self.running_mean[ch].to_f64();
                    let rv = self.running_var[ch].to_f64();
                    self.running_mean[ch] = T::from_f64((1.0 - m) * rm + m * mean[ch]);
                    self.running_var[ch] = T::from_f64((1.0 - m) * rv + m * var[ch] * unbias);
                    self.mean[ch] = T::from_f64(mean[ch]);
                    self.invstd[ch] = T::from_f64(1.0 / (var[ch] + BN_EPS).sqrt());
                }
                self.num_batches_tracked += 1;
            }
            Mode::Eval => {
                for ch in 0..c {
                    self.mean[ch] = self.running_mean[ch];
                    self.invstd[ch] = T::from_f64(1.0 / (self.running_var[ch].to_f64() + BN_EPS).sqrt());
                }
            }
        }
        self.last_mode = mode;
        let scale: Vec<T> = (0..c).map(|ch| self.weight.value[ch] * self.invstd[ch]).collect();
        let shift: Vec<T> = (0..c).map(|ch| self.bias.value[ch] - self.mean[ch] * scale[ch]).collect();
        Ok((scale, shift))
    }

    /// The mean and 1 / sqrt(var + eps) of the last forward, and whether it was in training mode.
    pub(crate) fn last_statistics(&self) -> (&[T], &[T], bool) {
        (&self.mean, &self.invstd, self.last_mode == Mode::Train)
    }

    /// Adds per-channel sums of g and g * xhat to the gamma and beta gradients.
    pub(crate) fn add_affine_grads(&mut self, sum_g: &[f64], sum_gx: &[f64]) {
        for ch in 0..self.channels() {
            self.weight.grad[ch] += T::from_f64(sum_gx[ch]);
            self.bias.grad[ch] += T::from_f64(sum_g[ch]);
        }
    }

    /// `y = act(gamma * (x - mean) / sqrt(var + eps) + beta + skip)` with batch statistics in
    /// training mode (which also updates the running statistics) and running ones in eval mode.
    pub fn forward(&mut self, x: &Tensor<T>, y: &mut Tensor<T>, mode: Mode, relu: bool, skip: Option<&Tensor<T>>) -> Result<()> {
        let _t = profile::scope(|| format!("{} forward", self.prefix));
        let rows = self.rows(x)?;
        let c = self.channels();
        if let Some(s) = skip {
            check_shape(&format!("batch-norm {} residual", self.prefix), s.shape(), x.shape())?;
        }
        let (scale, shift) = self.set_statistics(x, rows, mode)?;
        y.resize(x.shape());
        let chunk = CHUNK_ROWS * c;
        let skip = skip.map(|s| s.data());
        y.data_mut().par_chunks_mut(chunk).zip(x.data().par_chunks(chunk)).enumerate().for_each(|(i, (yc, xc))| {
            let sc = skip.map(|s| &s[i * chunk..i * chunk + xc.len()]);
            let (scale, shift) = (&scale[..c], &shift[..c]);
            for (r, (yr, xr)) in yc.chunks_exact_mut(c).zip(xc.chunks_exact(c)).enumerate() {
                for ch in 0..c {
                    yr[ch] = xr[ch] * scale[ch] + shift[ch];
                }
                if let Some(s) = sc {
                    for (v, &k) in yr.iter_mut().zip(&s[r * c..(r + 1) * c]) {
                        *v += k;
                    }
                }
                if relu {
                    for v in yr.iter_mut() {
                        *v = v.max(T::ZERO);
                    }
                }
            }
        });
        Ok(())
    }

    /// Backward of `forward`: accumulates gamma/beta gradients, writes dx, and writes the
    /// gradient of the residual input into `dskip` when given. `y` is the forward output.
    pub fn backward(
        &mut self,
        x: &Tensor<T>,
        y: &Tensor<T>,
        dy: &Tensor<T>,
        dx: &mut Tensor<T>,
        relu: bool,
        dskip: Option<&mut Tensor<T>>,
    ) -> Result<()> {
        let _t = profile::scope(|| format!("{} backward", self.prefix));
        let rows = self.rows(x)?;
        check_shape(&format!("batch-norm {} output gradient", self.prefix), dy.shape(), x.shape())?;
        let c = self.channels();
        let chunk = CHUNK_ROWS * c;
        let (mean, invstd) = (&self.mean, &self.invstd);
        let gate = |yv: T, g: T| if relu && yv <= T::ZERO { T::ZERO } else { g };
        // Pass 1: per-channel sums of g and g * xhat.
        let partials: Vec<(Vec<T>, Vec<T>)> = x
            .data()
            .par_chunks(chunk)
            .zip(y.data().par_chunks(chunk).zip(dy.data().par_chunks(chunk)))
            .map(|(xc, (yc, dyc))| {
                let mut lg = vec![T::ZERO; c];
                let mut lgx = vec![T::ZERO; c];
                let (a, b, mean, invstd) = (&mut lg[..c], &mut lgx[..c], &mean[..c], &invstd[..c]);
                for ((xr, yr), dr) in xc.chunks_exact(c).zip(yc.chunks_exact(c)).zip(dyc.chunks_exact(c)) {
                    for ch in 0..c {
                        let g = gate(yr[ch], dr[ch]);
                        a[ch] += g;
                        b[ch] += g * (xr[ch] - mean[ch]) * invstd[ch];
                    }
                }
                (lg, lgx)
            })
            .collect();
        let (sum_g, sum_gx) = sum_in_order(&partials, c);
        for ch in 0..c {
            self.weight.grad[ch] += T::from_f64(sum_gx[ch]);
            self.bias.grad[ch] += T::from_f64(sum_g[ch]);
        }
        // Pass 2: dx = gamma * invstd * (g - mean(g) - xhat * mean(g * xhat)) in training mode,
        // gamma * invstd * g in eval mode (the statistics are constants there).
        let train = self.last_mode == Mode::Train;
        let n = rows as f64;
        let k: Vec<T> = (0..c).map(|ch| self.weight.value[ch] * invstd[ch]).collect();
        let mg: Vec<T> = (0..c).map(|ch| T::from_f64(if train { sum_g[ch] / n } else { 0.0 })).collect();
        let mgx: Vec<T> = (0..c).map(|ch| T::from_f64(if train { sum_gx[ch] / n } else { 0.0 })).collect();
        dx.resize(x.shape());
        // The residual's gradient is written in the same pass, chunk by chunk, when asked for.
        let mut skips: Vec<Option<&mut [T]>> = match dskip {
            Some(d) => {
                d.resize(x.shape());
                d.data_mut().chunks_mut(chunk).map(Some).collect()
            }
            None => std::iter::repeat_with(|| None).take(x.len().div_ceil(chunk)).collect(),
        };
        dx.data_mut()
            .par_chunks_mut(chunk)
            .zip(skips.par_iter_mut())
            .zip(x.data().par_chunks(chunk).zip(y.data().par_chunks(chunk).zip(dy.data().par_chunks(chunk))))
            .for_each(|((dxc, sk), (xc, (yc, dyc)))| {
                let (k, mg, mgx, mean, invstd) = (&k[..c], &mg[..c], &mgx[..c], &mean[..c], &invstd[..c]);
                for (r, (((dxr, xr), yr), dr)) in
                    dxc.chunks_exact_mut(c).zip(xc.chunks_exact(c)).zip(yc.chunks_exact(c)).zip(dyc.chunks_exact(c)).enumerate()
                {
                    for ch in 0..c {
                        let g = gate(yr[ch], dr[ch]);
                        let xhat = (xr[ch] - mean[ch]) * invstd[ch];
                        dxr[ch] = k[ch] * (g - mg[ch] - xhat * mgx[ch]);
                    }
                    if let Some(s) = sk.as_deref_mut() {
                        for ((sv, &yv), &dv) in s[r * c..(r + 1) * c].iter_mut().zip(yr).zip(dr) {
                            *sv = gate(yv, dv);
                        }
                    }
                }
            });
        Ok(())
    }
}

/// Adds per-chunk pairs of per-channel sums in chunk order, in f64 (deterministic).
pub(crate) fn sum_in_order<T: Real>(partials: &[(Vec<T>, Vec<T>)], c: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = vec![0.0f64; c];
    let mut b = vec![0.0f64; c];
    for (pa, pb) in partials {
        for ch in 0..c {
            a[ch] += pa[ch].to_f64();
            b[ch] += pb[ch].to_f64();
        }
    }
    (a, b)
}

/// Per-channel mean and biased variance of `[rows, c]` data, using sums shifted by the first row
/// (numerically safe when values sit far from zero), accumulated in f64 across chunks.
fn channel_mean_var<T: Real>(x: &[T], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let shift: Vec<T> = x[..c].to_vec();
    let partials: Vec<(Vec<T>, Vec<T>)> = x
        .par_chunks(CHUNK_ROWS * c)
        .map(|xc| {
            let mut l1 = vec![T::ZERO; c];
            let mut l2 = vec![T::ZERO; c];
            let (a, b, shift) = (&mut l1[..c], &mut l2[..c], &shift[..c]);
            for xr in xc.chunks_exact(c) {
                for ch in 0..c {
                    let d = xr[ch] - shift[ch];
                    a[ch] += d;
                    b[ch] += d * d;
                }
            }
            (l1, l2)
        })
        .collect();
    let (s1, s2) = sum_in_order(&partials, c);
    let n = rows as f64;
    let mean = (0..c).map(|ch| shift[ch].to_f64() + s1[ch] / n).collect();
    let var = (0..c).map(|ch| (s2[ch] / n - (s1[ch] / n).powi(2)).max(0.0)).collect();
    (mean, var)
}

impl<T: Real> HasParams<T> for BatchNorm<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        f(&mut self.weight);
        f(&mut self.bias);
    }

    fn visit_batchnorms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<T>)) {
        f(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};

    fn bn(c: usize) -> BatchNorm<f64> {
        let mut b = BatchNorm::new("bn", c);
        for ch in 0..c {
            b.weight.value[ch] = 0.5 + ch as f64 * 0.3;
            b.bias.value[ch] = 0.1 * ch as f64 - 0.2;
        }
        b
    }

    #[test]
    fn gradients_train_mode_plain_and_relu() {
        let x = random_tensor(&[3, 4, 4, 3], 5);
        for relu in [false, true] {
            check_layer(
                &x,
                &mut bn(3),
                |b, x, y| b.forward(x, y, Mode::Train, relu, None).unwrap(),
                |b, x, y, dy, dx| b.backward(x, y, dy, dx, relu, None).unwrap(),
            );
        }
    }

    #[test]
    fn gradients_with_residual_and_1d_rows() {
        let x = random_tensor(&[6, 5], 7);
        let skip = random_tensor(&[6, 5], 8);
        // Through the skip path: d/dskip equals the gated gradient, checked against differences.
        check_layer(
            &x,
            &mut bn(5),
            |b, x, y| b.forward(x, y, Mode::Train, true, Some(&skip)).unwrap(),
            |b, x, y, dy, dx| b.backward(x, y, dy, dx, true, None).unwrap(),
        );
        let mut b = bn(5);
        check_layer(
            &skip,
            &mut b,
            |b, s, y| b.forward(&x, y, Mode::Train, true, Some(s)).unwrap(),
            |b, _s, y, dy, ds| {
                let mut dx = Tensor::default();
                b.backward(&x, y, dy, &mut dx, true, Some(ds)).unwrap();
            },
        );
    }

    #[test]
    fn gradients_eval_mode() {
        let x = random_tensor(&[4, 3], 9);
        let mut b = bn(3);
        b.running_mean = vec![0.1, -0.2, 0.3];
        b.running_var = vec![0.5, 1.5, 2.0];
        check_layer(
            &x,
            &mut b,
            |b, x, y| b.forward(x, y, Mode::Eval, false, None).unwrap(),
            |b, x, y, dy, dx| b.backward(x, y, dy, dx, false, None).unwrap(),
        );
    }

    #[test]
    fn running_stats_follow_pytorch() {
        // Channel 0 holds 1, 2, 3, 4: mean 2.5, unbiased variance 5/3.
        let x = Tensor::from_vec(&[4, 1], vec![1.0f64, 2.0, 3.0, 4.0]).unwrap();
        let mut b = BatchNorm::new("bn", 1);
        let mut y = Tensor::default();
        b.forward(&x, &mut y, Mode::Train, false, None).unwrap();
        assert!((b.running_mean[0] - 0.25).abs() < 1e-12);
        assert!((b.running_var[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-12);
        assert_eq!(b.num_batches_tracked, 1);
        // Batch statistics normalise with the biased variance 1.25.
        assert!((y.data()[0] - (1.0 - 2.5) / (1.25f64 + BN_EPS).sqrt()).abs() < 1e-12);
        // Eval mode uses the running statistics.
        b.forward(&x, &mut y, Mode::Eval, false, None).unwrap();
        let want = (1.0 - b.running_mean[0]) / (b.running_var[0] + BN_EPS).sqrt();
        assert!((y.data()[0] - want).abs() < 1e-12);
    }

    #[test]
    fn variance_is_accurate_far_from_zero() {
        let x: Vec<f32> = (0..4096).map(|i| 1.0e4 + (i % 2) as f32).collect();
        let (mean, var) = channel_mean_var(&x, 1);
        assert!((mean[0] - 10000.5).abs() < 1e-6 && (var[0] - 0.25).abs() < 1e-6, "{mean:?} {var:?}");
    }
}
