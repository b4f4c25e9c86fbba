//! The IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed), validated.

use super::dataset::Dataset;
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// Largest file we accept after decompression (guards against gzip bombs and overflowing sizes).
const MAX_BYTES: u64 = 4 << 30;

/// Reads a file, decompressing it when it starts with the gzip magic.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    maybe_gunzip(raw, &path.display().to_string())
}

/// Decompresses `raw` when it starts with the gzip magic; `name` is for errors.
pub fn maybe_gunzip(raw: Vec<u8>, name: &str) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    GzDecoder::new(&raw[..])
        .take(MAX_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| anyhow::anyhow!("{name}: corrupt or truncated gzip data ({e})"))?;
    Ok(out)
}

/// A parsed IDX file: dimensions and unsigned-byte data.
#[derive(Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// The values.
    pub data: Vec<u8>,
}

/// Parses IDX bytes (unsigned-byte type only, which MNIST-style data uses); `name` is for errors.
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<Idx> {
    if bytes.len() < 4 {
        bail!("{name}: too short for an IDX header ({} bytes)", bytes.len());
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        bail!("{name}: not an IDX file (magic number {:02x}{:02x}{:02x}{:02x})", bytes[0], bytes[1], bytes[2], bytes[3]);
    }
    if bytes[2] != 0x08 {
        bail!("{name}: IDX element type 0x{:02x} is not supported (only unsigned bytes, 0x08)", bytes[2]);
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        bail!("{name}: IDX with {ndim} dimensions is not supported (1 to 4)");
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        bail!("{name}: truncated IDX header");
    }
    let dims: Vec<usize> =
        (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize).collect();
    let count = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).filter(|&c| c as u64 <= MAX_BYTES);
    let Some(count) = count else { bail!("{name}: IDX dimensions {dims:?} are too large") };
    let body = &bytes[header..];
    if body.len() < count {
        bail!("{name}: truncated: dimensions {dims:?} need {count} bytes of data, found {}", body.len());
    }
    if body.len() > count {
        bail!("{name}: {} unexpected bytes after the data for dimensions {dims:?}", body.len() - count);
    }
    Ok(Idx { dims, data: body.to_vec() })
}

/// Loads an image file (`[n, rows, cols]`) and optionally its label file (`[n]`) as a dataset.
pub fn load_idx_pair(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let name = images.display().to_string();
    let img = parse_idx(&read_maybe_gzip(images)?, &name)?;
    let (h, w, c) = match img.dims[..] {
        [_, h, w] => (h, w, 1),
        [_, h, w, c] if c == 1 || c == 3 => (h, w, c),
        _ => bail!("{name}: expected images [n, rows, cols], got dimensions {:?}", img.dims),
    };
    if h == 0 || w == 0 {
        bail!("{name}: images of size {h}x{w}");
    }
    let labels = match labels {
        Some(lp) => {
            let lname = lp.display().to_string();
            let lab = parse_idx(&read_maybe_gzip(lp)?, &lname)?;
            if lab.dims.len() != 1 {
                bail!("{lname}: expected labels [n], got dimensions {:?}", lab.dims);
            }
            if lab.dims[0] != img.dims[0] {
                bail!("{lname}: {} labels, but {name} has {} images", lab.dims[0], img.dims[0]);
            }
            Some(lab.data.into_iter().map(u16::from).collect())
        }
        None => None,
    };
    Dataset::new(img.data, h, w, c, labels).with_context(|| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDX bytes for `n` images of 2x3.
    pub(crate) fn idx_images(n: u32) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 3];
        for d in [n, 2, 3] {
            b.extend(d.to_be_bytes());
        }
        b.extend((0..n * 6).map(|v| v as u8));
        b
    }

    #[test]
    fn parses_valid_and_rejects_bad_headers() {
        let ok = parse_idx(&idx_images(2), "f").unwrap();
        assert_eq!(ok.dims, vec![2, 2, 3]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "too short"),
            (vec![0x1f, 0x8b, 8, 3, 0, 0, 0, 0], "not an IDX"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "not supported"),
            (vec![0, 0, 8, 9], "9 dimensions"),
            (vec![0, 0, 8, 2, 0, 0, 0, 1], "truncated IDX header"),
            (
                {
                    let mut b = idx_images(2);
                    b.pop();
                    b
                },
                "truncated: dimensions",
            ),
            (
                {
                    let mut b = idx_images(2);
                    b.push(0);
                    b
                },
                "unexpected bytes",
            ),
            (vec![0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255], "too large"),
        ];
        for (bytes, want) in cases {
            let err = parse_idx(&bytes, "file.idx").unwrap_err().to_string();
            assert!(err.starts_with("file.idx: ") && err.contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn gzip_round_trip_and_corruption() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&idx_images(4)).unwrap();
        let gz = enc.finish().unwrap();
        let p = dir.path().join("img.gz");
        std::fs::write(&p, &gz).unwrap();
        let ds = load_idx_pair(&p, None).unwrap();
        assert_eq!((ds.len(), ds.height, ds.width), (4, 2, 3));
        std::fs::write(&p, &gz[..gz.len() / 2]).unwrap();
        let err = load_idx_pair(&p, None).unwrap_err().to_string();
        assert!(err.contains("img.gz") && err.contains("gzip"), "{err}");
    }

    #[test]
    fn label_count_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let (ip, lp) = (dir.path().join("i"), dir.path().join("l"));
        std::fs::write(&ip, idx_images(3)).unwrap();
        std::fs::write(&lp, [0, 0, 8, 1, 0, 0, 0, 2, 1, 2]).unwrap();
        let err = load_idx_pair(&ip, Some(&lp)).unwrap_err().to_string();
        assert!(err.contains("2 labels") && err.contains("3 images"), "{err}");
    }
}
