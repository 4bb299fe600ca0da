//! Where the write-ahead log lives (`wal_dir`).
//!
//! RocksDB can keep its WAL in a directory of its own, for example on a
//! device of its own, so that a send's fsync does not queue behind the
//! memtable flushes and compactions writing to the data device. But
//! RocksDB does not remember where the WAL was: opened with another
//! `wal_dir`, it finds no log there and starts without the writes that were
//! only in the log, which are acknowledged sends and acks. So the first open
//! records the WAL's directory in the data directory (file [`MARKER`]), and
//! every later open refuses a setting that does not match it.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// The file in the data directory naming the WAL's directory (empty: the
/// data directory itself, RocksDB's default).
pub(super) const MARKER: &str = "WAL_DIR";

/// Returns the directory to open the WAL in (`None`: the data directory)
/// for a store in `data` given `wal_dir`, once sure the store's WAL has
/// been there; a new store records it. `data` exists.
pub(super) fn locate(data: &Path, wal_dir: Option<&Path>) -> Result<Option<PathBuf>> {
    let data_real = real(data)?;
    let wanted = match wal_dir {
        Some(dir) => {
            fs::create_dir_all(dir)
                .map_err(|e| StoreError::storage(format!("creating {}", dir.display()), e))?;
            // The data directory named another way is the default.
            Some(real(dir)?).filter(|dir| *dir != data_real)
        }
        None => None,
    };
    let marker = data.join(MARKER);
    let recorded = match fs::read(&marker) {
        Ok(bytes) => Some(parse(&bytes, &marker)?),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => {
            return Err(StoreError::storage(
                format!("reading {}", marker.display()),
                e,
            ))
        }
    };
    // A store older than the marker (RocksDB's `CURRENT` is there) kept
    // its WAL beside its data, like any store opened without `wal_dir`.
    let has_data = data.join("CURRENT").exists();
    let before = match &recorded {
        Some(before) => before.clone(),
        None if has_data => None,
        None => wanted.clone(),
    };
    if before != wanted {
        let place = |d: &Option<PathBuf>| match d {
            Some(d) => d.display().to_string(),
            None => format!("{} (no wal_dir)", data.display()),
        };
        return Err(StoreError::invalid(format!(
            "the store in {} keeps its write-ahead log in {}, but wal_dir now says {}: \
             set wal_dir back, or move the WAL's *.log files to the new place and \
             the file {} to match (opened elsewhere, the writes only in the log would be lost)",
            data.display(),
            place(&before),
            place(&wanted),
            marker.display(),
        )));
    }
    if recorded.is_none() {
        record(data, wanted.as_deref())?;
    }
    Ok(wanted)
}

/// The path with symbolic links and `..` resolved, so that two names of
/// one directory compare equal.
fn real(dir: &Path) -> Result<PathBuf> {
    fs::canonicalize(dir)
        .map_err(|e| StoreError::storage(format!("resolving {}", dir.display()), e))
}

fn parse(bytes: &[u8], marker: &Path) -> Result<Option<PathBuf>> {
    let text = std::str::from_utf8(bytes).map_err(|_| {
        StoreError::invalid(format!("{} does not hold a UTF-8 path", marker.display()))
    })?;
    let text = text.trim_end_matches('\n');
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

/// Writes the marker whole or not at all: a new file synced, renamed over,
/// and the directory synced so the name survives a crash.
fn record(data: &Path, wal_dir: Option<&Path>) -> Result<()> {
    let text = match wal_dir {
        Some(dir) => dir
            .to_str()
            .ok_or_else(|| {
                StoreError::invalid(format!("wal_dir {} is not a UTF-8 path", dir.display()))
            })?
            .to_owned(),
        None => String::new(),
    };
    let marker = data.join(MARKER);
    let fresh = data.join(format!("{MARKER}.new"));
    let failed =
        |e: std::io::Error| StoreError::storage(format!("writing {}", marker.display()), e);
    let mut file = fs::File::create(&fresh).map_err(failed)?;
    file.write_all(format!("{text}\n").as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    fs::rename(&fresh, &marker).map_err(failed)?;
    fs::File::open(data)
        .and_then(|d| d.sync_all())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Cf, Db, Durability};

    fn logs_in(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    }

    fn write(db: &Db, key: &[u8]) {
        let mut b = db.batch().unwrap();
        b.put(Cf::Meta, key, b"v");
        db.write(b, Durability::Synced, "a test write").unwrap();
    }

    #[test]
    fn a_store_given_a_wal_dir_logs_there_and_opens_only_with_it() {
        let (data, wal, other) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let db = Db::open(data.path(), Some(wal.path())).unwrap();
        write(&db, b"k");
        drop(db);
        assert!(logs_in(wal.path()) > 0, "the WAL is in wal_dir");
        assert_eq!(logs_in(data.path()), 0, "and not beside the data");

        for moved in [None, Some(other.path())] {
            let refused = Db::open(data.path(), moved).err();
            let text = format!("{refused:?}");
            assert!(
                matches!(refused, Some(StoreError::InvalidArgument { .. })),
                "{text}"
            );
            assert!(
                text.contains(&real(wal.path()).unwrap().display().to_string()),
                "names where the WAL is: {text}"
            );
        }

        let db = Db::open(data.path(), Some(wal.path())).unwrap();
        assert_eq!(
            db.get(Cf::Meta, b"k").unwrap().as_deref(),
            Some(&b"v"[..]),
            "the write in the WAL is recovered"
        );
    }

    #[test]
    fn a_store_without_a_marker_keeps_its_wal_beside_its_data() {
        let (data, wal) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let db = Db::open(data.path(), None).unwrap();
        write(&db, b"k");
        drop(db);
        assert!(logs_in(data.path()) > 0);
        // As a store made before the marker existed.
        fs::remove_file(data.path().join(MARKER)).unwrap();

        let refused = Db::open(data.path(), Some(wal.path())).err();
        assert!(
            matches!(refused, Some(StoreError::InvalidArgument { .. })),
            "{refused:?}"
        );
        assert!(!data.path().join(MARKER).exists(), "nothing recorded");

        // The data directory by another name is no change.
        let same = data.path().join(".");
        let db = Db::open(data.path(), Some(same.as_path())).unwrap();
        assert_eq!(db.get(Cf::Meta, b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(fs::read(data.path().join(MARKER)).unwrap(), b"\n");
    }
}
