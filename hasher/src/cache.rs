//! The stat cache: `<git-dir>/deployer/hash-cache-v1`, mapping a file's path to the stat fields
//! it had when it was read and the blake3 digest of the bytes read then.
//!
//! Correctness argument (why an entry can never serve a stale digest):
//! - An entry is only used when `lstat` now returns exactly the stored
//!   (dev, inode, mode, size, mtime ns, ctime ns). Any write, truncate, chmod, rename over the
//!   path or utime sets the inode's ctime to the current time, and no system call sets ctime
//!   back. A replaced file is a different inode, or a reused inode with a new ctime.
//! - So a stale match needs a change that leaves ctime as it was, i.e. one in the same clock tick
//!   as the state that was read. An entry is therefore only stored when the file's mtime and
//!   ctime are at least [`RACY_NANOS`] older than the moment its hashing started (git's racy-git
//!   rule, with a margin that covers the file system's coarse clock): any later change gets a
//!   ctime after that moment, hence a different key. The key is taken with `fstat` on the open
//!   descriptor before reading, so it describes the inode actually read.
//! - Assumption: file timestamps come from a clock within [`RACY_NANOS`] of this machine's
//!   (true of local file systems; a network file system with a skewed server clock, or the
//!   system clock stepped back by more than that, can break it).
//! - The file is written to a temporary file and renamed over the cache, so readers see an old
//!   or a new cache, never a torn one; a cache that fails to parse or whose checksum does not
//!   match is ignored as if absent. Failing to write it is not an error (the next run is cold).

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};

use crate::file::StatKey;

/// An entry is trusted only when the file's mtime and ctime are this much older than the moment
/// hashing started.
pub(crate) const RACY_NANOS: i128 = 2_000_000_000;

/// File name under `<git-dir>/deployer/`.
pub(crate) const FILE_NAME: &str = "hash-cache-v1";

const MAGIC: &[u8] = b"deployer hash-cache v1\n";

/// One cached file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheEntry {
    pub(crate) stat: StatKey,
    pub(crate) digest: [u8; 32],
}

/// Paths (relative to the work tree's top) → entries.
pub(crate) type Map = HashMap<Box<[u8]>, CacheEntry>;

pub(crate) struct Cache {
    path: PathBuf,
    map: RwLock<Map>,
    dirty: AtomicBool,
    write: Mutex<()>,
}

impl Cache {
    /// Loads the cache under `git_dir`; a missing or corrupt file gives an empty cache.
    pub(crate) fn load(git_dir: &Path) -> Cache {
        let path = git_dir.join("deployer").join(FILE_NAME);
        let map = std::fs::read(&path)
            .ok()
            .and_then(|bytes| parse(&bytes))
            .unwrap_or_default();
        Cache {
            path,
            map: RwLock::new(map),
            dirty: AtomicBool::new(false),
            write: Mutex::new(()),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores trusted entries and forgets the stale ones.
    pub(crate) fn update(&self, updates: Vec<(Box<[u8]>, Option<CacheEntry>)>) {
        if updates.is_empty() {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        for (key, entry) in updates {
            match entry {
                Some(entry) => {
                    map.insert(key, entry);
                }
                None => {
                    map.remove(&key);
                }
            }
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// Writes the cache if it changed. Entries of files no longer tracked are harmless (their
    /// path is never looked up) but take room: when the entries under `prefix` outnumber the
    /// `tracked` files there, the ones `keep` rejects are dropped. Errors are ignored: the cache
    /// is only an accelerator.
    pub(crate) fn persist(&self, prefix: &[u8], tracked: usize, keep: impl Fn(&[u8]) -> bool) {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        {
            let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
            let count = if prefix.is_empty() {
                map.len()
            } else {
                map.keys().filter(|key| key.starts_with(prefix)).count()
            };
            if count > tracked {
                map.retain(|key, _| key.strip_prefix(prefix).is_none_or(&keep));
            }
        }
        let bytes = serialize(&self.read());
        if self.write_atomically(&bytes).is_err() {
            // Nothing to do: the next run re-reads the files. Mark dirty so a later call retries.
            self.dirty.store(true, Ordering::Release);
        }
    }

    fn write_atomically(&self, bytes: &[u8]) -> std::io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temp = dir.join(format!(
            "{FILE_NAME}.{}.{}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(bytes)?;
            drop(file);
            std::fs::rename(&temp, &self.path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result
    }

    #[cfg(test)]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Layout: MAGIC, u64 count, then per entry: u32 path length, path, dev u64, ino u64, mode u32,
/// size u64, mtime i64, mtime_nsec i64, ctime i64, ctime_nsec i64, digest [32]; then the blake3
/// of everything before it. Integers little-endian.
fn serialize(map: &Map) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + map.len() * 128 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(map.len() as u64).to_le_bytes());
    for (path, entry) in map {
        let stat = &entry.stat;
        // Paths longer than u32::MAX cannot exist; skip rather than truncate.
        let Ok(len) = u32::try_from(path.len()) else {
            continue;
        };
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&stat.dev.to_le_bytes());
        out.extend_from_slice(&stat.ino.to_le_bytes());
        out.extend_from_slice(&stat.mode.to_le_bytes());
        out.extend_from_slice(&stat.size.to_le_bytes());
        out.extend_from_slice(&stat.mtime.to_le_bytes());
        out.extend_from_slice(&stat.mtime_nsec.to_le_bytes());
        out.extend_from_slice(&stat.ctime.to_le_bytes());
        out.extend_from_slice(&stat.ctime_nsec.to_le_bytes());
        out.extend_from_slice(&entry.digest);
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn parse(bytes: &[u8]) -> Option<Map> {
    let (body, checksum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != checksum {
        return None;
    }
    let mut reader = Reader(body.strip_prefix(MAGIC)?);
    let count = reader.u64()?;
    let mut map = Map::with_capacity(usize::try_from(count).ok()?.min(body.len() / 100));
    for _ in 0..count {
        let len = usize::try_from(reader.u32()?).ok()?;
        let path: Box<[u8]> = reader.take(len)?.into();
        let stat = StatKey {
            dev: reader.u64()?,
            ino: reader.u64()?,
            mode: reader.u32()?,
            size: reader.u64()?,
            mtime: reader.i64()?,
            mtime_nsec: reader.i64()?,
            ctime: reader.i64()?,
            ctime_nsec: reader.i64()?,
        };
        let digest = reader.take(32)?.try_into().ok()?;
        map.insert(path, CacheEntry { stat, digest });
    }
    reader.0.is_empty().then_some(map)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = self.0.split_at_checked(n)?;
        self.0 = tail;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> CacheEntry {
        CacheEntry {
            stat: StatKey {
                dev: n,
                ino: n + 1,
                mode: 0o100644,
                size: n * 3,
                mtime: -5,
                mtime_nsec: 7,
                ctime: 1_700_000_000,
                ctime_nsec: 999_999_999,
            },
            digest: [n as u8; 32],
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let mut map = Map::new();
        map.insert(b"a/b".to_vec().into(), entry(1));
        map.insert(b"\xff weird".to_vec().into(), entry(2));
        let bytes = serialize(&map);
        assert_eq!(parse(&bytes), Some(map));
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(parse(&bytes[..cut]), None, "truncated at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 12] ^= 1;
        assert_eq!(parse(&flipped), None);
        assert_eq!(parse(b""), None);
    }
}
