//! Horizontal flip.

use super::image::Image;

/// Mirrors the image left to right in place.
pub fn flip_horizontal(img: &mut Image) {
    let (w, c) = (img.w, img.c);
    for row in img.data.chunks_exact_mut(w * c) {
        for x in 0..w / 2 {
            for ch in 0..c {
                row.swap(x * c + ch, (w - 1 - x) * c + ch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_rows_keeping_channels() {
        let mut img = Image { h: 1, w: 3, c: 2, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] };
        flip_horizontal(&mut img);
        assert_eq!(img.data, vec![5.0, 6.0, 3.0, 4.0, 1.0, 2.0]);
    }
}
