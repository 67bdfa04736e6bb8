//! The replicas of the simulated cluster: a fetch journaled and applied, snapshots,
//! checkpoints, recovery and rebuilding from a peer, and the end of a run.

use super::*;

impl Cluster {
    /// Node `n`'s replica fetches the records after what it applied (if its link is up),
    /// journals them with one commit, and applies them.
    pub(super) fn fetch(&mut self, n: usize) -> Result<(), String> {
        let now = self.now;
        let node = &self.nodes[n];
        if !node.active(now) || !node.linked(now) {
            return Ok(());
        }
        let from = node.applied();
        let to = self.log.len().min(from + 1 + self.rng.below(FETCH_MAX));
        if from >= to {
            return Ok(());
        }
        let tampered = self.config.tamper == Some(node.id);
        let mut batch = Vec::with_capacity((to - from) as usize);
        for offset in from..to {
            let mut command = log_command(offset, &self.log.records[offset as usize].bytes)?;
            if tampered && let CommandKind::Deposit(request) = &mut command.kind {
                request.amount = Amount::from_minor(request.amount.minor() * 2);
            }
            let mut bytes = Vec::new();
            bourse_engine::codec::encode(&command, &mut bytes);
            let Some(journal) = self.nodes[n].journal.as_mut() else {
                return Ok(());
            };
            if journal.append(command.seq, &bytes).is_err() {
                let down = self.rng.below(500);
                self.crash(n, down);
                return Ok(());
            }
            batch.push(command);
        }
        if self.config.faults && self.rng.chance(1) {
            let down = self.rng.below(500);
            self.crash(n, down);
            return Ok(());
        }
        let committed = self.nodes[n].journal.as_mut().map(Journal::commit);
        if !matches!(committed, Some(Ok(_))) {
            let down = self.rng.below(500);
            self.crash(n, down);
            return Ok(());
        }
        for command in batch {
            self.apply(n, &command, tampered)?;
            if !self.nodes[n].up() {
                break;
            }
        }
        Ok(())
    }

    /// Node `n`'s engine applies `command` (journaled and durable); checked against the
    /// reference, then answered, snapshotted and checkpointed as it calls for.
    fn apply(&mut self, n: usize, command: &Command, tampered: bool) -> Result<(), String> {
        let offset = command.seq - 1;
        let mut events = Vec::new();
        let _ = self.nodes[n].engine.apply(command, &mut events);
        self.report.records_applied += 1;
        if !tampered && events != self.log.events[offset as usize] {
            return Err(format!(
                "node {n} applied the record at offset {offset} with other events than the \
                 reference: {events:?} against {:?}",
                self.log.events[offset as usize]
            ));
        }
        if let Some((id, request)) = self.log.records[offset as usize]
            .key
            .as_ref()
            .and_then(|k| parse_key(k))
            && id == self.nodes[n].id
            && self.nodes[n].waiting.contains_key(&request)
        {
            self.nodes[n].delivered.insert(request, offset);
            self.answer(n, request)?;
        }
        if matches!(command.kind, CommandKind::Snapshot) {
            self.snapshot(n, command.seq)?;
        }
        let node = &mut self.nodes[n];
        if node.up() && command.seq.is_multiple_of(CHECKPOINT_EVERY) {
            let hash = node.engine.state_hash();
            if !tampered && self.log.hashes.get(&offset) != Some(&hash) {
                return Err(format!(
                    "node {n}'s state hash at offset {offset} is {hash}, the reference's {:?}",
                    self.log.hashes.get(&offset)
                ));
            }
            self.log.checkpoints.push((node.id, offset, hash));
        }
        Ok(())
    }

    /// Node `n` cuts a snapshot at `seq`, as the pipeline does at a `Snapshot` record; a
    /// crash while writing it leaves a prefix.
    fn snapshot(&mut self, n: usize, seq: u64) -> Result<(), String> {
        let faults = self.config.faults;
        let node = &mut self.nodes[n];
        let Some((bytes, fate)) = write_snapshot(&mut self.rng, faults, seq, &node.engine) else {
            return Ok(());
        };
        self.report.snapshots += 1;
        keep_snapshot(&mut node.snapshots, seq, bytes);
        if fate == SnapshotFate::Torn {
            self.report.crashes_in_snapshot += 1;
            let down = self.rng.below(500);
            self.crash(n, down);
        }
        Ok(())
    }

    /// Every node reads the checkpoint topic on; one outvoted stops for good.
    pub(super) fn read_checkpoints(&mut self) -> Result<(), String> {
        for n in 0..self.nodes.len() {
            let node = &mut self.nodes[n];
            if !node.up() {
                continue;
            }
            for &(id, offset, hash) in &self.log.checkpoints[node.votes_read..] {
                node.votes.observe(id, offset as i64, hash);
            }
            node.votes_read = self.log.checkpoints.len();
            let Some(why) = node.votes.divergence().map(str::to_owned) else {
                continue;
            };
            if self.config.tamper != Some(node.id) {
                return Err(format!("node {n} was outvoted: {why}"));
            }
            self.report.diverged = Some(why);
            self.crash(n, 0);
            self.nodes[n].stopped = true;
        }
        Ok(())
    }

    /// A node cut off from the broker for longer than the bound plus a probe must be stale.
    pub(super) fn check_staleness(&mut self) -> Result<(), String> {
        let now = self.now;
        let interval = bourse_cluster::probe_interval(MAX_STALENESS).as_millis() as u64;
        for node in &mut self.nodes {
            if node.linked(now) {
                node.cut_since = None;
                continue;
            }
            let Some(since) = node.cut_since else {
                continue;
            };
            if !node.active(now) || now <= since + MAX_STALENESS.as_millis() as u64 + interval + 30
            {
                continue;
            }
            let applied = node.applied();
            if node
                .tracker
                .status(Duration::from_millis(now), applied)
                .fresh
            {
                return Err(format!(
                    "node {} has been cut off since {since} ms and is still fresh at {now} ms",
                    node.id
                ));
            }
            self.report.stale_when_cut += 1;
        }
        Ok(())
    }

    /// Node `n` starts: its journal opened (read errors start it again; a refused
    /// corruption rebuilds it from a peer's snapshot, as an operator would with
    /// `join-from`), its engine from the newest good snapshot and the journal, checked
    /// against the log.
    pub(super) fn recover(&mut self, n: usize) -> Result<(), String> {
        let faults = self.config.faults;
        let journal = loop {
            let node = &self.nodes[n];
            node.disk.set_faults(Faults {
                read_fails: if faults { RECOVERY_READ_FAILS } else { 0 },
                ..Faults::default()
            });
            let opened = Journal::open(node.disk.clone(), journal_config(node.base_seq));
            node.disk.set_faults(Faults::default());
            match opened {
                Err(bourse_journal::Error::Corruption { path, offset, kind }) => {
                    let flipped = node.disk.flipped().map(bourse_journal::segment_file_name);
                    if flipped.is_none_or(|name| !path.ends_with(&name)) {
                        return Err(format!(
                            "node {n}'s recovery refused a journal whose damage the disk did \
                             not make: {}: {kind} at {offset}",
                            path.display()
                        ));
                    }
                    self.report.corruptions_refused += 1;
                    self.rebuild_from_peer(n);
                }
                Err(bourse_journal::Error::Io { source, .. })
                    if source.raw_os_error() == Some(5) =>
                {
                    self.report.recoveries_failed_on_reads += 1;
                }
                Err(e) => return Err(format!("node {n}'s recovery failed: {e}")),
                Ok(journal) => {
                    if faults && self.rng.chance(10) {
                        self.report.crashes_in_recovery += 1;
                        drop(journal);
                        self.nodes[n].disk.crash();
                        continue;
                    }
                    let records = read_all(&journal)?;
                    let base = self.nodes[n].base_seq;
                    let last = base - 1 + records.len() as u64;
                    let (loaded, refused) =
                        load_newest_snapshot(&self.nodes[n].snapshots, base - 1, last);
                    self.report.snapshots_refused += refused;
                    let (from, engine) = match loaded {
                        Some(loaded) => loaded,
                        None if base == 1 => (0, Engine::new(Limits::default())),
                        // A node that joined from a snapshot it no longer has a good copy
                        // of: joined again.
                        None => {
                            drop(journal);
                            self.rebuild_from_peer(n);
                            continue;
                        }
                    };
                    self.restore(n, &records, from, engine)?;
                    break journal;
                }
            }
        };
        let now = self.now;
        let node = &mut self.nodes[n];
        node.disk.set_faults(Cluster::running_faults(faults));
        node.journal = Some(journal);
        node.tracker = FreshnessTracker::new(MAX_STALENESS);
        node.started_ms = now;
        node.paused_until = 0;
        node.next_probe = now;
        node.votes = CheckpointVotes::new(node.id, usize::from(NODES));
        node.votes_read = 0;
        // A new process numbers its requests as `bourse_cluster::Proposer` does, from its
        // start time, so that a record a former life of the node appended is never taken
        // for a request of this one.
        node.next_request =
            bourse_cluster::first_request(Duration::from_millis(T0.unsigned_abs() + now));
        Ok(())
    }

    /// Node `n`'s engine from the snapshot at `from` and its journal's `records` after it;
    /// the journal checked against the log byte for byte, the engine against a replay of the
    /// log's prefix from nothing.
    fn restore(
        &mut self,
        n: usize,
        records: &[(u64, Vec<u8>)],
        from: u64,
        mut engine: Engine,
    ) -> Result<(), String> {
        let tampered = self.config.tamper == Some(self.nodes[n].id);
        let base = self.nodes[n].base_seq;
        let mut prefix = Vec::with_capacity(records.len());
        for (i, (seq, payload)) in records.iter().enumerate() {
            if *seq != base + i as u64 {
                return Err(format!(
                    "node {n}'s journal skips to {seq} at {}",
                    base + i as u64
                ));
            }
            let command = log_command(seq - 1, &self.log.records[(seq - 1) as usize].bytes)?;
            let mut bytes = Vec::new();
            bourse_engine::codec::encode(&command, &mut bytes);
            if !tampered && bytes != *payload {
                return Err(format!("node {n}'s journal record {seq} is not the log's"));
            }
            prefix.push((*seq, payload.clone()));
        }
        let after = (from + 1 - base) as usize;
        replay(&mut engine, &prefix[after.min(prefix.len())..], None)?;
        if !tampered {
            let last = base - 1 + records.len() as u64;
            let mut scratch = Engine::new(Limits::default());
            let log_prefix: Vec<(u64, Vec<u8>)> = (0..last)
                .map(|o| {
                    let command = log_command(o, &self.log.records[o as usize].bytes)?;
                    let mut bytes = Vec::new();
                    bourse_engine::codec::encode(&command, &mut bytes);
                    Ok((o + 1, bytes))
                })
                .collect::<Result<_, String>>()?;
            replay(&mut scratch, &log_prefix, None)?;
            if scratch.state_hash() != engine.state_hash() {
                return Err(format!(
                    "node {n} recovered from its snapshot at {from} to a state other than the \
                     log's first {last} records give"
                ));
            }
            Engine::from_image(engine.to_image()).map_err(|e| {
                format!("node {n} recovered an engine that breaks an invariant: {e}")
            })?;
        }
        self.nodes[n].engine = engine;
        Ok(())
    }

    /// Node `n`'s data is emptied and it starts from a peer's newest good snapshot (or
    /// from the log's start when no peer has one), as `join-from` does.
    fn rebuild_from_peer(&mut self, n: usize) {
        self.report.rebuilt_from_peer += 1;
        let mut best: Option<(u64, Vec<u8>)> = None;
        for (p, peer) in self.nodes.iter().enumerate() {
            if p == n || self.config.tamper == Some(peer.id) {
                continue;
            }
            let last = peer.applied().max(peer.snapshots.last().map_or(0, |s| s.0));
            if let (Some((seq, _)), _) = load_newest_snapshot(&peer.snapshots, 0, last)
                && best.as_ref().is_none_or(|b| seq > b.0)
                && let Some((_, bytes)) = peer.snapshots.iter().find(|s| s.0 == seq)
            {
                best = Some((seq, bytes.clone()));
            }
        }
        let seed = self.rng.next_u64();
        let node = &mut self.nodes[n];
        self.report.disk.add(&node.disk.counts());
        node.disk = SimDisk::new(seed, Faults::default());
        node.snapshots.clear();
        node.base_seq = 1;
        if let Some((seq, bytes)) = best {
            node.base_seq = seq + 1;
            node.snapshots.push((seq, bytes));
        }
    }

    /// The links heal, the faults stop, every node that is not stopped starts and catches
    /// up; then all hold the reference's state, and every retried command took effect once.
    pub(super) fn finish(&mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            node.cut_until = 0;
            node.paused_until = 0;
            node.disk.set_faults(Faults::default());
        }
        let mut rounds = 0;
        loop {
            self.step(false)?;
            let behind = self
                .nodes
                .iter()
                .any(|n| !n.stopped && (!n.up() || n.applied() < self.log.len()));
            let pending = !self.inflight.is_empty() || self.ops.iter().any(|o| !o.done);
            if !behind && !pending {
                break;
            }
            rounds += 1;
            if rounds > 20_000 {
                return Err(format!(
                    "the cluster did not settle: log at {}, nodes at {:?}, {} appends in flight",
                    self.log.len(),
                    self.nodes.iter().map(Node::applied).collect::<Vec<_>>(),
                    self.inflight.len()
                ));
            }
        }
        let hash = self.log.reference.state_hash();
        for node in &self.nodes {
            if node.stopped {
                continue;
            }
            if node.engine.state_hash() != hash {
                return Err(format!(
                    "node {} ends with state hash {}, the log's is {hash}",
                    node.id,
                    node.engine.state_hash()
                ));
            }
        }
        self.check_effects_once()?;
        if let Some(tampered) = self.config.tamper
            && self.report.diverged.is_none()
            && self.log.len() >= CHECKPOINT_EVERY
            && self.nodes[usize::from(tampered)].engine.state_hash() != hash
        {
            return Err(format!(
                "node {tampered} departed and no checkpoint stopped it"
            ));
        }
        let mut by_offset: BTreeMap<u64, BTreeMap<u16, StateHash>> = BTreeMap::new();
        for &(id, offset, hash) in &self.log.checkpoints {
            by_offset.entry(offset).or_default().insert(id, hash);
        }
        self.report.checkpoints_agreed = by_offset
            .values()
            .filter(|hashes| {
                hashes.len() == usize::from(NODES)
                    && hashes.values().all(|h| Some(h) == hashes.values().next())
            })
            .count() as u64;
        self.report.simulated_ms = self.now;
        self.report.log_records = self.log.len();
        self.report.state_hash = Some(hash);
        for node in &self.nodes {
            self.report.disk.add(&node.disk.counts());
        }
        Ok(())
    }

    /// A command whose record reached the log more than once (sent again after a 503) took
    /// effect at most once: one deposit credited, one withdrawal debited, one order accepted.
    fn check_effects_once(&mut self) -> Result<(), String> {
        self.report.in_log_twice = self.ops.iter().filter(|op| op.offsets.len() > 1).count() as u64;
        for op in &self.ops {
            let effects = op
                .offsets
                .iter()
                .flat_map(|&o| &self.log.events[o as usize])
                .filter(|e| {
                    matches!(
                        e.kind,
                        EventKind::Deposited {
                            duplicate: false,
                            ..
                        } | EventKind::Withdrawn {
                            duplicate: false,
                            ..
                        } | EventKind::OrderAccepted { .. }
                    )
                })
                .count();
            if op.keyed && effects > 1 {
                return Err(format!(
                    "a command sent {} times took effect {effects} times (offsets {:?})",
                    op.attempts, op.offsets
                ));
            }
        }
        Ok(())
    }
}
