//! Tests against real git repositories in temporary directories.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// How often the cache served a file and how often a file was read (tests only).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    hits: AtomicUsize,
    reads: AtomicUsize,
}

impl Counters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
    fn take(&self) -> (usize, usize) {
        (
            self.hits.swap(0, Ordering::Relaxed),
            self.reads.swap(0, Ordering::Relaxed),
        )
    }
}

/// Runs git with the user's and the system's configuration out of the way.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct TestRepo {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl TestRepo {
    /// An empty repository (`git init`).
    fn new() -> TestRepo {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("repo");
        fs::create_dir(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", "main"]);
        TestRepo { _temp: temp, dir }
    }

    /// A repository with the usual small tree, committed.
    fn sample() -> TestRepo {
        let repo = TestRepo::new();
        repo.write("Dockerfile", "FROM alpine:3.20\nCOPY app /app\n");
        repo.write("app/main.py", "print('hello')\n");
        repo.write("app/lib/util.py", "def util():\n    return 1\n");
        repo.write("app/data/table.csv", "a,b\n1,2\n");
        repo.write("docs/readme.md", "docs\n");
        repo.commit();
        repo
    }

    fn write(&self, path: &str, content: &str) {
        let path = self.dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn chmod(&self, path: &str, mode: u32) {
        fs::set_permissions(self.dir.join(path), fs::Permissions::from_mode(mode)).unwrap();
    }

    fn commit(&self) {
        git(&self.dir, &["add", "-A"]);
        git(
            &self.dir,
            &["commit", "-q", "--allow-empty", "-m", "commit"],
        );
    }

    fn open(&self) -> Repo {
        Repo::open(&self.dir).unwrap()
    }

    fn hash(&self) -> ServiceHash {
        self.open().hash(&spec(&["app/**"])).unwrap()
    }

    fn cache_file(&self) -> PathBuf {
        self.open().cache.path().to_owned()
    }
}

static NO_ARGS: BTreeMap<String, String> = BTreeMap::new();

fn spec(inputs: &[&str]) -> Spec<'static> {
    let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    Spec {
        inputs: Vec::leak(inputs),
        dockerfile: "Dockerfile",
        platform: "linux/amd64",
        build_args: &NO_ARGS,
    }
}

fn tag_of(repo: &TestRepo) -> String {
    repo.hash().tag
}

#[test]
fn repo_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Repo>();
}

#[test]
fn worked_example() {
    let repo = TestRepo::new();
    repo.write("Dockerfile", "FROM alpine:3.20\nCOPY app /app\n");
    repo.write("app/main.sh", "#!/bin/sh\necho hello\n");
    repo.chmod("app/main.sh", 0o755);
    repo.write("app/lib/util.txt", "util\n");
    std::os::unix::fs::symlink("lib/util.txt", repo.dir.join("app/current")).unwrap();
    repo.write("docs/readme.md", "docs\n");
    repo.commit();
    repo.write("app/notes.txt", "untracked\n");

    let args = BTreeMap::from([("VERSION".to_owned(), "1".to_owned())]);
    let inputs = ["app/**".to_owned()];
    let spec = Spec {
        inputs: &inputs,
        dockerfile: "Dockerfile",
        platform: "linux/arm64",
        build_args: &args,
    };
    let hash = repo.open().hash(&spec).unwrap();

    // The stream spelled out by hand, exactly as the crate doc lists it.
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }
    fn file(out: &mut Vec<u8>, path: &str, kind: u8, content: &[u8]) {
        bytes(out, path.as_bytes());
        out.push(kind);
        out.extend_from_slice(&(content.len() as u64).to_le_bytes());
        out.extend_from_slice(blake3::hash(content).as_bytes());
    }
    let mut stream = Vec::new();
    bytes(&mut stream, b"deployer-hasher");
    stream.extend_from_slice(&1u64.to_le_bytes());
    bytes(&mut stream, b"linux/arm64");
    stream.extend_from_slice(&1u64.to_le_bytes());
    bytes(&mut stream, b"VERSION");
    bytes(&mut stream, b"1");
    let dockerfile = b"FROM alpine:3.20\nCOPY app /app\n";
    stream.extend_from_slice(&(dockerfile.len() as u64).to_le_bytes());
    stream.extend_from_slice(blake3::hash(dockerfile).as_bytes());
    stream.extend_from_slice(&3u64.to_le_bytes());
    file(&mut stream, "app/current", 2, b"lib/util.txt");
    file(&mut stream, "app/lib/util.txt", 0, b"util\n");
    file(&mut stream, "app/main.sh", 1, b"#!/bin/sh\necho hello\n");
    let by_hand = blake3::hash(&stream).to_hex()[..24].to_owned();

    let expected = "9295fe9b530ad1c62ee8bd91";
    assert_eq!(by_hand, expected);
    assert_eq!(
        hash,
        ServiceHash {
            tag: expected.to_owned(),
            files: 3,
            bytes: 38,
            untracked: vec!["app/notes.txt".to_owned()]
        }
    );
    assert!(
        include_str!("lib.rs").contains(&format!("gives the tag `{expected}`")),
        "the crate doc quotes the tag"
    );
}

#[test]
fn same_tree_in_two_clones_gives_the_same_hash() {
    let repo = TestRepo::sample();
    let clone = tempfile::tempdir().unwrap();
    let clone_dir = clone.path().join("elsewhere/deeper");
    git(
        clone.path(),
        &[
            "clone",
            "-q",
            repo.dir.to_str().unwrap(),
            clone_dir.to_str().unwrap(),
        ],
    );
    let a = repo.hash();
    let b = Repo::open(&clone_dir)
        .unwrap()
        .hash(&spec(&["app/**"]))
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.files, 3);
    assert_eq!(a.tag.len(), 24);
    assert!(
        a.tag
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[test]
fn every_input_changes_the_hash() {
    let repo = TestRepo::sample();
    let base = tag_of(&repo);

    // One byte of content (uncommitted: working-tree content counts).
    repo.write("app/main.py", "print('hellO')\n");
    let changed = tag_of(&repo);
    assert_ne!(changed, base);
    repo.write("app/main.py", "print('hello')\n");
    assert_eq!(tag_of(&repo), base);

    // One mode bit.
    repo.chmod("app/main.py", 0o755);
    assert_ne!(tag_of(&repo), base);
    repo.chmod("app/main.py", 0o644);
    assert_eq!(tag_of(&repo), base);

    // One path (a committed rename).
    git(&repo.dir, &["mv", "app/main.py", "app/main2.py"]);
    repo.commit();
    assert_ne!(tag_of(&repo), base);
    git(&repo.dir, &["mv", "app/main2.py", "app/main.py"]);
    repo.commit();
    assert_eq!(tag_of(&repo), base);

    // The platform, a build arg (value and key), the Dockerfile.
    let r = repo.open();
    let inputs = ["app/**".to_owned()];
    let args = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
    let with = |platform: &str, args: &BTreeMap<String, String>| {
        r.hash(&Spec {
            inputs: &inputs,
            dockerfile: "Dockerfile",
            platform,
            build_args: args,
        })
        .unwrap()
        .tag
    };
    assert_eq!(with("linux/amd64", &NO_ARGS), base);
    assert_ne!(with("linux/arm64", &NO_ARGS), base);
    let a = with("linux/amd64", &args("PYTHON_VERSION", "3.12"));
    assert_ne!(a, base);
    assert_ne!(with("linux/amd64", &args("PYTHON_VERSION", "3.13")), a);
    assert_ne!(with("linux/amd64", &args("PYTHON_VERSIO", "N3.12")), a);
    repo.write("Dockerfile", "FROM alpine:3.21\nCOPY app /app\n");
    assert_ne!(tag_of(&repo), base);
}

#[test]
fn files_outside_the_inputs_do_not_count() {
    let repo = TestRepo::sample();
    let base = tag_of(&repo);
    repo.write("docs/readme.md", "changed\n");
    repo.write("docs/new.md", "new\n");
    repo.write("top.txt", "top\n");
    repo.commit();
    assert_eq!(tag_of(&repo), base);
}

#[test]
fn the_dockerfile_counts_even_outside_the_inputs() {
    let repo = TestRepo::sample();
    let base = tag_of(&repo);
    repo.write("Dockerfile", "FROM alpine:3.20\nCOPY app /srv\n");
    assert_ne!(tag_of(&repo), base);
    // Untracked and missing Dockerfiles: hashed / a clear error.
    repo.write("Dockerfile.other", "FROM scratch\n");
    let r = repo.open();
    let inputs = ["app/**".to_owned()];
    let mut s = Spec {
        inputs: &inputs,
        dockerfile: "Dockerfile.other",
        platform: "linux/amd64",
        build_args: &NO_ARGS,
    };
    assert_ne!(r.hash(&s).unwrap().tag, base);
    s.dockerfile = "Dockerfile.missing";
    let error = r.hash(&s).unwrap_err();
    assert!(matches!(error, Error::Dockerfile { .. }), "{error}");
    assert!(error.to_string().contains("Dockerfile.missing"));
}

#[test]
fn crlf_is_not_normalised() {
    let lf = TestRepo::new();
    lf.write("Dockerfile", "FROM scratch\n");
    lf.write("app/a.txt", "line\n");
    lf.commit();

    let crlf = TestRepo::new();
    git(&crlf.dir, &["config", "core.autocrlf", "true"]);
    crlf.write("Dockerfile", "FROM scratch\n");
    crlf.write("app/a.txt", "line\r\n");
    crlf.commit();
    // Git stores both as "line\n"; the working trees differ, and so do the tags.
    assert_eq!(
        git(&lf.dir, &["ls-files", "-s"]),
        git(&crlf.dir, &["ls-files", "-s"])
    );
    assert_ne!(tag_of(&lf), tag_of(&crlf));
}

#[test]
fn empty_inputs_and_bad_globs_are_rejected() {
    let repo = TestRepo::sample();
    let r = repo.open();
    assert!(matches!(r.hash(&spec(&[])), Err(Error::EmptyInputs)));
    for glob in ["/etc/**", "../other/**", "app/../../x", ""] {
        assert!(
            matches!(r.hash(&spec(&[glob])), Err(Error::GlobOutsideRoot { .. })),
            "{glob}"
        );
    }
    assert!(matches!(
        r.hash(&spec(&["app/[**"])),
        Err(Error::InvalidGlob { .. })
    ));
}

#[test]
fn a_glob_matching_no_tracked_file_is_an_error() {
    let repo = TestRepo::sample();
    let r = repo.open();
    let error = r.hash(&spec(&["app/**", "ap/**"])).unwrap_err();
    assert!(
        matches!(&error, Error::NoMatch { glob, .. } if glob == "ap/**"),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("input `ap/**` matches no file tracked by git"),
        "{error}"
    );

    let error = r.hash(&spec(&["app"])).unwrap_err();
    assert!(error.to_string().contains("write `app/**`"), "{error}");

    repo.write("new/x.py", "x\n");
    let error = repo.open().hash(&spec(&["new/**"])).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("only 1 untracked file(s) do: `git add` them"),
        "{error}"
    );
}

#[test]
fn globs_follow_globset_with_literal_separator() {
    let repo = TestRepo::sample();
    let r = repo.open();
    // `*` stays within a directory, `**` crosses them.
    assert_eq!(r.hash(&spec(&["app/*"])).unwrap().files, 1);
    assert_eq!(r.hash(&spec(&["app/**"])).unwrap().files, 3);
    assert_eq!(r.hash(&spec(&["**/*.py"])).unwrap().files, 2);
    // Overlapping globs count a file once; their spelling is not hashed.
    let both = r.hash(&spec(&["app/**", "app/*.py"])).unwrap();
    assert_eq!(both, r.hash(&spec(&["app/**"])).unwrap());
}

#[test]
fn untracked_files_are_reported_and_not_hashed() {
    let repo = TestRepo::sample();
    repo.write(".gitignore", "*.log\n");
    repo.commit();
    let base = repo.hash();
    repo.write("app/new.py", "new\n");
    repo.write("app/deep/er.py", "new\n");
    repo.write("app/debug.log", "ignored\n");
    repo.write("docs/untracked.md", "outside the inputs\n");
    let hash = repo.hash();
    assert_eq!(hash.tag, base.tag);
    assert_eq!(hash.files, base.files);
    assert_eq!(hash.untracked, ["app/deep/er.py", "app/new.py"]);
}

#[test]
fn a_deleted_tracked_file_is_left_out_as_if_the_deletion_were_committed() {
    let repo = TestRepo::sample();
    let base = repo.hash();
    fs::remove_file(repo.dir.join("app/main.py")).unwrap();
    let deleted = repo.hash();
    assert_ne!(deleted.tag, base.tag);
    assert_eq!(deleted.files, base.files - 1);
    repo.commit();
    assert_eq!(repo.hash(), deleted);
}

#[test]
fn a_symlink_is_hashed_as_its_target_and_not_followed() {
    let repo = TestRepo::sample();
    repo.write("outside/target.txt", "one\n");
    std::os::unix::fs::symlink("../outside/target.txt", repo.dir.join("app/link")).unwrap();
    std::os::unix::fs::symlink("nowhere", repo.dir.join("app/dangling")).unwrap();
    repo.commit();
    let base = repo.hash();
    assert_eq!(base.files, 5);
    // Changing what it points at changes nothing: it is not followed.
    repo.write("outside/target.txt", "two\n");
    assert_eq!(repo.hash(), base);
    // Changing the target string does.
    fs::remove_file(repo.dir.join("app/link")).unwrap();
    std::os::unix::fs::symlink("../outside/./target.txt", repo.dir.join("app/link")).unwrap();
    assert_ne!(repo.hash().tag, base.tag);
    // A symlink and a file with the target string as content differ.
    fs::remove_file(repo.dir.join("app/link")).unwrap();
    repo.write("app/link", "../outside/target.txt");
    assert_ne!(repo.hash().tag, base.tag);
}

#[test]
fn a_subdirectory_root_hashes_like_the_same_tree_at_the_top() {
    let nested = TestRepo::new();
    nested.write("svc/Dockerfile", "FROM scratch\n");
    nested.write("svc/app/a.py", "a\n");
    nested.write("other/b.py", "b\n");
    nested.commit();
    let top = TestRepo::new();
    top.write("Dockerfile", "FROM scratch\n");
    top.write("app/a.py", "a\n");
    top.commit();
    let r = Repo::open(&nested.dir.join("svc")).unwrap();
    let a = r.hash(&spec(&["app/**"])).unwrap();
    assert_eq!(a, top.hash());
    nested.write("svc/app/new.py", "new\n");
    let r = Repo::open(&nested.dir.join("svc")).unwrap();
    assert_eq!(
        r.hash(&spec(&["app/**"])).unwrap().untracked,
        ["app/new.py"]
    );
}

#[test]
fn outside_a_git_repository_is_a_clear_error() {
    let temp = tempfile::tempdir().unwrap();
    // GIT_CEILING_DIRECTORIES would be needed if /tmp were inside a repository; it is not here.
    let error = Repo::open(temp.path()).err().unwrap();
    assert!(matches!(error, Error::NotARepository { .. }), "{error}");
    assert!(
        error.to_string().contains("is not inside a git work tree"),
        "{error}"
    );
    let error = Repo::open(&temp.path().join("missing")).err().unwrap();
    assert!(matches!(error, Error::Root { .. }), "{error}");
    // Inside the .git directory there is no work tree either.
    let repo = TestRepo::sample();
    let error = Repo::open(&repo.dir.join(".git")).err().unwrap();
    assert!(matches!(error, Error::NotARepository { .. }), "{error}");
}

#[test]
fn concurrent_hashes_agree() {
    let repo = TestRepo::sample();
    let r = repo.open();
    let expected = r.hash(&spec(&["app/**"])).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| r.hash(&spec(&["app/**"])).unwrap()))
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), expected);
        }
    });
}

/// Waits until files written before now are outside the racy window.
fn wait_out_racy_window() {
    std::thread::sleep(Duration::from_nanos(cache::RACY_NANOS as u64) + Duration::from_millis(100));
}

#[test]
fn the_warm_cache_gives_the_cold_hash_and_reads_nothing() {
    let repo = TestRepo::sample();
    wait_out_racy_window();
    let cold = repo.open();
    let cold_hash = cold.hash(&spec(&["app/**"])).unwrap();
    assert_eq!(cold.counters.take(), (0, 3));
    assert!(repo.cache_file().exists());

    let warm = repo.open();
    assert_eq!(warm.hash(&spec(&["app/**"])).unwrap(), cold_hash);
    assert_eq!(warm.counters.take(), (3, 0));

    // A corrupt cache is ignored.
    fs::write(repo.cache_file(), b"garbage").unwrap();
    let r = repo.open();
    assert_eq!(r.hash(&spec(&["app/**"])).unwrap(), cold_hash);
    assert_eq!(r.counters.take(), (0, 3));
    // ... and replaced by a good one.
    let r = repo.open();
    assert_eq!(r.hash(&spec(&["app/**"])).unwrap(), cold_hash);
    assert_eq!(r.counters.take(), (3, 0));
}

/// Rewrites `path` with same-size content and puts its mtime back exactly (ns): only ctime
/// (and the content) tells it changed.
fn sneaky_edit(repo: &TestRepo, path: &str, content: &str) {
    let file = repo.dir.join(path);
    let before = fs::metadata(&file).unwrap();
    assert_eq!(before.len(), content.len() as u64);
    fs::write(&file, content).unwrap();
    let f = fs::File::options().write(true).open(&file).unwrap();
    f.set_times(
        fs::FileTimes::new()
            .set_modified(before.modified().unwrap())
            .set_accessed(before.accessed().unwrap()),
    )
    .unwrap();
    drop(f);
    let after = fs::metadata(&file).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    assert_eq!(after.len(), before.len());
}

/// The hash with no cache at all.
fn cold_truth(repo: &TestRepo) -> ServiceHash {
    let _ = fs::remove_file(repo.cache_file());
    repo.hash()
}

#[test]
fn a_racy_file_is_never_cached() {
    // Edited within the racy window: same size, same mtime (to the ns).
    let repo = TestRepo::sample();
    let r = repo.open();
    let first = r.hash(&spec(&["app/**"])).unwrap();
    assert_eq!(r.counters.take(), (0, 3));
    let edited = std::time::Instant::now();
    sneaky_edit(&repo, "app/main.py", "print('HELLO')\n");
    let second = repo.open().hash(&spec(&["app/**"])).unwrap();
    assert_ne!(second.tag, first.tag);
    assert_eq!(second, cold_truth(&repo));
    // Nothing fresh was stored (checked only while the files are surely still fresh, so a slow
    // machine does not make the test flaky).
    let r = repo.open();
    r.hash(&spec(&["app/**"])).unwrap();
    if edited.elapsed() < Duration::from_millis(1500) {
        assert_eq!(r.counters.take(), (0, 3));
    }
}

#[test]
fn a_cached_file_edited_later_is_never_served_stale() {
    // Cached after the racy window, then edited: same size, same mtime (to the ns).
    let repo = TestRepo::sample();
    wait_out_racy_window();
    let r = repo.open();
    let first = r.hash(&spec(&["app/**"])).unwrap();
    let r = repo.open();
    r.hash(&spec(&["app/**"])).unwrap();
    assert_eq!(r.counters.take(), (3, 0), "all three cached");

    sneaky_edit(&repo, "app/main.py", "print('HELLO')\n");
    let r = repo.open();
    let second = r.hash(&spec(&["app/**"])).unwrap();
    assert_eq!(r.counters.take(), (2, 1), "the edited file is re-read");
    assert_ne!(second.tag, first.tag);
    assert_eq!(second, cold_truth(&repo));

    // Same again with a second-granular mtime set by `touch -d`, as a user might.
    wait_out_racy_window();
    repo.hash(); // cache everything again
    let status = Command::new("touch")
        .args(["-d", "2020-01-02 03:04:05"])
        .arg(repo.dir.join("app/main.py"))
        .status();
    assert!(status.unwrap().success());
    wait_out_racy_window();
    let r = repo.open();
    assert_eq!(r.hash(&spec(&["app/**"])).unwrap(), second);
    assert_eq!(r.counters.take(), (2, 1), "touched: re-read once");
    sneaky_edit(&repo, "app/main.py", "print('hello')\n");
    assert_eq!(repo.hash(), first);
    assert_eq!(repo.hash(), cold_truth(&repo));
}

#[test]
fn the_cache_forgets_files_no_longer_tracked() {
    // Entries of files no longer tracked are never looked up, so they are harmless; they are
    // dropped when the cache is next written and holds more entries than there are tracked files.
    let repo = TestRepo::sample();
    wait_out_racy_window();
    let all = |repo: &TestRepo| repo.open().hash(&spec(&["**"])).unwrap();
    all(&repo);
    let keys = |repo: &TestRepo| {
        let cache = crate::cache::Cache::load(repo.dir.join(".git").as_path());
        let mut keys: Vec<_> = cache
            .read()
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&repo).len(), 5);
    git(&repo.dir, &["rm", "-q", "app/main.py"]);
    repo.commit();
    repo.write("docs/readme.md", "changed\n"); // something to write
    wait_out_racy_window();
    all(&repo);
    let expected = [
        "Dockerfile",
        "app/data/table.csv",
        "app/lib/util.py",
        "docs/readme.md",
    ];
    assert_eq!(keys(&repo), expected);
}

#[test]
fn a_submodule_counts_as_its_commit() {
    let sub = TestRepo::sample();
    let repo = TestRepo::sample();
    git(
        &repo.dir,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            sub.dir.to_str().unwrap(),
            "app/vendor",
        ],
    );
    repo.commit();
    let base = repo.hash();
    assert_eq!(base.files, 4); // three files and the submodule (.gitmodules is outside app/)
    sub.write("app/main.py", "print('new')\n");
    sub.commit();
    git(
        &repo.dir.join("app/vendor"),
        &["pull", "-q", "origin", "main"],
    );
    assert_eq!(
        repo.hash(),
        base,
        "not until the superproject records the new commit"
    );
    repo.commit();
    assert_ne!(repo.hash().tag, base.tag);
}
