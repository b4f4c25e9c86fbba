//! Solarisation: inverts values at or above a threshold.

use super::image::Image;

/// Replaces `v` by `1 - v` wherever `v >= threshold`.
pub fn solarize(img: &mut Image, threshold: f32) {
    for v in &mut img.data {
        if *v >= threshold {
            *v = 1.0 - *v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverts_bright_values_only() {
        let mut img = Image { h: 1, w: 3, c: 1, data: vec![0.2, 0.5, 0.9] };
        solarize(&mut img, 0.5);
        assert_eq!(img.data, vec![0.2, 0.5, 0.100000024]);
    }
}
