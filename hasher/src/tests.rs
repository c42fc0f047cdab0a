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
        inputs: Some(Vec::leak(inputs)),
        dockerfile: "Dockerfile",
        context: ".",
        platform: "linux/amd64",
        build_args: &NO_ARGS,
        base_images: &NO_ARGS,
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

/// The digest the worked example resolves `alpine:3.20` to.
const ALPINE: &str = "sha256:1e42bbe2508154c9126d48c2b8a75420c3544343bf86fd041fb7527e017a4b4a";

#[test]
fn worked_example() {
    let repo = TestRepo::new();
    repo.write("Dockerfile", "FROM alpine:3.20\nCOPY app /app\n");
    repo.write(".dockerignore", "docs\n");
    repo.write("app/main.sh", "#!/bin/sh\necho hello\n");
    repo.chmod("app/main.sh", 0o755);
    repo.write("app/lib/util.txt", "util\n");
    std::os::unix::fs::symlink("lib/util.txt", repo.dir.join("app/current")).unwrap();
    repo.write("docs/readme.md", "docs\n");
    repo.commit();
    repo.write("app/notes.txt", "untracked\n");

    let args = BTreeMap::from([("VERSION".to_owned(), "1".to_owned())]);
    let base_images = BTreeMap::from([("alpine:3.20".to_owned(), ALPINE.to_owned())]);
    let spec = Spec {
        inputs: None,
        dockerfile: "Dockerfile",
        context: ".",
        platform: "linux/arm64",
        build_args: &args,
        base_images: &base_images,
    };
    let hash = repo.open().hash(&spec).unwrap();

    // The stream spelled out by hand, exactly as the crate doc lists it.
    fn u64(out: &mut Vec<u8>, n: u64) {
        out.extend_from_slice(&n.to_le_bytes());
    }
    fn bytes(out: &mut Vec<u8>, b: &[u8]) {
        u64(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn file(out: &mut Vec<u8>, path: &str, kind: u8, content: &[u8]) {
        bytes(out, path.as_bytes());
        out.push(kind);
        u64(out, content.len() as u64);
        out.extend_from_slice(blake3::hash(content).as_bytes());
    }
    let mut stream = Vec::new();
    bytes(&mut stream, b"deployer-hasher");
    u64(&mut stream, 2);
    bytes(&mut stream, b"linux/arm64");
    u64(&mut stream, 1);
    bytes(&mut stream, b"VERSION");
    bytes(&mut stream, b"1");
    let dockerfile = b"FROM alpine:3.20\nCOPY app /app\n";
    u64(&mut stream, dockerfile.len() as u64);
    stream.extend_from_slice(blake3::hash(dockerfile).as_bytes());
    bytes(&mut stream, b".");
    stream.push(1);
    bytes(&mut stream, b"docs\n");
    u64(&mut stream, 1);
    bytes(&mut stream, b"alpine:3.20");
    bytes(&mut stream, ALPINE.as_bytes());
    u64(&mut stream, 3);
    file(&mut stream, "app/current", 2, b"lib/util.txt");
    file(&mut stream, "app/lib/util.txt", 0, b"util\n");
    file(&mut stream, "app/main.sh", 1, b"#!/bin/sh\necho hello\n");
    let by_hand = blake3::hash(&stream).to_hex()[..24].to_owned();

    let expected = "0e2ffa499c75620540031b52";
    assert_eq!(by_hand, expected);
    assert_eq!(hash.tag, expected);
    assert_eq!((hash.files, hash.bytes), (3, 38));
    assert_eq!(hash.inputs, ["app/**"]);
    assert_eq!(hash.untracked, ["app/notes.txt"]);
    assert_eq!(hash.context.untracked, ["app/notes.txt"]);
    let files: Vec<(&str, FileKind)> = hash
        .context
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.kind))
        .collect();
    assert_eq!(
        files,
        [
            (".dockerignore", FileKind::Regular),
            ("Dockerfile", FileKind::Regular),
            ("app/current", FileKind::Symlink),
            ("app/lib/util.txt", FileKind::Regular),
            ("app/main.sh", FileKind::Executable),
        ]
    );
    assert_eq!(hash.context.ignore_file.as_deref(), Some(".dockerignore"));
    assert_eq!(hash.context.dockerfile.as_deref(), Some("Dockerfile"));
    assert_eq!(
        hash.froms,
        [dockerfile::From {
            reference: "alpine:3.20".to_owned(),
            stage: None,
            line: 1
        }]
    );
    assert!(hash.unhashed.is_empty());
    // The same inputs written out give the same tag: the glob strings are not hashed.
    let inputs = ["app/**".to_owned()];
    let explicit = repo
        .open()
        .hash(&Spec {
            inputs: Some(&inputs),
            ..spec
        })
        .unwrap();
    assert_eq!(explicit, hash);
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
            inputs: Some(&inputs),
            dockerfile: "Dockerfile",
            context: ".",
            platform,
            build_args: args,
            base_images: &NO_ARGS,
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
        inputs: Some(&inputs),
        dockerfile: "Dockerfile.other",
        context: ".",
        platform: "linux/amd64",
        build_args: &NO_ARGS,
        base_images: &NO_ARGS,
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
    // A Dockerfile that copies nothing, so narrower inputs pass the coverage check.
    repo.write("Dockerfile", "FROM scratch\n");
    let r = repo.open();
    // `*` stays within a directory, `**` crosses them.
    assert_eq!(r.hash(&spec(&["app/*"])).unwrap().files, 1);
    assert_eq!(r.hash(&spec(&["app/**"])).unwrap().files, 3);
    assert_eq!(r.hash(&spec(&["**/*.py"])).unwrap().files, 2);
    // Overlapping globs count a file once; their spelling is not hashed.
    let both = r.hash(&spec(&["app/**", "app/*.py"])).unwrap();
    assert_eq!(both.tag, r.hash(&spec(&["app/**"])).unwrap().tag);
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
    // The context still lists it (it comes from the index; a tar of it skips the missing file
    // as the hash does) until the deletion is committed.
    assert!(
        deleted
            .context
            .files
            .iter()
            .any(|f| f.path == "app/main.py")
    );
    repo.commit();
    let committed = repo.hash();
    assert_eq!(
        (committed.tag, committed.files, committed.bytes),
        (deleted.tag, deleted.files, deleted.bytes)
    );
    assert!(
        !committed
            .context
            .files
            .iter()
            .any(|f| f.path == "app/main.py")
    );
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

// ---------------------------------------------------------------------------------------------
// Format v2: the build context, the ignore file, the base images, the Dockerfile check.

/// A spec with everything explicit.
fn spec_with<'a>(
    inputs: Option<&'a [String]>,
    dockerfile: &'a str,
    context: &'a str,
    base_images: &'a BTreeMap<String, String>,
) -> Spec<'a> {
    Spec {
        inputs,
        dockerfile,
        context,
        platform: "linux/amd64",
        build_args: &NO_ARGS,
        base_images,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The monorepo of the issue: the Dockerfile copies the whole source tree, the inputs name one
/// API's directory.
fn monorepo() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "backend/Dockerfile.app-api",
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY backend/pyproject.toml ./\nCOPY backend/src ./src\n",
    );
    repo.write("backend/pyproject.toml", "[project]\n");
    repo.write("backend/src/apis/app_api/main.py", "app\n");
    repo.write("backend/src/apis/shared/db.py", "db\n");
    repo.write("backend/src/agents/agent.py", "agent\n");
    repo.write("frontend/index.html", "<html>\n");
    repo.commit();
    repo
}

#[test]
fn inputs_narrower_than_what_the_dockerfile_copies_are_refused() {
    let repo = monorepo();
    let r = repo.open();
    let narrow = strings(&["backend/src/apis/app_api/**", "backend/pyproject.toml"]);
    let spec = spec_with(Some(&narrow), "backend/Dockerfile.app-api", ".", &NO_ARGS);
    let error = r.hash(&spec).unwrap_err();
    let Error::NotCovered { dockerfile, files } = &error else {
        panic!("{error}");
    };
    assert_eq!(dockerfile, Path::new("backend/Dockerfile.app-api"));
    assert_eq!(
        files,
        &[
            Uncovered {
                file: "backend/src/agents/agent.py".to_owned(),
                line: 4,
                instruction: "COPY backend/src ./src".to_owned(),
                suggestion: "backend/src/**".to_owned(),
            },
            Uncovered {
                file: "backend/src/apis/shared/db.py".to_owned(),
                line: 4,
                instruction: "COPY backend/src ./src".to_owned(),
                suggestion: "backend/src/**".to_owned(),
            },
        ]
    );
    assert_eq!(
        error.to_string(),
        "`inputs` leave out 2 file(s) that backend/Dockerfile.app-api copies into the image, so \
         a change to them would not change the tag and the image would go stale: line 4 \
         `COPY backend/src ./src` copies backend/src/agents/agent.py, \
         backend/src/apis/shared/db.py (cover with `backend/src/**`); add the globs to \
         `inputs`, or leave `inputs` out to derive them from the Dockerfile"
    );
    // The suggested glob fixes it.
    let fixed = strings(&["backend/src/**", "backend/pyproject.toml"]);
    let hash = r
        .hash(&spec_with(
            Some(&fixed),
            "backend/Dockerfile.app-api",
            ".",
            &NO_ARGS,
        ))
        .unwrap();
    assert_eq!(hash.files, 4);
    assert!(hash.unhashed.is_empty());
}

#[test]
fn the_not_covered_message_names_twenty_files_and_counts_the_rest() {
    let repo = TestRepo::new();
    repo.write("Dockerfile", "FROM alpine\nCOPY a /a\nCOPY b.txt /b\n");
    for n in 0..30 {
        repo.write(&format!("a/f{n:02}.txt"), "x\n");
    }
    repo.write("b.txt", "b\n");
    repo.write("keep.txt", "k\n");
    repo.commit();
    let inputs = strings(&["keep.txt"]);
    let error = repo
        .open()
        .hash(&spec_with(Some(&inputs), "Dockerfile", ".", &NO_ARGS))
        .unwrap_err();
    let Error::NotCovered { files, .. } = &error else {
        panic!("{error}");
    };
    assert_eq!(files.len(), 31, "every file is collected");
    let message = error.to_string();
    assert!(
        message.starts_with("`inputs` leave out 31 file(s)"),
        "{message}"
    );
    assert!(
        message.contains("a/f18.txt, a/f19.txt, and 10 more (cover with `a/**`); "),
        "{message}"
    );
    assert!(!message.contains("a/f20.txt"), "{message}");
    assert!(
        message.contains("line 3 `COPY b.txt /b` copies 1 file(s) (cover with `b.txt`); "),
        "{message}"
    );
}

#[test]
fn inputs_are_derived_from_the_dockerfile_when_absent() {
    let repo = TestRepo::new();
    repo.write(
        "svc/Dockerfile",
        "FROM alpine\nCOPY app /app\nCOPY main.py ./\nCOPY conf/*.toml /etc/\nCOPY lib* /lib/\nCOPY app/../app /again\n",
    );
    repo.write("svc/app/a.py", "a\n");
    repo.write("svc/app/deep/b.py", "b\n");
    repo.write("svc/main.py", "main\n");
    repo.write("svc/conf/x.toml", "x\n");
    repo.write("svc/conf/skip.yaml", "skip\n");
    repo.write("svc/libone/l.py", "l\n");
    repo.write("svc/libtwo.py", "l2\n");
    repo.write("svc/unused.txt", "unused\n");
    repo.write("other/o.txt", "o\n");
    repo.commit();
    let r = repo.open();
    let derived = r
        .hash(&spec_with(None, "svc/Dockerfile", "svc", &NO_ARGS))
        .unwrap();
    assert_eq!(
        derived.inputs,
        [
            "svc/app/**",
            "svc/main.py",
            "svc/conf/*.toml",
            "svc/lib*/**",
            "svc/lib*",
        ]
    );
    assert_eq!(derived.files, 6);
    // Written out, they give the same tag and pass the check.
    let explicit = r
        .hash(&spec_with(
            Some(&derived.inputs),
            "svc/Dockerfile",
            "svc",
            &NO_ARGS,
        ))
        .unwrap();
    assert_eq!(explicit, derived);
    // `COPY . /` derives the whole context.
    repo.write("svc/Dockerfile", "FROM alpine\nCOPY . /\n");
    let all = repo
        .open()
        .hash(&spec_with(None, "svc/Dockerfile", "./svc/", &NO_ARGS))
        .unwrap();
    assert_eq!(all.inputs, ["svc/**"]);
    assert_eq!(all.context.dir, "svc");
    assert_eq!(
        all.files, 9,
        "every tracked file under svc, the Dockerfile too"
    );
}

#[test]
fn a_dockerfile_that_copies_nothing_derives_no_input() {
    let repo = TestRepo::sample();
    repo.write(
        "Dockerfile",
        "FROM alpine\nRUN echo hi\nCOPY <<EOF /x\ninline\nEOF\n",
    );
    let r = repo.open();
    let hash = r
        .hash(&spec_with(None, "Dockerfile", ".", &NO_ARGS))
        .unwrap();
    assert!(hash.inputs.is_empty());
    assert_eq!((hash.files, hash.bytes), (0, 0));
    assert_eq!(hash.tag.len(), 24);
    // The Dockerfile still counts.
    repo.write("Dockerfile", "FROM alpine\nRUN echo bye\n");
    assert_ne!(
        repo.open()
            .hash(&spec_with(None, "Dockerfile", ".", &NO_ARGS))
            .unwrap()
            .tag,
        hash.tag
    );
    // Explicit empty inputs stay an error.
    let none: Vec<String> = Vec::new();
    assert!(matches!(
        r.hash(&spec_with(Some(&none), "Dockerfile", ".", &NO_ARGS)),
        Err(Error::EmptyInputs)
    ));
}

#[test]
fn a_copy_source_matching_nothing_in_the_context_names_its_line() {
    let repo = TestRepo::sample();
    repo.write(".dockerignore", "secret\n");
    repo.write("secret/key", "k\n");
    repo.commit();
    repo.write("new/file.py", "untracked\n");
    let r = repo.open();
    let check = |dockerfile: &str, expected: &str| {
        repo.write("Dockerfile.t", dockerfile);
        let error = r
            .hash(&spec_with(None, "Dockerfile.t", ".", &NO_ARGS))
            .unwrap_err();
        assert!(
            matches!(error, Error::CopySource { line: 2, .. }),
            "{error}"
        );
        assert!(error.to_string().contains(expected), "{error}");
    };
    check(
        "FROM a\nCOPY missing /x\n",
        "Dockerfile.t line 2: `COPY missing /x`: `missing` matches no file in the build context `.`",
    );
    check(
        "FROM a\nCOPY new /x\n",
        "only 1 untracked file(s) do: `git add` them",
    );
    check(
        "FROM a\nCOPY secret /x\n",
        "matches only files that `.dockerignore` excludes",
    );
    check(
        "FROM a\nCOPY nothing* /x\n",
        "matches no file in the build context",
    );
    check("FROM a\nCOPY [z-a]* /x\n", "is not a valid pattern");
}

#[test]
fn the_ignore_file_shapes_the_context_and_counts() {
    let repo = TestRepo::sample();
    repo.write("Dockerfile", "FROM alpine\nCOPY . /app\n");
    repo.write(".dockerignore", "docs\n**/*.csv\n");
    repo.commit();
    let r = repo.open();
    // `COPY .` copies the context: the excluded files need no cover.
    let inputs = strings(&["app/**", ".dockerignore"]);
    let hash = r
        .hash(&spec_with(Some(&inputs), "Dockerfile", ".", &NO_ARGS))
        .unwrap();
    let paths: Vec<&str> = hash.context.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".dockerignore",
            "Dockerfile",
            "app/lib/util.py",
            "app/main.py"
        ]
    );
    // But a tracked, excluded file under an input glob is still hashed.
    assert_eq!(hash.files, 4);
    let ctx = r.context(".", "Dockerfile").unwrap();
    assert_eq!(ctx, hash.context);

    // Its content moves the tag, and absent differs from empty.
    let tag = |repo: &TestRepo| {
        repo.open()
            .hash(&spec_with(
                Some(&strings(&["**"])),
                "Dockerfile",
                ".",
                &NO_ARGS,
            ))
            .unwrap()
            .tag
    };
    let with = tag(&repo);
    repo.write(".dockerignore", "docs\n**/*.csv\n# a comment\n");
    let edited = tag(&repo);
    assert_ne!(edited, with);
    repo.write(".dockerignore", "");
    let empty = tag(&repo);
    fs::remove_file(repo.dir.join(".dockerignore")).unwrap();
    let absent = tag(&repo);
    assert_ne!(empty, absent);
    assert_ne!(empty, edited);

    // `<dockerfile>.dockerignore` wins over the context's.
    repo.write(".dockerignore", "app\n");
    repo.write("Dockerfile.dockerignore", "docs\n");
    let r = repo.open();
    let ctx = r.context(".", "Dockerfile").unwrap();
    assert_eq!(ctx.ignore_file.as_deref(), Some("Dockerfile.dockerignore"));
    assert!(ctx.files.iter().any(|f| f.path == "app/main.py"));
    assert!(!ctx.files.iter().any(|f| f.path.starts_with("docs/")));

    // A bad pattern is refused with its line.
    repo.write("Dockerfile.dockerignore", "ok\n[bad\n");
    let error = repo.open().context(".", "Dockerfile").unwrap_err();
    assert!(
        matches!(error, Error::Dockerignore { line: 2, .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("Dockerfile.dockerignore:2: `[bad`"),
        "{error}"
    );
}

#[test]
fn the_context_is_tracked_files_under_it_with_untracked_ones_apart() {
    let repo = TestRepo::sample();
    repo.write("app/.dockerignore", "*.log\n");
    std::os::unix::fs::symlink("main.py", repo.dir.join("app/link")).unwrap();
    repo.write("app/run.sh", "#!/bin/sh\n");
    repo.chmod("app/run.sh", 0o755);
    repo.commit();
    repo.write("app/new.py", "untracked\n");
    repo.write("app/debug.log", "excluded\n");
    repo.write("docs/new.md", "outside the context\n");
    let r = repo.open();
    let ctx = r.context("app", "Dockerfile").unwrap();
    assert_eq!(ctx.dir, "app");
    let files: Vec<(&str, FileKind)> = ctx
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.kind))
        .collect();
    assert_eq!(
        files,
        [
            (".dockerignore", FileKind::Regular),
            ("data/table.csv", FileKind::Regular),
            ("lib/util.py", FileKind::Regular),
            ("link", FileKind::Symlink),
            ("main.py", FileKind::Regular),
            ("run.sh", FileKind::Executable),
        ]
    );
    assert_eq!(ctx.untracked, ["new.py"]);
    assert_eq!(ctx.ignore_file.as_deref(), Some("app/.dockerignore"));
    assert_eq!(
        ctx.dockerfile, None,
        "the Dockerfile is outside the context"
    );
    assert_eq!(r.context("./app/", "Dockerfile").unwrap(), ctx);

    for outside in ["..", "../x", "/abs", "app/../.."] {
        let error = r.context(outside, "Dockerfile").unwrap_err();
        assert!(
            matches!(error, Error::ContextOutsideRoot { .. }),
            "{outside}: {error}"
        );
    }
    let error = r.context("nowhere", "Dockerfile").unwrap_err();
    assert!(matches!(error, Error::ContextMissing { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "the build context `nowhere` is not a directory"
    );
    // An existing directory without tracked files is an empty context.
    fs::create_dir(repo.dir.join("empty")).unwrap();
    assert!(r.context("empty", "Dockerfile").unwrap().files.is_empty());
}

#[test]
fn the_context_directory_moves_the_tag() {
    let repo = TestRepo::sample();
    repo.write("Dockerfile", "FROM alpine\n");
    let r = repo.open();
    let inputs = strings(&["app/**"]);
    let at = |context| {
        r.hash(&spec_with(Some(&inputs), "Dockerfile", context, &NO_ARGS))
            .unwrap()
            .tag
    };
    let root = at(".");
    assert_eq!(at(""), root);
    assert_eq!(at("./"), root);
    let app = at("app");
    assert_ne!(app, root);
    assert_eq!(at("./app/"), app);
    assert_ne!(at("docs"), app);
}

#[test]
fn base_images_count_as_written_or_by_digest() {
    let repo = TestRepo::sample();
    repo.write(
        "Dockerfile",
        "FROM golang:1.22 AS build\nFROM alpine:3.20\nCOPY --from=build /x /x\nCOPY --from=nginx:1 /y /y\nCOPY app /app\n",
    );
    let r = repo.open();
    let inputs = strings(&["app/**"]);
    let tag = |images: &BTreeMap<String, String>| {
        r.hash(&spec_with(Some(&inputs), "Dockerfile", ".", images))
            .unwrap()
    };
    let written = tag(&NO_ARGS);
    let refs: Vec<&str> = written.froms.iter().map(|f| f.reference.as_str()).collect();
    assert_eq!(refs, ["golang:1.22", "alpine:3.20", "nginx:1"]);
    assert_eq!(
        r.analyze(&spec_with(Some(&inputs), "Dockerfile", ".", &NO_ARGS))
            .unwrap()
            .froms,
        written.froms
    );

    let digest = |d: &str| BTreeMap::from([("alpine:3.20".to_owned(), format!("sha256:{d}"))]);
    let resolved = tag(&digest("aa"));
    assert_ne!(resolved.tag, written.tag);
    let moved = tag(&digest("bb"));
    assert_ne!(
        moved.tag, resolved.tag,
        "a re-pushed base image moves the tag"
    );
    assert_eq!(tag(&digest("aa")).tag, resolved.tag);
    // Digests of images the Dockerfile does not use change nothing.
    let unused = BTreeMap::from([("debian:12".to_owned(), "sha256:cc".to_owned())]);
    assert_eq!(tag(&unused).tag, written.tag);
    // Writing the image differently is a different input.
    repo.write(
        "Dockerfile",
        "FROM golang:1.22 AS build\nFROM alpine:3.21\nCOPY --from=build /x /x\nCOPY --from=nginx:1 /y /y\nCOPY app /app\n",
    );
    assert_ne!(
        repo.open()
            .hash(&spec_with(Some(&inputs), "Dockerfile", ".", &NO_ARGS))
            .unwrap()
            .tag,
        written.tag
    );
}

#[test]
fn explicit_inputs_tolerate_what_cannot_be_resolved_derived_ones_do_not() {
    let repo = TestRepo::sample();
    repo.write(
        "Dockerfile",
        "FROM alpine\nCOPY $SRC /app\nADD https://example.com/x.tgz /x\nRUN --mount=type=bind,target=/src make\n",
    );
    let r = repo.open();
    let inputs = strings(&["app/**"]);
    let hash = r
        .hash(&spec_with(Some(&inputs), "Dockerfile", ".", &NO_ARGS))
        .unwrap();
    let lines: Vec<usize> = hash.unhashed.iter().map(|u| u.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    let error = r
        .hash(&spec_with(None, "Dockerfile", ".", &NO_ARGS))
        .unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Analyze {
                source: dockerfile::Error::UnresolvedSource { line: 2, .. },
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "cannot analyse the dockerfile Dockerfile"
    );
    // The platform gives TARGETARCH, as BuildKit does.
    repo.write(
        "Dockerfile",
        "FROM alpine\nARG TARGETARCH\nCOPY app/$TARGETARCH /app\n",
    );
    repo.write("app/arm64/bin", "arm\n");
    repo.write("app/amd64/bin", "amd\n");
    repo.commit();
    let r = repo.open();
    let hash = r
        .hash(&Spec {
            platform: "linux/arm64",
            ..spec_with(None, "Dockerfile", ".", &NO_ARGS)
        })
        .unwrap();
    assert_eq!(hash.inputs, ["app/arm64/**"]);
}

#[test]
fn inputs_outside_the_context_are_allowed_and_count() {
    let repo = TestRepo::sample();
    repo.write("app/Dockerfile", "FROM alpine\nCOPY . /app\n");
    repo.commit();
    let r = repo.open();
    let only_app = strings(&["app/**"]);
    let with_docs = strings(&["app/**", "docs/**"]);
    let a = r
        .hash(&spec_with(
            Some(&only_app),
            "app/Dockerfile",
            "app",
            &NO_ARGS,
        ))
        .unwrap();
    let b = r
        .hash(&spec_with(
            Some(&with_docs),
            "app/Dockerfile",
            "app",
            &NO_ARGS,
        ))
        .unwrap();
    assert_eq!(b.files, a.files + 1);
    assert_ne!(a.tag, b.tag);
    // The Dockerfile inside the context needs no cover.
    let no_dockerfile = strings(&["app/*.py", "app/lib/**", "app/data/**"]);
    r.hash(&spec_with(
        Some(&no_dockerfile),
        "app/Dockerfile",
        "app",
        &NO_ARGS,
    ))
    .unwrap();
}

mod derived {
    use proptest::prelude::*;

    use super::*;

    fn path() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec(
                prop_oneof![Just("a"), Just("b"), Just("lib"), Just("x y"), Just("c[1]")],
                0..3,
            ),
            prop_oneof![Just("m.py"), Just("n.txt"), Just("lib.py"), Just("{w}.md")],
        )
            .prop_map(|(dirs, file)| {
                let mut parts: Vec<&str> = dirs;
                parts.push(file);
                parts.join("/")
            })
    }

    fn source() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(".".to_owned()),
            Just("*.py".to_owned()),
            Just("a/*".to_owned()),
            Just("*/*.txt".to_owned()),
            Just("l?b*".to_owned()),
            Just("c\\[1\\]".to_owned()),
            Just("[ab]".to_owned()),
            path(),
            Just("lib".to_owned()),
            Just("a/b".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Derived inputs always cover what the Dockerfile copies, and written out they give
        /// the same tag: the resolution and the derived globs agree, whatever the names.
        #[test]
        fn derived_inputs_cover_what_is_copied(
            files in proptest::collection::btree_set(path(), 1..8),
            sources in proptest::collection::vec(source(), 1..4),
        ) {
            let repo = TestRepo::new();
            for file in &files {
                // A file cannot also be a directory.
                if files.iter().any(|other| other.starts_with(&format!("{file}/"))) {
                    continue;
                }
                repo.write(file, "x\n");
            }
            let copies: Vec<String> = sources
                .iter()
                .map(|s| format!("COPY [\"{}\", \"/dst/\"]\n", s.replace('\\', "\\\\")))
                .collect();
            repo.write("Dockerfile", &format!("FROM scratch\n{}", copies.concat()));
            repo.commit();
            let r = repo.open();
            match r.hash(&spec_with(None, "Dockerfile", ".", &NO_ARGS)) {
                Ok(derived) => {
                    let explicit = r
                        .hash(&spec_with(Some(&derived.inputs), "Dockerfile", ".", &NO_ARGS))
                        .unwrap();
                    prop_assert_eq!(explicit.tag, derived.tag);
                }
                Err(Error::CopySource { .. }) => {}
                Err(error) => prop_assert!(false, "{}", error),
            }
        }
    }
}
