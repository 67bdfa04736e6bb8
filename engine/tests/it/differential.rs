//! (topic: differential)
