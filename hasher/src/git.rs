//! The only git the crate runs: `rev-parse` to find the repository, `ls-files` to list the
//! tracked and the untracked files. Each is spawned with an argument vector, never a shell.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;

use crate::Error;

/// A failed git command, kept as text so a result shared between threads can be cloned into an
/// [`Error`] for each caller.
#[derive(Debug, Clone)]
pub(crate) struct GitFailure {
    args: String,
    dir: PathBuf,
    detail: String,
    not_a_repository: bool,
}

impl GitFailure {
    pub(crate) fn into_error(self) -> Error {
        if self.not_a_repository {
            return Error::NotARepository { root: self.dir };
        }
        Error::Git {
            command: format!("git {}", self.args),
            dir: self.dir,
            detail: self.detail,
        }
    }
}

/// Runs `git -C dir args…` and returns its stdout.
fn run(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitFailure> {
    let failure = |detail: String, not_a_repository| GitFailure {
        args: args.join(" "),
        dir: dir.to_owned(),
        detail,
        not_a_repository,
    };
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // Messages in English, so "not a git repository" can be recognised.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| {
            failure(
                format!("cannot run git ({error}); install git and put it on PATH"),
                false,
            )
        })?;
    if output.status.success() {
        return Ok(output.stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let not_a_repository = stderr.contains("not a git repository");
    let detail = if stderr.is_empty() {
        format!("exited with {}", output.status)
    } else {
        stderr
    };
    Err(failure(detail, not_a_repository))
}

/// Where the repository is, seen from `root`.
pub(crate) struct Location {
    /// The git dir of this work tree (`.git`, or `.git/worktrees/<name>` for a linked one).
    pub(crate) git_dir: PathBuf,
    /// `root` relative to the top of the work tree, `/`-terminated, empty at the top.
    pub(crate) prefix: Vec<u8>,
}

pub(crate) fn locate(root: &Path) -> Result<Location, Error> {
    let out = run(
        root,
        &[
            "rev-parse",
            "--is-inside-work-tree",
            "--absolute-git-dir",
            "--show-prefix",
        ],
    )
    .map_err(GitFailure::into_error)?;
    let text = String::from_utf8_lossy(&out);
    let mut lines = text.split('\n');
    let (Some("true"), Some(git_dir), Some(prefix)) = (lines.next(), lines.next(), lines.next())
    else {
        // Inside a `.git` directory or a bare repository: no work tree to hash.
        return Err(Error::NotARepository {
            root: root.to_owned(),
        });
    };
    Ok(Location {
        git_dir: PathBuf::from(git_dir),
        prefix: prefix.as_bytes().to_vec(),
    })
}

/// A tracked path under the root.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// Relative to the root, `/`-separated, as git stores it.
    pub(crate) path: Box<[u8]>,
    /// For a submodule (gitlink, mode 160000): the commit id recorded in the index.
    pub(crate) gitlink: Option<Box<[u8]>>,
    /// What the index records it as.
    pub(crate) mode: IndexMode,
}

/// The kind of a tracked path, as the index records it (its mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexMode {
    /// 100644.
    File,
    /// 100755.
    Executable,
    /// 120000.
    Symlink,
    /// 160000.
    Submodule,
}

/// Every path git tracks under `root`, sorted by bytes, each once (a conflicted path has up to
/// three index stages).
pub(crate) fn tracked(root: &Path) -> Result<Vec<Tracked>, Error> {
    let out = run(root, &["ls-files", "-z", "--stage"]).map_err(GitFailure::into_error)?;
    let mut files = Vec::new();
    // Each record: "<mode> <object> <stage>\t<path>\0".
    for record in out.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let Some(tab) = record.iter().position(|&b| b == b'\t') else {
            return Err(Error::Git {
                command: "git ls-files -z --stage".to_owned(),
                dir: root.to_owned(),
                detail: format!(
                    "unexpected output line `{}`",
                    String::from_utf8_lossy(record)
                ),
            });
        };
        let (meta, path) = (&record[..tab], &record[tab + 1..]);
        let mut fields = meta.split(|&b| b == b' ');
        let (mode, object) = (fields.next(), fields.next());
        let (mode, gitlink) = match (mode, object) {
            (Some(b"160000"), Some(object)) => (IndexMode::Submodule, Some(object.into())),
            (Some(b"120000"), _) => (IndexMode::Symlink, None),
            (Some(b"100755"), _) => (IndexMode::Executable, None),
            _ => (IndexMode::File, None),
        };
        files.push(Tracked {
            path: path.into(),
            gitlink,
            mode,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    Ok(files)
}

/// The untracked, not ignored files under `root`, listed on a background thread so the walk
/// overlaps the hashing; joined on first use.
pub(crate) struct Untracked {
    pending: Mutex<Option<JoinHandle<Listing>>>,
    done: OnceLock<Listing>,
}

type Listing = Result<Vec<Box<[u8]>>, GitFailure>;

impl Untracked {
    pub(crate) fn start(root: &Path) -> Untracked {
        let root = root.to_owned();
        let handle = std::thread::spawn(move || {
            let out = run(&root, &["ls-files", "-z", "--others", "--exclude-standard"])?;
            let mut paths: Vec<Box<[u8]>> = out
                .split(|&b| b == 0)
                .filter(|p| !p.is_empty())
                .map(Box::from)
                .collect();
            paths.sort();
            Ok(paths)
        });
        Untracked {
            pending: Mutex::new(Some(handle)),
            done: OnceLock::new(),
        }
    }

    pub(crate) fn get(&self) -> Result<&[Box<[u8]>], Error> {
        let result = self.done.get_or_init(|| {
            let handle = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let joined = handle.map(|handle| handle.join());
            match joined {
                Some(Ok(result)) => result,
                _ => Err(GitFailure {
                    args: "ls-files -z --others --exclude-standard".to_owned(),
                    dir: PathBuf::new(),
                    detail: "the listing thread panicked".to_owned(),
                    not_a_repository: false,
                }),
            }
        });
        result
            .as_deref()
            .map_err(|failure| failure.clone().into_error())
    }
}
