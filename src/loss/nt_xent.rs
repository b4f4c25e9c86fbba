//! NT-Xent (normalised temperature-scaled cross entropy), the SimCLR loss, with its closed-form
//! gradient. Chen et al., "A Simple Framework for Contrastive Learning of Visual Representations",
//! 2020.
//!
//! Rows `i` and `i + N` of the `[2N, D]` embeddings are the two views of image `i`. Each row's
//! positive is its partner; the other 2N - 2 rows are negatives; the row itself is excluded.

use crate::nn::matmul::{matmul, Layout};
use crate::nn::{Real, Tensor};
use anyhow::{bail, Result};

/// Loss value and the share of rows whose most similar other row is their positive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NtXentOutput {
    /// Mean loss over all 2N rows.
    pub loss: f64,
    /// Fraction of rows whose nearest other row (cosine) is the positive.
    pub positive_top1: f64,
}

/// Smallest norm used when normalising (as `torch.nn.functional.normalize`).
const NORM_EPS: f64 = 1e-12;

/// Computes the NT-Xent loss of `z` `[2N, D]` at temperature `tau` and writes dL/dz into `dz`.
pub fn nt_xent<T: Real>(z: &Tensor<T>, tau: f64, dz: &mut Tensor<T>) -> Result<NtXentOutput> {
    let (rows, d) = z.rows_cols();
    if z.shape().len() != 2 || rows < 2 || rows % 2 != 0 {
        bail!("NT-Xent: expected embeddings [2N, D] with N >= 1, got shape {:?}", z.shape());
    }
    if !(tau > 0.0 && tau.is_finite()) {
        bail!("NT-Xent: temperature must be positive, got {tau}");
    }
    let n = rows / 2;
    // zhat = z / max(|z|, eps)
    let norms: Vec<f64> =
        z.data().chunks_exact(d).map(|r| r.iter().map(|v| v.to_f64().powi(2)).sum::<f64>().sqrt().max(NORM_EPS)).collect();
    let zhat: Vec<T> =
        z.data().chunks_exact(d).zip(&norms).flat_map(|(r, &nm)| r.iter().map(move |&v| T::from_f64(v.to_f64() / nm))).collect();
    let mut sim = vec![T::ZERO; rows * rows];
    matmul(&mut sim, &zhat, Layout::Normal, &zhat, Layout::Transposed, (rows, d, rows), false, false);
    // Row-wise log-softmax over k != i, in f64; g = dL/dlogits = (softmax - onehot) / 2N.
    let mut g = vec![0.0f64; rows * rows];
    let (mut loss, mut top1) = (0.0, 0usize);
    for i in 0..rows {
        let pos = if i < n { i + n } else { i - n };
        let row = &sim[i * rows..(i + 1) * rows];
        let logit = |k: usize| row[k].to_f64() / tau;
        let max = (0..rows).filter(|&k| k != i).map(logit).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..rows).filter(|&k| k != i).map(|k| (logit(k) - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - logit(pos);
        if logit(pos) >= max {
            top1 += 1;
        }
        let gi = &mut g[i * rows..(i + 1) * rows];
        for (k, gk) in gi.iter_mut().enumerate() {
            if k != i {
                *gk = ((logit(k) - lse).exp() - if k == pos { 1.0 } else { 0.0 }) / rows as f64;
            }
        }
    }
    // logits = zhat zhat^T / tau  =>  dzhat = (G + G^T) zhat / tau.
    let sym: Vec<T> = (0..rows * rows).map(|ik| T::from_f64((g[ik] + g[(ik % rows) * rows + ik / rows]) / tau)).collect();
    let mut dzhat = vec![T::ZERO; rows * d];
    matmul(&mut dzhat, &sym, Layout::Normal, &zhat, Layout::Normal, (rows, rows, d), false, false);
    // Through the normalisation: dz = (dzhat - zhat (zhat . dzhat)) / |z|.
    dz.resize(z.shape());
    for (((dzr, gr), zr), &nm) in dz.data_mut().chunks_exact_mut(d).zip(dzhat.chunks_exact(d)).zip(zhat.chunks_exact(d)).zip(&norms) {
        let dot: f64 = gr.iter().zip(zr).map(|(a, b)| a.to_f64() * b.to_f64()).sum();
        for ((o, &gv), &zv) in dzr.iter_mut().zip(gr).zip(zr) {
            *o = T::from_f64((gv.to_f64() - zv.to_f64() * dot) / nm);
        }
    }
    Ok(NtXentOutput { loss: loss / rows as f64, positive_top1: top1 as f64 / rows as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_close, random_tensor};

    fn loss_only(z: &Tensor<f64>, tau: f64) -> f64 {
        nt_xent(z, tau, &mut Tensor::default()).unwrap().loss
    }

    #[test]
    fn gradient_matches_finite_differences() {
        for (rows, tau) in [(2, 0.5), (8, 0.5), (6, 0.05), (10, 1.0)] {
            let z = random_tensor(&[rows, 5], rows as u64);
            let mut dz = Tensor::default();
            nt_xent(&z, tau, &mut dz).unwrap();
            let eps = 1e-6;
            for j in 0..z.len() {
                let mut zp = z.clone();
                zp.data_mut()[j] += eps;
                let up = loss_only(&zp, tau);
                zp.data_mut()[j] -= 2.0 * eps;
                let down = loss_only(&zp, tau);
                assert_close(&format!("dz[{j}] rows {rows} tau {tau}"), dz.data()[j], (up - down) / (2.0 * eps));
            }
        }
    }

    #[test]
    fn matches_reference_value() {
        // Two images, orthogonal views: every similarity 0 except self and partner (1).
        // Row 0: logits [-, 0, 2, 0] at tau 0.5 -> loss = ln(e^0 + e^2 + e^0) - 2.
        let z = Tensor::from_vec(&[4, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0]).unwrap();
        let want = (2.0 + 2f64.exp()).ln() - 2.0;
        let out = nt_xent(&z, 0.5, &mut Tensor::default()).unwrap();
        assert!((out.loss - want).abs() < 1e-12);
        assert_eq!(out.positive_top1, 1.0);
    }

    #[test]
    fn stable_at_low_temperature_in_f32() {
        let z = random_tensor(&[64, 16], 3).cast::<f32>();
        let mut dz = Tensor::default();
        let out = nt_xent(&z, 0.05, &mut dz).unwrap();
        assert!(out.loss.is_finite() && dz.data().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn rejects_odd_rows_and_bad_temperature() {
        assert!(nt_xent(&random_tensor(&[3, 2], 1), 0.5, &mut Tensor::default()).is_err());
        assert!(nt_xent(&random_tensor(&[4, 2], 1), 0.0, &mut Tensor::default()).is_err());
    }
}
