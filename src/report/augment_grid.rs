//! The augmentation grid: one row per image, its evaluation view first, then random training views.

use crate::augment::pipeline::to_u8;
use crate::augment::AugmentConfig;
use crate::data::Dataset;
use crate::nn::Tensor;
use anyhow::{bail, Result};

/// PNG of the first images of `ds` (rows), each as its evaluation view and then `views` random
/// views (views 2k and 2k+1 are the pair pre-training draws for that image in epoch k), each
/// pixel drawn as a `zoom` x `zoom` block.
pub fn augment_grid(aug: &AugmentConfig, ds: &Dataset, seed: u64, views: usize, zoom: usize) -> Result<Vec<u8>> {
    if ds.is_empty() || views == 0 || zoom == 0 || zoom > 32 {
        bail!("augmentation grid: needs at least one image and one view, and a zoom between 1 and 32");
    }
    let (s, c, z) = (aug.size, ds.channels, zoom);
    // Tiles of zoom * size pixels (nearest neighbour), with gutters of 2 * zoom.
    let (tile, pad) = (s * z, 2 * z);
    let (cols, rows) = (views + 1, ds.len());
    let (w, h) = (cols * (tile + pad) + pad, rows * (tile + pad) + pad);
    let mut canvas = vec![255u8; w * h * 3];
    let mut paste = |row: usize, col: usize, view: &[f32]| {
        for y in 0..tile {
            for x in 0..tile {
                let p = (y / z * s + x / z) * c;
                let rgb = if c == 3 { [view[p], view[p + 1], view[p + 2]] } else { [view[p]; 3] };
                let at = ((pad + row * (tile + pad) + y) * w + pad + col * (tile + pad) + x) * 3;
                for k in 0..3 {
                    canvas[at + k] = to_u8(rgb[k]);
                }
            }
        }
    };
    let len = s * s * c;
    let mut eval = Tensor::default();
    aug.eval_batch(ds, 0, rows, &mut eval);
    for i in 0..rows {
        paste(i, 0, &eval.data()[i * len..(i + 1) * len]);
    }
    let indices: Vec<usize> = (0..rows).collect();
    let mut pair = Tensor::default();
    for epoch in 0..views.div_ceil(2) {
        aug.pair_batch(ds, &indices, seed, epoch as u64, &mut pair);
        for v in 0..2 {
            let col = 1 + 2 * epoch + v;
            if col > views {
                break;
            }
            for i in 0..rows {
                let r = v * rows + i;
                paste(i, col, &pair.data()[r * len..(r + 1) * len]);
            }
        }
    }
    crate::io::png_rgb(&canvas, w as u32, h as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Preset;

    #[test]
    fn grid_has_a_tile_per_view_and_rejects_empty_requests() {
        let pixels: Vec<u8> = (0..3 * 28 * 28).map(|i| (i % 251) as u8).collect();
        let ds = Dataset::new(pixels, 28, 28, 1, None).unwrap();
        let aug = Preset::Mnist.config(24);
        let png = augment_grid(&aug, &ds, 1, 4, 2).unwrap();
        let img = image::load_from_memory(&png).unwrap();
        // 5 columns and 3 rows of 48-pixel tiles with 4-pixel gutters.
        assert_eq!((img.width(), img.height()), (5 * 52 + 4, 3 * 52 + 4));
        assert!(augment_grid(&aug, &ds, 1, 0, 2).is_err());
        assert!(augment_grid(&aug, &ds.take(0), 1, 2, 2).is_err());
    }
}
