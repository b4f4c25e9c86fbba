//! A float image (HWC, values in [0, 1]) that the transforms work on.

/// An image being augmented: `[h, w, c]` row-major, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels (1 or 3).
    pub c: usize,
    /// Pixel values.
    pub data: Vec<f32>,
}

impl Image {
    /// Converts u8 pixels (HWC) to [0, 1].
    pub fn from_u8(pixels: &[u8], h: usize, w: usize, c: usize) -> Self {
        Image { h, w, c, data: pixels.iter().map(|&v| v as f32 / 255.0).collect() }
    }

    /// Luma (ITU-R 601, as torchvision) of pixel `p`; the value itself for grayscale.
    pub fn luma(&self, p: usize) -> f32 {
        let px = &self.data[p * self.c..(p + 1) * self.c];
        if self.c == 3 {
            0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2]
        } else {
            px[0]
        }
    }

    /// Clamps every value into [0, 1].
    pub fn clamp(&mut self) {
        for v in &mut self.data {
            *v = v.clamp(0.0, 1.0);
        }
    }
}
