//! Direct convolution for small patches (e.g. a first layer with one input channel, where an
//! im2col matrix of 9 columns makes a poor matrix product): per output pixel, each tap adds a
//! scaled weight row to all output channels at once. Weights are used transposed, `[patch, cout]`.

use super::conv::{for_each_tap, ConvSpec};
use super::Real;

/// `[rows, cols]` -> `[cols, rows]`.
pub(super) fn transpose<T: Real>(src: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; src.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = src[r * cols + c];
        }
    }
    out
}

/// Calls `f(output pixel, row of the transposed weight, input offset)` for every in-bounds
/// (pixel, tap, input channel) of one image.
#[inline(always)]
fn for_each_tap_channel(spec: &ConvSpec, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
    let cin = spec.cin;
    for_each_tap(spec, h, w, |p, tap, at| {
        for ci in 0..cin {
            f(p, tap * cin + ci, at + ci);
        }
    });
}

/// Forward for `imgs` images: `y = conv(x) + bias`, with `wt` the `[patch, cout]` weight.
pub(super) fn forward_chunk<T: Real>(spec: &ConvSpec, x: &[T], (h, w): (usize, usize), wt: &[T], bias: Option<&[T]>, y: &mut [T]) {
    let cout = spec.cout;
    let (in_len, out_len) = (h * w * spec.cin, spec.out_size(h) * spec.out_size(w) * cout);
    for (xi, yi) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
        match bias {
            Some(b) => yi.chunks_exact_mut(cout).for_each(|r| r.copy_from_slice(b)),
            None => yi.fill(T::ZERO),
        }
        for_each_tap_channel(spec, h, w, |p, tap, at| {
            let xv = xi[at];
            let (out, wrow) = (&mut yi[p * cout..(p + 1) * cout], &wt[tap * cout..(tap + 1) * cout]);
            for co in 0..cout {
                out[co] += xv * wrow[co];
            }
        });
    }
}

/// Backward for `imgs` images: accumulates `dwt` (`[patch, cout]`) and `db`; writes dx when given.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_chunk<T: Real>(
    spec: &ConvSpec,
    x: &[T],
    (h, w): (usize, usize),
    dy: &[T],
    wt: &[T],
    dwt: &mut [T],
    db: &mut [T],
    dx: Option<&mut [T]>,
) {
    let cout = spec.cout;
    let (in_len, out_len) = (h * w * spec.cin, spec.out_size(h) * spec.out_size(w) * cout);
    for (xi, dyi) in x.chunks_exact(in_len).zip(dy.chunks_exact(out_len)) {
        for row in dyi.chunks_exact(cout) {
            for (b, &g) in db.iter_mut().zip(row) {
                *b += g;
            }
        }
        for_each_tap_channel(spec, h, w, |p, tap, at| {
            let xv = xi[at];
            let (g, dwrow) = (&dyi[p * cout..(p + 1) * cout], &mut dwt[tap * cout..(tap + 1) * cout]);
            for co in 0..cout {
                dwrow[co] += xv * g[co];
            }
        });
    }
    if let Some(dx) = dx {
        dx.fill(T::ZERO);
        for (dxi, dyi) in dx.chunks_exact_mut(in_len).zip(dy.chunks_exact(out_len)) {
            for_each_tap_channel(spec, h, w, |p, tap, at| {
                let (g, wrow) = (&dyi[p * cout..(p + 1) * cout], &wt[tap * cout..(tap + 1) * cout]);
                let mut s = T::ZERO;
                for co in 0..cout {
                    s += g[co] * wrow[co];
                }
                dxi[at] += s;
            });
        }
    }
}
