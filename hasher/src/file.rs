//! Reading one working-tree entry: a regular file streamed through blake3 with a fixed buffer,
//! a symlink read as its target string (never followed).

use std::cell::RefCell;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Read buffer per thread. Whole files are never held in memory: peak memory is this times the
/// number of hashing threads, whatever the file sizes. 128 KiB measured a little faster than
/// 256 KiB and 1 MiB on the benchmark tree (the bytes copied in stay in L2 for blake3), and
/// faster than 32 KiB (fewer system calls).
const BUF_SIZE: usize = 128 * 1024;

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; BUF_SIZE]);
}

/// The stat fields a cache entry is keyed by. Any write to a file changes its ctime (which no
/// system call can set back), so equal keys mean unchanged content, given the racy-entry rule
/// in `cache.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatKey {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    pub(crate) mtime_nsec: i64,
    pub(crate) ctime: i64,
    pub(crate) ctime_nsec: i64,
}

impl StatKey {
    pub(crate) fn of(meta: &Metadata) -> StatKey {
        StatKey {
            dev: meta.dev(),
            ino: meta.ino(),
            mode: meta.mode(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }

    /// The later of mtime and ctime, in nanoseconds since the epoch.
    pub(crate) fn newest_nanos(&self) -> i128 {
        let mtime = i128::from(self.mtime) * 1_000_000_000 + i128::from(self.mtime_nsec);
        let ctime = i128::from(self.ctime) * 1_000_000_000 + i128::from(self.ctime_nsec);
        mtime.max(ctime)
    }

    /// Git's notion of executable: the owner's execute bit.
    pub(crate) fn executable(&self) -> bool {
        self.mode & 0o100 != 0
    }
}

/// What is at a tracked path in the working tree.
#[derive(Debug)]
pub(crate) enum Entry {
    /// Nothing (deleted), or a directory where git tracks a file.
    Missing,
    /// A regular file, hashed.
    File {
        stat: StatKey,
        len: u64,
        digest: [u8; 32],
    },
    /// A symlink and its target string.
    Symlink { target: Vec<u8> },
    /// A fifo, socket or device.
    Unsupported { kind: &'static str },
}

/// Reads the entry at `path` without following a final symlink.
pub(crate) fn read_entry(path: &Path) -> io::Result<Entry> {
    // O_NOFOLLOW: a symlink fails with ELOOP instead of being followed. O_NONBLOCK: a fifo does
    // not block the open (no effect on regular files).
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.raw_os_error() == Some(libc::ELOOP) => {
            let meta = std::fs::symlink_metadata(path)?;
            if !meta.file_type().is_symlink() {
                return Err(error);
            }
            let target = std::fs::read_link(path)?;
            return Ok(Entry::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            });
        }
        Err(error) if is_missing(&error) => return Ok(Entry::Missing),
        Err(error) => return Err(error),
    };
    let meta = file.metadata()?;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        return Ok(Entry::Missing);
    }
    if !file_type.is_file() {
        return Ok(Entry::Unsupported {
            kind: kind_name(&meta),
        });
    }
    let stat = StatKey::of(&meta);
    let (len, digest) = stream(file, stat.size)?;
    Ok(Entry::File { stat, len, digest })
}

/// Streams `file` through blake3 with the thread's fixed buffer, to its end or, when `size` (from
/// `fstat`) is not 0, until `size` bytes are read: that saves the last `read` returning 0 on
/// every file. Bytes appended meanwhile are a change racing the hash like any other; it moves
/// ctime, so the cache never serves the result later (see cache.rs).
fn stream(mut file: File, size: u64) -> io::Result<(u64, [u8; 32])> {
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while size == 0 || len < size {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok((len, *hasher.finalize().as_bytes()))
    })
}

/// A path that no longer exists, or whose parent is no longer a directory.
pub(crate) fn is_missing(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn kind_name(meta: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let file_type = meta.file_type();
    if file_type.is_fifo() {
        "fifo"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "device"
    } else {
        "special file"
    }
}
