//! Safe wrapper over the `gemm` crate for row-major matrices.

use super::Real;
use gemm::Parallelism;
use rayon::prelude::*;

/// How an operand is stored: as the matrix itself or as its transpose (both row-major).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Stored as is.
    Normal,
    /// Stored transposed.
    Transposed,
}

/// Rows of the output per parallel work item in [`matmul`] when `parallel` is set.
const ROW_BLOCK: usize = 64;

/// `c[m, n] = a[m, k] * b[k, n]` (or `c +=` when `accumulate`), all row-major.
///
/// `a` is stored `[m, k]` or, when `ta` is `Transposed`, `[k, m]`; likewise `b` as `[k, n]` or `[n, k]`.
/// With `parallel`, blocks of output rows run in parallel, each a single-threaded product over
/// the whole of k: every value is computed the same way whatever the number of threads.
#[allow(clippy::too_many_arguments)]
pub fn matmul<T: Real>(
    c: &mut [T],
    a: &[T],
    ta: Layout,
    b: &[T],
    tb: Layout,
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    parallel: bool,
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
    // (row stride, column stride, offset of row i) of a.
    let (a_rs, a_cs, a_row) = match ta {
        Layout::Normal => (k as isize, 1, k),
        Layout::Transposed => (1, m as isize, 1),
    };
    let (b_rs, b_cs) = match tb {
        Layout::Normal => (n as isize, 1),
        Layout::Transposed => (1, k as isize),
    };
    let block = |i0: usize, cb: &mut [T]| {
        let rows = cb.len() / n;
        // SAFETY: the assert above bounds every index of a (rows i0..i0 + rows), b and c that
        // gemm touches; `cb` is a disjoint mutable block of c and does not alias a or b.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                cb.as_mut_ptr(),
                1,
                n as isize,
                accumulate,
                a.as_ptr().add(i0 * a_row),
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
                Parallelism::None,
            );
        }
    };
    let c = &mut c[..m * n];
    if parallel && m > ROW_BLOCK {
        c.par_chunks_mut(ROW_BLOCK * n).enumerate().for_each(|(i, cb)| block(i * ROW_BLOCK, cb));
    } else {
        block(0, c);
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
    fn parallel_row_blocks_match_one_product() {
        let (m, k, n) = (150, 33, 7);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        for ta in [Layout::Normal, Layout::Transposed] {
            let (mut one, mut par) = (vec![0.0; m * n], vec![0.0; m * n]);
            matmul(&mut one, &a, ta, &b, Layout::Normal, (m, k, n), false, false);
            matmul(&mut par, &a, ta, &b, Layout::Normal, (m, k, n), false, true);
            assert!(one.iter().zip(&par).all(|(x, y)| (x - y).abs() <= 1e-5 * (1.0 + x.abs())));
        }
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
                matmul(&mut c, aa, la, bb, lb, (m, k, n), true, false);
                for (got, w) in c.iter().zip(&want) {
                    assert!((got - (w + 1.0)).abs() < 1e-12);
                }
            }
        }
    }
}
