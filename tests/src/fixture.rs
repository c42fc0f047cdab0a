//! A temporary git repository for tests: write files (with modes), commit, edit.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A git repository in a temporary directory, removed on drop.
///
/// ```ignore
/// let repo = FixtureRepo::new();
/// repo.write("deployer.toml", MANIFEST)
///     .write_mode("bin/run", "#!/bin/sh\n", 0o755)
///     .commit("initial");
/// repo.write("src/app.py", "print(2)\n"); // an uncommitted edit
/// ```
///
/// git runs with the user's global and system configuration ignored and a fixed identity,
/// so commits behave the same on every machine.
#[derive(Debug)]
pub struct FixtureRepo {
    dir: TempDir,
}

impl Default for FixtureRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl FixtureRepo {
    /// `git init` in a new temporary directory (branch `main`).
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("deployer-fixture-")
            .tempdir()
            .expect("cannot create a temp dir");
        let repo = FixtureRepo { dir };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo
    }

    /// The repository's root directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The absolute path of `relative` inside the repository.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `contents` to `relative` (creating parent directories), mode 0644.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> &Self {
        self.write_mode(relative, contents, 0o644)
    }

    /// Writes `contents` to `relative` with permission bits `mode` (e.g. `0o755`).
    pub fn write_mode(&self, relative: &str, contents: impl AsRef<[u8]>, mode: u32) -> &Self {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
        self
    }

    /// Creates a symlink at `relative` pointing to `target` (as given, not resolved).
    pub fn symlink(&self, relative: &str, target: &str) -> &Self {
        let path = self.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        std::os::unix::fs::symlink(target, &path)
            .unwrap_or_else(|e| panic!("cannot link {}: {e}", path.display()));
        self
    }

    /// Removes the file `relative` from the working tree.
    pub fn remove(&self, relative: &str) -> &Self {
        let path = self.join(relative);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
        self
    }

    /// Reads the file `relative`.
    pub fn read(&self, relative: &str) -> String {
        let path = self.join(relative);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// Stages everything (`git add -A`) and commits; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Runs `git <args>` in the repository; panics on failure, returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        let out = git_command(self.path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run git {args:?}: {e}"));
        assert!(
            out.status.success(),
            "git {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Clones this repository into a new temporary [`FixtureRepo`] (same commits, fresh
    /// working tree).
    pub fn clone_repo(&self) -> FixtureRepo {
        let dir = tempfile::Builder::new()
            .prefix("deployer-fixture-")
            .tempdir()
            .expect("cannot create a temp dir");
        let out = git_command(dir.path())
            .args(["clone", "--quiet"])
            .arg(self.path())
            .arg(".")
            .output()
            .expect("cannot run git clone");
        assert!(
            out.status.success(),
            "git clone failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        FixtureRepo { dir }
    }
}

/// `git` isolated from the user's configuration, with a fixed identity and dates.
fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "deployer tests")
        .env("GIT_AUTHOR_EMAIL", "tests@deployer.invalid")
        .env("GIT_COMMITTER_NAME", "deployer tests")
        .env("GIT_COMMITTER_EMAIL", "tests@deployer.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_commits_and_edits_with_modes() {
        let repo = FixtureRepo::new();
        repo.write("a.txt", "one\n")
            .write_mode("bin/run", "#!/bin/sh\n", 0o755)
            .symlink("link", "a.txt");
        let first = repo.commit("first");
        assert_eq!(first.len(), 40);
        let files = repo.git(&["ls-files", "-s"]);
        assert!(
            files.contains("100755") && files.contains("bin/run"),
            "{files}"
        );
        assert!(
            files.contains("120000") && files.contains("link"),
            "{files}"
        );
        repo.write("a.txt", "two\n");
        assert_eq!(repo.git(&["status", "--porcelain"]).trim(), "M a.txt");
        let clone = repo.clone_repo();
        assert_eq!(clone.read("a.txt"), "one\n");
    }
}
