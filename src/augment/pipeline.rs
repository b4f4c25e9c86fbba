//! The augmentation pipeline: from u8 images to normalised float views, two independent random
//! views per image, each drawn from its own random stream derived from (seed, epoch, image, view).

use super::blur::gaussian_blur;
use super::color::{to_grayscale, ColorJitter};
use super::crop::{resize, resize_region, RandomResizedCrop};
use super::flip::flip_horizontal;
use super::image::Image;
use super::solarize::solarize;
use crate::data::Dataset;
use crate::nn::Tensor;
use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Named starting points for the augmentation settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// The SimCLR paper's recipe for RGB images: crop 0.08-1, flip, strong colour jitter (p 0.8),
    /// grayscale (p 0.2), blur (p 0.5).
    Simclr,
    /// For small grayscale images: crop 0.3-1, flip, brightness/contrast 0.4 (p 0.8).
    Mnist,
    /// Identity: each view is the whole image resized.
    None,
}

/// How evaluation sees an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvalView {
    /// The whole image resized to the view size.
    Resize,
    /// The centre `size x size` region (resized when the image is smaller).
    CenterCrop,
}

/// Every augmentation parameter. Start from a preset and override fields in the run config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentConfig {
    /// The preset these values started from (informational).
    pub preset: Preset,
    /// View side length in pixels.
    pub size: usize,
    /// Whether to random-resized-crop (else the whole image is resized).
    pub crop: bool,
    /// Crop area range, fractions of the image in (0, 1].
    pub crop_scale: (f64, f64),
    /// Crop aspect-ratio range.
    pub crop_ratio: (f64, f64),
    /// Probability of a horizontal flip.
    pub flip_p: f64,
    /// Probability of colour jitter.
    pub jitter_p: f64,
    /// Brightness strength.
    pub brightness: f64,
    /// Contrast strength.
    pub contrast: f64,
    /// Saturation strength (RGB only).
    pub saturation: f64,
    /// Hue strength, at most 0.5 (RGB only).
    pub hue: f64,
    /// Probability of conversion to grayscale (RGB only).
    pub grayscale_p: f64,
    /// Probability of Gaussian blur.
    pub blur_p: f64,
    /// Blur sigma range, pixels.
    pub blur_sigma: (f64, f64),
    /// Probability of solarisation.
    pub solarize_p: f64,
    /// Solarisation threshold in [0, 1].
    pub solarize_threshold: f64,
    /// What evaluation (probe, kNN, embeddings) sees.
    pub eval_view: EvalView,
}

impl Preset {
    /// The settings of this preset for `size x size` views.
    pub fn config(self, size: usize) -> AugmentConfig {
        let base = AugmentConfig {
            preset: self,
            size,
            crop: true,
            crop_scale: (0.08, 1.0),
            crop_ratio: (0.75, 4.0 / 3.0),
            flip_p: 0.5,
            jitter_p: 0.8,
            brightness: 0.8,
            contrast: 0.8,
            saturation: 0.8,
            hue: 0.2,
            grayscale_p: 0.2,
            blur_p: 0.5,
            blur_sigma: (0.1, 2.0),
            solarize_p: 0.0,
            solarize_threshold: 0.5,
            eval_view: EvalView::Resize,
        };
        match self {
            Preset::Simclr => base,
            Preset::Mnist => AugmentConfig {
                crop_scale: (0.3, 1.0),
                brightness: 0.4,
                contrast: 0.4,
                saturation: 0.0,
                hue: 0.0,
                grayscale_p: 0.0,
                blur_p: 0.0,
                ..base
            },
            Preset::None => AugmentConfig { crop: false, flip_p: 0.0, jitter_p: 0.0, grayscale_p: 0.0, blur_p: 0.0, ..base },
        }
    }
}

fn check_p(name: &str, p: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&p) {
        bail!("augment.{name} must be a probability in [0, 1], got {p}");
    }
    Ok(())
}

fn check_range(name: &str, (lo, hi): (f64, f64), min_exclusive: f64, max: f64) -> Result<()> {
    if !(lo > min_exclusive && lo <= hi && hi <= max) {
        bail!("augment.{name} must be [low, high] with {min_exclusive} < low <= high <= {max}, got [{lo}, {hi}]");
    }
    Ok(())
}

impl AugmentConfig {
    /// Rejects impossible settings, naming the option.
    pub fn validate(&self) -> Result<()> {
        if self.size < 4 || self.size > 1024 {
            bail!("augment.size must be between 4 and 1024 pixels, got {}", self.size);
        }
        check_range("crop_scale", self.crop_scale, 0.0, 1.0)?;
        check_range("crop_ratio", self.crop_ratio, 0.0, f64::INFINITY)?;
        check_range("blur_sigma", self.blur_sigma, 0.0, 100.0)?;
        for (n, p) in [
            ("flip_p", self.flip_p),
            ("jitter_p", self.jitter_p),
            ("grayscale_p", self.grayscale_p),
            ("blur_p", self.blur_p),
            ("solarize_p", self.solarize_p),
            ("solarize_threshold", self.solarize_threshold),
        ] {
            check_p(n, p)?;
        }
        for (n, s) in [("brightness", self.brightness), ("contrast", self.contrast), ("saturation", self.saturation)] {
            if !(s >= 0.0 && s.is_finite()) {
                bail!("augment.{n} must be >= 0, got {s}");
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            bail!("augment.hue must be in [0, 0.5], got {}", self.hue);
        }
        Ok(())
    }

    /// One random view of an image, in [0, 1].
    pub fn random_view(&self, img: &Image, rng: &mut impl Rng) -> Image {
        let mut v = if self.crop {
            let crop = RandomResizedCrop { scale: self.crop_scale, ratio: self.crop_ratio };
            resize_region(img, crop.sample(img.h, img.w, rng), self.size)
        } else {
            resize(img, self.size)
        };
        if rng.random_bool(self.flip_p) {
            flip_horizontal(&mut v);
        }
        if rng.random_bool(self.jitter_p) {
            ColorJitter { brightness: self.brightness, contrast: self.contrast, saturation: self.saturation, hue: self.hue }
                .apply(&mut v, rng);
        }
        if rng.random_bool(self.grayscale_p) {
            to_grayscale(&mut v);
        }
        if rng.random_bool(self.blur_p) {
            gaussian_blur(&mut v, rng.random_range(self.blur_sigma.0..=self.blur_sigma.1));
        }
        if rng.random_bool(self.solarize_p) {
            solarize(&mut v, self.solarize_threshold as f32);
        }
        v
    }

    /// The deterministic evaluation view of an image, in [0, 1].
    pub fn eval_image(&self, img: &Image) -> Image {
        match self.eval_view {
            EvalView::CenterCrop if img.h >= self.size && img.w >= self.size => {
                let (top, left) = ((img.h - self.size) / 2, (img.w - self.size) / 2);
                resize_region(img, (top as f64, left as f64, self.size as f64, self.size as f64), self.size)
            }
            _ => resize(img, self.size),
        }
    }

    /// `[2N, size, size, c]` views of the images at `indices`: rows `0..N` are the first view of
    /// each image, rows `N..2N` the second. Every view has its own random stream.
    pub fn pair_batch(&self, ds: &Dataset, indices: &[usize], seed: u64, epoch: u64, out: &mut Tensor<f32>) {
        let n = indices.len();
        let (s, c) = (self.size, ds.channels);
        out.resize(&[2 * n, s, s, c]);
        out.data_mut().par_chunks_mut(s * s * c).enumerate().for_each(|(row, dst)| {
            let (view, i) = (row / n, row % n);
            let index = indices[i];
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, epoch, index as u64, view as u64));
            let img = Image::from_u8(ds.image(index), ds.height, ds.width, ds.channels);
            normalise_into(&self.random_view(&img, &mut rng), dst);
        });
    }

    /// `[len, size, size, c]` evaluation views of images `start..start + len`.
    pub fn eval_batch(&self, ds: &Dataset, start: usize, len: usize, out: &mut Tensor<f32>) {
        let (s, c) = (self.size, ds.channels);
        out.resize(&[len, s, s, c]);
        out.data_mut().par_chunks_mut(s * s * c).enumerate().for_each(|(i, dst)| {
            let img = Image::from_u8(ds.image(start + i), ds.height, ds.width, ds.channels);
            normalise_into(&self.eval_image(&img), dst);
        });
    }
}

/// Maps [0, 1] to the network's input range [-1, 1].
fn normalise_into(img: &Image, dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(&img.data) {
        *d = 2.0 * v - 1.0;
    }
}

/// Maps a network input in [-1, 1] back to a u8 pixel (for pictures of views).
pub fn to_u8(v: f32) -> u8 {
    ((v + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// A seed for the random stream of one (run seed, epoch, image, view), by SplitMix64 mixing.
pub fn stream_seed(seed: u64, epoch: u64, index: u64, view: u64) -> u64 {
    [epoch, index, view].iter().fold(mix(seed), |acc, &v| mix(acc ^ mix(v.wrapping_add(0x9e37_79b9_7f4a_7c15))))
}

/// SplitMix64's finaliser.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::source::embedded_sample;

    #[test]
    fn views_differ_per_image_and_view_and_repeat_per_seed() {
        let ds = embedded_sample().unwrap().train.take(8);
        let cfg = Preset::Mnist.config(24);
        let mut a = Tensor::default();
        let mut b = Tensor::default();
        let idx = [3, 3, 5, 6];
        cfg.pair_batch(&ds, &idx, 7, 0, &mut a);
        cfg.pair_batch(&ds, &idx, 7, 0, &mut b);
        assert_eq!(a, b, "same seed, same views");
        assert_eq!(a.shape(), &[8, 24, 24, 1]);
        let view = |t: &Tensor<f32>, r: usize| t.data()[r * 576..(r + 1) * 576].to_vec();
        assert_ne!(view(&a, 0), view(&a, 4), "two views of one image differ");
        assert_eq!(view(&a, 0), view(&a, 1), "the stream depends on the image, not its batch slot");
        cfg.pair_batch(&ds, &idx, 8, 0, &mut b);
        assert_ne!(a, b, "another seed, other views");
        cfg.pair_batch(&ds, &idx, 7, 1, &mut b);
        assert_ne!(a, b, "another epoch, other views");
        assert!(a.data().iter().all(|v| (-1.0..=1.0).contains(v)));
    }

    #[test]
    fn none_preset_and_eval_view_are_deterministic_resizes() {
        let ds = embedded_sample().unwrap().train.take(2);
        let cfg = Preset::None.config(28);
        let mut a = Tensor::default();
        cfg.pair_batch(&ds, &[0], 1, 0, &mut a);
        let mut e = Tensor::default();
        cfg.eval_batch(&ds, 0, 1, &mut e);
        assert_eq!(&a.data()[..784], e.data());
        assert_eq!(to_u8(e.data()[100]), ds.image(0)[100]);
    }

    #[test]
    fn validation_names_the_option() {
        let mut cfg = Preset::Simclr.config(32);
        cfg.crop_scale = (0.0, 1.0);
        assert!(cfg.validate().unwrap_err().to_string().contains("augment.crop_scale"));
        cfg = Preset::Simclr.config(32);
        cfg.flip_p = 1.5;
        assert!(cfg.validate().unwrap_err().to_string().contains("augment.flip_p"));
        assert!(Preset::Simclr.config(32).validate().is_ok());
    }
}
