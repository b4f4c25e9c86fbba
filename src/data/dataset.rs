//! An in-memory image dataset: u8 pixels, HWC per image, optional labels and class names.

use anyhow::{bail, Result};

/// Images of one size and channel count, decoded once, with optional labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Pixels, `[n, height, width, channels]` row-major.
    pub pixels: Vec<u8>,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// One class index per image, when known.
    pub labels: Option<Vec<u16>>,
    /// Class names, when known (index = label).
    pub class_names: Option<Vec<String>>,
}

impl Dataset {
    /// Builds a dataset, checking that the buffer and labels agree with the shape.
    pub fn new(pixels: Vec<u8>, height: usize, width: usize, channels: usize, labels: Option<Vec<u16>>) -> Result<Self> {
        let per = height * width * channels;
        if per == 0 || !pixels.len().is_multiple_of(per) {
            bail!("image buffer of {} bytes does not hold whole {height}x{width}x{channels} images", pixels.len());
        }
        let n = pixels.len() / per;
        if let Some(l) = &labels {
            if l.len() != n {
                bail!("{} labels for {n} images", l.len());
            }
        }
        Ok(Dataset { pixels, height, width, channels, labels, class_names: None })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / self.image_len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Bytes per image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `i`, HWC.
    pub fn image(&self, i: usize) -> &[u8] {
        let l = self.image_len();
        &self.pixels[i * l..(i + 1) * l]
    }

    /// Number of classes (1 + largest label), when labelled.
    pub fn num_classes(&self) -> Option<usize> {
        let from_names = self.class_names.as_ref().map(|c| c.len());
        let from_labels = self.labels.as_ref().map(|l| l.iter().map(|&v| v as usize + 1).max().unwrap_or(0));
        from_names.max(from_labels)
    }

    /// The first `n` images (all when `n` is larger).
    pub fn take(&self, n: usize) -> Dataset {
        self.select(&(0..n.min(self.len())).collect::<Vec<_>>())
    }

    /// The images at `indices`, in that order.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let pixels = indices.iter().flat_map(|&i| self.image(i).iter().copied()).collect();
        let labels = self.labels.as_ref().map(|l| indices.iter().map(|&i| l[i]).collect());
        Dataset { pixels, height: self.height, width: self.width, channels: self.channels, labels, class_names: self.class_names.clone() }
    }
}
