//! The build context, staged from an exact file list.
//!
//! The builder never sees the work tree: `stage` makes a fresh directory holding exactly the
//! listed files (the list the hasher hashed), and that directory is the build context.
//!
//! Each listed path is read from the work tree the way the hasher reads it for the tag
//! (`lstat`, never following the file itself), so the context holds what was hashed:
//!
//! - A regular file gets mode `0755` when the work tree's file has the owner's execute bit
//!   (`S_IXUSR`, git's rule, the hash's), else `0644`: the mode in the image follows what was
//!   hashed, not the work tree's umask or group bits. It is a hard link to the work tree's
//!   file when the staging directory is on the same file system and the file already has
//!   that mode; otherwise a copy (`std::fs::copy`, which reflinks where the file system can)
//!   with that mode set. A hard link shares the inode, so its mode cannot be changed without
//!   changing the work tree's file: such files are copied.
//! - A symlink is created again with its target string, never followed.
//! - A listed path that is missing from the work tree, or is a directory now, is left out, as
//!   the hash leaves it out (a tracked file deleted and not yet committed).
//! - Any other file type (fifo, socket, device) stops the build, as it stops the hash.
//! - Directories are created as needed, mode `0755`; a directory with no listed file in it is
//!   not there.
//!
//! [`ContextFile::kind`] is what the listing says (git's index). The work tree decides, as for
//! the hash; the staging report counts the files whose kind differs (`chmod +x` not yet
//! committed, for instance).
//!
//! Where: the system temporary directory when it is on the context's file system; else
//! `<git dir>/deployer/contexts` when the context is inside a git work tree on the same file
//! system as its git directory (a tmpfs `/tmp` would otherwise turn every link into a copy, and
//! hold a large context in memory); else the temporary directory, with copies. Directories left
//! by a killed run under `<git dir>/deployer/contexts` are removed by a later run after a day.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use deployer_core::{Phase, Progress};

use crate::ImageError;

/// One file of a build context, as the caller's hasher listed it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextFile {
    /// The path relative to the context directory, `/`-separated (`src/app.py`).
    pub path: String,
    /// What the file is.
    pub kind: ContextFileKind,
}

impl ContextFile {
    /// A listed file.
    pub fn new(path: impl Into<String>, kind: ContextFileKind) -> Self {
        ContextFile {
            path: path.into(),
            kind,
        }
    }
}

/// What a listed file is, as the listing (git's index) records it. The staged file follows the
/// work tree, as the hash does (see the module doc); submodules are not part of a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContextFileKind {
    /// A regular file, mode `0644` in the build context.
    Regular,
    /// A regular file with the owner's execute bit (git's rule), mode `0755`.
    Executable,
    /// A symbolic link, recreated with its target string.
    Symlink,
}

/// A staged build context; the directory is removed when this is dropped (or [`Staged::close`]d).
#[derive(Debug)]
pub(crate) struct Staged {
    dir: tempfile::TempDir,
    /// Files hard-linked from the work tree.
    pub(crate) linked: usize,
    /// Files copied.
    pub(crate) copied: usize,
    /// Symlinks recreated.
    pub(crate) symlinks: usize,
    /// Listed files missing from the work tree (or directories now), left out as the hash
    /// leaves them out.
    pub(crate) missing: usize,
    /// Files whose kind in the work tree differs from the listed one (staged as they are).
    pub(crate) changed_kind: usize,
}

impl Staged {
    /// The directory to give the builder as its context.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the directory; the error names what could not be removed.
    pub(crate) fn close(self) -> Result<(), ImageError> {
        let path = self.dir.path().display().to_string();
        self.dir.close().map_err(|error| ImageError::Stage {
            path,
            reason: error.to_string(),
        })
    }
}

/// [`stage`] off the async runtime, with a one-line summary of what was staged to `progress`.
pub(crate) async fn stage_reported(
    service: &str,
    context: &Path,
    files: &[ContextFile],
    progress: &Progress,
) -> Result<Staged, ImageError> {
    let start = Instant::now();
    let staged = {
        let (service, dir, listed) = (service.to_owned(), context.to_owned(), files.to_vec());
        tokio::task::spawn_blocking(move || stage(&service, &dir, &listed))
            .await
            .map_err(|error| ImageError::Stage {
                path: context.display().to_string(),
                reason: error.to_string(),
            })??
    };
    let mut summary = format!(
        "build context: {} files from {} staged in {} ms ({} hard links, {} copies, {} symlinks",
        files.len(),
        context.display(),
        start.elapsed().as_millis(),
        staged.linked,
        staged.copied,
        staged.symlinks
    );
    if staged.missing > 0 {
        summary.push_str(&format!(
            "; {} deleted from the work tree, left out as in the tag",
            staged.missing
        ));
    }
    if staged.changed_kind > 0 {
        summary.push_str(&format!(
            "; {} of another kind than git's index, staged as in the work tree and the tag",
            staged.changed_kind
        ));
    }
    summary.push(')');
    progress.detail(Phase::Build, summary);
    Ok(staged)
}

/// Removes a staged directory off the async runtime; a failure is reported, not returned.
pub(crate) async fn remove_reported(staged: Staged, progress: &Progress) {
    let removed = tokio::task::spawn_blocking(move || staged.close()).await;
    if let Ok(Err(error)) = removed {
        progress.detail(Phase::Build, error.to_string());
    }
}

/// Makes a fresh directory holding exactly `files` from `context` (see the module doc).
pub(crate) fn stage(
    service: &str,
    context: &Path,
    files: &[ContextFile],
) -> Result<Staged, ImageError> {
    let io_error = |path: &Path| {
        let path = path.display().to_string();
        move |error: io::Error| ImageError::Stage {
            path,
            reason: error.to_string(),
        }
    };
    let context_device = fs::metadata(context).map_err(io_error(context))?.dev();
    let parent = scratch_parent(context, context_device);
    let dir = tempfile::Builder::new()
        .prefix("ctx-")
        .tempdir_in(&parent)
        .map_err(io_error(&parent))?;
    let root = dir.path().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(io_error(&root))?;
    let same_device = fs::metadata(&root).map_err(io_error(&root))?.dev() == context_device;

    let mut staged = Staged {
        dir,
        linked: 0,
        copied: 0,
        symlinks: 0,
        missing: 0,
        changed_kind: 0,
    };
    let mut seen: HashSet<&str> = HashSet::with_capacity(files.len());
    let mut made: HashSet<PathBuf> = HashSet::new();
    for file in files {
        let relative = checked(&file.path).ok_or_else(|| ImageError::ContextPath {
            service: service.to_owned(),
            path: file.path.clone(),
        })?;
        if !seen.insert(file.path.as_str()) {
            return Err(ImageError::ContextPath {
                service: service.to_owned(),
                path: format!("{} (listed twice)", file.path),
            });
        }
        let source = context.join(&relative);
        let target = root.join(&relative);
        let meta = match fs::symlink_metadata(&source) {
            Ok(meta) => meta,
            // Deleted (or under a path that is no directory now): left out, as hashed.
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                staged.missing += 1;
                continue;
            }
            Err(error) => return Err(io_error(&source)(error)),
        };
        let kind = meta.file_type();
        let now = if kind.is_symlink() {
            ContextFileKind::Symlink
        } else if kind.is_dir() {
            staged.missing += 1;
            continue;
        } else if !kind.is_file() {
            return Err(ImageError::ContextUnsupported {
                service: service.to_owned(),
                path: source.display().to_string(),
                found: describe(&meta),
            });
        } else if meta.mode() & 0o100 != 0 {
            ContextFileKind::Executable
        } else {
            ContextFileKind::Regular
        };
        if now != file.kind {
            staged.changed_kind += 1;
        }
        if let Some(parent) = relative.parent() {
            make_dirs(&root, parent, &mut made)?;
        }
        if now == ContextFileKind::Symlink {
            let link = fs::read_link(&source).map_err(io_error(&source))?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_error(&target))?;
            staged.symlinks += 1;
            continue;
        }
        let mode = if now == ContextFileKind::Executable {
            0o755
        } else {
            0o644
        };
        if same_device && meta.mode() & 0o7777 == mode && fs::hard_link(&source, &target).is_ok() {
            staged.linked += 1;
        } else {
            fs::copy(&source, &target).map_err(io_error(&source))?;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(io_error(&target))?;
            staged.copied += 1;
        }
    }
    Ok(staged)
}

/// `path` as a relative path of normal components only; `None` when it could leave the context.
fn checked(path: &str) -> Option<PathBuf> {
    if path.is_empty() || path.contains('\0') || path.starts_with('/') {
        return None;
    }
    let mut out = PathBuf::new();
    for part in path.split('/') {
        // `Path::components` would quietly drop `.` and empty parts: refuse them instead.
        let mut components = Path::new(part).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(name)), None) if name == part => out.push(name),
            _ => return None,
        }
    }
    Some(out)
}

/// Creates `relative` (a directory path) and its parents under `root`, mode `0755`.
fn make_dirs(root: &Path, relative: &Path, made: &mut HashSet<PathBuf>) -> Result<(), ImageError> {
    let mut current = PathBuf::new();
    for component in relative.components() {
        current.push(component);
        if made.contains(&current) {
            continue;
        }
        let dir = root.join(&current);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(error) => {
                return Err(ImageError::Stage {
                    path: dir.display().to_string(),
                    reason: error.to_string(),
                });
            }
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|error| {
            ImageError::Stage {
                path: dir.display().to_string(),
                reason: error.to_string(),
            }
        })?;
        made.insert(current.clone());
    }
    Ok(())
}

fn describe(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let kind = meta.file_type();
    if kind.is_fifo() {
        "a fifo"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

/// Where to make the staging directory (see the module doc).
fn scratch_parent(context: &Path, context_device: u64) -> PathBuf {
    let temp = std::env::temp_dir();
    if device(&temp) == Some(context_device) {
        return temp;
    }
    if let Some(git_dir) = git_dir(context)
        && device(&git_dir) == Some(context_device)
    {
        let parent = git_dir.join("deployer").join("contexts");
        if fs::create_dir_all(&parent).is_ok() {
            remove_leftovers(&parent);
            return parent;
        }
    }
    temp
}

fn device(path: &Path) -> Option<u64> {
    fs::metadata(path).ok().map(|meta| meta.dev())
}

/// The git directory of the work tree `context` is in: `.git`, or where a `.git` file points.
fn git_dir(context: &Path) -> Option<PathBuf> {
    let start = fs::canonicalize(context).ok()?;
    for dir in start.ancestors() {
        let dot_git = dir.join(".git");
        let Ok(meta) = fs::metadata(&dot_git) else {
            continue;
        };
        if meta.is_dir() {
            return Some(dot_git);
        }
        let text = fs::read_to_string(&dot_git).ok()?;
        let target = text.strip_prefix("gitdir:")?.trim();
        return Some(dir.join(target));
    }
    None
}

/// Removes staging directories a killed run left under `parent` more than a day ago.
fn remove_leftovers(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    let day_ago = SystemTime::now()
        .checked_sub(Duration::from_secs(24 * 3600))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified < day_ago);
        if old && entry.file_name().to_string_lossy().starts_with("ctx-") {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, path: &str, content: &str, mode: u32) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// A work tree with tracked files of every kind and untracked debris beside them.
    fn work_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "app.py", "print(1)\n", 0o644);
        write(root, "bin/run", "#!/bin/sh\n", 0o755);
        write(root, "lib/deep/util.py", "X = 1\n", 0o644);
        write(root, "secret.txt", "0600 in the work tree\n", 0o600);
        write(root, "debris.log", "untracked\n", 0o644);
        write(root, "lib/deep/notes.tmp", "untracked\n", 0o644);
        std::os::unix::fs::symlink("../app.py", root.join("lib/app-link")).unwrap();
        dir
    }

    fn listed() -> Vec<ContextFile> {
        vec![
            ContextFile::new("app.py", ContextFileKind::Regular),
            ContextFile::new("bin/run", ContextFileKind::Executable),
            ContextFile::new("lib/deep/util.py", ContextFileKind::Regular),
            ContextFile::new("lib/app-link", ContextFileKind::Symlink),
            ContextFile::new("secret.txt", ContextFileKind::Regular),
        ]
    }

    /// Every entry under `root`, relative, sorted (directories end with `/`).
    fn entries(root: &Path) -> Vec<String> {
        fn visit(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                let name = path.strip_prefix(root).unwrap().display().to_string();
                if entry.file_type().unwrap().is_dir() {
                    out.push(format!("{name}/"));
                    visit(root, &path, out);
                } else {
                    out.push(name);
                }
            }
        }
        let mut out = Vec::new();
        visit(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn stages_exactly_the_listed_files() {
        let tree = work_tree();
        let staged = stage("api", tree.path(), &listed()).unwrap();
        let root = staged.path();
        assert_eq!(
            entries(root),
            [
                "app.py",
                "bin/",
                "bin/run",
                "lib/",
                "lib/app-link",
                "lib/deep/",
                "lib/deep/util.py",
                "secret.txt"
            ]
        );
        assert_eq!(
            fs::read_to_string(root.join("bin/run")).unwrap(),
            "#!/bin/sh\n"
        );
        assert_eq!(mode(&root.join("bin/run")), 0o755);
        assert_eq!(mode(&root.join("app.py")), 0o644);
        assert_eq!(mode(&root.join("lib/deep")), 0o755);
        assert_eq!(mode(root), 0o755);
        // The symlink keeps its target string, relative as written.
        assert_eq!(
            fs::read_link(root.join("lib/app-link")).unwrap(),
            Path::new("../app.py")
        );
        assert_eq!(staged.symlinks, 1);
    }

    /// Files whose mode already matches their kind are hard links when the staging directory
    /// is on the work tree's file system; a file whose mode differs is copied with the kind's
    /// mode, and the work tree's file keeps its own.
    #[test]
    fn links_when_it_can_and_copies_to_fix_a_mode() {
        let tree = work_tree();
        let staged = stage("api", tree.path(), &listed()).unwrap();
        let root = staged.path();
        let same_fs = device(root) == device(tree.path());
        let inode = |path: &Path| fs::metadata(path).unwrap().ino();
        if same_fs {
            assert_eq!(
                inode(&root.join("app.py")),
                inode(&tree.path().join("app.py"))
            );
            assert_eq!(staged.linked, 3);
            assert_eq!(staged.copied, 1);
        } else {
            assert_eq!(staged.copied, 4);
        }
        assert_ne!(
            inode(&root.join("secret.txt")),
            inode(&tree.path().join("secret.txt"))
        );
        assert_eq!(mode(&root.join("secret.txt")), 0o644);
        assert_eq!(mode(&tree.path().join("secret.txt")), 0o600);
    }

    #[test]
    fn the_directory_goes_away_when_closed_or_dropped() {
        let tree = work_tree();
        let staged = stage("api", tree.path(), &listed()).unwrap();
        let path = staged.path().to_path_buf();
        staged.close().unwrap();
        assert!(!path.exists());
        let staged = stage("api", tree.path(), &listed()).unwrap();
        let path = staged.path().to_path_buf();
        drop(staged);
        assert!(!path.exists());
    }

    #[test]
    fn an_empty_list_is_an_empty_context() {
        let tree = work_tree();
        let staged = stage("api", tree.path(), &[]).unwrap();
        assert!(entries(staged.path()).is_empty());
    }

    /// The work tree decides, as it does for the hash: a listed file deleted (or replaced by a
    /// directory) is left out; a kind that differs from the listing's is staged as it is now
    /// (an uncommitted `chmod +x`, a file turned into a symlink), and counted.
    #[test]
    fn the_work_tree_decides_as_for_the_hash() {
        let tree = work_tree();
        let files = [
            ContextFile::new("gone.py", ContextFileKind::Regular),
            ContextFile::new("lib/deep", ContextFileKind::Regular),
            ContextFile::new("app.py/under-a-file", ContextFileKind::Regular),
            ContextFile::new("lib/app-link", ContextFileKind::Regular),
            ContextFile::new("app.py", ContextFileKind::Symlink),
            ContextFile::new("bin/run", ContextFileKind::Regular),
        ];
        let staged = stage("api", tree.path(), &files).unwrap();
        let root = staged.path();
        assert_eq!(
            entries(root),
            ["app.py", "bin/", "bin/run", "lib/", "lib/app-link"]
        );
        assert_eq!(staged.missing, 3);
        assert_eq!(staged.changed_kind, 3);
        assert_eq!(
            fs::read_link(root.join("lib/app-link")).unwrap(),
            Path::new("../app.py")
        );
        assert_eq!(mode(&root.join("app.py")), 0o644);
        assert_eq!(mode(&root.join("bin/run")), 0o755);
    }

    /// A socket (or fifo, or device) at a listed path stops the build, as it stops the hash.
    #[test]
    fn a_special_file_stops_the_build() {
        let tree = work_tree();
        let _socket = std::os::unix::net::UnixListener::bind(tree.path().join("sock")).unwrap();
        let error = stage(
            "api",
            tree.path(),
            &[ContextFile::new("sock", ContextFileKind::Regular)],
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                ImageError::ContextUnsupported {
                    found: "a socket",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("only regular files and symlinks"),
            "{error}"
        );
    }

    #[test]
    fn paths_that_leave_the_context_are_refused() {
        let tree = work_tree();
        for path in [
            "",
            "/etc/passwd",
            "../outside",
            "lib/../../outside",
            "./app.py",
            "lib//deep/util.py",
            "lib/deep/",
        ] {
            let error = stage(
                "api",
                tree.path(),
                &[ContextFile::new(path, ContextFileKind::Regular)],
            )
            .unwrap_err();
            assert!(
                matches!(error, ImageError::ContextPath { .. }),
                "{path:?}: {error:?}"
            );
        }
        let twice = [
            ContextFile::new("app.py", ContextFileKind::Regular),
            ContextFile::new("app.py", ContextFileKind::Regular),
        ];
        let error = stage("api", tree.path(), &twice).unwrap_err();
        assert!(error.to_string().contains("listed twice"), "{error}");
    }

    #[test]
    fn finds_the_git_dir_of_a_work_tree_and_of_a_linked_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        fs::create_dir_all(dir.path().join("repo/backend/api")).unwrap();
        let canonical = fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            git_dir(&dir.path().join("repo/backend/api")),
            Some(canonical.join("repo/.git"))
        );
        fs::create_dir_all(dir.path().join("wt/src")).unwrap();
        fs::write(
            dir.path().join("wt/.git"),
            format!(
                "gitdir: {}\n",
                canonical.join("repo/.git/worktrees/wt").display()
            ),
        )
        .unwrap();
        assert_eq!(
            git_dir(&dir.path().join("wt/src")),
            Some(canonical.join("repo/.git/worktrees/wt"))
        );
    }
}
