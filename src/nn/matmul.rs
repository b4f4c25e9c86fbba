//! Safe wrapper over the `gemm` crate for row-major matrices.

use super::Real;
use gemm::Parallelism;

/// How an operand is stored: as the matrix itself or as its transpose (both row-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Stored as is.
    Normal,
    /// Stored transposed.
    Transposed,
}

/// `c[m, n] = a[m, k] * b[k, n]` (or `c +=` when `accumulate`), all row-major.
///
/// `a` is stored `[m, k]` or, when `ta` is `Transposed`, `[k, m]`; likewise `b` as `[k, n]` or `[n, k]`.
/// `threads > 1` lets gemm use rayon inside one product; the engine's kernels usually run many
/// single-threaded products in parallel instead.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    c: &mut [T],
    a: &[T],
    ta: Layout,
    b: &[T],
    tb: Layout,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    threads: usize,
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul: buffers too small for {m}x{k}x{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::ZERO);
        }
        return;
    }
    let (a_rs, a_cs) = match ta {
        Layout::Normal => (k as isize, 1),
        Layout::Transposed => (1, m as isize),
    };
    let (b_rs, b_cs) = match tb {
        Layout::Normal => (n as isize, 1),
        Layout::Transposed => (1, k as isize),
    };
    let par = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the asserts above guarantee every index gemm touches lies inside the slices, and
    // `c` does not alias `a` or `b` (it is borrowed mutably).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    fn transpose(x: &[f64], r: usize, c: usize) -> Vec<f64> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = x[i * c + j];
            }
        }
        t
    }

    #[test]
    fn all_layouts_match_naive_product() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let at = transpose(&a, m, k);
        let bt = transpose(&b, k, n);
        for (aa, la) in [(&a, Layout::Normal), (&at, Layout::Transposed)] {
            for (bb, lb) in [(&b, Layout::Normal), (&bt, Layout::Transposed)] {
                let mut c = vec![1.0; m * n];
                matmul(&mut c, aa, la, bb, lb, (m, k, n), true, 1);
                for (got, w) in c.iter().zip(&want) {
                    assert!((got - (w + 1.0)).abs() < 1e-12);
                }
            }
        }
    }
}
