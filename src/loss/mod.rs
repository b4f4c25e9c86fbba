//! Contrastive losses.

pub mod cross_entropy;
pub mod nt_xent;
