//! 2-D convolution over NHWC images: im2col + gemm, parallel over chunks of the batch.

use super::conv_direct::{self, transpose};
use super::matmul::{matmul, Layout};
use super::param::{HasParams, Param, ParamKind, TorchLayout};
use super::scratch::Scratch;
use super::winograd;
use super::{profile, Real, Tensor};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Convolution hyper-parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
}

impl ConvSpec {
    /// Output side length for an input side length.
    pub fn out_size(&self, size: usize) -> usize {
        (size + 2 * self.padding).saturating_sub(self.kernel) / self.stride + 1
    }

    /// Values in one im2col row: kernel * kernel * cin.
    fn patch_len(&self) -> usize {
        self.kernel * self.kernel * self.cin
    }
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// im2col into a cache-sized buffer, then one matrix product per chunk of images.
    Im2colGemm,
    /// Per-pixel taps over all output channels; for patches too small for a good matrix product.
    Direct,
    /// Winograd F(2x2, 3x3) for the forward pass and the input gradient (3x3, stride 1,
    /// padding 1); the weight gradient uses im2col + gemm.
    Winograd,
}

impl ConvAlgorithm {
    /// The fastest algorithm for a shape (measured on the reference model).
    fn for_spec(spec: &ConvSpec) -> Self {
        if spec.patch_len() <= DIRECT_MAX_PATCH {
            ConvAlgorithm::Direct
        } else if spec.kernel == 3 && spec.stride == 1 && spec.padding == 1 && spec.cin >= WINOGRAD_MIN_CHANNELS {
            ConvAlgorithm::Winograd
        } else {
            ConvAlgorithm::Im2colGemm
        }
    }
}

/// Largest patch (kernel * kernel * cin) computed directly rather than by im2col + gemm.
const DIRECT_MAX_PATCH: usize = 16;
/// Fewest input channels for which Winograd's 16 smaller products beat one im2col product.
const WINOGRAD_MIN_CHANNELS: usize = 16;
/// Fewest input pixels (h * w) for which Winograd is used.
const WINOGRAD_MIN_PIXELS: usize = 16;

/// Conv2d. Weight stored `[cout, kh, kw, cin]` (exported as PyTorch's `[cout, cin, kh, kw]`).
#[derive(Clone, Debug)]
pub struct Conv2d<T> {
    /// Shape of the convolution.
    pub spec: ConvSpec,
    /// The algorithm (chosen from the shape).
    pub algorithm: ConvAlgorithm,
    /// `[cout, kh, kw, cin]`.
    pub weight: Param<T>,
    /// `[cout]`, when the layer has a bias.
    pub bias: Option<Param<T>>,
    /// im2col and accumulator buffers, reused from call to call.
    scratch: Scratch<T>,
}

/// Output pixels per parallel work item: enough for a good gemm, small enough to stay in cache.
const CHUNK_PIXELS: usize = 576;
/// Weight-gradient partial sums per backward (fixed, for results independent of thread count).
const REDUCTION_GROUPS: usize = 16;

impl<T: Real> Conv2d<T> {
    /// A convolution initialised as PyTorch does (U(+-1/sqrt(fan_in)) for weight and bias).
    pub fn new(name: &str, spec: ConvSpec, bias: bool, rng: &mut ChaCha8Rng) -> Self {
        let fan_in = spec.patch_len();
        let bound = 1.0 / (fan_in as f64).sqrt();
        let layout = TorchLayout::Conv { cout: spec.cout, k: spec.kernel, cin: spec.cin };
        let weight = Param::uniform(format!("{name}.weight"), layout, bound, ParamKind::Weight, rng);
        let bias = bias.then(|| Param::uniform(format!("{name}.bias"), TorchLayout::Same(vec![spec.cout]), bound, ParamKind::NoDecay, rng));
        Conv2d { spec, algorithm: ConvAlgorithm::for_spec(&spec), weight, bias, scratch: Scratch::default() }
    }

    /// Output shape for an input shape, or an error naming both.
    pub fn out_shape(&self, x: &Tensor<T>) -> Result<[usize; 4]> {
        let (n, h, w, c) = x.nhwc()?;
        if c != self.spec.cin {
            bail!("conv {}: expected {} input channels, got shape {:?}", self.weight.name, self.spec.cin, x.shape());
        }
        if h + 2 * self.spec.padding < self.spec.kernel || w + 2 * self.spec.padding < self.spec.kernel {
            bail!("conv {}: input {:?} smaller than the kernel", self.weight.name, x.shape());
        }
        Ok([n, self.spec.out_size(h), self.spec.out_size(w), self.spec.cout])
    }

    /// The algorithm for `h x w` inputs: Winograd's filter transform does not pay for itself on
    /// maps smaller than 4x4 (such as ResNet's last stage on small images).
    fn algorithm_for(&self, h: usize, w: usize) -> ConvAlgorithm {
        if self.algorithm == ConvAlgorithm::Winograd && h * w < WINOGRAD_MIN_PIXELS {
            ConvAlgorithm::Im2colGemm
        } else {
            self.algorithm
        }
    }

    fn images_per_chunk(&self, ho: usize, wo: usize) -> usize {
        (CHUNK_PIXELS / (ho * wo).max(1)).max(1)
    }

    /// `y[n, ho, wo, cout] = conv(x[n, h, w, cin]) + bias`.
    pub fn forward(&self, x: &Tensor<T>, y: &mut Tensor<T>) -> Result<()> {
        let _t = profile::scope(|| format!("{} forward", self.weight.name.trim_end_matches(".weight")));
        let out = self.out_shape(x)?;
        y.resize(&out);
        let [_, ho, wo, cout] = out;
        let (_, h, w, cin) = x.nhwc()?;
        let per = self.images_per_chunk(ho, wo);
        let (in_len, out_len) = (h * w * cin, ho * wo * cout);
        let k = self.spec.patch_len();
        let xs = x.data();
        let bias = self.bias.as_ref().map(|b| b.value.as_slice());
        let algorithm = self.algorithm_for(h, w);
        let prepared = match algorithm {
            ConvAlgorithm::Direct => transpose(&self.weight.value, cout, k),
            ConvAlgorithm::Winograd => winograd::transform_filters(&self.weight.value, cin, cout),
            ConvAlgorithm::Im2colGemm => Vec::new(),
        };
        y.data_mut().par_chunks_mut(per * out_len).enumerate().for_each(|(ci, ychunk)| {
            let imgs = ychunk.len() / out_len;
            let xchunk = &xs[ci * per * in_len..(ci * per + imgs) * in_len];
            match algorithm {
                ConvAlgorithm::Direct => return conv_direct::forward_chunk(&self.spec, xchunk, (h, w), &prepared, bias, ychunk),
                ConvAlgorithm::Winograd => {
                    let (mut v, mut m) = (self.scratch.take(), self.scratch.take());
                    winograd::conv_chunk(xchunk, (imgs, h, w), (cin, cout), &prepared, bias, ychunk, &mut v, &mut m);
                    self.scratch.give(v);
                    self.scratch.give(m);
                    return;
                }
                ConvAlgorithm::Im2colGemm => {}
            }
            let pixels = imgs * ho * wo;
            let mut col = self.scratch.take();
            im2col(&self.spec, xchunk, imgs, h, w, &mut col);
            if let Some(b) = &self.bias {
                for row in ychunk.chunks_exact_mut(cout) {
                    row.copy_from_slice(&b.value);
                }
            }
            matmul(ychunk, &col, Layout::Normal, &self.weight.value, Layout::Transposed, (pixels, k, cout), self.bias.is_some(), false);
            self.scratch.give(col);
        });
        Ok(())
    }

    /// Accumulates dW and db from `x` and `dy`; writes dx when asked.
    pub fn backward(&mut self, x: &Tensor<T>, dy: &Tensor<T>, dx: Option<&mut Tensor<T>>) -> Result<()> {
        let _t = profile::scope(|| format!("{} backward", self.weight.name.trim_end_matches(".weight")));
        let out = self.out_shape(x)?;
        super::tensor::check_shape(&format!("conv {} output gradient", self.weight.name), dy.shape(), &out)?;
        let [_, ho, wo, cout] = out;
        let (n, h, w, cin) = x.nhwc()?;
        let per = self.images_per_chunk(ho, wo);
        let (in_len, out_len) = (h * w * cin, ho * wo * cout);
        let k = self.spec.patch_len();
        let spec = self.spec;
        let wv = &self.weight.value;
        let has_bias = self.bias.is_some();
        let algorithm = self.algorithm_for(h, w);
        let direct = algorithm == ConvAlgorithm::Direct;
        let wt = if direct { transpose(wv, cout, k) } else { Vec::new() };
        // Winograd input gradient: the same convolution of dy with the flipped filters.
        let winograd_dx = (algorithm == ConvAlgorithm::Winograd)
            .then(|| winograd::transform_filters(&winograd::flipped_weight(wv, cin, cout), cout, cin));
        let (xs, dys) = (x.data(), dy.data());
        let nchunks = n.div_ceil(per);
        // One chunk: im2col, dW += dy^T col, db += sum(dy), and dx = col2im(dy W) when wanted.
        let work = |acc: &mut Grads<T>, ci: usize, mut dxchunk: Option<&mut [T]>| {
            let imgs = per.min(n - ci * per);
            let pixels = imgs * ho * wo;
            let xchunk = &xs[ci * per * in_len..(ci * per + imgs) * in_len];
            let dychunk = &dys[ci * per * out_len..(ci * per + imgs) * out_len];
            if direct {
                return conv_direct::backward_chunk(&spec, xchunk, (h, w), dychunk, &wt, &mut acc.dw, &mut acc.db, dxchunk);
            }
            im2col(&spec, xchunk, imgs, h, w, &mut acc.col);
            matmul(&mut acc.dw, dychunk, Layout::Transposed, &acc.col, Layout::Normal, (cout, pixels, k), true, false);
            if has_bias {
                for row in dychunk.chunks_exact(cout) {
                    for (b, &g) in acc.db.iter_mut().zip(row) {
                        *b += g;
                    }
                }
            }
            if let (Some(dxc), Some(uf)) = (dxchunk.as_deref_mut(), &winograd_dx) {
                winograd::conv_chunk(dychunk, (imgs, h, w), (cout, cin), uf, None, dxc, &mut acc.col, &mut acc.aux);
                return;
            }
            if let Some(dxc) = dxchunk {
                acc.col.resize(pixels * k, T::ZERO);
                matmul(&mut acc.col, dychunk, Layout::Normal, wv, Layout::Normal, (pixels, cout, k), false, false);
                col2im(&spec, &acc.col, imgs, h, w, dxc);
            }
        };
        let scratch = &self.scratch;
        let zeroed = |len: usize| {
            let mut v = scratch.take();
            v.clear();
            v.resize(len, T::ZERO);
            v
        };
        let init = || Grads { dw: zeroed(cout * k), db: zeroed(cout), col: scratch.take(), aux: scratch.take() };
        // A fixed split into groups of consecutive chunks, summed in order: the result does not
        // depend on scheduling or on the number of threads.
        let groups = nchunks.min(REDUCTION_GROUPS);
        let bounds: Vec<usize> = (0..=groups).map(|g| g * nchunks / groups).collect();
        let mut parts: Vec<Option<&mut [T]>> = Vec::with_capacity(groups);
        match dx {
            Some(dx) => {
                dx.resize(x.shape());
                let mut rest = dx.data_mut();
                for g in 0..groups {
                    let imgs = (bounds[g + 1] * per).min(n) - bounds[g] * per;
                    let (part, tail) = rest.split_at_mut(imgs * in_len);
                    parts.push(Some(part));
                    rest = tail;
                }
            }
            None => parts.extend((0..groups).map(|_| None)),
        }
        let partials: Vec<Grads<T>> = parts
            .into_par_iter()
            .enumerate()
            .map(|(g, mut part)| {
                let mut acc = init();
                for ci in bounds[g]..bounds[g + 1] {
                    let imgs = per.min(n - ci * per);
                    let offset = (ci - bounds[g]) * per * in_len;
                    work(&mut acc, ci, part.as_deref_mut().map(|p| &mut p[offset..offset + imgs * in_len]));
                }
                acc
            })
            .collect();
        let mut partials = partials.into_iter();
        let mut total = partials.next().expect("at least one group");
        for p in partials {
            add_into(&mut total.dw, &p.dw);
            add_into(&mut total.db, &p.db);
            p.give_back(&self.scratch);
        }
        // The direct algorithm accumulates dW transposed, [patch, cout].
        if direct {
            add_into(&mut self.weight.grad, &transpose(&total.dw, k, cout));
        } else {
            add_into(&mut self.weight.grad, &total.dw);
        }
        if let Some(b) = &mut self.bias {
            add_into(&mut b.grad, &total.db);
        }
        total.give_back(&self.scratch);
        Ok(())
    }
}

/// Per-group gradient accumulators and im2col buffer, borrowed from the layer's scratch pool.
struct Grads<T> {
    dw: Vec<T>,
    db: Vec<T>,
    col: Vec<T>,
    aux: Vec<T>,
}

impl<T> Grads<T> {
    fn give_back(self, scratch: &Scratch<T>) {
        scratch.give(self.dw);
        scratch.give(self.db);
        scratch.give(self.col);
        scratch.give(self.aux);
    }
}

/// `dst += src`, element-wise.
pub(crate) fn add_into<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Unfolds `imgs` NHWC images into rows of patches `[imgs * ho * wo, kh * kw * cin]`.
fn im2col<T: Real>(spec: &ConvSpec, x: &[T], imgs: usize, h: usize, w: usize, col: &mut Vec<T>) {
    let (ho, wo, cin, kk) = (spec.out_size(h), spec.out_size(w), spec.cin, spec.kernel);
    let k = spec.patch_len();
    col.resize(imgs * ho * wo * k, T::ZERO);
    for (img, cimg) in x.chunks_exact(h * w * cin).zip(col.chunks_exact_mut(ho * wo * k)) {
        for (p, row) in cimg.chunks_exact_mut(k).enumerate() {
            let (oy, ox) = (p / wo, p % wo);
            for ky in 0..kk {
                let iy = (oy * spec.stride + ky) as isize - spec.padding as isize;
                let seg = &mut row[ky * kk * cin..(ky + 1) * kk * cin];
                if iy < 0 || iy >= h as isize {
                    seg.fill(T::ZERO);
                    continue;
                }
                for kx in 0..kk {
                    let ix = (ox * spec.stride + kx) as isize - spec.padding as isize;
                    let dst = &mut seg[kx * cin..(kx + 1) * cin];
                    if ix < 0 || ix >= w as isize {
                        dst.fill(T::ZERO);
                    } else {
                        let at = (iy as usize * w + ix as usize) * cin;
                        dst.copy_from_slice(&img[at..at + cin]);
                    }
                }
            }
        }
    }
}

/// Calls `f(output pixel, tap, input offset)` for every in-bounds tap of one image, where `tap`
/// is `ky * kernel + kx` and the input offset is where that pixel's `cin` values start.
#[inline(always)]
pub(super) fn for_each_tap(spec: &ConvSpec, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (ho, wo, kk) = (spec.out_size(h), spec.out_size(w), spec.kernel);
    for oy in 0..ho {
        for ox in 0..wo {
            for ky in 0..kk {
                let iy = (oy * spec.stride + ky) as isize - spec.padding as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                for kx in 0..kk {
                    let ix = (ox * spec.stride + kx) as isize - spec.padding as isize;
                    if ix >= 0 && ix < w as isize {
                        f(oy * wo + ox, ky * kk + kx, (iy as usize * w + ix as usize) * spec.cin);
                    }
                }
            }
        }
    }
}

/// The adjoint of `im2col`: scatter-adds patch gradients back into (overwritten) image gradients.
fn col2im<T: Real>(spec: &ConvSpec, col: &[T], imgs: usize, h: usize, w: usize, dx: &mut [T]) {
    let (cin, k) = (spec.cin, spec.patch_len());
    let patches = spec.out_size(h) * spec.out_size(w) * k;
    dx.fill(T::ZERO);
    for (dimg, cimg) in dx.chunks_exact_mut(h * w * cin).zip(col.chunks_exact(patches)).take(imgs) {
        for_each_tap(spec, h, w, |p, tap, at| {
            let from = p * k + tap * cin;
            add_into(&mut dimg[at..at + cin], &cimg[from..from + cin]);
        });
    }
}

impl<T: Real> HasParams<T> for Conv2d<T> {
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<T>)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gradcheck::{check_layer, random_tensor};
    use rand::SeedableRng;

    /// Whether an algorithm can compute this shape.
    fn supports(algorithm: ConvAlgorithm, spec: &ConvSpec) -> bool {
        algorithm != ConvAlgorithm::Winograd || (spec.kernel == 3 && spec.stride == 1 && spec.padding == 1)
    }

    /// Gradient-checks every algorithm that supports the shape and checks that they agree.
    fn check(spec: ConvSpec, bias: bool, n: usize, size: usize) {
        let x = random_tensor(&[n, size, size, spec.cin], 2);
        let mut outputs = Vec::new();
        for algorithm in
            [ConvAlgorithm::Im2colGemm, ConvAlgorithm::Direct, ConvAlgorithm::Winograd].into_iter().filter(|&a| supports(a, &spec))
        {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut conv = Conv2d::<f64>::new("c", spec, bias, &mut rng);
            conv.algorithm = algorithm;
            check_layer(&x, &mut conv, |c, x, y| c.forward(x, y).unwrap(), |c, x, _y, dy, dx| c.backward(x, dy, Some(dx)).unwrap());
            let mut y = Tensor::default();
            conv.forward(&x, &mut y).unwrap();
            outputs.push(y);
        }
        for other in &outputs[1..] {
            for (a, b) in outputs[0].data().iter().zip(other.data()) {
                assert!((a - b).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn gradients_3x3_same_padding() {
        check(ConvSpec { cin: 2, cout: 3, kernel: 3, stride: 1, padding: 1 }, true, 2, 5);
    }

    #[test]
    fn gradients_strided_no_bias() {
        check(ConvSpec { cin: 3, cout: 2, kernel: 3, stride: 2, padding: 1 }, false, 2, 6);
        check(ConvSpec { cin: 2, cout: 4, kernel: 1, stride: 2, padding: 0 }, false, 3, 5);
    }

    #[test]
    fn algorithms_follow_the_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let first = Conv2d::<f32>::new("c", ConvSpec { cin: 1, cout: 32, kernel: 3, stride: 1, padding: 1 }, true, &mut rng);
        let wide = Conv2d::<f32>::new("c", ConvSpec { cin: 32, cout: 64, kernel: 3, stride: 1, padding: 1 }, true, &mut rng);
        let strided = Conv2d::<f32>::new("c", ConvSpec { cin: 32, cout: 64, kernel: 3, stride: 2, padding: 1 }, true, &mut rng);
        assert_eq!(
            (first.algorithm, wide.algorithm, strided.algorithm),
            (ConvAlgorithm::Direct, ConvAlgorithm::Winograd, ConvAlgorithm::Im2colGemm)
        );
    }

    #[test]
    fn matches_naive_convolution() {
        let spec = ConvSpec { cin: 2, cout: 3, kernel: 3, stride: 2, padding: 1 };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let conv = Conv2d::<f64>::new("c", spec, true, &mut rng);
        let x = random_tensor(&[2, 5, 5, 2], 4);
        let mut y = Tensor::default();
        conv.forward(&x, &mut y).unwrap();
        assert_eq!(y.shape(), &[2, 3, 3, 3]);
        let b = conv.bias.as_ref().unwrap();
        for n in 0..2 {
            for oy in 0..3 {
                for ox in 0..3 {
                    for co in 0..3 {
                        let mut s = b.value[co];
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((oy * 2 + ky) as isize - 1, (ox * 2 + kx) as isize - 1);
                                if iy < 0 || ix < 0 || iy >= 5 || ix >= 5 {
                                    continue;
                                }
                                for c in 0..2 {
                                    let xv = x.data()[((n * 5 + iy as usize) * 5 + ix as usize) * 2 + c];
                                    s += xv * conv.weight.value[((co * 3 + ky) * 3 + kx) * 2 + c];
                                }
                            }
                        }
                        let got = y.data()[((n * 3 + oy) * 3 + ox) * 3 + co];
                        assert!((got - s).abs() < 1e-12);
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_channels_is_an_error_naming_the_shape() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let conv = Conv2d::<f32>::new("enc.conv1", ConvSpec { cin: 3, cout: 4, kernel: 3, stride: 1, padding: 1 }, true, &mut rng);
        let err = conv.forward(&Tensor::zeros(&[1, 4, 4, 1]), &mut Tensor::default()).unwrap_err().to_string();
        assert!(err.contains("enc.conv1") && err.contains("[1, 4, 4, 1]"), "{err}");
    }
}
