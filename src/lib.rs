//! simclr: self-supervised contrastive representation learning on images.
//!
//! Images are augmented twice ([`augment`]), encoded ([`model`]) and pulled together by the
//! NT-Xent loss ([`loss`]), trained by [`train`] on the explicit-backward engine ([`nn`]) with
//! the optimizers of [`optim`], evaluated on frozen features ([`eval`]) and reported
//! ([`report`]). The `simclr` binary is a thin layer over [`cli`] and [`commands`].

// Kernels index several equally long slices by channel; index loops are the clearest form there
// and, with the slices re-bounded to the loop length, vectorise as well as iterator chains.
#![allow(clippy::needless_range_loop)]

pub mod augment;
pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod config;
pub mod data;
pub mod eval;
pub mod io;
pub mod loss;
pub mod model;
pub mod nn;
pub mod optim;
pub mod report;
pub mod train;
