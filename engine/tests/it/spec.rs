//! (topic: spec)
