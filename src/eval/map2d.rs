//! Two-dimensional maps of a representation for pictures: PCA and t-SNE of L2-normalised rows
//! (the cosine geometry the NT-Xent loss and the kNN monitor use).

use super::knn::normalise_rows;
use crate::nn::Tensor;
use anyhow::{bail, Result};

/// Rows of `d` values, in f64, minus their mean.
fn centred(values: &[f32], d: usize) -> Vec<Vec<f64>> {
    let mut rows: Vec<Vec<f64>> = values.chunks_exact(d).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
    let n = rows.len();
    let mut mean = vec![0.0; d];
    for r in &rows {
        mean.iter_mut().zip(r).for_each(|(m, v)| *m += v / n as f64);
    }
    for r in &mut rows {
        r.iter_mut().zip(&mean).for_each(|(v, m)| *v -= m);
    }
    rows
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The leading principal direction of centred `rows`, orthogonal to `against`, by power
/// iteration on X^T X (never formed) from a fixed start, so the result is deterministic.
fn principal_direction(rows: &[Vec<f64>], against: Option<&[f64]>) -> Vec<f64> {
    let d = rows[0].len();
    let orthogonalise = |v: &mut Vec<f64>| {
        if let Some(a) = against {
            let p = dot(v, a);
            v.iter_mut().zip(a).for_each(|(x, y)| *x -= p * y);
        }
        let norm = dot(v, v).sqrt().max(1e-300);
        v.iter_mut().for_each(|x| *x /= norm);
    };
    let mut v: Vec<f64> = (0..d).map(|j| 1.0 + (j % 7) as f64 * 0.1).collect();
    orthogonalise(&mut v);
    for _ in 0..300 {
        let mut next = vec![0.0; d];
        for r in rows {
            let p = dot(r, &v);
            next.iter_mut().zip(r).for_each(|(n, x)| *n += p * x);
        }
        orthogonalise(&mut next);
        let change = next.iter().zip(&v).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        v = next;
        if change < 1e-10 {
            break;
        }
    }
    // Sign convention: the largest component is positive.
    let big = v.iter().fold(0.0f64, |m, &x| if x.abs() > m.abs() { x } else { m });
    if big < 0.0 {
        v.iter_mut().for_each(|x| *x = -*x);
    }
    v
}

/// Projects L2-normalised rows of `x` (`[n, d]`) on their first two principal components.
pub fn pca_2d(x: &Tensor<f32>) -> Result<Vec<[f64; 2]>> {
    if x.rows_cols().0 < 2 {
        bail!("a 2-D map needs at least 2 points");
    }
    Ok(pca_of(&normalise_rows(x), x.rows_cols().1))
}

/// The first two principal components of the rows of `d` values in `values`.
fn pca_of(values: &[f32], d: usize) -> Vec<[f64; 2]> {
    let rows = centred(values, d);
    let first = principal_direction(&rows, None);
    let second = principal_direction(&rows, Some(&first));
    rows.iter().map(|r| [dot(r, &first), dot(r, &second)]).collect()
}

/// t-SNE perplexity: the effective number of neighbours each point keeps.
pub const PERPLEXITY: f32 = 30.0;

/// Fewest points t-SNE accepts at [`PERPLEXITY`].
pub fn tsne_min_points() -> usize {
    3 * PERPLEXITY as usize + 2
}

/// t-SNE (Barnes-Hut, theta 0.5, 1000 iterations) of L2-normalised rows of `x`, started from
/// their PCA map scaled to a standard deviation of 1e-4 (as openTSNE does), so it is
/// deterministic and keeps the global layout PCA sees.
pub fn tsne_2d(x: &Tensor<f32>) -> Result<Vec<[f64; 2]>> {
    let (n, d) = x.rows_cols();
    if n < tsne_min_points() {
        bail!("t-SNE at perplexity {PERPLEXITY} needs at least {} points, got {n}", tsne_min_points());
    }
    let unit = normalise_rows(x);
    let pca = pca_of(&unit, d);
    let std = (pca.iter().map(|p| p[0] * p[0]).sum::<f64>() / n as f64).sqrt().max(1e-12);
    let init: Vec<f32> = pca.iter().flat_map(|p| [(p[0] / std * 1e-4) as f32, (p[1] / std * 1e-4) as f32]).collect();
    let refs: Vec<&[f32]> = unit.chunks_exact(d).collect();
    // bhtsne's parallel sums depend on thread scheduling; one thread makes the map reproducible.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let y = pool.install(|| {
        let mut tsne: bhtsne::tSNE<f32, &[f32]> = bhtsne::tSNE::new(&refs);
        tsne.perplexity(PERPLEXITY)
            .epochs(1000)
            .initial_embedding(init)
            .barnes_hut(0.5, |a, b| a.iter().zip(b.iter()).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt());
        tsne.embedding()
    });
    if y.iter().any(|v| !v.is_finite()) {
        bail!("t-SNE did not converge (non-finite coordinates)");
    }
    Ok(y.chunks_exact(2).map(|p| [p[0] as f64, p[1] as f64]).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Three tight clusters on different axes of a 6-D space, `per` points each.
    fn clusters(per: usize) -> (Tensor<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..3 * per {
            let c = i % 3;
            for j in 0..6 {
                let centre = if j == c { 1.0 } else { 0.0 };
                x.push(centre + rng.random_range(-0.05..0.05));
            }
            y.push(c);
        }
        (Tensor::from_vec(&[3 * per, 6], x).unwrap(), y)
    }

    /// Whether every point's nearest other point in `map` has its label.
    fn neighbours_agree(map: &[[f64; 2]], y: &[usize]) -> bool {
        (0..map.len()).all(|i| {
            let d = |j: usize| (map[i][0] - map[j][0]).powi(2) + (map[i][1] - map[j][1]).powi(2);
            let nearest = (0..map.len()).filter(|&j| j != i).min_by(|&a, &b| d(a).total_cmp(&d(b))).unwrap();
            y[nearest] == y[i]
        })
    }

    #[test]
    fn pca_finds_the_leading_axis_and_separates_clusters() {
        // Points along (1, 1, 0) with small noise elsewhere: the first component is that axis.
        let x: Vec<f32> = (0..50).flat_map(|i| [1.0 + i as f32, 1.0 + i as f32, 0.5 + 0.01 * (i % 3) as f32]).collect();
        let map = pca_2d(&Tensor::from_vec(&[50, 3], x).unwrap()).unwrap();
        let first_var: f64 = map.iter().map(|p| p[0] * p[0]).sum();
        let second_var: f64 = map.iter().map(|p| p[1] * p[1]).sum();
        assert!(first_var > 10.0 * second_var, "{first_var} vs {second_var}");
        let (x, y) = clusters(20);
        assert!(neighbours_agree(&pca_2d(&x).unwrap(), &y));
    }

    #[test]
    fn tsne_separates_clusters_deterministically() {
        let (x, y) = clusters(40);
        let a = tsne_2d(&x).unwrap();
        assert!(neighbours_agree(&a, &y));
        assert_eq!(a, tsne_2d(&x).unwrap());
        assert!(tsne_2d(&clusters(10).0).is_err());
    }
}
