//! simclr: self-supervised contrastive representation learning on images.
//!
//! Images are augmented twice ([`augment`]), encoded ([`model`]) and pulled together by the
//! NT-Xent loss ([`loss`]), trained by [`train`] on the explicit-backward engine ([`nn`]), and
//! evaluated on frozen features ([`eval`]).

pub mod nn;
pub mod loss;
pub mod model;
pub mod io;
pub mod optim;
pub mod checkpoint;
pub mod data;
pub mod augment;
pub mod bench;
pub mod config;
pub mod eval;
pub mod train;
pub mod cli;
pub mod commands;
