//! Models built from the engine's layers: residual blocks, encoders, the projection head, and the
//! network that joins them.

pub mod block;
pub mod encoder;
pub mod head;
pub mod net;
