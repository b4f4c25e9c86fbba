//! Image folders: a tree of PNG/JPEG files, decoded once and resized to a fixed size. When the
//! root has subfolders, each subfolder is a class (sorted by name); otherwise it is unlabelled.

use super::dataset::Dataset;
use anyhow::{bail, Context, Result};
use image::imageops::FilterType;
use std::path::{Path, PathBuf};

fn is_image(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")).unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read image folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot list {}", dir.display()))?;
    v.sort();
    Ok(v)
}

/// Loads every PNG/JPEG under `root`, converted to `channels` (1 or 3) and resized to
/// `size x size`. Files with other extensions are ignored; an image that does not decode is an
/// error naming it.
pub fn load_folder(root: &Path, size: usize, channels: usize) -> Result<Dataset> {
    if !(channels == 1 || channels == 3) {
        bail!("image folder: channels must be 1 or 3, got {channels}");
    }
    if size == 0 {
        bail!("image folder: size must be positive");
    }
    let entries = sorted_entries(root)?;
    let classes: Vec<PathBuf> = entries.iter().filter(|p| p.is_dir()).cloned().collect();
    let mut files: Vec<(PathBuf, Option<u16>)> = Vec::new();
    if classes.is_empty() {
        files.extend(entries.into_iter().filter(|p| is_image(p)).map(|p| (p, None)));
    } else {
        if classes.len() > u16::MAX as usize {
            bail!("{}: too many class folders ({})", root.display(), classes.len());
        }
        for (label, dir) in classes.iter().enumerate() {
            files.extend(sorted_entries(dir)?.into_iter().filter(|p| is_image(p)).map(|p| (p, Some(label as u16))));
        }
    }
    if files.is_empty() {
        bail!("{}: no PNG or JPEG images found", root.display());
    }
    let mut pixels = Vec::with_capacity(files.len() * size * size * channels);
    for (path, _) in &files {
        let img = image::open(path).with_context(|| format!("{}: not a readable image", path.display()))?;
        let img = img.resize_exact(size as u32, size as u32, FilterType::Triangle);
        if channels == 1 {
            pixels.extend(img.to_luma8().into_raw());
        } else {
            pixels.extend(img.to_rgb8().into_raw());
        }
    }
    let labels = if classes.is_empty() { None } else { Some(files.iter().map(|(_, l)| l.expect("labelled")).collect()) };
    let mut ds = Dataset::new(pixels, size, size, channels, labels)?;
    if !classes.is_empty() {
        ds.class_names = Some(classes.iter().map(|c| c.file_name().expect("dir name").to_string_lossy().into_owned()).collect());
    }
    Ok(ds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, w: u32, h: u32, rgb: bool) {
        if rgb {
            image::RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10])).save(path).unwrap();
        } else {
            image::GrayImage::from_pixel(w, h, image::Luma([77])).save(path).unwrap();
        }
    }

    #[test]
    fn classes_from_subfolders_mixed_sizes_and_channels() {
        let dir = tempfile::tempdir().unwrap();
        for (class, rgb) in [("cat", true), ("dog", false)] {
            std::fs::create_dir(dir.path().join(class)).unwrap();
            write_png(&dir.path().join(class).join("a.png"), 10, 7, rgb);
            write_png(&dir.path().join(class).join("b.PNG"), 4, 4, !rgb);
        }
        std::fs::write(dir.path().join("dog").join("notes.txt"), "ignored").unwrap();
        let ds = load_folder(dir.path(), 8, 3).unwrap();
        assert_eq!((ds.len(), ds.height, ds.channels), (4, 8, 3));
        assert_eq!(ds.labels.as_deref(), Some(&[0, 0, 1, 1][..]));
        assert_eq!(ds.class_names.unwrap(), vec!["cat", "dog"]);
        let gray = load_folder(dir.path(), 5, 1).unwrap();
        assert_eq!(gray.image(2)[0], 77);
    }

    #[test]
    fn empty_or_unreadable_folders_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_folder(dir.path(), 8, 1).unwrap_err().to_string();
        assert!(err.contains("no PNG or JPEG"), "{err}");
        std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
        let err = load_folder(dir.path(), 8, 1).unwrap_err().to_string();
        assert!(err.contains("broken.png"), "{err}");
        let err = load_folder(&dir.path().join("nope"), 8, 1).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
