//! Winograd F(2x2, 3x3) convolution for 3x3, stride-1, padding-1 layers (Lavin and Gray, 2016):
//! each 2x2 block of outputs comes from a 4x4 input tile with 16 multiplications per channel pair
//! instead of 36, as 16 matrix products `M[k] = V[k] U[k]` between transformed input tiles
//! `V = B^T d B` and transformed filters `U = G g G^T`, then `y = A^T M A`.
//! The input gradient of such a layer is the same convolution of the output gradient with the
//! filters rotated by 180 degrees and their channels swapped, so it runs here too.

use super::matmul::{matmul, Layout};
use super::Real;

/// Transformed filters `[16][cin][cout]` from a weight `[cout, 3, 3, cin]`.
pub fn transform_filters<T: Real>(weight: &[T], cin: usize, cout: usize) -> Vec<T> {
    let half = T::from_f64(0.5);
    let mut u = vec![T::ZERO; 16 * cin * cout];
    for co in 0..cout {
        for ci in 0..cin {
            let g = |ky: usize, kx: usize| weight[((co * 3 + ky) * 3 + kx) * cin + ci];
            // tmp = G g (4 x 3), then U = tmp G^T (4 x 4).
            let mut tmp = [[T::ZERO; 3]; 4];
            for kx in 0..3 {
                let (g0, g1, g2) = (g(0, kx), g(1, kx), g(2, kx));
                tmp[0][kx] = g0;
                tmp[1][kx] = (g0 + g1 + g2) * half;
                tmp[2][kx] = (g0 - g1 + g2) * half;
                tmp[3][kx] = g2;
            }
            for (r, row) in tmp.iter().enumerate() {
                let [a0, a1, a2] = *row;
                let vals = [a0, (a0 + a1 + a2) * half, (a0 - a1 + a2) * half, a2];
                for (s, &v) in vals.iter().enumerate() {
                    u[((r * 4 + s) * cin + ci) * cout + co] = v;
                }
            }
        }
    }
    u
}

/// The weight `[cin, 3, 3, cout]` of the convolution that maps output gradients to input
/// gradients: rotated by 180 degrees, input and output channels swapped.
pub fn flipped_weight<T: Real>(weight: &[T], cin: usize, cout: usize) -> Vec<T> {
    let mut f = vec![T::ZERO; weight.len()];
    for co in 0..cout {
        for ky in 0..3 {
            for kx in 0..3 {
                for ci in 0..cin {
                    f[((ci * 3 + (2 - ky)) * 3 + (2 - kx)) * cout + co] = weight[((co * 3 + ky) * 3 + kx) * cin + ci];
                }
            }
        }
    }
    f
}

/// `y[imgs, h, w, cout] = conv3x3(x[imgs, h, w, cin]) (+ bias)` with transformed filters `u`;
/// `v` and `m` are scratch.
#[allow(clippy::too_many_arguments)]
pub fn conv_chunk<T: Real>(
    x: &[T],
    (imgs, h, w): (usize, usize, usize),
    (cin, cout): (usize, usize),
    u: &[T],
    bias: Option<&[T]>,
    y: &mut [T],
    v: &mut Vec<T>,
    m: &mut Vec<T>,
) {
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let tiles = imgs * th * tw;
    v.resize(16 * tiles * cin, T::ZERO);
    m.resize(16 * tiles * cout, T::ZERO);
    // Input transform: V[k][tile][ci] = (B^T d B)[k] for each 4x4 tile d (zero padded), as
    // whole-channel-row operations so that they vectorise.
    let zero = vec![T::ZERO; cin];
    let mut rows = vec![T::ZERO; 16 * cin];
    for img in 0..imgs {
        let xi = &x[img * h * w * cin..(img + 1) * h * w * cin];
        for ty in 0..th {
            for tx in 0..tw {
                let t = (img * th + ty) * tw + tx;
                let px = |r: usize, s: usize| -> &[T] {
                    let (iy, ix) = ((2 * ty + r) as isize - 1, (2 * tx + s) as isize - 1);
                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                        &zero
                    } else {
                        let at = (iy as usize * w + ix as usize) * cin;
                        &xi[at..at + cin]
                    }
                };
                // Rows of B^T d: [d0 - d2, d1 + d2, d2 - d1, d1 - d3] for each column s.
                for s in 0..4 {
                    let (d0, d1, d2, d3) = (px(0, s), px(1, s), px(2, s), px(3, s));
                    apply(&mut rows[s * cin..(s + 1) * cin], d0, d2, |a, b| a - b);
                    apply(&mut rows[(4 + s) * cin..(5 + s) * cin], d1, d2, |a, b| a + b);
                    apply(&mut rows[(8 + s) * cin..(9 + s) * cin], d2, d1, |a, b| a - b);
                    apply(&mut rows[(12 + s) * cin..(13 + s) * cin], d1, d3, |a, b| a - b);
                }
                // Columns: (B^T d) B, written to V.
                for r in 0..4 {
                    let row = |s: usize| &rows[(r * 4 + s) * cin..(r * 4 + s + 1) * cin];
                    let dst = |k: usize| ((r * 4 + k) * tiles + t) * cin;
                    apply(&mut v[dst(0)..dst(0) + cin], row(0), row(2), |a, b| a - b);
                    apply(&mut v[dst(1)..dst(1) + cin], row(1), row(2), |a, b| a + b);
                    apply(&mut v[dst(2)..dst(2) + cin], row(2), row(1), |a, b| a - b);
                    apply(&mut v[dst(3)..dst(3) + cin], row(1), row(3), |a, b| a - b);
                }
            }
        }
    }
    // 16 products: M[k] (tiles x cout) = V[k] (tiles x cin) U[k] (cin x cout).
    for k in 0..16 {
        matmul(
            &mut m[k * tiles * cout..(k + 1) * tiles * cout],
            &v[k * tiles * cin..(k + 1) * tiles * cin],
            Layout::Normal,
            &u[k * cin * cout..(k + 1) * cin * cout],
            Layout::Normal,
            (tiles, cin, cout),
            false,
            false,
        );
    }
    // Output transform: y = A^T M A (2x2 per tile), cropped at odd edges.
    let mut half = vec![T::ZERO; 8 * cout];
    let mut out = vec![T::ZERO; cout];
    for img in 0..imgs {
        let yi = &mut y[img * h * w * cout..(img + 1) * h * w * cout];
        for ty in 0..th {
            for tx in 0..tw {
                let t = (img * th + ty) * tw + tx;
                let mk = |k: usize| &m[(k * tiles + t) * cout..(k * tiles + t + 1) * cout];
                // Rows of A^T M: [m0 + m1 + m2, m1 - m2 - m3] for each column s.
                for s in 0..4 {
                    apply3(&mut half[s * cout..(s + 1) * cout], mk(s), mk(4 + s), mk(8 + s), |a, b, c| a + b + c);
                    apply3(&mut half[(4 + s) * cout..(5 + s) * cout], mk(4 + s), mk(8 + s), mk(12 + s), |a, b, c| a - b - c);
                }
                for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                    let (oy, ox) = (2 * ty + i, 2 * tx + j);
                    if oy >= h || ox >= w {
                        continue;
                    }
                    let hr = |s: usize| &half[(i * 4 + s) * cout..(i * 4 + s + 1) * cout];
                    if j == 0 {
                        apply3(&mut out, hr(0), hr(1), hr(2), |a, b, c| a + b + c);
                    } else {
                        apply3(&mut out, hr(1), hr(2), hr(3), |a, b, c| a - b - c);
                    }
                    let dst = &mut yi[(oy * w + ox) * cout..(oy * w + ox + 1) * cout];
                    match bias {
                        Some(b) => apply(dst, &out, b, |a, b| a + b),
                        None => dst.copy_from_slice(&out),
                    }
                }
            }
        }
    }
}

/// `out[i] = f(a[i], b[i])`.
#[inline(always)]
fn apply<T: Real>(out: &mut [T], a: &[T], b: &[T], f: impl Fn(T, T) -> T) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f(x, y);
    }
}

/// `out[i] = f(a[i], b[i], c[i])`.
#[inline(always)]
fn apply3<T: Real>(out: &mut [T], a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) {
    for (((o, &x), &y), &z) in out.iter_mut().zip(a).zip(b).zip(c) {
        *o = f(x, y, z);
    }
}
