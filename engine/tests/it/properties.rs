//! (topic: properties)
