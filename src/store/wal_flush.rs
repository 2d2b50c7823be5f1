//! Group flush of SQLite's write-ahead log, outside SQLite's write lock.
//!
//! A commit made with `synchronous = NORMAL` writes its frames to the WAL and returns, holding
//! SQLite's one write lock only that long. A writer whose records must be durable before it
//! answers then waits here until an fdatasync of the WAL that began after its commit has
//! returned. One fdatasync runs at a time and covers every commit made before it began, so
//! concurrent writers share it, and another transaction is written while the disk flushes: the
//! way PostgreSQL's and MySQL's group commit take the flush out of their insert locks. SQLite
//! has no call that syncs its WAL without a transaction, hence this module.
//!
//! The flush uses a descriptor of its own on the WAL file. SQLite keeps that file (it deletes
//! it only when the last connection to the database closes, and the store's records connection
//! lives as long as the store), takes no POSIX locks on it (its WAL locks are on the `-shm`
//! file and the database), and checks, before each flush, that the path still names the file
//! flushed.
//!
//! A failed fdatasync is final: after one, Linux may have dropped the pages it could not
//! write, and a later fdatasync can succeed without them. Every later flush fails, so that
//! nothing is acknowledged after it, and the store's health check says so: trustd must be
//! restarted, and SQLite's recovery then reads what the disk holds.

use super::StoreError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The WAL of one database, with the commits counted and flushed so far.
pub struct WalFlush {
    path: PathBuf,
    file: Arc<File>,
    /// Commits counted by [`WalFlush::committed`], in commit order.
    committed: AtomicU64,
    /// The commits known durable: every one up to this number.
    flushed: AtomicU64,
    /// Held during a flush, so that one runs at a time.
    flushing: tokio::sync::Mutex<()>,
    failed: AtomicBool,
}

impl WalFlush {
    /// Opens the WAL of the database at `db` (`db` with `-wal` appended), which SQLite created
    /// when a connection first read the database, and makes its directory entry durable.
    pub fn open(db: &Path) -> Result<Self, StoreError> {
        let mut path = db.as_os_str().to_owned();
        path.push("-wal");
        let path = PathBuf::from(path);
        let file = File::open(&path)
            .map_err(|e| StoreError::Database(format!("the database's WAL {}: {e}", path.display())))?;
        sync_directory(&path)?;
        Ok(WalFlush {
            path,
            file: Arc::new(file),
            committed: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flushing: tokio::sync::Mutex::new(()),
            failed: AtomicBool::new(false),
        })
    }

    /// Counts a commit just made, while the connection that made it is still held (so that
    /// the count follows the commits' order); returns its number for [`WalFlush::durable`].
    pub fn committed(&self) -> u64 {
        self.committed.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Notes that commit number `commit` flushed the WAL itself (`synchronous = FULL`), which
    /// made it and every commit before it durable.
    pub fn synced(&self, commit: u64) {
        self.flushed.fetch_max(commit, Ordering::SeqCst);
    }

    /// Returns once commit number `commit` is durable: at once if a flush since covered it,
    /// else after the next flush, which covers every commit made before it begins.
    pub async fn durable(&self, commit: u64) -> Result<(), StoreError> {
        self.check()?;
        if self.flushed.load(Ordering::SeqCst) >= commit {
            return Ok(());
        }
        let _flushing = self.flushing.lock().await;
        self.check()?;
        if self.flushed.load(Ordering::SeqCst) >= commit {
            return Ok(());
        }
        let through = self.committed.load(Ordering::SeqCst);
        let (file, path) = (self.file.clone(), self.path.clone());
        let sync = move || same_file(&file, &path).and_then(|()| file.sync_data());
        // On a blocking thread, not a runtime worker: the flush takes a disk's round trip.
        let synced =
            tokio::task::spawn_blocking(sync).await.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match synced {
            Ok(()) => {
                self.synced(through);
                Ok(())
            }
            Err(e) => {
                self.failed.store(true, Ordering::SeqCst);
                tracing::error!(wal = %self.path.display(), error = %e, audit = true,
                    "fdatasync of the database's WAL failed: recent records may not be durable, and none is \
                     acknowledged from now on; restart trustd");
                Err(self.failure())
            }
        }
    }

    /// Fails once a flush has failed.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.failed.load(Ordering::SeqCst) {
            true => Err(self.failure()),
            false => Ok(()),
        }
    }

    fn failure(&self) -> StoreError {
        StoreError::Database("a flush of the database's WAL failed; restart trustd".into())
    }

    /// Commits counted and commits known durable, for tests.
    #[cfg(test)]
    pub fn counts(&self) -> (u64, u64) {
        (self.committed.load(Ordering::SeqCst), self.flushed.load(Ordering::SeqCst))
    }
}

/// Whether `path` still names `file` (SQLite never replaces its WAL while a connection is
/// open; were it replaced, flushing the old file would make nothing durable).
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
    match (open.dev(), open.ino()) == (named.dev(), named.ino()) {
        true => Ok(()),
        false => Err(std::io::Error::other("the WAL file was replaced under the store")),
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// fsyncs the directory holding `path`, so that the file's entry survives a power loss.
#[cfg(unix)]
fn sync_directory(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::Database(format!("syncing the directory {}: {e}", dir.display())))
}

#[cfg(not(unix))]
fn sync_directory(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_beside(dir: &Path) -> WalFlush {
        std::fs::write(dir.join("t.db-wal"), b"").unwrap();
        WalFlush::open(&dir.join("t.db")).unwrap()
    }

    #[tokio::test]
    async fn one_flush_covers_every_commit_made_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_beside(dir.path());
        let commits: Vec<u64> = (0..3).map(|_| wal.committed()).collect();
        assert_eq!(commits, [1, 2, 3]);
        wal.durable(2).await.unwrap();
        assert_eq!(wal.counts(), (3, 3), "the flush for the second covered the third");
        wal.durable(3).await.unwrap();
        let synced_itself = wal.committed();
        wal.synced(synced_itself);
        wal.durable(synced_itself).await.unwrap();
        assert_eq!(wal.counts(), (4, 4));
        wal.committed();
        wal.synced(2);
        assert_eq!(wal.counts(), (5, 4), "what is known durable never goes back");
    }

    #[tokio::test]
    async fn a_failed_flush_fails_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let wal = wal_beside(dir.path());
        // The path names another file than the one flushed: nothing would be made durable.
        std::fs::remove_file(dir.path().join("t.db-wal")).unwrap();
        std::fs::write(dir.path().join("t.db-wal"), b"").unwrap();
        let commit = wal.committed();
        let e = wal.durable(commit).await.unwrap_err();
        assert!(e.to_string().contains("restart trustd"), "{e}");
        assert!(wal.check().is_err());
        assert!(wal.durable(commit).await.is_err(), "failed for good");
        wal.synced(commit);
        assert!(wal.durable(commit).await.is_err(), "even for commits that flushed themselves");
        assert_eq!(wal.counts(), (1, 1));
    }

    #[test]
    fn a_database_without_its_wal_is_refused_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = WalFlush::open(&dir.path().join("t.db")).err().unwrap();
        assert!(e.to_string().contains("t.db-wal"), "{e}");
    }
}
