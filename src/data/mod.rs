//! Datasets: readers for IDX, CIFAR-10 and image folders, and where built-in datasets come from.

pub mod cifar;
pub mod dataset;
pub mod download;
pub mod folder;
pub mod idx;
pub mod source;

pub use dataset::Dataset;
