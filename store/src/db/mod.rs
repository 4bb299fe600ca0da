//! RocksDB, and only here: opening the database, its column families
//! ([`Cf`]: one typed name each, checked at open), reads, iteration, and
//! writes. Every write goes through [`Db::write`], which also keeps the
//! poison flag: once a write to the WAL has failed, nothing the store
//! acknowledges afterwards could be trusted to survive, so every later write
//! fails with [`StoreError::Poisoned`] instead of being acknowledged.

pub(crate) mod keys;
mod wal;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Buf;
use prost::Message;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DBPinnableSlice, Direction,
    IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::error::{Result, StorageCause, StoreError};

/// Used WAL files kept for reuse instead of deleted (see [`tune_wal`]).
const WAL_FILES_RECYCLED: usize = 2;
/// Most bytes of live WAL files before RocksDB flushes the column families
/// that hold the oldest one (see [`tune_wal`]).
const MAX_TOTAL_WAL_BYTES: u64 = 256 << 20;

/// The store's WAL settings, public so the bench's bare-RocksDB ceiling
/// opens its database the same way.
///
/// Every acknowledged write waits for a WAL fdatasync. Appending to a fresh
/// log file makes that sync also write the file's metadata (its new size
/// and blocks: a journal commit on a journaled ext4, the inode on a
/// journal-less one); writing over a used log file (RocksDB marks recycled
/// records with their log number, so stale ones end the replay) syncs the
/// data only: a lone synced 1 KiB write took 83 us instead of 120 on the
/// machine it was measured on. A log file is done with only once every
/// column family with writes in it has flushed them, and the small ones
/// (consumption state, index) fill their memtables slowly, so the total of
/// live logs is capped: past it RocksDB flushes them. RocksDB's own cap is
/// four times all the column families' write buffers, gigabytes here, so
/// few files would be done with early enough to be reused. Recycling works
/// with the point-in-time WAL recovery the store keeps (the default).
pub fn tune_wal(opts: &mut Options) {
    opts.set_recycle_log_file_num(WAL_FILES_RECYCLED);
    opts.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
}

/// Table block size of the message log (RocksDB's default is 4 KiB, which
/// the other column families keep: they are read by key). Consumers read
/// the log in order, up to 32 messages a receive, mostly from table files
/// once a backlog outgrows the memtable: with 4 KiB blocks a receive of
/// 1 KiB messages fetched, decompressed, cached and evicted a block every
/// three or four messages, a fifth of the server's CPU in a backlog drain.
/// Larger blocks make that one or two per receive (batched-ack drain about
/// 6 % faster: `bench/results/ab/log-block-size`); a single read (a
/// redelivery, a lookup by key) decompresses one 32 KiB block, some
/// microseconds.
const LOG_BLOCK_BYTES: usize = 32 << 10;

/// Options of one column family beyond RocksDB's defaults.
fn cf_options(cf: Cf) -> Options {
    let mut opts = Options::default();
    if cf == Cf::Log {
        let mut table = BlockBasedOptions::default();
        table.set_block_size(LOG_BLOCK_BYTES);
        opts.set_block_based_table_factory(&table);
    }
    opts
}

/// The column families of a store; see [`keys`] for what each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cf {
    /// Message logs, one per queue.
    Log,
    /// Consumption state: cursors, in-flight deliveries, FIFO entries.
    Pop,
    /// Topics and consumer groups.
    Meta,
    /// Delay messages by due time.
    Timer,
    /// Half messages of transactions and their check schedule.
    Txn,
    /// The message index: each logged message's keys and id -> where it
    /// is (`log/index`), written in the batch that appends the message.
    Index,
}

impl Cf {
    pub(crate) const ALL: [Cf; 6] = [Cf::Log, Cf::Pop, Cf::Meta, Cf::Timer, Cf::Txn, Cf::Index];

    /// Returns the name RocksDB knows the column family by (on disk: never
    /// change one).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Cf::Log => "log",
            Cf::Pop => "pop",
            Cf::Meta => "meta",
            Cf::Timer => "timer",
            Cf::Txn => "txn",
            Cf::Index => "index",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Whether a write waits for the WAL to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync the WAL before returning: survives power loss.
    Synced,
    /// Written to the WAL in the page cache: survives a process crash.
    Buffered,
}

/// One key-value entry read from an iterator.
pub(crate) type Entry = (Box<[u8]>, Box<[u8]>);

/// The open database.
pub(crate) struct Db {
    inner: DB,
    /// Set by the first failed write; see the module comment.
    poisoned: AtomicBool,
    /// Tells watchers (the node binaries, which stop) that it was set.
    poison_signal: tokio::sync::watch::Sender<bool>,
}

impl Db {
    /// Opens (or creates) the database in `dir` with every column family,
    /// its write-ahead log in `wal_dir` (`None`: in `dir`; see [`wal`]).
    pub(crate) fn open(dir: &Path, wal_dir: Option<&Path>) -> Result<Db> {
        Self::open_tuned(dir, wal_dir, |_| {})
    }

    /// [`Db::open`], with `tune` applied last to the database's options and
    /// every column family's (tests use it to roll the log sooner).
    fn open_tuned(dir: &Path, wal_dir: Option<&Path>, tune: fn(&mut Options)) -> Result<Db> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::storage(format!("creating {}", dir.display()), e))?;
        let wal_dir = wal::locate(dir, wal_dir)?;
        let mut opts = Options::default();
        if let Some(wal_dir) = &wal_dir {
            opts.set_wal_dir(wal_dir);
        }
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // Memtable flushes and compactions write their files in the
        // background; left alone, the kernel holds tens of MiB of them dirty
        // and ext4's ordered mode writes them out inside the next journal
        // commit, which is the one a send's WAL fsync waits for. Syncing
        // them a MiB at a time as they are written keeps that burst out of
        // the sends' fsyncs (RocksDB's own advice; its effect on p99 here
        // was within the disk's noise: bench/results/ab/bytes-per-sync).
        opts.set_bytes_per_sync(1 << 20);
        tune_wal(&mut opts);
        tune(&mut opts);
        let cfs = Cf::ALL.map(|cf| {
            let mut cf_opts = cf_options(cf);
            tune(&mut cf_opts);
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let inner = DB::open_cf_descriptors(&opts, dir, cfs)
            .map_err(|e| StoreError::storage(format!("opening {}", dir.display()), e))?;
        let db = Db {
            inner,
            poisoned: AtomicBool::new(false),
            poison_signal: tokio::sync::watch::channel(false).0,
        };
        // Fails here, once, rather than at every later use.
        db.handles()?;
        Ok(db)
    }

    fn handle(&self, cf: Cf) -> Result<&ColumnFamily> {
        self.inner.cf_handle(cf.name()).ok_or_else(|| {
            StoreError::storage(
                "looking up a column family",
                StorageCause::Corrupt(format!("column family {} is missing", cf.name())),
            )
        })
    }

    fn handles(&self) -> Result<[&ColumnFamily; 6]> {
        Ok([
            self.handle(Cf::Log)?,
            self.handle(Cf::Pop)?,
            self.handle(Cf::Meta)?,
            self.handle(Cf::Timer)?,
            self.handle(Cf::Txn)?,
            self.handle(Cf::Index)?,
        ])
    }

    /// Reads one value.
    pub(crate) fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<DBPinnableSlice<'_>>> {
        self.inner
            .get_pinned_cf(self.handle(cf)?, key)
            .map_err(|e| read_error(cf, e))
    }

    /// Iterates from `from` (inclusive) in `direction`, up to `upper`
    /// (exclusive) when given.
    pub(crate) fn scan(
        &self,
        cf: Cf,
        from: &[u8],
        direction: Direction,
        upper: Option<Vec<u8>>,
    ) -> Result<impl Iterator<Item = Result<Entry>> + '_> {
        let mut ro = ReadOptions::default();
        if let Some(upper) = upper {
            ro.set_iterate_upper_bound(upper);
        }
        let it =
            self.inner
                .iterator_cf_opt(self.handle(cf)?, ro, IteratorMode::From(from, direction));
        Ok(it.map(move |item| item.map_err(|e| read_error(cf, e))))
    }

    /// Iterates over every key that starts with `prefix`.
    pub(crate) fn scan_prefix<'a>(
        &'a self,
        cf: Cf,
        prefix: &'a [u8],
    ) -> Result<impl Iterator<Item = Result<Entry>> + 'a> {
        Ok(self
            .scan(cf, prefix, Direction::Forward, None)?
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(prefix))))
    }

    /// Returns an empty batch of writes.
    pub(crate) fn batch(&self) -> Result<Batch<'_>> {
        Ok(Batch {
            handles: self.handles()?,
            inner: WriteBatch::default(),
        })
    }

    /// Fails with [`StoreError::Poisoned`] once a write has failed.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(StoreError::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Turns true when the database is poisoned.
    pub(crate) fn watch_poison(&self) -> tokio::sync::watch::Receiver<bool> {
        self.poison_signal.subscribe()
    }

    /// Writes a batch atomically; `operation` names it in errors. A failure
    /// poisons the database (see the module comment).
    pub(crate) fn write(
        &self,
        batch: Batch<'_>,
        durability: Durability,
        operation: &'static str,
    ) -> Result<()> {
        let mut opts = WriteOptions::default();
        let synced = durability == Durability::Synced;
        opts.set_sync(synced);
        let started = std::time::Instant::now();
        let written = self.write_with(batch, &opts, operation);
        if synced {
            crate::metrics::get().synced(operation, started.elapsed());
        }
        written
    }

    /// An integer property RocksDB keeps of a column family (such as
    /// `rocksdb.estimate-num-keys`): an estimate read from memory, no scan.
    pub(crate) fn property(&self, cf: Cf, name: &str) -> Option<u64> {
        let handle = self.handle(cf).ok()?;
        self.inner
            .property_int_value_cf(handle, name)
            .ok()
            .flatten()
    }

    fn write_with(
        &self,
        batch: Batch<'_>,
        opts: &WriteOptions,
        operation: &'static str,
    ) -> Result<()> {
        self.check_writable()?;
        self.inner.write_opt(batch.inner, opts).map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            let error = StoreError::storage(operation, e);
            tracing::error!(error = %error.report(), "a write failed: the store refuses writes from now on");
            self.poison_signal.send_replace(true);
            error
        })
    }

    /// Syncs the WAL to disk (at shutdown).
    pub(crate) fn flush_wal(&self) -> Result<()> {
        self.inner
            .flush_wal(true)
            .map_err(|e| StoreError::storage("syncing the write-ahead log", e))
    }
}

fn read_error(cf: Cf, e: rocksdb::Error) -> StoreError {
    StoreError::storage(format!("reading column family {}", cf.name()), e)
}

/// Writes to apply together with [`Db::write`].
pub(crate) struct Batch<'a> {
    handles: [&'a ColumnFamily; 6],
    inner: WriteBatch,
}

impl Batch<'_> {
    /// Sets `key` to `value`.
    pub(crate) fn put(&mut self, cf: Cf, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.inner.put_cf(self.handles[cf.index()], key, value);
    }

    /// Removes `key`.
    pub(crate) fn delete(&mut self, cf: Cf, key: impl AsRef<[u8]>) {
        self.inner.delete_cf(self.handles[cf.index()], key);
    }

    /// Removes every key in `[from, to)`.
    pub(crate) fn delete_range<K: AsRef<[u8]>>(&mut self, cf: Cf, from: K, to: K) {
        self.inner
            .delete_range_cf(self.handles[cf.index()], from, to);
    }

    /// Returns true when nothing was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// Decodes a stored record; `what` names it in the error.
pub(crate) fn decode<M: Message + Default>(bytes: &[u8], what: &'static str) -> Result<M> {
    decode_buf(bytes, what)
}

/// As [`decode`], from any buffer. Given a `Bytes`, the record's `Bytes`
/// fields (a message body) become views of it rather than copies.
pub(crate) fn decode_buf<M: Message + Default>(buf: impl Buf, what: &'static str) -> Result<M> {
    M::decode(buf).map_err(|e| StoreError::storage(format!("decoding {what}"), e))
}

#[cfg(test)]
impl Db {
    /// Makes RocksDB refuse a write (a synced write without a WAL is
    /// invalid), through the same path a failed WAL write takes.
    pub(crate) fn fail_a_write(&self) -> StoreError {
        let batch = match self.batch() {
            Ok(b) => b,
            Err(e) => return e,
        };
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        opts.disable_wal(true);
        match self.write_with(batch, &opts, "a write meant to fail") {
            Ok(()) => StoreError::invalid("the write did not fail"),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_poisons_every_later_write_but_not_reads() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), None).unwrap();
        let mut b = db.batch().unwrap();
        b.put(Cf::Meta, b"k", b"v");
        db.write(b, Durability::Synced, "a first write").unwrap();

        let failed = db.fail_a_write();
        assert!(matches!(failed, StoreError::Storage { .. }), "{failed:?}");
        assert!(
            std::error::Error::source(&failed).is_some(),
            "the cause is kept"
        );

        let mut b = db.batch().unwrap();
        b.put(Cf::Meta, b"k2", b"v");
        let refused = db.write(b, Durability::Buffered, "a later write");
        assert!(matches!(refused, Err(StoreError::Poisoned)), "{refused:?}");
        assert!(matches!(db.check_writable(), Err(StoreError::Poisoned)));
        assert_eq!(db.get(Cf::Meta, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert!(db.get(Cf::Meta, b"k2").unwrap().is_none());
    }

    #[test]
    fn column_families_keep_their_names() {
        // The names are on disk: existing data directories must open.
        let names = Cf::ALL.map(Cf::name);
        assert_eq!(names, ["log", "pop", "meta", "timer", "txn", "index"]);
    }

    /// Identity (inode and birth time: ext4 reuses the inodes of deleted
    /// files) → name of every WAL file in `dir`.
    fn wal_files(dir: &Path) -> std::collections::HashMap<(u64, std::time::SystemTime), String> {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| {
                let m = e.metadata().unwrap();
                let born = m.created().expect("a file system that records birth times");
                ((m.ino(), born), e.file_name().to_string_lossy().into())
            })
            .collect()
    }

    /// The options RocksDB wrote for the open database in `dir` (the
    /// settings as it took them, after its own checks).
    fn options_file(dir: &Path) -> String {
        let newest = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("OPTIONS-")
            })
            .max()
            .unwrap();
        std::fs::read_to_string(newest).unwrap()
    }

    /// The `block_size` of column family `cf` in an options file.
    fn block_size(options: &str, cf: &str) -> u64 {
        let section = format!("[TableOptions/BlockBasedTable \"{cf}\"]");
        let from = options
            .find(&section)
            .unwrap_or_else(|| panic!("{options}"));
        options[from..]
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .find_map(|l| l.trim().strip_prefix("block_size="))
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn the_log_reads_in_large_blocks_and_the_rest_in_small() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), None).unwrap();
        let options = options_file(dir.path());
        assert_eq!(block_size(&options, "log"), LOG_BLOCK_BYTES as u64);
        for cf in Cf::ALL.into_iter().filter(|&cf| cf != Cf::Log) {
            assert_eq!(block_size(&options, cf.name()), 4096, "{}", cf.name());
        }
        // A reopened store takes them again (they are not read from disk).
        drop(db);
        let _db = Db::open(dir.path(), None).unwrap();
        assert_eq!(
            block_size(&options_file(dir.path()), "log"),
            LOG_BLOCK_BYTES as u64
        );
    }

    #[test]
    fn used_wal_files_are_reused_and_replay_only_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        // Small memtables: the log rolls every few hundred writes.
        let small = |o: &mut Options| o.set_write_buffer_size(128 << 10);
        let db = Db::open_tuned(dir.path(), None, small).unwrap();
        // What RocksDB kept of the setting after checking it against the
        // rest (it turns recycling off for some WAL recovery modes).
        let options = options_file(dir.path());
        assert!(
            options.contains(&format!("recycle_log_file_num={WAL_FILES_RECYCLED}")),
            "{options}"
        );
        let value = [7u8; 1024];
        let mut seen = std::collections::HashMap::new();
        let mut reused = false;
        for i in 0..4000u32 {
            let mut b = db.batch().unwrap();
            b.put(Cf::Log, i.to_be_bytes(), value);
            db.write(b, Durability::Synced, "a test write").unwrap();
            if i % 50 == 0 {
                for (id, name) in wal_files(dir.path()) {
                    // The same file under a later log number: recycled.
                    match seen.insert(id, name.clone()) {
                        Some(old) if old != name => reused = true,
                        _ => {}
                    }
                }
            }
        }
        assert!(reused, "no WAL file was reused: recycling is off");
        // Closed without a flush, the reopened store replays its logs, the
        // recycled ones included: every key is back, and nothing else.
        drop(db);
        let db = Db::open_tuned(dir.path(), None, small).unwrap();
        for i in 0..4000u32 {
            let v = db.get(Cf::Log, &i.to_be_bytes()).unwrap();
            assert_eq!(v.as_deref(), Some(&value[..]), "key {i}");
        }
        let keys = db
            .inner
            .iterator_cf(db.handle(Cf::Log).unwrap(), IteratorMode::Start)
            .count();
        assert_eq!(keys, 4000);
    }
}

/// Decoding of stored records over arbitrary bytes (issue 14): a corrupt
/// or foreign value must become a typed storage error, never a panic, and
/// every record written must decode back to itself.
#[cfg(test)]
mod props {
    use pier_proto::admin::{ConsumerGroup, Topic};
    use pier_proto::store::{HalfMessage, StoredMessage};
    use proptest::prelude::*;
    use prost::Message;

    use super::{decode, decode_buf};
    use crate::error::StoreError;

    fn stored() -> impl Strategy<Value = StoredMessage> {
        (
            "\\PC{0,40}",
            any::<u32>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of("\\PC{0,10}"),
            proptest::collection::vec("\\PC{0,10}", 0..3),
            proptest::collection::btree_map("\\PC{1,8}", "\\PC{0,8}", 0..3),
            (any::<i64>(), any::<i64>(), any::<u64>(), any::<i32>()),
        )
            .prop_map(
                |(message_id, queue, offset, body, tag, keys, props, (born, at, txn, kind))| {
                    StoredMessage {
                        message_id,
                        queue,
                        offset,
                        body: body.into(),
                        tag,
                        keys,
                        user_properties: props.into_iter().collect(),
                        born_at_ms: born,
                        deliver_at_ms: at,
                        txn_check_after_ms: txn,
                        kind,
                        ..Default::default()
                    }
                },
            )
    }

    fn is_typed<T>(r: &crate::error::Result<T>) -> bool {
        matches!(r, Ok(_) | Err(StoreError::Storage { .. }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_bytes_decode_or_give_a_storage_error(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            prop_assert!(is_typed(&decode::<StoredMessage>(&b, "a stored message")));
            prop_assert!(is_typed(&decode::<HalfMessage>(&b, "a half message")));
            prop_assert!(is_typed(&decode::<Topic>(&b, "a topic")));
            prop_assert!(is_typed(&decode::<ConsumerGroup>(&b, "a group")));
        }

        #[test]
        fn stored_messages_round_trip(m in stored(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode_to_vec();
            prop_assert_eq!(decode::<StoredMessage>(&bytes, "a stored message").unwrap(), m.clone());
            // From a `Bytes` (how the log iterator decodes) the same message,
            // its body a view of the record rather than a copy.
            let shared = bytes::Bytes::from(bytes.clone());
            let viewed: StoredMessage = decode_buf(shared.clone(), "a stored message").unwrap();
            prop_assert_eq!(&viewed, &m);
            if !viewed.body.is_empty() {
                let within = shared.as_ptr_range();
                prop_assert!(within.contains(&viewed.body.as_ptr()), "body copied");
            }
            // A record cut short (a torn or damaged value) is refused or
            // decodes to something, but never panics.
            let short = &bytes[..cut.index(bytes.len() + 1).min(bytes.len())];
            prop_assert!(is_typed(&decode::<StoredMessage>(short, "a stored message")));
        }
    }
}
