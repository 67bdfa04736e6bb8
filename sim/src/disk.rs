//! A simulated disk under the journal's `Storage` seam: files in memory, each with what a
//! crash keeps (`durable`) apart from what the program sees (`live`), a directory whose
//! changes are durable only after `sync_dir`, and seeded faults.
//!
//! **What a crash keeps.** A segment's bytes are durable once a `sync` covered them. At a
//! crash, every 512-byte sector written since its last sync is kept or lost by a coin
//! (a torn write), a directory change since the last `sync_dir` (a created, removed or
//! renamed file) is kept or undone by a coin, and, when the faults allow it, one bit of an
//! older segment flips (latent corruption). **Faults while running:** a `sync` or a
//! `sync_dir` fails (EIO), a file creation finds no space (ENOSPC), and opening a file fails
//! (EIO, a latent read error), each with the configured chance. Reads do not fail: a segment is read as a whole map, as the real
//! storage maps its file. Every map of one file shares its pages (`Pages`), as mmaps of one
//! file do, so a sync through one map, or a deferred sync run later, writes what the others
//! wrote.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use bourse_journal::{SegmentMap, Storage, SyncHandle, SyncWait, segment_file_name};
use bourse_tests::workload::SplitMix64;

/// The sector a torn write keeps or loses whole.
const SECTOR: usize = 512;

/// A file's name in the simulated directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Name {
    Segment(u64),
    Spare,
}

struct Inode {
    /// What survives a crash.
    durable: Vec<u8>,
    /// What the program sees: the page cache, shared by every map of the file.
    live: Arc<Pages>,
}

/// A file's page cache: one buffer that every map of the file reads and writes, as the maps
/// of one file share their pages. The simulation runs in one thread.
pub struct Pages {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is owned (freed once, in `Drop`) and only touched through the maps and
// the disk's lock, in the simulator's one thread; `Send`/`Sync` let it sit in the disk's
// mutex and a deferred sync's closure, as the journal's types require.
unsafe impl Send for Pages {}
// SAFETY: as above.
unsafe impl Sync for Pages {}

impl Pages {
    fn zeroed(len: usize) -> Arc<Pages> {
        let buf: Box<[u8]> = vec![0; len].into_boxed_slice();
        let len = buf.len();
        let ptr = Box::into_raw(buf).cast::<u8>();
        Arc::new(Pages { ptr, len })
    }

    fn get(&self) -> &[u8] {
        // SAFETY: `ptr` points to `len` initialised bytes owned by `self`. Several maps of a
        // file alias them, as mmaps of one file do; the journal writes a segment only past
        // what any reader reads (appends) and the simulator is single-threaded, so no byte
        // is read while it is written.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    #[allow(
        clippy::mut_from_ref,
        reason = "a shared page cache: every map of the file writes the same pages"
    )]
    fn get_mut(&self) -> &mut [u8] {
        // SAFETY: as in `get`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` came from `Box::into_raw` of a boxed slice, freed once here.
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
    }
}

/// Chances of faults, in parts per 1,000 operations (0 turns one off).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    pub sync_fails: u64,
    pub no_space: u64,
    /// At a crash: one bit of an older segment flips.
    pub bit_flip: u64,
    /// At a crash, the sectors written since the last sync are kept in any order (each by a
    /// coin), as a disk may write back a map's dirty pages; otherwise in file order up to a
    /// point (a prefix). The journal's commit mark tells either from damage (docs/testing.md,
    /// "What the simulator found").
    pub torn_any_order: bool,
    /// Opening a file fails (EIO), as a latent read error surfaces when its extent is read.
    pub read_fails: u64,
}

/// What the disk did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounts {
    pub syncs: u64,
    pub failed_syncs: u64,
    pub no_space: u64,
    pub torn_sectors_lost: u64,
    pub dir_changes_undone: u64,
    pub bit_flips: u64,
    pub failed_reads: u64,
}

impl DiskCounts {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &DiskCounts) {
        self.syncs += other.syncs;
        self.failed_syncs += other.failed_syncs;
        self.no_space += other.no_space;
        self.torn_sectors_lost += other.torn_sectors_lost;
        self.dir_changes_undone += other.dir_changes_undone;
        self.bit_flips += other.bit_flips;
        self.failed_reads += other.failed_reads;
    }
}

struct State {
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<Name, u64>,
    durable_names: BTreeMap<Name, u64>,
    next_inode: u64,
    rng: SplitMix64,
    faults: Faults,
    counts: DiskCounts,
    /// The segment file of the newest flipped bit, for the check that recovery names it.
    flipped: Option<u64>,
    /// The next sync fails (set by [`SimDisk::fail_next_sync`]).
    fail_next_sync: bool,
}

/// The simulated disk; clones share it.
#[derive(Clone)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

impl SimDisk {
    pub fn new(seed: u64, faults: Faults) -> SimDisk {
        SimDisk {
            state: Arc::new(Mutex::new(State {
                inodes: HashMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                next_inode: 1,
                rng: SplitMix64(seed ^ 0xD15C),
                faults,
                counts: DiskCounts::default(),
                flipped: None,
                fail_next_sync: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn counts(&self) -> DiskCounts {
        self.lock().counts
    }

    /// The first sequence number of the segment whose bit flipped at the last crash.
    pub fn flipped(&self) -> Option<u64> {
        self.lock().flipped
    }

    /// The next sync of a segment fails (EIO) and keeps nothing: the process dies before the
    /// commit that sync was for, as far as the disk can tell.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// Turns the faults off or on (recovery runs without them: the faults model a disk
    /// going wrong under load, and a recovery that keeps failing proves nothing new).
    pub fn set_faults(&self, faults: Faults) {
        let mut state = self.lock();
        state.faults = faults;
        state.fail_next_sync = false;
    }

    /// A crash: what the program had is gone but what the disk kept (module docs). Call
    /// with every map of the disk dropped.
    pub fn crash(&self) {
        let mut guard = self.lock();
        let state = &mut *guard;
        state.fail_next_sync = false;
        // The directory: each change since the last sync_dir kept or undone by a coin.
        let mut names = state.durable_names.clone();
        let all: Vec<Name> = state
            .names
            .keys()
            .chain(state.durable_names.keys())
            .copied()
            .collect();
        for name in all {
            let now = state.names.get(&name).copied();
            let then = state.durable_names.get(&name).copied();
            if now != then && state.rng.chance(50) {
                state.counts.dir_changes_undone += 1;
                continue;
            }
            match now {
                Some(inode) => names.insert(name, inode),
                None => names.remove(&name),
            };
        }
        // The files: the unsynced sectors kept or lost (a prefix of them, or any).
        let any_order = state.faults.torn_any_order;
        let mut inodes: Vec<u64> = state.inodes.keys().copied().collect();
        inodes.sort_unstable();
        for id in inodes {
            let Some(inode) = state.inodes.get_mut(&id) else {
                continue;
            };
            let live = inode.live.get_mut();
            let len = live.len();
            inode.durable.resize(len, 0);
            let dirty: Vec<usize> = (0..len)
                .step_by(SECTOR)
                .filter(|&start| {
                    let end = (start + SECTOR).min(len);
                    live[start..end] != inode.durable[start..end]
                })
                .collect();
            let kept_prefix = state.rng.below(dirty.len() as u64 + 1) as usize;
            for (i, &start) in dirty.iter().enumerate() {
                let end = (start + SECTOR).min(len);
                let keep = if any_order {
                    state.rng.chance(50)
                } else {
                    i < kept_prefix
                };
                if keep {
                    inode.durable[start..end].copy_from_slice(&live[start..end]);
                } else {
                    state.counts.torn_sectors_lost += 1;
                }
            }
            live.copy_from_slice(&inode.durable);
        }
        state.flipped = None;
        if state.rng.below(1_000) < state.faults.bit_flip {
            // One bit of a segment other than the newest (whose tail may be torn anyway).
            let segments: Vec<(u64, u64)> = names
                .iter()
                .filter_map(|(name, inode)| match name {
                    Name::Segment(first) => Some((*first, *inode)),
                    Name::Spare => None,
                })
                .collect();
            if segments.len() >= 2 {
                let (first, inode) = segments[state.rng.below(segments.len() as u64 - 1) as usize];
                if let Some(file) = state.inodes.get_mut(&inode)
                    && !file.durable.is_empty()
                {
                    let at = state.rng.below(file.durable.len() as u64) as usize;
                    let bit = 1u8 << state.rng.below(8);
                    file.durable[at] ^= bit;
                    file.live.get_mut()[at] ^= bit;
                    state.counts.bit_flips += 1;
                    state.flipped = Some(first);
                }
            }
        }
        state
            .inodes
            .retain(|inode, _| names.values().any(|i| i == inode));
        state.names = names.clone();
        state.durable_names = names;
    }

    /// Whether a fault with this chance (per 1,000) happens now.
    fn fault(state: &mut State, pick: fn(&Faults) -> u64) -> bool {
        let per_mille = pick(&state.faults);
        state.rng.below(1_000) < per_mille
    }

    fn make(&self, name: Name, len: u64) -> io::Result<SimSegment> {
        let mut state = self.lock();
        if Self::fault(&mut state, |f| f.no_space) {
            state.counts.no_space += 1;
            return Err(io::Error::from_raw_os_error(28));
        }
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let inode = state.next_inode;
        state.next_inode += 1;
        let live = Pages::zeroed(len);
        state.inodes.insert(
            inode,
            Inode {
                durable: vec![0; len],
                live: Arc::clone(&live),
            },
        );
        state.names.insert(name, inode);
        Ok(SimSegment {
            inode,
            pages: live,
            disk: self.clone(),
        })
    }
}

/// A map of a segment: the file's shared pages.
pub struct SimSegment {
    inode: u64,
    pages: Arc<Pages>,
    disk: SimDisk,
}

impl SimSegment {
    /// Makes `range` of the file's pages durable (a failed sync by the seed).
    fn sync_pages(
        disk: &SimDisk,
        inode: u64,
        pages: &Pages,
        range: Range<usize>,
    ) -> io::Result<()> {
        let mut state = disk.lock();
        state.counts.syncs += 1;
        if std::mem::take(&mut state.fail_next_sync) || SimDisk::fault(&mut state, |f| f.sync_fails)
        {
            state.counts.failed_syncs += 1;
            return Err(io::Error::from_raw_os_error(5));
        }
        let bytes = pages.get();
        let end = range.end.min(bytes.len());
        let start = range.start.min(end);
        if let Some(inode) = state.inodes.get_mut(&inode) {
            inode.durable[start..end].copy_from_slice(&bytes[start..end]);
        }
        Ok(())
    }
}

impl SegmentMap for SimSegment {
    fn bytes(&self) -> &[u8] {
        self.pages.get()
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        self.pages.get_mut()
    }

    fn sync(&self, range: Range<usize>, _wait: SyncWait) -> io::Result<()> {
        Self::sync_pages(&self.disk, self.inode, &self.pages, range)
    }

    /// A deferred sync (the pipeline's `start_commit`), run later by the simulator at a
    /// seeded point: as `fdatasync`, it makes durable the whole file as its pages are then.
    fn sync_handle(&self) -> SyncHandle {
        let (disk, inode, pages) = (self.disk.clone(), self.inode, Arc::clone(&self.pages));
        Arc::new(move || Self::sync_pages(&disk, inode, &pages, 0..usize::MAX))
    }
}

impl Storage for SimDisk {
    type Segment = SimSegment;

    fn list(&self) -> io::Result<Vec<u64>> {
        Ok(self
            .lock()
            .names
            .keys()
            .filter_map(|name| match name {
                Name::Segment(first) => Some(*first),
                Name::Spare => None,
            })
            .collect())
    }

    fn create(&self, first_seq: u64, len: u64) -> io::Result<SimSegment> {
        if self.lock().names.contains_key(&Name::Segment(first_seq)) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        self.make(Name::Segment(first_seq), len)
    }

    fn open(&self, first_seq: u64) -> io::Result<SimSegment> {
        let mut state = self.lock();
        if Self::fault(&mut state, |f| f.read_fails) {
            state.counts.failed_reads += 1;
            return Err(io::Error::from_raw_os_error(5));
        }
        let inode = *state
            .names
            .get(&Name::Segment(first_seq))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let pages = state
            .inodes
            .get(&inode)
            .map(|i| Arc::clone(&i.live))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        Ok(SimSegment {
            inode,
            pages,
            disk: self.clone(),
        })
    }

    fn remove(&self, first_seq: u64) -> io::Result<()> {
        self.lock()
            .names
            .remove(&Name::Segment(first_seq))
            .map(drop)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.counts.syncs += 1;
        if Self::fault(&mut state, |f| f.sync_fails) {
            state.counts.failed_syncs += 1;
            return Err(io::Error::from_raw_os_error(5));
        }
        state.durable_names = state.names.clone();
        Ok(())
    }

    fn segment_path(&self, first_seq: u64) -> PathBuf {
        PathBuf::from("sim").join(segment_file_name(first_seq))
    }

    fn create_spare(&self, len: u64) -> io::Result<SimSegment> {
        self.make(Name::Spare, len)
    }

    fn activate_spare(&self, first_seq: u64) -> io::Result<()> {
        let mut state = self.lock();
        if state.names.contains_key(&Name::Segment(first_seq)) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        let inode = state
            .names
            .remove(&Name::Spare)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        state.names.insert(Name::Segment(first_seq), inode);
        Ok(())
    }

    fn remove_spare(&self) -> io::Result<bool> {
        Ok(self.lock().names.remove(&Name::Spare).is_some())
    }

    fn spare_path(&self) -> PathBuf {
        PathBuf::from("sim").join(bourse_journal::SPARE_FILE_NAME)
    }
}
