//! Where data comes from: built-in datasets by name (an explicit folder, Debian's dataset
//! packages, the user cache, or the embedded sample), image folders, and CIFAR-10 batches.

use super::cifar::load_cifar10;
use super::dataset::Dataset;
use super::download::{download, remote};
use super::folder::load_folder;
use super::idx::{load_idx_pair, parse_idx};
use anyhow::{bail, Context, Result};
use flate2::read::GzDecoder;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// A dataset's origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// Fashion-MNIST (IDX files).
    FashionMnist,
    /// MNIST (IDX files).
    Mnist,
    /// The Fashion-MNIST sample embedded in the binary (3,000 train and 1,000 test images).
    FashionMnistSample,
    /// CIFAR-10 binary batches in `path`.
    Cifar10,
    /// A tree of PNG/JPEG images at `path` (subfolders are classes).
    Folder,
}

/// Fashion-MNIST's class names.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The loaded train and (when available) test splits, and where they came from.
#[derive(Debug)]
pub struct Splits {
    /// Training images.
    pub train: Dataset,
    /// Test images, when the source has a test split.
    pub test: Option<Dataset>,
    /// A human-readable origin, e.g. the folder the files were read from.
    pub origin: String,
}

const IDX_FILES: [&str; 4] = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

/// The file `stem` in `dir`, gzip-compressed or plain.
fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    [format!("{stem}.gz"), stem.to_string()].into_iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// The user cache folder for a dataset: `$XDG_CACHE_HOME/simclr/<name>` or `~/.cache/simclr/<name>`.
pub fn cache_dir(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("simclr").join(name))
}

fn load_idx_dir(dir: &Path, class_names: Option<&[&str]>) -> Result<Splits> {
    let f = |stem| find_file(dir, stem).with_context(|| format!("{}: missing {stem}(.gz)", dir.display()));
    let mut train = load_idx_pair(&f(IDX_FILES[0])?, Some(&f(IDX_FILES[1])?))?;
    let mut test = load_idx_pair(&f(IDX_FILES[2])?, Some(&f(IDX_FILES[3])?))?;
    if let Some(names) = class_names {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        train.class_names = Some(names.clone());
        test.class_names = Some(names);
    }
    Ok(Splits { train, test: Some(test), origin: dir.display().to_string() })
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// The embedded Fashion-MNIST sample.
pub fn embedded_sample() -> Result<Splits> {
    const FILES: [&[u8]; 4] = [
        include_bytes!("../../data/fashion-mnist-sample/train-images-idx3-ubyte.gz"),
        include_bytes!("../../data/fashion-mnist-sample/train-labels-idx1-ubyte.gz"),
        include_bytes!("../../data/fashion-mnist-sample/t10k-images-idx3-ubyte.gz"),
        include_bytes!("../../data/fashion-mnist-sample/t10k-labels-idx1-ubyte.gz"),
    ];
    let parse = |i: usize| parse_idx(&gunzip(FILES[i])?, IDX_FILES[i]);
    let names: Vec<String> = FASHION_CLASSES.iter().map(|s| s.to_string()).collect();
    let split = |img: usize| -> Result<Dataset> {
        let (images, labels) = (parse(img)?, parse(img + 1)?);
        let mut ds = Dataset::new(images.data, images.dims[1], images.dims[2], 1, Some(labels.data.into_iter().map(u16::from).collect()))?;
        ds.class_names = Some(names.clone());
        Ok(ds)
    };
    Ok(Splits {
        train: split(0)?,
        test: Some(split(2)?),
        origin: "the embedded Fashion-MNIST sample (3,000 train / 1,000 test images)".into(),
    })
}

/// How far `load` may go to find a built-in dataset.
#[derive(Clone, Copy, Debug)]
pub struct Fallbacks {
    /// Download into the user cache from the canonical mirrors when no local copy exists.
    pub download: bool,
    /// Let Fashion-MNIST fall back to the embedded sample when nothing else works.
    pub sample: bool,
}

/// Loads a dataset. `path` is the explicit location (required for folders and CIFAR-10). For
/// built-in IDX datasets without a path the search order is `/usr/share/datasets/<name>/`, the
/// user cache, a download into the user cache, then (Fashion-MNIST only) the embedded sample.
pub fn load(name: &DatasetName, path: Option<&Path>, size: usize, channels: usize, fallbacks: Fallbacks) -> Result<Splits> {
    match name {
        DatasetName::FashionMnist | DatasetName::Mnist => {
            let (slug, package, classes) = match name {
                DatasetName::FashionMnist => ("fashion-mnist", "dataset-fashion-mnist", Some(&FASHION_CLASSES[..])),
                _ => ("mnist", "dataset-mnist", None),
            };
            if let Some(dir) = path {
                return load_idx_dir(dir, classes);
            }
            let candidates: Vec<PathBuf> =
                [Some(PathBuf::from("/usr/share/datasets").join(slug)), cache_dir(slug)].into_iter().flatten().collect();
            for dir in &candidates {
                if find_file(dir, IDX_FILES[0]).is_some() {
                    return load_idx_dir(dir, classes);
                }
            }
            let mut download_error = String::new();
            if let (true, Some(cache), Some(remote)) = (fallbacks.download, cache_dir(slug), remote(slug)) {
                eprintln!("{slug} not found locally; downloading it into {}", cache.display());
                match download(&remote, &cache, std::io::stderr().is_terminal()) {
                    Ok(()) => return load_idx_dir(&cache, classes),
                    Err(e) => download_error = format!(" (download failed: {e:#})"),
                }
            }
            if fallbacks.sample && *name == DatasetName::FashionMnist {
                return embedded_sample();
            }
            let places: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "{slug} not found in {}: install it with `apt-get install {package}`, or put {} (.gz or plain) in one of those folders, or pass --data-dir{download_error}",
                places.join(" or "),
                IDX_FILES.join(", ")
            )
        }
        DatasetName::FashionMnistSample => embedded_sample(),
        DatasetName::Cifar10 => {
            let dir = path.context("dataset cifar10 needs --data-dir (the folder with data_batch_1.bin ... test_batch.bin)")?;
            let train_files: Vec<PathBuf> = (1..=5).map(|i| dir.join(format!("data_batch_{i}.bin"))).filter(|p| p.is_file()).collect();
            if train_files.is_empty() {
                bail!("{}: no data_batch_N.bin files", dir.display());
            }
            let train = load_cifar10(&train_files.iter().map(|p| p.as_path()).collect::<Vec<_>>())?;
            let test_file = dir.join("test_batch.bin");
            let test = if test_file.is_file() { Some(load_cifar10(&[&test_file])?) } else { None };
            Ok(Splits { train, test, origin: dir.display().to_string() })
        }
        DatasetName::Folder => {
            let dir = path.context("dataset folder needs --data-dir (the image folder)")?;
            let train = load_folder(dir, size, channels)?;
            Ok(Splits { train, test: None, origin: dir.display().to_string() })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_sample_is_labelled_fashion_mnist() {
        let s = embedded_sample().unwrap();
        assert_eq!((s.train.len(), s.test.as_ref().unwrap().len()), (3000, 1000));
        assert_eq!((s.train.height, s.train.width, s.train.channels), (28, 28, 1));
        assert_eq!(s.train.num_classes(), Some(10));
    }

    #[test]
    fn missing_dataset_names_the_package_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let offline = Fallbacks { download: false, sample: false };
        let err = load(&DatasetName::Mnist, Some(dir.path()), 24, 1, offline).unwrap_err().to_string();
        assert!(err.contains("train-images-idx3-ubyte"), "{err}");
        std::env::set_var("XDG_CACHE_HOME", dir.path());
        if !Path::new("/usr/share/datasets/mnist").exists() {
            let err = load(&DatasetName::Mnist, None, 24, 1, offline).unwrap_err().to_string();
            assert!(err.contains("apt-get install dataset-mnist"), "{err}");
        }
    }
}
