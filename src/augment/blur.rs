//! Gaussian blur with a random sigma, as a separable convolution with reflected edges.

use super::image::Image;

/// Blurs `img` with a Gaussian of standard deviation `sigma` (pixels), kernel radius 3 sigma.
pub fn gaussian_blur(img: &mut Image, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let radius = (3.0 * sigma).ceil().max(1.0) as isize;
    let weights: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f64 / (2.0 * sigma * sigma)).exp() as f32).collect();
    let total: f32 = weights.iter().sum();
    let weights: Vec<f32> = weights.iter().map(|w| w / total).collect();
    let (h, w, c) = (img.h as isize, img.w as isize, img.c);
    let reflect = |i: isize, n: isize| -> usize {
        let period = 2 * n;
        let m = i.rem_euclid(period.max(1));
        (if m >= n { period - 1 - m } else { m }) as usize
    };
    let mut tmp = vec![0.0f32; img.data.len()];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                tmp[(y * w + x) as usize * c + ch] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, wt)| wt * img.data[(y as usize * w as usize + reflect(x + k as isize - radius, w)) * c + ch])
                    .sum();
            }
        }
    }
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                img.data[(y * w + x) as usize * c + ch] = weights
                    .iter()
                    .enumerate()
                    .map(|(k, wt)| wt * tmp[(reflect(y + k as isize - radius, h) * w as usize + x as usize) * c + ch])
                    .sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_constant_images_and_spreads_a_dot() {
        let mut flat = Image { h: 5, w: 5, c: 1, data: vec![0.4; 25] };
        gaussian_blur(&mut flat, 1.0);
        assert!(flat.data.iter().all(|v| (v - 0.4).abs() < 1e-6));
        let mut dot = Image { h: 7, w: 7, c: 1, data: vec![0.0; 49] };
        dot.data[24] = 1.0;
        gaussian_blur(&mut dot, 1.0);
        assert!(dot.data[24] < 0.5 && dot.data[23] > 0.0 && (dot.data.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
}
