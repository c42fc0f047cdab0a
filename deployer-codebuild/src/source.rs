//! The build context as one zip, content-addressed: the staged context directory (exactly the
//! listed files) under `context/`, the Dockerfile as `deployer.Dockerfile` (and its own ignore
//! file, if it has one, as `deployer.Dockerfile.dockerignore`). Entries are sorted, dated
//! 1980-01-01, with modes 0644/0755 and symlinks as symlinks: the same context gives the same
//! bytes, so its SHA-256 names the object and an unchanged context is never uploaded twice.

use std::fs;
use std::io::{Cursor, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::CodeBuildError;

/// Where the context directory goes inside the archive.
pub(crate) const CONTEXT_DIR: &str = "context";
/// The Dockerfile's name inside the archive.
pub(crate) const DOCKERFILE: &str = "deployer.Dockerfile";

/// A built archive.
#[derive(Debug)]
pub(crate) struct Archive {
    pub(crate) bytes: Vec<u8>,
    /// Hex SHA-256 of `bytes`.
    pub(crate) sha256: String,
    /// Files in it (the Dockerfile included).
    pub(crate) files: usize,
}

enum Item {
    File { path: PathBuf, executable: bool },
    Symlink { target: String },
}

/// Archives `context_dir` and `dockerfile` (see the module doc).
pub(crate) fn archive(context_dir: &Path, dockerfile: &Path) -> Result<Archive, CodeBuildError> {
    let error = |path: &Path| {
        let path = path.display().to_string();
        move |error: std::io::Error| CodeBuildError::Archive {
            path,
            reason: error.to_string(),
        }
    };
    let mut items: Vec<(String, Item)> = Vec::new();
    for entry in walkdir::WalkDir::new(context_dir).follow_links(false) {
        let entry = entry.map_err(|e| CodeBuildError::Archive {
            path: context_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let relative =
            entry
                .path()
                .strip_prefix(context_dir)
                .map_err(|e| CodeBuildError::Archive {
                    path: entry.path().display().to_string(),
                    reason: e.to_string(),
                })?;
        if relative.as_os_str().is_empty() || entry.file_type().is_dir() {
            continue;
        }
        let name = format!("{CONTEXT_DIR}/{}", relative.to_string_lossy());
        if entry.file_type().is_symlink() {
            let target = fs::read_link(entry.path()).map_err(error(entry.path()))?;
            items.push((
                name,
                Item::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            ));
        } else {
            let mode = entry.metadata().map_err(|e| CodeBuildError::Archive {
                path: entry.path().display().to_string(),
                reason: e.to_string(),
            })?;
            items.push((
                name,
                Item::File {
                    path: entry.path().to_owned(),
                    executable: mode.permissions().mode() & 0o100 != 0,
                },
            ));
        }
    }
    items.push((
        DOCKERFILE.to_owned(),
        Item::File {
            path: dockerfile.to_owned(),
            executable: false,
        },
    ));
    let mut ignore = dockerfile.as_os_str().to_owned();
    ignore.push(".dockerignore");
    let ignore = PathBuf::from(ignore);
    if ignore.is_file() {
        items.push((
            format!("{DOCKERFILE}.dockerignore"),
            Item::File {
                path: ignore,
                executable: false,
            },
        ));
    }
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    let zip_error = |name: &str| {
        let path = name.to_owned();
        move |e: zip::result::ZipError| CodeBuildError::Archive {
            path,
            reason: e.to_string(),
        }
    };
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, item) in &items {
        match item {
            Item::File { path, executable } => {
                let data = fs::read(path).map_err(error(path))?;
                let options = base
                    .unix_permissions(if *executable { 0o755 } else { 0o644 })
                    .large_file(data.len() >= u32::MAX as usize);
                zip.start_file(name.as_str(), options)
                    .map_err(zip_error(name))?;
                zip.write_all(&data).map_err(error(path))?;
            }
            Item::Symlink { target } => {
                zip.add_symlink(name.as_str(), target.as_str(), base.unix_permissions(0o777))
                    .map_err(zip_error(name))?;
            }
        }
    }
    let bytes = zip.finish().map_err(zip_error("the archive"))?.into_inner();
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Archive {
        bytes,
        sha256,
        files: items.len(),
    })
}
