//! Softmax cross-entropy for classification (the linear probe and supervised baselines).

use crate::nn::{Real, Tensor};
use anyhow::{bail, Result};

/// Mean cross-entropy of `logits` `[n, classes]` against `labels`; writes dL/dlogits into
/// `dlogits` and returns (loss, number of correct argmax predictions).
pub fn softmax_cross_entropy<T: Real>(logits: &Tensor<T>, labels: &[u16], dlogits: &mut Tensor<T>) -> Result<(f64, usize)> {
    let (n, k) = logits.rows_cols();
    if labels.len() != n {
        bail!("cross-entropy: {} labels for {n} rows", labels.len());
    }
    if let Some(&bad) = labels.iter().find(|&&l| l as usize >= k) {
        bail!("cross-entropy: label {bad} out of range for {k} classes");
    }
    dlogits.resize(logits.shape());
    let (mut loss, mut correct) = (0.0, 0);
    for ((row, g), &y) in logits.data().chunks_exact(k).zip(dlogits.data_mut().chunks_exact_mut(k)).zip(labels) {
        let max = row.iter().map(|v| v.to_f64()).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v.to_f64() - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - row[y as usize].to_f64();
        let best = (0..k).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        correct += usize::from(best == y as usize);
        for (j, gj) in g.iter_mut().enumerate() {
            let p = (row[j].to_f64() - lse).exp();
            *gj = T::from_f64((p - if j == y as usize { 1.0 } else { 0.0 }) / n as f64);
        }
    }
    Ok((loss / n as f64, correct))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{assert_close, random_tensor};

    #[test]
    fn gradient_matches_finite_differences() {
        let logits = random_tensor(&[4, 3], 1);
        let labels = [0, 2, 1, 2];
        let mut g = Tensor::default();
        softmax_cross_entropy(&logits, &labels, &mut g).unwrap();
        for j in 0..logits.len() {
            let mut p = logits.clone();
            p.data_mut()[j] += 1e-6;
            let up = softmax_cross_entropy(&p, &labels, &mut Tensor::default()).unwrap().0;
            p.data_mut()[j] -= 2e-6;
            let down = softmax_cross_entropy(&p, &labels, &mut Tensor::default()).unwrap().0;
            assert_close(&format!("dlogits[{j}]"), g.data()[j], (up - down) / 2e-6);
        }
        assert!(softmax_cross_entropy(&logits, &[0, 1, 2, 3], &mut g).is_err());
    }
}
