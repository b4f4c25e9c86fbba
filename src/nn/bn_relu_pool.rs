//! Batch-norm, ReLU and 2x2 max-pooling fused: `y = maxpool2x2(relu(bn(x)))` in one pass over x,
//! with a one-byte argmax per output; the backward never materialises the un-pooled activation.
//! (The separate layers write and re-read a full-resolution activation three more times.)

use super::batchnorm::{sum_in_order, BatchNorm};
use super::tensor::check_shape;
use super::{profile, Mode, Real, Tensor};
use anyhow::{bail, Result};
use rayon::prelude::*;

/// Offsets of the four window positions, as multiples of (row stride, column stride).
const WINDOW: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The four `c`-long rows of the 2x2 window at output (oy, ox) of an image `w` wide.
#[inline(always)]
fn window_rows<T>(xi: &[T], w: usize, c: usize, oy: usize, ox: usize) -> [&[T]; 4] {
    WINDOW.map(|(dy, dx)| {
        let at = ((2 * oy + dy) * w + 2 * ox + dx) * c;
        &xi[at..at + c]
    })
}

/// The value at window position `a` (branch-free selects).
#[inline(always)]
fn pick<T: Real>(a: u8, v0: T, v1: T, v2: T, v3: T) -> T {
    let lo = if a == 1 { v1 } else { v0 };
    let hi = if a == 3 { v3 } else { v2 };
    if a >= 2 {
        hi
    } else {
        lo
    }
}

impl<T: Real> BatchNorm<T> {
    /// `y[n, h/2, w/2, c] = maxpool2x2(relu(bn(x[n, h, w, c])))`; `argmax` receives, per output
    /// value, which of the window's four positions (row-major) was the maximum.
    pub fn forward_relu_maxpool(&mut self, x: &Tensor<T>, y: &mut Tensor<T>, argmax: &mut Vec<u8>, mode: Mode) -> Result<()> {
        let _t = profile::scope(|| format!("{} +relu+pool forward", self.prefix));
        let (n, h, w, c) = x.nhwc()?;
        if c != self.channels() || h < 2 || w < 2 {
            bail!("batch-norm {} + max-pool: expected [n, h >= 2, w >= 2, {}], got shape {:?}", self.prefix, self.channels(), x.shape());
        }
        let (scale, shift) = self.set_statistics(x, n * h * w, mode)?;
        let (ho, wo) = (h / 2, w / 2);
        y.resize(&[n, ho, wo, c]);
        argmax.resize(y.len(), 0);
        y.data_mut().par_chunks_mut(ho * wo * c).zip(argmax.par_chunks_mut(ho * wo * c)).zip(x.data().par_chunks(h * w * c)).for_each(
            |((yi, ai), xi)| {
                let (scale, shift) = (&scale[..c], &shift[..c]);
                for oy in 0..ho {
                    for ox in 0..wo {
                        let o = (oy * wo + ox) * c;
                        let [r0, r1, r2, r3] = window_rows(xi, w, c, oy, ox);
                        let (yo, ao) = (&mut yi[o..o + c], &mut ai[o..o + c]);
                        for ch in 0..c {
                            let (s, t) = (scale[ch], shift[ch]);
                            let (v0, v1, v2, v3) = (r0[ch] * s + t, r1[ch] * s + t, r2[ch] * s + t, r3[ch] * s + t);
                            // Strict comparisons: ties go to the earlier position, as in PyTorch.
                            let (m01, a01) = if v1 > v0 { (v1, 1) } else { (v0, 0) };
                            let (m23, a23) = if v3 > v2 { (v3, 3) } else { (v2, 2) };
                            let (m, a) = if m23 > m01 { (m23, a23) } else { (m01, a01) };
                            yo[ch] = m.max(T::ZERO);
                            ao[ch] = a;
                        }
                    }
                }
            },
        );
        Ok(())
    }

    /// Backward of `forward_relu_maxpool` from `dy` (gradient of the pooled output `y`):
    /// accumulates the gamma and beta gradients and writes dx.
    pub fn backward_relu_maxpool(&mut self, x: &Tensor<T>, y: &Tensor<T>, argmax: &[u8], dy: &Tensor<T>, dx: &mut Tensor<T>) -> Result<()> {
        let _t = profile::scope(|| format!("{} +relu+pool backward", self.prefix));
        let (n, h, w, c) = x.nhwc()?;
        let (ho, wo) = (h / 2, w / 2);
        check_shape(&format!("batch-norm {} + max-pool output gradient", self.prefix), dy.shape(), &[n, ho, wo, c])?;
        let (mean, invstd, train) = self.last_statistics();
        let (mean, invstd) = (mean.to_vec(), invstd.to_vec());
        let out_len = ho * wo * c;
        // Pass 1: the gradient reaches only each window's maximum, where the ReLU was on.
        let partials: Vec<(Vec<T>, Vec<T>)> = x
            .data()
            .par_chunks(h * w * c)
            .zip(y.data().par_chunks(out_len).zip(dy.data().par_chunks(out_len).zip(argmax.par_chunks(out_len))))
            .map(|(xi, (yi, (gi, ai)))| {
                let mut sg = vec![T::ZERO; c];
                let mut sgx = vec![T::ZERO; c];
                let (sg_, sgx_, mean, invstd) = (&mut sg[..c], &mut sgx[..c], &mean[..c], &invstd[..c]);
                for o in 0..ho * wo {
                    let [r0, r1, r2, r3] = window_rows(xi, w, c, o / wo, o % wo);
                    let (yo, go, ao) = (&yi[o * c..(o + 1) * c], &gi[o * c..(o + 1) * c], &ai[o * c..(o + 1) * c]);
                    for ch in 0..c {
                        let xv = pick(ao[ch], r0[ch], r1[ch], r2[ch], r3[ch]);
                        let g = if yo[ch] > T::ZERO { go[ch] } else { T::ZERO };
                        sg_[ch] += g;
                        sgx_[ch] += g * (xv - mean[ch]) * invstd[ch];
                    }
                }
                (sg, sgx)
            })
            .collect();
        let (sum_g, sum_gx) = sum_in_order(&partials, c);
        self.add_affine_grads(&sum_g, &sum_gx);
        // Pass 2: dx = k (g - mean(g) - xhat mean(g xhat)), with g zero off the maxima.
        let rows = (n * h * w) as f64;
        let k: Vec<T> = (0..c).map(|ch| self.weight.value[ch] * invstd[ch]).collect();
        let (mg, mgx): (Vec<T>, Vec<T>) = (0..c)
            .map(|ch| if train { (T::from_f64(sum_g[ch] / rows), T::from_f64(sum_gx[ch] / rows)) } else { (T::ZERO, T::ZERO) })
            .unzip();
        dx.resize(x.shape());
        dx.data_mut()
            .par_chunks_mut(h * w * c)
            .zip(x.data().par_chunks(h * w * c))
            .zip(y.data().par_chunks(out_len).zip(dy.data().par_chunks(out_len).zip(argmax.par_chunks(out_len))))
            .for_each(|((dxi, xi), (yi, (gi, ai)))| {
                let (k, mg, mgx, mean, invstd) = (&k[..c], &mg[..c], &mgx[..c], &mean[..c], &invstd[..c]);
                let base = |dr: &mut [T], xr: &[T]| {
                    for ch in 0..c {
                        dr[ch] = -k[ch] * (mg[ch] + (xr[ch] - mean[ch]) * invstd[ch] * mgx[ch]);
                    }
                };
                for (dr, xr) in dxi.chunks_exact_mut(c).zip(xi.chunks_exact(c)) {
                    base(dr, xr);
                }
                // The pooled gradient reaches only each window's maximum, where the ReLU was on.
                for o in 0..ho * wo {
                    let (oy, ox) = (o / wo, o % wo);
                    for ch in 0..c {
                        let i = o * c + ch;
                        if yi[i] > T::ZERO {
                            let (dy_, dx_) = WINDOW[ai[i] as usize];
                            dxi[((2 * oy + dy_) * w + 2 * ox + dx_) * c + ch] += k[ch] * gi[i];
                        }
                    }
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use crate::nn::pool::MaxPool2d;

    fn bn() -> BatchNorm<f64> {
        let mut b = BatchNorm::new("bn", 3);
        b.weight.value = vec![0.7, -0.4, 1.3];
        b.bias.value = vec![0.1, 0.2, -0.3];
        b
    }

    #[test]
    fn matches_separate_layers() {
        let x = random_tensor(&[2, 5, 4, 3], 51);
        let (mut a, mut b) = (bn(), bn());
        let (mut fused, mut arg) = (Tensor::default(), Vec::new());
        a.forward_relu_maxpool(&x, &mut fused, &mut arg, Mode::Train).unwrap();
        let (mut act, mut pooled) = (Tensor::default(), Tensor::default());
        b.forward(&x, &mut act, Mode::Train, true, None).unwrap();
        MaxPool2d::new(2, 2).forward(&act, &mut pooled).unwrap();
        assert_eq!(fused.shape(), pooled.shape());
        for (f, p) in fused.data().iter().zip(pooled.data()) {
            assert!((f - p).abs() < 1e-12);
        }
    }

    #[test]
    fn gradients_train_and_eval_with_odd_sizes() {
        let x = random_tensor(&[2, 5, 4, 3], 52);
        for mode in [Mode::Train, Mode::Eval] {
            let mut arg = Vec::new();
            check_layer(
                &x,
                &mut bn(),
                |b, x, y| b.forward_relu_maxpool(x, y, &mut arg, mode).unwrap(),
                |b, x, y, dy, dx| {
                    let mut arg = Vec::new();
                    b.forward_relu_maxpool(x, &mut Tensor::default(), &mut arg, mode).unwrap();
                    b.backward_relu_maxpool(x, y, &arg, dy, dx).unwrap()
                },
            );
        }
    }
}
