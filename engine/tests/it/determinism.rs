//! (topic: determinism)
