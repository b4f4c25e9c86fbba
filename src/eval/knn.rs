//! Weighted k-nearest-neighbour classification on cosine similarity (Wu et al., 2018): each of the
//! k most similar bank rows votes for its class with weight exp(similarity / temperature).

use crate::nn::matmul::{matmul, Layout};
use crate::nn::Tensor;
use anyhow::{bail, Result};
use rayon::prelude::*;

/// Rows scaled to unit length (zero rows stay zero).
pub fn normalise_rows(x: &Tensor<f32>) -> Vec<f32> {
    let (_, d) = x.rows_cols();
    x.data()
        .chunks_exact(d)
        .flat_map(|r| {
            let n = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(move |v| v / n)
        })
        .collect()
}

/// Accuracy of classifying `queries` by their `k` nearest `bank` rows.
pub fn knn_accuracy(
    bank: &Tensor<f32>,
    bank_labels: &[u16],
    queries: &Tensor<f32>,
    query_labels: &[u16],
    k: usize,
    temperature: f64,
) -> Result<f64> {
    let ((nb, d), (nq, dq)) = (bank.rows_cols(), queries.rows_cols());
    if d != dq || bank_labels.len() != nb || query_labels.len() != nq || nb == 0 || nq == 0 || k == 0 {
        bail!(
            "kNN: bank {:?} / {} labels and queries {:?} / {} labels do not fit (k = {k})",
            bank.shape(),
            bank_labels.len(),
            queries.shape(),
            query_labels.len()
        );
    }
    let (b, q) = (normalise_rows(bank), normalise_rows(queries));
    let mut sim = vec![0.0f32; nq * nb];
    matmul(&mut sim, &q, Layout::Normal, &b, Layout::Transposed, (nq, d, nb), false, true);
    let classes = bank_labels.iter().map(|&c| c as usize + 1).max().unwrap_or(1);
    let k = k.min(nb);
    let correct: usize = sim
        .par_chunks(nb)
        .zip(query_labels.par_iter())
        .map(|(row, &label)| {
            let mut idx: Vec<usize> = (0..nb).collect();
            idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]));
            let mut votes = vec![0.0f64; classes];
            for &i in &idx[..k] {
                votes[bank_labels[i] as usize] += (row[i] as f64 / temperature).exp();
            }
            let best = (0..classes).fold(0, |best, c| if votes[c] > votes[best] { c } else { best });
            usize::from(best == label as usize)
        })
        .sum();
    Ok(correct as f64 / nq as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_vote_for_their_class() {
        // Class 0 points along x, class 1 along y; queries near each axis.
        let bank = Tensor::from_vec(&[4, 2], vec![1.0, 0.1, 2.0, -0.1, 0.1, 1.0, -0.2, 3.0]).unwrap();
        let queries = Tensor::from_vec(&[3, 2], vec![5.0, 0.5, 0.3, 4.0, 1.0, 0.0]).unwrap();
        assert_eq!(knn_accuracy(&bank, &[0, 0, 1, 1], &queries, &[0, 1, 0], 2, 0.1).unwrap(), 1.0);
        assert!((knn_accuracy(&bank, &[0, 0, 1, 1], &queries, &[1, 1, 1], 2, 0.1).unwrap() - 1.0 / 3.0).abs() < 1e-12);
        assert!(knn_accuracy(&bank, &[0, 0, 1], &queries, &[0, 1, 0], 2, 0.1).is_err());
    }
}
