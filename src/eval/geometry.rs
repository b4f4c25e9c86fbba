//! Representation geometry (Wang and Isola, 2020) and collapse monitors, on L2-normalised
//! embeddings of positive pairs: alignment E||f(x) - f(x+)||^2 (lower is better), uniformity
//! log E exp(-2 ||f(x) - f(y)||^2) over all pairs (lower is more uniform), and two collapse
//! monitors: the spread of the normalised embeddings per dimension and their effective rank.

use super::knn::normalise_rows;
use crate::nn::matmul::{matmul, Layout};
use crate::nn::Tensor;
use anyhow::{bail, Result};
use serde::Serialize;

/// Geometry of a set of positive pairs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Geometry {
    /// Mean squared distance between the two views of each image.
    pub alignment: f64,
    /// log of the mean Gaussian potential exp(-2 d^2) over all pairs of distinct rows.
    pub uniformity: f64,
    /// Mean over dimensions of the standard deviation of the normalised embeddings, times
    /// sqrt(dimensions): about 1 for embeddings spread over the sphere, 0 for collapse.
    pub spread: f64,
    /// Effective rank of the normalised embeddings: the participation ratio (sum l)^2 / sum l^2 of
    /// their covariance eigenvalues l (Renyi-2 effective dimension): 1 when they vary along one
    /// direction only, d when evenly in all d, 0 for full collapse.
    pub effective_rank: f64,
}

/// Spread below which the representation is reported as collapsing.
pub const COLLAPSE_SPREAD: f64 = 0.1;

/// Effective rank below which the representation is reported as collapsing (to a line or less).
pub const COLLAPSE_RANK: f64 = 2.0;

impl Geometry {
    /// Whether a collapse monitor is below its threshold.
    pub fn collapsing(&self) -> bool {
        self.spread < COLLAPSE_SPREAD || self.effective_rank < COLLAPSE_RANK
    }
}

/// Geometry of `a` and `b`, whose row i are two views of image i.
pub fn geometry(a: &Tensor<f32>, b: &Tensor<f32>) -> Result<Geometry> {
    let ((n, d), shape_b) = (a.rows_cols(), b.rows_cols());
    if (n, d) != shape_b || n < 2 {
        bail!("geometry: view batches {:?} and {:?} must match and hold at least 2 rows", a.shape(), b.shape());
    }
    let (za, zb) = (normalise_rows(a), normalise_rows(b));
    let alignment = za
        .chunks_exact(d)
        .zip(zb.chunks_exact(d))
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| ((p - q) as f64).powi(2)).sum::<f64>())
        .sum::<f64>()
        / n as f64;
    let all: Vec<f32> = za.iter().chain(&zb).copied().collect();
    let m = 2 * n;
    let mut gram = vec![0.0f32; m * m];
    matmul(&mut gram, &all, Layout::Normal, &all, Layout::Transposed, (m, d, m), false, true);
    // |x - y|^2 = 2 - 2 x.y for unit vectors; log-mean-exp over i < j, stabilised.
    let potentials: Vec<f64> =
        (0..m).flat_map(|i| ((i + 1)..m).map(move |j| (i, j))).map(|(i, j)| -2.0 * (2.0 - 2.0 * gram[i * m + j] as f64)).collect();
    let max = potentials.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let uniformity = max + (potentials.iter().map(|p| (p - max).exp()).sum::<f64>() / potentials.len() as f64).ln();
    let mut spread = 0.0;
    for j in 0..d {
        let col: Vec<f64> = (0..m).map(|i| all[i * d + j] as f64).collect();
        let mean = col.iter().sum::<f64>() / m as f64;
        spread += (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m as f64).sqrt();
    }
    Ok(Geometry { alignment, uniformity, spread: spread / d as f64 * (d as f64).sqrt(), effective_rank: participation_ratio(&gram, m) })
}

/// (tr C)^2 / tr(C^2) of the covariance C of the rows whose `m` x `m` Gram matrix is `gram`,
/// computed from the centred Gram matrix (same non-zero eigenvalues as C, up to scale).
fn participation_ratio(gram: &[f32], m: usize) -> f64 {
    let g = |i: usize, j: usize| gram[i * m + j] as f64;
    let row_mean: Vec<f64> = (0..m).map(|i| (0..m).map(|j| g(i, j)).sum::<f64>() / m as f64).collect();
    let mean = row_mean.iter().sum::<f64>() / m as f64;
    let (mut trace, mut frobenius) = (0.0, 0.0);
    for i in 0..m {
        for j in 0..m {
            let c = g(i, j) - row_mean[i] - row_mean[j] + mean;
            frobenius += c * c;
            if i == j {
                trace += c;
            }
        }
    }
    if trace <= 1e-9 {
        0.0
    } else {
        trace * trace / frobenius
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_and_perfect_alignment_are_recognised() {
        let same = Tensor::from_vec(&[3, 2], vec![1.0, 0.0, 2.0, 0.0, 3.0, 0.0]).unwrap();
        let g = geometry(&same, &same).unwrap();
        assert!(g.alignment.abs() < 1e-12 && g.uniformity.abs() < 1e-6 && g.spread < COLLAPSE_SPREAD, "{g:?}");
        assert_eq!(g.effective_rank, 0.0);
        assert!(g.collapsing());
        // Four orthogonal-ish directions: far apart, well spread, views misaligned.
        let a = Tensor::from_vec(&[2, 2], vec![1.0, 0.0, 0.0, 1.0]).unwrap();
        let b = Tensor::from_vec(&[2, 2], vec![-1.0, 0.0, 0.0, -1.0]).unwrap();
        let g = geometry(&a, &b).unwrap();
        assert!((g.alignment - 4.0).abs() < 1e-9 && g.uniformity < -3.0 && g.spread > 0.9, "{g:?}");
        assert!((g.effective_rank - 2.0).abs() < 1e-6 && !g.collapsing(), "{g:?}");
        // Points along one line through the origin vary in one direction only.
        let line = Tensor::from_vec(&[2, 3], vec![1.0, 1.0, 0.0, -1.0, -1.0, 0.0]).unwrap();
        let g = geometry(&line, &line).unwrap();
        assert!((g.effective_rank - 1.0).abs() < 1e-6 && g.collapsing(), "{g:?}");
    }
}
