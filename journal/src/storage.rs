//! I/O behind a small trait, so tests can inject faults.
//!
//! [`Storage`] is a directory of segment files; [`SegmentMap`] is one mapped segment.
//! [`FsStorage`] is the real thing; [`FaultyStorage`] wraps any storage and fails
//! preallocation (ENOSPC) or syncs on demand, and counts preallocations.
//!
//! Besides the segments, a storage holds at most one *spare*: a segment file prepared ahead of
//! time (preallocated and mapped) under a name [`Storage::list`] does not return, so that a
//! roll only has to write the header and [`Storage::activate_spare`] it.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use memmap2::MmapMut;

/// How a sync waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWait {
    /// Return once the range is on stable storage (`msync(MS_SYNC)`).
    Durable,
    /// Start writeback and return (`msync(MS_ASYNC)`).
    Async,
}

/// One segment file, mapped read-write.
pub trait SegmentMap {
    /// The mapped bytes (the whole file).
    fn bytes(&self) -> &[u8];
    /// The mapped bytes, for writing.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Writes back the bytes in `range`.
    fn sync(&self, range: Range<usize>, wait: SyncWait) -> io::Result<()>;
    /// A handle that makes the segment's written bytes durable (`fdatasync` of the file) from
    /// any thread, even after the segment is dropped: the journal's deferred commits
    /// ([`crate::Journal::start_commit`]) run it on a sync thread.
    fn sync_handle(&self) -> SyncHandle;
}

/// Makes a segment durable from another thread; see [`SegmentMap::sync_handle`].
pub type SyncHandle = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// How [`FsStorage`] reserves the blocks of a new segment file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SegmentFill {
    /// `posix_fallocate`: fast to create, but the extents stay *unwritten* until written, so
    /// the first sync of each part of the file also commits ext4's journal (the extent
    /// conversion), which roughly doubles a small sync's cost.
    #[default]
    Allocate,
    /// `posix_fallocate`, then write zeros over the whole file (through the map: see
    /// `zero_fill` for why) and `fdatasync` it: creating a
    /// 64 MiB segment costs a write of 64 MiB (in the background for a spare), and every
    /// later sync writes only data. The choice for a server in durable mode.
    Zeroes,
}

/// A directory of segment files, each named by its first sequence number.
///
/// `Send + Sync + 'static` because the journal prepares the next segment on a background
/// thread (see [`Storage::create_spare`]).
pub trait Storage: Send + Sync + 'static {
    /// A mapped segment.
    type Segment: SegmentMap + Send + 'static;
    /// First sequence numbers of the segment files present, ascending.
    fn list(&self) -> io::Result<Vec<u64>>;
    /// Creates a new segment file of `len` bytes, preallocated (so writing to the map never
    /// needs a block the disk cannot give), and maps it. On error nothing is left behind.
    fn create(&self, first_seq: u64, len: u64) -> io::Result<Self::Segment>;
    /// Maps an existing segment file.
    fn open(&self, first_seq: u64) -> io::Result<Self::Segment>;
    /// Deletes a segment file.
    fn remove(&self, first_seq: u64) -> io::Result<()>;
    /// Makes creations and removals of segment files durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// Where the segment lives, for error messages.
    fn segment_path(&self, first_seq: u64) -> PathBuf;
    /// Creates the spare: a file of `len` bytes, preallocated and zero-filled like
    /// [`Storage::create`], under a name `list` does not return, and maps it. Fails if a spare
    /// exists. On error nothing is left behind. Called off the append path.
    fn create_spare(&self, len: u64) -> io::Result<Self::Segment>;
    /// Gives the spare the name of the segment `first_seq` (which must not exist), atomically.
    fn activate_spare(&self, first_seq: u64) -> io::Result<()>;
    /// Deletes the spare if there is one; returns whether there was.
    fn remove_spare(&self) -> io::Result<bool>;
    /// Where the spare lives, for error messages.
    fn spare_path(&self) -> PathBuf;
}

/// Number of digits in a segment file name: every `u64` fits.
pub const SEGMENT_NAME_DIGITS: usize = 20;
/// Extension of segment files.
pub const SEGMENT_EXTENSION: &str = "seg";

/// The file name of the spare (a segment prepared ahead of time, not yet live).
pub const SPARE_FILE_NAME: &str = "next.seg.next";

/// The file name of the segment whose first sequence number is `first_seq`.
pub fn segment_file_name(first_seq: u64) -> String {
    format!(
        "{first_seq:0width$}.{SEGMENT_EXTENSION}",
        width = SEGMENT_NAME_DIGITS
    )
}

fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != SEGMENT_NAME_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Segment files in a directory of the real file system.
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
    fill: SegmentFill,
}

impl FsStorage {
    /// Uses `dir`, creating it if needed; new segments are [`SegmentFill::Allocate`]d.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        Self::with_fill(dir, SegmentFill::Allocate)
    }

    /// Uses `dir`, creating it if needed, with new segments filled as `fill` says.
    pub fn with_fill(dir: impl AsRef<Path>, fill: SegmentFill) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, fill })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A segment file of [`FsStorage`].
#[derive(Debug)]
pub struct FsSegment {
    map: MmapMut,
    /// Kept open for the life of the map, and shared with [`SegmentMap::sync_handle`]s.
    file: Arc<File>,
    /// The storage's directory (for [`injected`] faults).
    dir: Arc<Path>,
}

/// A fault injected into the real storage for the tests of the layers above it (builds with
/// the `failpoints` feature, faults set with the `fail` crate's FAILPOINTS variable or
/// `fail::cfg`): fail point `name` set to `return(DIR)` fails the storages whose directory
/// ends with DIR (`journal`, `history`, `market/ticks`, `market/candles-1m`, ...), and
/// `return` alone every storage, with `errno`. The fail points are `storage::preallocate`
/// (ENOSPC when a segment or the spare is created) and `storage::sync` (EIO on a durable sync
/// of a segment or of the directory). Without the feature, nothing.
fn injected(name: &str, dir: &Path, errno: i32) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(target) = fail::eval(name, |arg| arg.unwrap_or_default())
        && (target.is_empty() || dir.ends_with(&target))
    {
        return Err(io::Error::from_raw_os_error(errno));
    }
    let _ = (name, dir, errno);
    Ok(())
}

fn map_file(file: File, dir: &Path) -> io::Result<FsSegment> {
    // SAFETY: the map is only sound while no one else truncates or writes the file. The
    // journal directory belongs to one writer (documented in the crate docs and FORMAT.md);
    // the file is preallocated to its full length before it is mapped and never truncated
    // while mapped, so every mapped page is backed (no SIGBUS from a short file).
    let map = unsafe { MmapMut::map_mut(&file)? };
    Ok(FsSegment {
        map,
        file: Arc::new(file),
        dir: Arc::from(dir),
    })
}

/// Writes zeros over the whole of `segment` through its map and makes them durable.
///
/// Through the map, not with `write(2)`: Linux (6.x, ext4) caches a file written in large
/// chunks in large folios (1 MiB here), and a folio is written back whole, so every later
/// sync of a few records in it wrote the whole megabyte: at 50,000 orders/s the disk took
/// 1.3 GB/s for a journal of 5 MB/s, and each sync took longer. Pages first dirtied through
/// a shared map are cached one 4 KiB page each, so a sync writes only the pages that changed
/// (6 KiB a sync instead of 1 MiB, measured with small appends).
/// `fdatasync` writes the pages dirtied through the map, as it does for the journal's syncs.
fn zero_fill(segment: &mut FsSegment) -> io::Result<()> {
    segment.map.fill(0);
    segment.file.sync_data()
}

fn preallocate(file: &File, len: u64) -> io::Result<()> {
    let len =
        libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: the descriptor is open and owned by `file` for the duration of the call.
    let errno = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match errno {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

impl SegmentMap for FsSegment {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    fn sync(&self, range: Range<usize>, wait: SyncWait) -> io::Result<()> {
        let len = range.end - range.start;
        match wait {
            SyncWait::Durable => {
                injected("storage::sync", &self.dir, libc::EIO)?;
                self.map.flush_range(range.start, len)
            }
            SyncWait::Async => self.map.flush_async_range(range.start, len),
        }
    }

    fn sync_handle(&self) -> SyncHandle {
        let file = Arc::clone(&self.file);
        let dir = Arc::clone(&self.dir);
        Arc::new(move || {
            injected("storage::sync", &dir, libc::EIO)?;
            file.sync_data()
        })
    }
}

impl Storage for FsStorage {
    type Segment = FsSegment;

    fn list(&self) -> io::Result<Vec<u64>> {
        let mut first_seqs = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(first_seq) = name.to_str().and_then(parse_segment_file_name) {
                first_seqs.push(first_seq);
            }
        }
        first_seqs.sort_unstable();
        Ok(first_seqs)
    }

    fn create(&self, first_seq: u64, len: u64) -> io::Result<FsSegment> {
        injected("storage::preallocate", &self.dir, libc::ENOSPC)?;
        create_file(
            &self.segment_path(first_seq),
            len,
            false,
            self.fill,
            &self.dir,
        )
    }

    fn open(&self, first_seq: u64) -> io::Result<FsSegment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.segment_path(first_seq))?;
        map_file(file, &self.dir)
    }

    fn remove(&self, first_seq: u64) -> io::Result<()> {
        std::fs::remove_file(self.segment_path(first_seq))
    }

    fn sync_dir(&self) -> io::Result<()> {
        injected("storage::sync", &self.dir, libc::EIO)?;
        File::open(&self.dir)?.sync_all()
    }

    fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.dir.join(segment_file_name(first_seq))
    }

    fn create_spare(&self, len: u64) -> io::Result<FsSegment> {
        // Synced too (in the background), so that the first commit after the roll does not
        // pay for making the preallocated extents durable.
        injected("storage::preallocate", &self.dir, libc::ENOSPC)?;
        create_file(&self.spare_path(), len, true, self.fill, &self.dir)
    }

    fn activate_spare(&self, first_seq: u64) -> io::Result<()> {
        rename_no_replace(&self.spare_path(), &self.segment_path(first_seq))
    }

    fn remove_spare(&self) -> io::Result<bool> {
        match std::fs::remove_file(self.spare_path()) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error),
        }
    }

    fn spare_path(&self) -> PathBuf {
        self.dir.join(SPARE_FILE_NAME)
    }
}

/// Creates `path` (never an existing file), preallocates `len` bytes (zero-filled and synced
/// with [`SegmentFill::Zeroes`]), optionally syncs the file, and maps it; on error removes it.
fn create_file(
    path: &Path,
    len: u64,
    sync: bool,
    fill: SegmentFill,
    dir: &Path,
) -> io::Result<FsSegment> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let mapped = preallocate(&file, len)
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .and_then(|()| map_file(file, dir))
        .and_then(|mut segment| match fill {
            SegmentFill::Allocate => Ok(segment),
            SegmentFill::Zeroes => zero_fill(&mut segment).map(|()| segment),
        });
    if mapped.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = std::fs::remove_file(path);
    }
    mapped
}

/// `rename(from, to)` that fails with EEXIST instead of replacing `to`.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let from = std::ffi::CString::new(from.as_os_str().as_bytes())?;
    let to = std::ffi::CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated paths that live across the call.
    let result = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Switches shared by a [`FaultyStorage`] and its segments; flip them from the test.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    preallocate_fails: AtomicBool,
    sync_fails: AtomicBool,
    preallocations: AtomicUsize,
    preallocation_threads: Mutex<Vec<ThreadId>>,
}

impl Faults {
    /// While set, creating a segment or the spare fails with ENOSPC, as `posix_fallocate` does
    /// on a full disk; like the real storage, nothing is left behind.
    pub fn set_preallocate_fails(&self, fails: bool) {
        self.state.preallocate_fails.store(fails, Ordering::SeqCst);
    }

    /// While set, every segment and directory sync fails with EIO.
    pub fn set_sync_fails(&self, fails: bool) {
        self.state.sync_fails.store(fails, Ordering::SeqCst);
    }

    /// How many preallocations (segment or spare creations, failed ones included) were asked
    /// for so far.
    pub fn preallocations(&self) -> usize {
        self.state.preallocations.load(Ordering::SeqCst)
    }

    /// The thread of each preallocation counted by [`Faults::preallocations`], in order.
    pub fn preallocation_threads(&self) -> Vec<ThreadId> {
        self.state
            .preallocation_threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn check_preallocate(&self) -> io::Result<()> {
        self.state
            .preallocation_threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(std::thread::current().id());
        self.state.preallocations.fetch_add(1, Ordering::SeqCst);
        if self.state.preallocate_fails.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }

    fn check_sync(&self) -> io::Result<()> {
        if self.state.sync_fails.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }
}

/// A storage that fails on demand (see [`Faults`]); otherwise it forwards to the inner one.
#[derive(Debug, Clone)]
pub struct FaultyStorage<S> {
    inner: S,
    faults: Faults,
}

impl<S> FaultyStorage<S> {
    /// Wraps `inner`; keep a clone of `faults` to flip the switches.
    pub fn new(inner: S, faults: Faults) -> Self {
        Self { inner, faults }
    }
}

/// A segment of [`FaultyStorage`].
#[derive(Debug)]
pub struct FaultySegment<G> {
    inner: G,
    faults: Faults,
}

impl<G: SegmentMap> SegmentMap for FaultySegment<G> {
    fn bytes(&self) -> &[u8] {
        self.inner.bytes()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.inner.bytes_mut()
    }

    fn sync(&self, range: Range<usize>, wait: SyncWait) -> io::Result<()> {
        self.faults.check_sync()?;
        self.inner.sync(range, wait)
    }

    fn sync_handle(&self) -> SyncHandle {
        let faults = self.faults.clone();
        let inner = self.inner.sync_handle();
        Arc::new(move || {
            faults.check_sync()?;
            inner()
        })
    }
}

impl<S: Storage> Storage for FaultyStorage<S> {
    type Segment = FaultySegment<S::Segment>;

    fn list(&self) -> io::Result<Vec<u64>> {
        self.inner.list()
    }

    fn create(&self, first_seq: u64, len: u64) -> io::Result<Self::Segment> {
        self.faults.check_preallocate()?;
        let inner = self.inner.create(first_seq, len)?;
        Ok(FaultySegment {
            inner,
            faults: self.faults.clone(),
        })
    }

    fn open(&self, first_seq: u64) -> io::Result<Self::Segment> {
        let inner = self.inner.open(first_seq)?;
        Ok(FaultySegment {
            inner,
            faults: self.faults.clone(),
        })
    }

    fn remove(&self, first_seq: u64) -> io::Result<()> {
        self.inner.remove(first_seq)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.faults.check_sync()?;
        self.inner.sync_dir()
    }

    fn segment_path(&self, first_seq: u64) -> PathBuf {
        self.inner.segment_path(first_seq)
    }

    fn create_spare(&self, len: u64) -> io::Result<Self::Segment> {
        self.faults.check_preallocate()?;
        let inner = self.inner.create_spare(len)?;
        Ok(FaultySegment {
            inner,
            faults: self.faults.clone(),
        })
    }

    fn activate_spare(&self, first_seq: u64) -> io::Result<()> {
        self.inner.activate_spare(first_seq)
    }

    fn remove_spare(&self) -> io::Result<bool> {
        self.inner.remove_spare()
    }

    fn spare_path(&self) -> PathBuf {
        self.inner.spare_path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_sort_by_sequence_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn create_preallocates_the_whole_file_with_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let segment = storage.create(1, 64 * 1024).unwrap();
        assert_eq!(segment.bytes().len(), 64 * 1024);
        let metadata = std::fs::metadata(storage.segment_path(1)).unwrap();
        // Not sparse: the blocks are reserved (st_blocks counts 512-byte units).
        use std::os::unix::fs::MetadataExt;
        assert!(metadata.blocks() * 512 >= 64 * 1024);
        assert_eq!(storage.list().unwrap(), vec![1]);
        assert!(
            storage.create(1, 4096).is_err(),
            "never overwrites a segment"
        );
    }

    #[test]
    fn failed_preallocation_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let faults = Faults::default();
        let storage = FaultyStorage::new(FsStorage::new(dir.path()).unwrap(), faults.clone());
        faults.set_preallocate_fails(true);
        let error = storage.create(1, 4096).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC));
        assert!(storage.list().unwrap().is_empty());
        assert!(storage.create_spare(4096).is_err());
        assert!(!storage.remove_spare().unwrap(), "no spare left behind");
        assert_eq!(faults.preallocations(), 2);
    }

    #[test]
    fn a_spare_is_not_listed_and_activates_without_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path()).unwrap();
        let spare = storage.create_spare(4096).unwrap();
        assert_eq!(spare.bytes().len(), 4096);
        assert!(storage.list().unwrap().is_empty());
        assert!(storage.create_spare(4096).is_err(), "one spare at a time");
        storage.create(7, 4096).unwrap();
        let error = storage.activate_spare(7).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EEXIST));
        storage.activate_spare(9).unwrap();
        assert_eq!(storage.list().unwrap(), vec![7, 9]);
        assert!(!storage.remove_spare().unwrap());
        storage.create_spare(4096).unwrap();
        assert!(storage.remove_spare().unwrap());
    }
}
