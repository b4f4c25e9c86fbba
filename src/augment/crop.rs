//! Random resized crop (Inception-style, as torchvision's RandomResizedCrop) and resizing, with
//! bilinear resampling.

use super::image::Image;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Crop a random region covering `scale` of the area with aspect ratio in `ratio`, then resize.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCrop {
    /// Range of the crop's area as a fraction of the image, within (0, 1].
    pub scale: (f64, f64),
    /// Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    pub ratio: (f64, f64),
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        RandomResizedCrop { scale: (0.08, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0) }
    }
}

/// A crop rectangle in pixels (top, left, height, width).
pub type Rect = (f64, f64, f64, f64);

impl RandomResizedCrop {
    /// Samples a crop rectangle for an `h x w` image (10 tries, then the largest centred crop
    /// within the ratio range, as torchvision does).
    pub fn sample(&self, h: usize, w: usize, rng: &mut impl Rng) -> Rect {
        let area = (h * w) as f64;
        let (lr0, lr1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(self.scale.0..=self.scale.1);
            let aspect = rng.random_range(lr0..=lr1).exp();
            let cw = (target * aspect).sqrt().round();
            let ch = (target / aspect).sqrt().round();
            if cw >= 1.0 && ch >= 1.0 && cw <= w as f64 && ch <= h as f64 {
                let top = rng.random_range(0..=(h - ch as usize)) as f64;
                let left = rng.random_range(0..=(w - cw as usize)) as f64;
                return (top, left, ch, cw);
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (ch, cw) = if in_ratio < self.ratio.0 {
            ((w as f64 / self.ratio.0).round(), w as f64)
        } else if in_ratio > self.ratio.1 {
            (h as f64, (h as f64 * self.ratio.1).round())
        } else {
            (h as f64, w as f64)
        };
        (((h as f64 - ch) / 2.0).floor(), ((w as f64 - cw) / 2.0).floor(), ch, cw)
    }
}

/// Resamples the region `rect` of `img` to `size x size` bilinearly (pixel centres aligned as
/// PyTorch's `align_corners=False`; edges clamped).
pub fn resize_region(img: &Image, rect: Rect, size: usize) -> Image {
    let (top, left, ch, cw) = rect;
    let (sy, sx) = (ch / size as f64, cw / size as f64);
    let mut out = Image { h: size, w: size, c: img.c, data: vec![0.0; size * size * img.c] };
    let clamp = |v: f64, hi: usize| v.clamp(0.0, (hi - 1) as f64);
    for oy in 0..size {
        let y = clamp(top + (oy as f64 + 0.5) * sy - 0.5, img.h);
        let (y0, fy) = (y.floor() as usize, (y - y.floor()) as f32);
        let y1 = (y0 + 1).min(img.h - 1);
        for ox in 0..size {
            let x = clamp(left + (ox as f64 + 0.5) * sx - 0.5, img.w);
            let (x0, fx) = (x.floor() as usize, (x - x.floor()) as f32);
            let x1 = (x0 + 1).min(img.w - 1);
            for c in 0..img.c {
                let at = |yy: usize, xx: usize| img.data[(yy * img.w + xx) * img.c + c];
                let top_row = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom_row = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                out.data[(oy * size + ox) * img.c + c] = top_row * (1.0 - fy) + bottom_row * fy;
            }
        }
    }
    out
}

/// The whole image resized to `size x size`.
pub fn resize(img: &Image, size: usize) -> Image {
    resize_region(img, (0.0, 0.0, img.h as f64, img.w as f64), size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn crops_stay_inside_and_respect_scale() {
        let crop = RandomResizedCrop { scale: (0.3, 1.0), ratio: (0.75, 4.0 / 3.0) };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for _ in 0..500 {
            let (t, l, h, w) = crop.sample(28, 28, &mut rng);
            assert!(t >= 0.0 && l >= 0.0 && t + h <= 28.0 && l + w <= 28.0);
            let frac = h * w / 784.0;
            assert!(frac > 0.25 && frac <= 1.0, "{frac}");
        }
    }

    #[test]
    fn identity_resize_and_downscale_average() {
        let img = Image { h: 2, w: 2, c: 1, data: vec![0.0, 1.0, 1.0, 0.0] };
        assert_eq!(resize(&img, 2), img);
        let one = resize(&img, 1);
        assert!((one.data[0] - 0.5).abs() < 1e-6);
    }
}
