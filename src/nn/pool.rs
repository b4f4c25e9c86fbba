//! Max pooling and global average pooling over NHWC images.

use super::tensor::check_shape;
use super::{profile, Real, Tensor};
use anyhow::{bail, Result};
use rayon::prelude::*;

/// MaxPool2d with a square window and stride, no padding (PyTorch's floor mode).
#[derive(Clone, Debug)]
pub struct MaxPool2d {
    /// Window side.
    pub kernel: usize,
    /// Step between windows.
    pub stride: usize,
    /// For each output value, the flat index of the chosen input value (within its image).
    argmax: Vec<u32>,
}

impl MaxPool2d {
    /// A max-pool with the given window and stride.
    pub fn new(kernel: usize, stride: usize) -> Self {
        MaxPool2d { kernel, stride, argmax: Vec::new() }
    }

    fn out_shape<T: Real>(&self, x: &Tensor<T>) -> Result<[usize; 4]> {
        let (n, h, w, c) = x.nhwc()?;
        if h < self.kernel || w < self.kernel {
            bail!("max-pool: input {:?} smaller than the {}x{} window", x.shape(), self.kernel, self.kernel);
        }
        Ok([n, (h - self.kernel) / self.stride + 1, (w - self.kernel) / self.stride + 1, c])
    }

    /// `y[n, ho, wo, c] = max over the window of x`; remembers where each maximum came from.
    pub fn forward<T: Real>(&mut self, x: &Tensor<T>, y: &mut Tensor<T>) -> Result<()> {
        let _t = profile::scope(|| format!("max-pool {:?} forward", x.shape()));
        let out = self.out_shape(x)?;
        let (_, h, w, c) = x.nhwc()?;
        let [_, ho, wo, _] = out;
        y.resize(&out);
        self.argmax.resize(y.len(), 0);
        let (k, s) = (self.kernel, self.stride);
        y.data_mut().par_chunks_mut(ho * wo * c).zip(self.argmax.par_chunks_mut(ho * wo * c)).zip(x.data().par_chunks(h * w * c)).for_each(
            |((yi, ai), xi)| {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let o = (oy * wo + ox) * c;
                        let first = (oy * s * w + ox * s) * c;
                        yi[o..o + c].copy_from_slice(&xi[first..first + c]);
                        for (ch, a) in ai[o..o + c].iter_mut().enumerate() {
                            *a = (first + ch) as u32;
                        }
                        for ky in 0..k {
                            for kx in 0..k {
                                let at = ((oy * s + ky) * w + ox * s + kx) * c;
                                for ch in 0..c {
                                    let v = xi[at + ch];
                                    if v > yi[o + ch] {
                                        yi[o + ch] = v;
                                        ai[o + ch] = (at + ch) as u32;
                                    }
                                }
                            }
                        }
                    }
                }
            },
        );
        Ok(())
    }

    /// Routes each output gradient to the input value that was the maximum.
    pub fn backward<T: Real>(&self, x: &Tensor<T>, dy: &Tensor<T>, dx: &mut Tensor<T>) -> Result<()> {
        let _t = profile::scope(|| format!("max-pool {:?} backward", x.shape()));
        let out = self.out_shape(x)?;
        check_shape("max-pool output gradient", dy.shape(), &out)?;
        let (_, h, w, c) = x.nhwc()?;
        let out_len = out[1] * out[2] * c;
        dx.resize(x.shape());
        dx.data_mut().par_chunks_mut(h * w * c).zip(dy.data().par_chunks(out_len).zip(self.argmax.par_chunks(out_len))).for_each(
            |(dxi, (dyi, ai))| {
                dxi.fill(T::ZERO);
                for (&g, &a) in dyi.iter().zip(ai) {
                    dxi[a as usize] += g;
                }
            },
        );
        Ok(())
    }
}

/// Global average pooling: `[n, h, w, c] -> [n, c]`.
pub fn global_avg_pool_forward<T: Real>(x: &Tensor<T>, y: &mut Tensor<T>) -> Result<()> {
    let (n, h, w, c) = x.nhwc()?;
    y.resize_zeroed(&[n, c]);
    let scale = T::from_f64(1.0 / (h * w) as f64);
    for (yi, xi) in y.data_mut().chunks_exact_mut(c).zip(x.data().chunks_exact(h * w * c)) {
        for px in xi.chunks_exact(c) {
            for (a, &v) in yi.iter_mut().zip(px) {
                *a += v;
            }
        }
        for a in yi.iter_mut() {
            *a *= scale;
        }
    }
    Ok(())
}

/// Backward of global average pooling: spreads each gradient evenly over its image.
pub fn global_avg_pool_backward<T: Real>(x_shape: &[usize], dy: &Tensor<T>, dx: &mut Tensor<T>) -> Result<()> {
    let [n, h, w, c] = x_shape[..] else { bail!("global average pool: expected NHWC input, got {x_shape:?}") };
    check_shape("global average pool output gradient", dy.shape(), &[n, c])?;
    dx.resize(x_shape);
    let scale = T::from_f64(1.0 / (h * w) as f64);
    for (dxi, dyi) in dx.data_mut().chunks_exact_mut(h * w * c).zip(dy.data().chunks_exact(c)) {
        for px in dxi.chunks_exact_mut(c) {
            for (d, &g) in px.iter_mut().zip(dyi) {
                *d = g * scale;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use crate::nn::param::{HasParams, Param};

    struct NoParams;
    impl HasParams<f64> for MaxPool2d {
        fn visit_params(&mut self, _f: &mut dyn FnMut(&mut Param<f64>)) {}
    }
    impl HasParams<f64> for NoParams {
        fn visit_params(&mut self, _f: &mut dyn FnMut(&mut Param<f64>)) {}
    }

    #[test]
    fn maxpool_picks_maximum_and_routes_gradient() {
        let x = random_tensor(&[2, 5, 4, 3], 11);
        let mut pool = MaxPool2d::new(2, 2);
        let mut y = Tensor::default();
        pool.forward(&x, &mut y).unwrap();
        assert_eq!(y.shape(), &[2, 2, 2, 3]);
        // Output (image 0, row 1, col 1, channel 1) is the max of rows 2-3, cols 2-3.
        let xd = x.data();
        let want = [(2, 2), (2, 3), (3, 2), (3, 3)].iter().map(|&(r, c)| xd[(r * 4 + c) * 3 + 1]).fold(f64::MIN, f64::max);
        assert_eq!(y.data()[3 * 3 + 1], want);
        check_layer(&x, &mut pool, |p, x, y| p.forward(x, y).unwrap(), |p, x, _y, dy, dx| p.backward(x, dy, dx).unwrap());
    }

    #[test]
    fn global_average_pool_gradients() {
        let x = random_tensor(&[2, 3, 3, 4], 12);
        check_layer(
            &x,
            &mut NoParams,
            |_, x, y| global_avg_pool_forward(x, y).unwrap(),
            |_, x, _y, dy, dx| global_avg_pool_backward(x.shape(), dy, dx).unwrap(),
        );
    }
}
