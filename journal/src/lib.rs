//! The journal: an append-only log of memory-mapped segment files.
//!
//! It knows bytes, not commands. The segment format, group commit and recovery land with the
//! journal issue; until then this crate only fixes the name and the place in the workspace.

/// The version of the on-disk format this crate writes (none yet: 0).
pub const FORMAT_VERSION: u32 = 0;

#[cfg(test)]
mod tests {
    #[test]
    fn format_version_is_not_yet_assigned() {
        assert_eq!(super::FORMAT_VERSION, 0);
    }
}
