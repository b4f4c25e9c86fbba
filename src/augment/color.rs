//! Colour transforms: jitter (brightness, contrast, saturation, hue in random order) and
//! grayscale, following torchvision's definitions.

use super::image::Image;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Colour jitter strengths: each factor is drawn from `[max(0, 1 - s), 1 + s]` (hue: a shift in
/// `[-hue, hue]` turns). Saturation and hue are skipped for grayscale images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColorJitter {
    /// Brightness strength.
    pub brightness: f64,
    /// Contrast strength.
    pub contrast: f64,
    /// Saturation strength.
    pub saturation: f64,
    /// Hue shift, at most 0.5.
    pub hue: f64,
}

fn factor(strength: f64, rng: &mut impl Rng) -> f32 {
    rng.random_range((1.0 - strength).max(0.0)..=1.0 + strength) as f32
}

fn blend(img: &mut Image, other: impl Fn(usize) -> f32, f: f32) {
    let c = img.c;
    for p in 0..img.h * img.w {
        let o = other(p);
        for v in &mut img.data[p * c..(p + 1) * c] {
            *v = (f * *v + (1.0 - f) * o).clamp(0.0, 1.0);
        }
    }
}

impl ColorJitter {
    /// Applies the four adjustments in a random order.
    pub fn apply(&self, img: &mut Image, rng: &mut impl Rng) {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        for op in order {
            match op {
                0 if self.brightness > 0.0 => {
                    let f = factor(self.brightness, rng);
                    blend(img, |_| 0.0, f);
                }
                1 if self.contrast > 0.0 => {
                    let f = factor(self.contrast, rng);
                    let mean = (0..img.h * img.w).map(|p| img.luma(p)).sum::<f32>() / (img.h * img.w) as f32;
                    blend(img, |_| mean, f);
                }
                2 if self.saturation > 0.0 && img.c == 3 => {
                    let f = factor(self.saturation, rng);
                    let gray: Vec<f32> = (0..img.h * img.w).map(|p| img.luma(p)).collect();
                    blend(img, |p| gray[p], f);
                }
                3 if self.hue > 0.0 && img.c == 3 => {
                    let shift = rng.random_range(-self.hue..=self.hue) as f32;
                    for px in img.data.chunks_exact_mut(3) {
                        let (h, s, v) = rgb_to_hsv(px[0], px[1], px[2]);
                        let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
                        px.copy_from_slice(&[r, g, b]);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Replaces every channel by the luma (no-op for grayscale images).
pub fn to_grayscale(img: &mut Image) {
    if img.c == 3 {
        for p in 0..img.h * img.w {
            let l = img.luma(p);
            img.data[p * 3..p * 3 + 3].fill(l);
        }
    }
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let d = max - min;
    let h = if d == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / d).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / d + 2.0) / 6.0
    } else {
        ((r - g) / d + 4.0) / 6.0
    };
    let s = if max == 0.0 { 0.0 } else { d / max };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let h6 = h * 6.0;
    let i = h6.floor();
    let f = h6 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    match (i as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn hsv_round_trip() {
        for (r, g, b) in [(0.2, 0.5, 0.9), (1.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.9, 0.8, 0.1)] {
            let (h, s, v) = rgb_to_hsv(r, g, b);
            let (r2, g2, b2) = hsv_to_rgb(h, s, v);
            assert!((r - r2).abs() < 1e-5 && (g - g2).abs() < 1e-5 && (b - b2).abs() < 1e-5);
        }
    }

    #[test]
    fn jitter_stays_in_range_and_zero_strength_is_identity() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let img = Image { h: 2, w: 2, c: 3, data: (0..12).map(|i| i as f32 / 11.0).collect() };
        let mut a = img.clone();
        ColorJitter { brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 }.apply(&mut a, &mut rng);
        assert!(a.data.iter().all(|v| (0.0..=1.0).contains(v)) && a != img);
        let mut b = img.clone();
        ColorJitter { brightness: 0.0, contrast: 0.0, saturation: 0.0, hue: 0.0 }.apply(&mut b, &mut rng);
        assert_eq!(b, img);
        to_grayscale(&mut b);
        assert_eq!(b.data[0], b.data[1]);
    }
}
