//! Contrastive losses.

pub mod nt_xent;
