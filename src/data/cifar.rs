//! CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (32x32, planar R, G, B).

use super::dataset::Dataset;
use anyhow::{bail, Context, Result};
use std::path::Path;

const SIDE: usize = 32;
const RECORD: usize = 1 + 3 * SIDE * SIDE;

/// CIFAR-10's class names.
pub const CLASSES: [&str; 10] = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Parses one binary batch into interleaved RGB images with labels; `name` is for errors.
pub fn parse_cifar10(bytes: &[u8], name: &str) -> Result<Dataset> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        bail!("{name}: {} bytes is not a whole number of CIFAR-10 records ({RECORD} bytes each)", bytes.len());
    }
    let n = bytes.len() / RECORD;
    let mut pixels = Vec::with_capacity(n * SIDE * SIDE * 3);
    let mut labels = Vec::with_capacity(n);
    for rec in bytes.chunks_exact(RECORD) {
        if rec[0] >= 10 {
            bail!("{name}: label {} is not a CIFAR-10 class (0-9)", rec[0]);
        }
        labels.push(rec[0] as u16);
        let planes = &rec[1..];
        for p in 0..SIDE * SIDE {
            pixels.extend([planes[p], planes[SIDE * SIDE + p], planes[2 * SIDE * SIDE + p]]);
        }
    }
    let mut ds = Dataset::new(pixels, SIDE, SIDE, 3, Some(labels))?;
    ds.class_names = Some(CLASSES.iter().map(|s| s.to_string()).collect());
    Ok(ds)
}

/// Loads and concatenates several binary batch files.
pub fn load_cifar10(files: &[&Path]) -> Result<Dataset> {
    let mut bytes = Vec::new();
    for f in files {
        let b = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        parse_cifar10(&b, &f.display().to_string())?;
        bytes.extend(b);
    }
    parse_cifar10(&bytes, "CIFAR-10")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_planar_rgb_and_rejects_wrong_length() {
        let mut rec = vec![7u8];
        rec.extend((0..3 * 1024).map(|i| (i / 1024) as u8 * 100));
        let ds = parse_cifar10(&rec, "b").unwrap();
        assert_eq!(ds.image(0)[..3], [0, 100, 200]);
        assert_eq!(ds.labels.unwrap(), vec![7]);
        let err = parse_cifar10(&rec[..100], "data_batch_1.bin").unwrap_err().to_string();
        assert!(err.contains("data_batch_1.bin") && err.contains("3073"), "{err}");
    }
}
