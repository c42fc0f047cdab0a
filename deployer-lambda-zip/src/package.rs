//! The deterministic zip: the same tree gives the same bytes on every run and machine.
//!
//! - entries: every regular file under `source`, by relative path with `/` separators, sorted
//!   by path bytes; directories get no entries of their own;
//! - timestamps: all 1980-01-01 00:00:00 (the zip epoch), whatever the files' mtimes;
//! - permissions: `0755` when any execute bit is set, else `0644`; nothing else of the mode;
//! - compression: deflate at level 6 for every entry (zlib-rs through flate2; the version is
//!   pinned by Cargo.lock, since another deflate implementation may choose other bytes);
//! - layout: local headers without data descriptors, no extra fields, no comments, names in
//!   UTF-8 (flagged when not ASCII), Unix "version made by" so the permissions are read;
//! - a symlink to a file inside `source` is stored as a regular file with the target's bytes;
//!   a symlink leading out of `source` (or to a directory) is refused with an error naming it,
//!   so nothing outside the source tree can end up in the zip;
//! - `exclude` globs (relative to `source`, `**` crosses directories) leave files out; a
//!   directory that matches is skipped whole.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use deployer_core::ZipArtifact;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zip::write::{PreparedZipFile, SimpleFileOptions};
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Deflate level used for every entry.
pub const COMPRESSION_LEVEL: i64 = 6;

/// Why the zip could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The source directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A symlink leads out of the source tree (or to a directory).
    #[error("{} is a symlink to {}, {reason}; replace it with a copy or add it to `exclude`", link.display(), target.display())]
    Symlink {
        /// The symlink, relative to the source.
        link: PathBuf,
        /// Where it points.
        target: PathBuf,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An `exclude` glob is invalid.
    #[error("invalid exclude glob `{glob}`")]
    Glob {
        /// The glob.
        glob: String,
        /// The parse error.
        source: globset::Error,
    },
    /// A path is not valid UTF-8 (zip entry names must be).
    #[error("{} is not a UTF-8 path; zip entry names must be UTF-8", .0.display())]
    NonUtf8(PathBuf),
    /// Writing the zip failed.
    #[error("cannot write the zip")]
    Zip(#[from] zip::result::ZipError),
}

/// One file to put in the zip.
struct Entry {
    name: String,
    path: PathBuf,
    executable: bool,
}

/// Builds the deterministic zip of `source`, leaving out files matched by `exclude`.
///
/// Entries are compressed in parallel (rayon's global pool) and written in sorted order, so
/// the bytes are the same whatever the number of threads.
pub fn package(source: &Path, exclude: &[String]) -> Result<ZipArtifact, ZipError> {
    let entries = collect(source, exclude)?;
    let bytes = write_zip(&entries)?;
    Ok(artifact(bytes, entries.len()))
}

/// The artifact for finished zip bytes: SHA-256 (base64, as Lambda's `CodeSha256`) and tag.
pub fn artifact(bytes: Vec<u8>, files: usize) -> ZipArtifact {
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    ZipArtifact {
        tag: hex[..24].to_owned(),
        sha256_b64: base64::engine::general_purpose::STANDARD.encode(digest),
        size: bytes.len() as u64,
        files,
        bytes: Arc::from(bytes),
    }
}

fn collect(source: &Path, exclude: &[String]) -> Result<Vec<Entry>, ZipError> {
    let mut globs = globset::GlobSetBuilder::new();
    for glob in exclude {
        let parsed = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|error| ZipError::Glob {
                glob: glob.clone(),
                source: error,
            })?;
        globs.add(parsed);
    }
    let excluded = globs.build().map_err(|error| ZipError::Glob {
        glob: exclude.join(", "),
        source: error,
    })?;
    let canonical_source = source.canonicalize().map_err(|error| ZipError::Read {
        path: source.to_owned(),
        source: error,
    })?;
    let mut entries = Vec::new();
    let mut walk = walkdir::WalkDir::new(source)
        .follow_links(false)
        .min_depth(1)
        .into_iter();
    while let Some(item) = walk.next() {
        let item = item.map_err(|error| {
            let path = error.path().unwrap_or(source).to_owned();
            ZipError::Read {
                path,
                source: error.into(),
            }
        })?;
        let relative = item.path().strip_prefix(source).unwrap_or(item.path());
        let name = relative
            .to_str()
            .ok_or_else(|| ZipError::NonUtf8(relative.to_owned()))?
            .replace(std::path::MAIN_SEPARATOR, "/");
        if excluded.is_match(&name) {
            if item.file_type().is_dir() {
                walk.skip_current_dir();
            }
            continue;
        }
        let file_type = item.file_type();
        if file_type.is_dir() {
            continue;
        }
        let read_err = |error| ZipError::Read {
            path: item.path().to_owned(),
            source: error,
        };
        let (path, meta) = if file_type.is_symlink() {
            let target = fs::read_link(item.path()).map_err(read_err)?;
            let refuse = |reason| ZipError::Symlink {
                link: relative.to_owned(),
                target: target.clone(),
                reason,
            };
            let resolved = item
                .path()
                .canonicalize()
                .map_err(|_| refuse("which does not resolve"))?;
            if !resolved.starts_with(&canonical_source) {
                return Err(refuse("outside the source directory"));
            }
            let meta = fs::metadata(&resolved).map_err(read_err)?;
            if !meta.is_file() {
                return Err(refuse("not a regular file"));
            }
            (resolved, meta)
        } else if file_type.is_file() {
            (
                item.path().to_owned(),
                item.metadata().map_err(|e| read_err(e.into()))?,
            )
        } else {
            continue; // sockets, fifos: not deployable content
        };
        entries.push(Entry {
            name,
            path,
            executable: is_executable(&meta),
        });
    }
    entries.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(entries)
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &fs::Metadata) -> bool {
    false
}

/// Compresses every entry on the rayon pool, then writes the archive sequentially in the
/// sorted order of `entries`: the bytes do not depend on which thread finished first.
fn write_zip(entries: &[Entry]) -> Result<Vec<u8>, ZipError> {
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(COMPRESSION_LEVEL))
        .last_modified_time(DateTime::default());
    let prepared: Vec<PreparedZipFile> = entries
        .par_iter()
        .map(|entry| {
            let data = fs::read(&entry.path).map_err(|error| ZipError::Read {
                path: entry.path.clone(),
                source: error,
            })?;
            let mode = if entry.executable { 0o755 } else { 0o644 };
            let options = base
                .unix_permissions(mode)
                .large_file(data.len() >= u32::MAX as usize);
            Ok(PreparedZipFile::from_data(
                entry.name.as_str(),
                options,
                &data,
            )?)
        })
        .collect::<Result<_, ZipError>>()?;
    // Local header (30) and central header (46) per entry, each with the name, and the end
    // record: the archive is written into one allocation.
    let capacity = prepared
        .iter()
        .map(|file| file.compressed_size() as usize + 76 + 2 * file.file_name_raw().len())
        .sum::<usize>()
        + 22;
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(capacity)));
    for file in prepared {
        zip.add_prepared_file(file)?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &str| {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content).unwrap();
        };
        write("handler.py", "def handler(event, context):\n    return 1\n");
        write("lib/util.py", "X = 1\n");
        write("lib/__pycache__/util.cpython-312.pyc", "junk");
        write("bin/run", "#!/bin/sh\n");
        fs::set_permissions(
            dir.path().join("bin/run"),
            fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        dir
    }

    fn names(zip: &ZipArtifact) -> Vec<(String, u32)> {
        let mut archive = zip::ZipArchive::new(Cursor::new(zip.bytes.to_vec())).unwrap();
        (0..archive.len())
            .map(|i| {
                let file = archive.by_index(i).unwrap();
                (
                    file.name().unwrap().to_string(),
                    file.unix_mode().unwrap() & 0o777,
                )
            })
            .collect()
    }

    #[test]
    fn same_tree_same_bytes() {
        let dir = tree();
        let a = package(dir.path(), &[]).unwrap();
        let b = package(dir.path(), &[]).unwrap();
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.sha256_b64, b.sha256_b64);
        assert_eq!(a.files, 4);
    }

    #[test]
    fn thread_count_does_not_change_the_bytes() {
        let dir = tree();
        for i in 0..300 {
            let path = dir.path().join(format!("many/{}/file{i:03}.txt", i % 7));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            // Sizes from empty to ~100 KB, so compression jobs finish out of order.
            fs::write(path, format!("line {i}\n").repeat((i * 37) % 10_000)).unwrap();
        }
        let with = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| package(dir.path(), &[]).unwrap())
        };
        let one = with(1);
        assert_eq!(one.files, 304);
        assert_eq!(with(4).bytes, one.bytes);
        assert_eq!(with(2).sha256_b64, one.sha256_b64);
        let sorted: Vec<String> = names(&one).into_iter().map(|(n, _)| n).collect();
        let mut expected = sorted.clone();
        expected.sort();
        assert_eq!(sorted, expected);
    }

    #[test]
    fn entries_sorted_with_normalised_modes() {
        let dir = tree();
        let zip = package(dir.path(), &[]).unwrap();
        assert_eq!(
            names(&zip),
            vec![
                ("bin/run".into(), 0o755),
                ("handler.py".into(), 0o644),
                ("lib/__pycache__/util.cpython-312.pyc".into(), 0o644),
                ("lib/util.py".into(), 0o644),
            ]
        );
    }

    #[test]
    fn mtime_does_not_matter_mode_does() {
        let dir = tree();
        let before = package(dir.path(), &[]).unwrap();
        let file = fs::File::options()
            .write(true)
            .open(dir.path().join("handler.py"))
            .unwrap();
        file.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000),
        )
        .unwrap();
        assert_eq!(package(dir.path(), &[]).unwrap().bytes, before.bytes);
        fs::set_permissions(
            dir.path().join("handler.py"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        assert_ne!(
            package(dir.path(), &[]).unwrap().sha256_b64,
            before.sha256_b64
        );
    }

    #[test]
    fn exclude_leaves_out_files_and_directories() {
        let dir = tree();
        let zip = package(dir.path(), &["**/__pycache__".into(), "bin/*".into()]).unwrap();
        let got: Vec<String> = names(&zip).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, vec!["handler.py", "lib/util.py"]);
    }

    #[test]
    fn symlink_out_of_source_is_refused() {
        let dir = tree();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let error = package(dir.path(), &[]).unwrap_err();
        assert!(matches!(error, ZipError::Symlink { .. }), "{error}");
        assert!(
            error.to_string().contains("outside the source directory"),
            "{error}"
        );
        // excluded explicitly: fine, and not in the zip
        let zip = package(dir.path(), &["passwd".into()]).unwrap();
        assert!(names(&zip).iter().all(|(n, _)| n != "passwd"));
    }

    #[test]
    fn symlink_inside_source_is_stored_as_its_target() {
        let dir = tree();
        std::os::unix::fs::symlink("handler.py", dir.path().join("alias.py")).unwrap();
        let zip = package(dir.path(), &[]).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zip.bytes.to_vec())).unwrap();
        let mut content = String::new();
        archive
            .by_name("alias.py")
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert!(content.starts_with("def handler"));
    }

    #[test]
    fn timestamps_are_the_zip_epoch() {
        let dir = tree();
        let zip = package(dir.path(), &[]).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(zip.bytes.to_vec())).unwrap();
        for i in 0..archive.len() {
            let file = archive.by_index(i).unwrap();
            let time = file.last_modified().unwrap();
            assert_eq!(
                (
                    time.year(),
                    time.month(),
                    time.day(),
                    time.hour(),
                    time.minute()
                ),
                (1980, 1, 1, 0, 0)
            );
        }
    }
}
