//! The content hash of a service's inputs, used as its image tag.
//!
//! A service's tag is the hash of everything that decides its image: the files git tracks under
//! its `inputs`, its Dockerfile, its build context and ignore file, its base images, its
//! platform and its build args. The same inputs give the same tag on every machine and in every
//! clone, wherever it lives; changing any of them changes it. Before hashing, the Dockerfile is
//! read to check that `inputs` cover every file it copies: a file the image is built from but
//! the tag does not cover would let a stale image ship under an unchanged tag.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::path::Path;
//!
//! let repo = hasher::Repo::open(Path::new("."))?; // lists the tracked files once
//! let hash = repo.hash(&hasher::Spec {
//!     inputs: None, // derived from the Dockerfile; or Some(&["app/**".to_owned()])
//!     dockerfile: "Dockerfile",
//!     context: ".",
//!     platform: "linux/arm64",
//!     build_args: &BTreeMap::new(),
//!     base_images: &BTreeMap::new(), // as written
//! })?;
//! println!("{} ({} files, {} bytes)", hash.tag, hash.files, hash.bytes);
//! # Ok::<(), hasher::Error>(())
//! ```
//!
//! # What goes in
//!
//! - **The files**: every path git tracks (is in the index: committed or staged) under the root
//!   whose root-relative path matches at least one of the `inputs` globs. Globs use globset syntax
//!   with `literal_separator`: `*`, `?` and `[..]` stay within one path component, `**` crosses
//!   directories, `{a,b}` is an alternation. The root is the directory of `deployer.toml`; it
//!   may be a subdirectory of the work tree, and paths are relative to it. Inputs outside the
//!   build context are allowed and count (a file the build cannot copy may still be one whose
//!   change should rebuild, a lockfile read by CI for instance); tracked files the ignore file
//!   excludes count too when a glob matches them.
//! - For each file: its root-relative path with `/` separators (git's bytes), its kind (regular,
//!   executable, symlink, submodule) and its **working-tree** content, so uncommitted edits count.
//!   Executable means the owner's execute bit (`S_IXUSR`), git's rule. A symlink counts as its
//!   target string and is never followed. A submodule counts as the commit id recorded in the
//!   index; its files are not read.
//! - The Dockerfile's bytes (read from the working tree, following symlinks, whether or not it is
//!   tracked or under `inputs`), the platform string, the build args, and the format version.
//! - The **build context** directory (root-relative, cleaned: `./svc/` is `svc`, the root is
//!   `.`) and the **ignore file** in effect: `<dockerfile>.dockerignore` if it exists (BuildKit's
//!   rule), else `<context>/.dockerignore`; its bytes, and whether there is one at all.
//! - The **base images**: every image the build pulls, in the order the Dockerfile names them
//!   (see [`dockerfile`]: `FROM` images, not `scratch` or a stage, and the images of
//!   `COPY --from=<image>` and `RUN --mount=…,from=<image>`), each as written (variables
//!   substituted) with the digest [`Spec::base_images`] gives for it, or nothing. A
//!   `FROM name@sha256:…` is content already. For `FROM name:tag` the caller chooses: an empty
//!   map keeps the image as written (a re-pushed `name:tag` does not move the tag), digests the
//!   registry serves now make a patched base image move it (the project's
//!   `base_images = "resolve"`). [`Repo::analyze`] gives the references.
//!
//! # The Dockerfile check, and `inputs` derived
//!
//! [`Repo::hash`] reads the Dockerfile ([`dockerfile::analyze`]: BuildKit's grammar, `ARG`
//! and `ENV` substitution, stages) and resolves each `COPY`/`ADD` source that reads the context
//! as Docker does, among the context's files ([`Repo::context`]: the tracked files under the
//! context directory less what the ignore file excludes): a file is itself; a directory is
//! everything under it; a wildcard uses Go's `filepath.Match` (`*` does not cross `/`), and a
//! directory it matches brings everything under it. Then:
//!
//! - A source matching nothing in the context is an error naming its line
//!   ([`Error::CopySource`]): Docker would fail the build too (only tracked files are in it).
//! - With `inputs` given, every file a source copies must match one of them, or the hash fails
//!   with [`Error::NotCovered`], which names every such file, grouped by Dockerfile line, with a
//!   glob that would cover it (the source directory with `/**`, the file, or the pattern).
//!   The Dockerfile and the ignore file are exempt: they are hashed as themselves.
//! - Without `inputs` ([`Spec::inputs`] `None`), they are derived from the sources, as
//!   root-relative globs: a directory `d` gives `<context>/d/**`, a file `<context>/f`, a
//!   wildcard its pattern under the context (and `/**` after it when it matches a directory),
//!   `.` gives `<context>/**`. [`ServiceHash::inputs`] reports them. A Dockerfile that copies
//!   nothing derives no input: the tag then covers the Dockerfile and the other fields only.
//! - A source whose variables have no value (no default, no build arg) is an error with
//!   derived inputs; with explicit inputs it is reported in [`ServiceHash::unhashed`] and not
//!   checked. So are `ADD <url>` without `--checksum` and `RUN --mount=type=bind` without
//!   `from=`: what they read is not in the tag.
//!
//! # The format (version 2)
//!
//! `u64(n)` is `n` as 8 bytes little-endian; `bytes(b)` is `u64(len(b))` followed by `b`;
//! `digest(b)` is the 32-byte blake3 hash of `b`. Every variable-length field is length-prefixed,
//! so no two different inputs give the same stream. The stream is:
//!
//! ```text
//! bytes("deployer-hasher")                       magic
//! u64(2)                                         format version
//! bytes(platform)                                e.g. "linux/arm64"
//! u64(number of build args)
//!   bytes(key) bytes(value)                      per build arg, sorted by key bytes
//! u64(len(dockerfile)) digest(dockerfile)
//! bytes(context)                                 root-relative, cleaned, "." for the root
//! u8(ignore file present: 1, absent: 0)
//! bytes(ignore file content)                     empty when absent
//! u64(number of images)
//!   bytes(reference) bytes(digest)               per image in Dockerfile order; the digest
//!                                                from base_images, "" when not given
//! u64(number of files)
//!   bytes(path) u8(kind) u64(len(content)) digest(content)
//!                                                per file, sorted by path bytes
//! ```
//!
//! `kind` is 0 for a regular file, 1 for an executable one, 2 for a symlink (content: the
//! target string as stored in the link) and 3 for a submodule (content: the commit id, in hex).
//! The **tag** is the first 24 lowercase hex characters (96 bits) of `digest(stream)`: a valid
//! OCI tag (`[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`). [`ServiceHash::files`] counts the files in the
//! stream, [`ServiceHash::bytes`] sums their content lengths (the Dockerfile is in neither).
//!
//! Version 1 ended after the Dockerfile digest with the files: no context, ignore file nor
//! images. Every v2 tag differs from every v1 tag (the version is the second field), so the
//! first deploy after the change rebuilds every image service once.
//!
//! # What is left out, and the edge cases
//!
//! - Bytes are bytes: no git filter is applied (`core.autocrlf`, `eol`, LFS), so a file with
//!   `\r\n` and one with `\n` differ: the tag is of the bytes the builder will copy.
//! - Not hashed: the glob strings themselves (explicit inputs and the same inputs derived give
//!   the same tag), the Dockerfile's path and the ignore file's (renaming changes nothing by
//!   itself), the repository's location, timestamps, owners, permission bits other than the
//!   owner's execute bit, git history and commit ids, the staged content of the index, ignored
//!   files and files outside `inputs`, the base images' content when `base_images` is empty,
//!   and what `ADD <url>`, `ADD <git url>` (without `--checksum`) and bind mounts of the context
//!   read at build time (listed in [`ServiceHash::unhashed`]).
//! - **Untracked** files (not ignored) under `inputs` are left out and listed in
//!   [`ServiceHash::untracked`]; those in the build context (not excluded by the ignore file)
//!   in [`Context::untracked`]. The caller warns, and gives the builder the context made from
//!   [`Context::files`] so they are not in the image either: `git add` them to count them.
//! - A tracked file **deleted** from the working tree (or replaced by a directory) is left out,
//!   as if the deletion were committed: the build context does not have it either.
//! - A glob that matches **no tracked file** is an error naming it ([`Error::NoMatch`]): a typo
//!   must not silently hash nothing. Empty explicit `inputs` are an error
//!   ([`Error::EmptyInputs`]), and so is a glob that is absolute or contains `..`
//!   ([`Error::GlobOutsideRoot`]), and a context outside the root ([`Error::ContextOutsideRoot`]).
//! - **Outside a git work tree** the hash is refused ([`Error::NotARepository`]): without git
//!   there is no telling the files that belong to the build from local debris. There is no
//!   fallback.
//! - A fifo, socket or device at a tracked path is an error ([`Error::Unsupported`]).
//! - The check is conservative where Docker's reading is unknowable or rare: `COPY --exclude`
//!   is not applied (it may ask to cover a file the build leaves out), a variable set only by
//!   the base image's environment has no value here (an error, see above), and `**` inside a
//!   path component is `*` (Docker's `.dockerignore` makes `a**` cross directories).
//!
//! # Worked example
//!
//! A repository (checked by the test `worked_example`):
//!
//! ```text
//! Dockerfile           "FROM alpine:3.20\nCOPY app /app\n"
//! .dockerignore        "docs\n"
//! app/main.sh          "#!/bin/sh\necho hello\n"        mode 755
//! app/lib/util.txt     "util\n"
//! app/current          symlink to "lib/util.txt"
//! app/notes.txt        untracked
//! docs/readme.md       "docs\n"                          not copied, excluded
//! ```
//!
//! hashed with `inputs` left out (derived: `["app/**"]`, from `COPY app`), `dockerfile =
//! "Dockerfile"`, `context = "."`, `platform = "linux/arm64"`, `build_args = { VERSION = "1" }`
//! and `base_images = { "alpine:3.20" = "sha256:1e42bbe2508154c9126d48c2b8a75420c3544343bf86fd041fb7527e017a4b4a" }`,
//! streams
//!
//! ```text
//! bytes("deployer-hasher") u64(2) bytes("linux/arm64")
//! u64(1) bytes("VERSION") bytes("1")
//! u64(31) digest("FROM alpine:3.20\nCOPY app /app\n")
//! bytes(".")
//! u8(1) bytes("docs\n")
//! u64(1) bytes("alpine:3.20") bytes("sha256:1e42bbe2…7a4b4a")
//! u64(3)
//! bytes("app/current")      u8(2) u64(12) digest("lib/util.txt")
//! bytes("app/lib/util.txt") u8(0) u64(5)  digest("util\n")
//! bytes("app/main.sh")      u8(1) u64(21) digest("#!/bin/sh\necho hello\n")
//! ```
//!
//! and gives the tag `0e2ffa499c75620540031b52`, with `files = 3`, `bytes = 38`,
//! `untracked = ["app/notes.txt"]`, the context files `.dockerignore`, `Dockerfile`,
//! `app/current`, `app/lib/util.txt`, `app/main.sh` (with `app/notes.txt` untracked in it) and
//! one image, `alpine:3.20` on line 1. Written out, `inputs = ["app/**"]` gives the same tag.
//!
//! # Speed: the listing, the parallel read, the stat cache
//!
//! [`Repo::open`] lists the files once for all services, running three git commands at once:
//! `rev-parse` (where the git dir is), `ls-files --stage` (every tracked file under the root,
//! with its index mode to spot submodules) and, on a background thread joined when first needed,
//! `ls-files --others --exclude-standard` (the untracked ones). The globs are matched in process,
//! so no pathspec is passed. Files are read in parallel (rayon, one thread per core), each
//! streamed through blake3 with a fixed 128 KiB buffer per thread: memory does not grow with
//! file sizes (it grows with the number of tracked files, about 150 bytes each, for the listing
//! and the cache).
//!
//! The build context and the coverage check walk nothing on disk: the context is a slice of the
//! tracked listing (it is sorted, so the files under a directory are one run of it), the
//! ignore file is the only file they read, and a copied file is covered when the same pass that
//! selects the inputs marked its index. The stat cache caches file digests, not tags, so format
//! v2 kept it valid.
//!
//! A re-hash of an unchanged tree skips reading through a stat cache at
//! `<git-dir>/deployer/hash-cache-v1` (per work tree; delete it at will): per file, the stat
//! fields (device, inode, mode, size, mtime and ctime in ns) seen when it was read, and the
//! digest of its bytes. A file is re-read unless `lstat` gives exactly the stored fields. Any
//! change to a file sets its ctime to the current time, and no system call sets ctime back; an
//! entry is only stored when the file's mtime and ctime are at least 2 s older than the moment
//! the hashing started (git's racy-git rule), so a later change always gives a different ctime,
//! even when size and mtime are kept. The cache is written to a temporary file and renamed, a
//! corrupt cache is ignored, and one that cannot be written only makes the next run cold. It
//! assumes file timestamps come from a clock within 2 s of this machine's (true of local file
//! systems).
//!
//! Git's own index (the Turborepo approach: reuse its blob ids, re-hash only dirty files) is not
//! used: a blob id is the hash of the content *after* git's clean filters (`core.autocrlf`,
//! `.gitattributes` `eol`/`text`, LFS pointers), not of the working-tree bytes the builder copies,
//! and trusting it would make a CRLF file hash like its LF twin.
//!
//! # I/O
//!
//! The crate does no network and knows nothing of AWS or Docker: base image digests are given,
//! not fetched. Its only I/O is running `git` (`rev-parse` and `ls-files`, with an argument
//! vector), reading the files it hashes, the Dockerfile and the ignore file, and reading and
//! writing its own stat cache.
#![warn(missing_docs)]

mod cache;
mod context;
pub mod dockerfile;
mod dockerignore;
mod file;
mod frame;
mod git;
mod pattern;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use globset::{Candidate, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::cache::{Cache, CacheEntry, Map};
pub use crate::context::{Context, ContextFile, FileKind, Uncovered};
use crate::dockerfile::{Analysis, Unhashed};
use crate::file::{Entry, StatKey};
use crate::frame::{Kind, Record, Stream};

/// A git work tree, opened once and hashed for any number of services.
///
/// `Repo` is `Send + Sync`: [`Repo::hash`] may be called from several threads at once.
pub struct Repo {
    pub(crate) root: PathBuf,
    /// The root relative to the top of the work tree, `/`-terminated (empty at the top).
    prefix: Vec<u8>,
    /// Tracked paths under the root, sorted by bytes.
    pub(crate) tracked: Vec<git::Tracked>,
    pub(crate) untracked: git::Untracked,
    cache: Cache,
    #[cfg(test)]
    counters: tests::Counters,
}

/// What decides one service's image.
#[derive(Debug, Clone, Copy)]
pub struct Spec<'a> {
    /// Globs relative to the root, `/`-separated (globset syntax, `*` stays within a directory,
    /// `**` crosses directories). When given: at least one, each must match a tracked file, and
    /// together they must cover every file the Dockerfile copies. `None`: derived from the
    /// Dockerfile's copy sources (see the crate doc).
    pub inputs: Option<&'a [String]>,
    /// The Dockerfile, relative to the root. Its bytes are always hashed, even outside `inputs`.
    pub dockerfile: &'a str,
    /// The build context directory, relative to the root (`.` for the root itself).
    pub context: &'a str,
    /// The target platform, e.g. `linux/arm64`.
    pub platform: &'a str,
    /// Build args, hashed sorted by key.
    pub build_args: &'a BTreeMap<String, String>,
    /// Base image digests: a `FROM` reference as the Dockerfile writes it (variables
    /// substituted) → the `sha256:…` digest the registry serves for it now. Empty: images
    /// count as written. See [`Repo::analyze`] for the references.
    pub base_images: &'a BTreeMap<String, String>,
}

/// The hash of one service's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceHash {
    /// 24 lowercase hex characters: a valid OCI tag.
    pub tag: String,
    /// Files (including symlinks and submodules) that went into the hash; the Dockerfile is not
    /// counted.
    pub files: usize,
    /// Sum of their content lengths (symlinks: the target's length).
    pub bytes: u64,
    /// Untracked, not ignored files under the inputs, root-relative and sorted: left out of the
    /// hash (the caller warns). [`Context::untracked`] lists those in the build context.
    pub untracked: Vec<String>,
    /// The effective inputs: `Spec::inputs` as given, or the globs derived from the Dockerfile.
    pub inputs: Vec<String>,
    /// The build context the builder must be given (its files are the ones the tag covers
    /// wherever a copy source reaches).
    pub context: Context,
    /// The images the build pulls, in order (`FROM`, `COPY --from=<image>`,
    /// `RUN --mount=from=<image>`).
    pub froms: Vec<dockerfile::From>,
    /// What the build reads that the tag does not cover (the caller warns).
    pub unhashed: Vec<Unhashed>,
}

/// Why a hash could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The root does not exist or is not a directory.
    #[error("cannot open the project root {}", path.display())]
    Root {
        /// The root given to [`Repo::open`].
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The root is not inside a git work tree.
    #[error(
        "{} is not inside a git work tree: the tag is a hash of the files git tracks, so run \
         `git init` and commit the service inputs (or run deployer inside the repository)",
        root.display()
    )]
    NotARepository {
        /// The directory that git was asked about.
        root: PathBuf,
    },
    /// A git command failed or could not be run.
    #[error("`{command}` failed in {}: {detail}", dir.display())]
    Git {
        /// The command line, for the message.
        command: String,
        /// Where it ran.
        dir: PathBuf,
        /// What git said (its stderr), or why it could not start.
        detail: String,
    },
    /// `inputs` is given but empty.
    #[error(
        "the service's `inputs` are empty: list the files its image is built from as globs, or \
         leave `inputs` out to derive them from the Dockerfile"
    )]
    EmptyInputs,
    /// An input is not a valid glob.
    #[error("input `{glob}` is not a valid glob")]
    InvalidGlob {
        /// The input as written.
        glob: String,
        /// The parser's complaint.
        #[source]
        source: globset::Error,
    },
    /// An input is absolute or climbs out of the root with `..`.
    #[error(
        "input `{glob}` must be relative to the project root and stay inside it (no leading `/`, no `..`)"
    )]
    GlobOutsideRoot {
        /// The input as written.
        glob: String,
    },
    /// An input matches no tracked file.
    #[error("input `{glob}` matches no file tracked by git{hint}")]
    NoMatch {
        /// The input as written.
        glob: String,
        /// What probably went wrong (starts with a space, or is empty).
        hint: String,
    },
    /// The Dockerfile cannot be read.
    #[error("cannot read the dockerfile {}", path.display())]
    Dockerfile {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile cannot be analysed.
    #[error("cannot analyse the dockerfile {}", path.display())]
    Analyze {
        /// Its path, relative to the root.
        path: PathBuf,
        /// Why.
        #[source]
        source: dockerfile::Error,
    },
    /// The build context is not a directory under the root.
    #[error(
        "the build context `{context}` must be a directory inside the project root (relative to \
         the directory of deployer.toml, without `..` above it)"
    )]
    ContextOutsideRoot {
        /// The context as given.
        context: String,
    },
    /// The build context directory does not exist.
    #[error("the build context `{context}` is not a directory")]
    ContextMissing {
        /// The context, cleaned.
        context: String,
    },
    /// The ignore file has a pattern Docker would refuse.
    #[error("{}:{line}: `{pattern}` is not a valid pattern: {reason}", path.display())]
    Dockerignore {
        /// The ignore file, relative to the root.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The line as written.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A `COPY`/`ADD` source matches nothing in the build context, or is not a valid pattern.
    #[error("{} line {line}: `{instruction}`: `{pattern}` {problem}", dockerfile.display())]
    CopySource {
        /// The Dockerfile, relative to the root.
        dockerfile: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The instruction's text.
        instruction: String,
        /// The source, variables substituted.
        pattern: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Files the Dockerfile copies are not covered by `inputs` (a usage error: the tag would
    /// not change when they do).
    #[error("{}", context::not_covered_message(dockerfile, files))]
    NotCovered {
        /// The Dockerfile, relative to the root.
        dockerfile: PathBuf,
        /// Every uncovered file, in the order of the Dockerfile's lines.
        files: Vec<Uncovered>,
    },
    /// An input file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A tracked path is a fifo, socket or device.
    #[error("{} is a {kind}, not a file or symlink: remove it from git or from the inputs", path.display())]
    Unsupported {
        /// Its path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
}

impl Repo {
    /// Opens the git work tree holding `root` (the directory of `deployer.toml`, possibly a
    /// subdirectory of the work tree) and lists its tracked files.
    pub fn open(root: &Path) -> Result<Repo, Error> {
        let meta = std::fs::metadata(root).map_err(|source| Error::Root {
            path: root.to_owned(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::Root {
                path: root.to_owned(),
                source: std::io::ErrorKind::NotADirectory.into(),
            });
        }
        // The three git commands run at once (outside a repository all three fail, and the
        // `rev-parse` error is the one reported); the cache loads as soon as the git dir is known.
        let untracked = git::Untracked::start(root);
        let (located, tracked) = rayon::join(
            || git::locate(root).map(|location| (Cache::load(&location.git_dir), location)),
            || git::tracked(root),
        );
        let (cache, location) = located?;
        Ok(Repo {
            root: root.to_owned(),
            prefix: location.prefix,
            tracked: tracked?,
            untracked,
            cache,
            #[cfg(test)]
            counters: tests::Counters::default(),
        })
    }

    /// The service's Dockerfile analysed as [`Repo::hash`] analyses it: with the build args and
    /// the `TARGETPLATFORM`, `TARGETOS`, `TARGETARCH` and `TARGETVARIANT` of the platform; with
    /// explicit `inputs`, a copy source that cannot be resolved is a notice, not an error. The
    /// caller takes the references to resolve for [`Spec::base_images`] from
    /// [`Analysis::froms`].
    pub fn analyze(&self, spec: &Spec<'_>) -> Result<Analysis, Error> {
        let (_, analysis) = self.read_dockerfile(spec)?;
        Ok(analysis)
    }

    fn read_dockerfile(&self, spec: &Spec<'_>) -> Result<(Vec<u8>, Analysis), Error> {
        let path = self.root.join(spec.dockerfile);
        let bytes = std::fs::read(&path).map_err(|source| Error::Dockerfile {
            path: path.clone(),
            source,
        })?;
        let analyze_error = |source| Error::Analyze {
            path: PathBuf::from(spec.dockerfile),
            source,
        };
        let text =
            std::str::from_utf8(&bytes).map_err(|_| analyze_error(dockerfile::Error::NotText))?;
        let args = analysis_args(spec.platform, spec.build_args);
        let analysis =
            dockerfile::analyze_with(text, &args, spec.inputs.is_some()).map_err(analyze_error)?;
        Ok((bytes, analysis))
    }

    /// Hashes one service's inputs (see the crate doc for what goes in), after checking that
    /// they cover every file its Dockerfile copies ([`Error::NotCovered`] otherwise).
    pub fn hash(&self, spec: &Spec<'_>) -> Result<ServiceHash, Error> {
        let (dockerfile_bytes, analysis) = self.read_dockerfile(spec)?;
        let listing = self.listing(spec.context, spec.dockerfile)?;
        let dockerfile_path = Path::new(spec.dockerfile);
        let resolution = listing.resolve(self, &analysis.sources, dockerfile_path)?;
        let effective: Cow<'_, [String]> = match spec.inputs {
            Some(inputs) => Cow::Borrowed(inputs),
            None => Cow::Borrowed(&resolution.globs),
        };
        let inputs = Inputs::new(&effective, spec.inputs.is_some())?;
        let selection = self.select(&inputs)?;
        listing.check_coverage(
            self,
            &analysis.sources,
            &resolution,
            &selection.covered,
            dockerfile_path,
        )?;
        let started = now_nanos();

        // The public context (a string per file) is built beside the hashing, on whichever
        // thread is free first.
        let (hashed, context) = rayon::join(
            || {
                let map = self.cache.read();
                selection
                    .files
                    .par_iter()
                    .map(|tracked| self.hash_file(tracked, &map, started))
                    .collect::<Result<Vec<Hashed<'_>>, Error>>()
            },
            || self.context_of(&listing),
        );
        let (hashed, context) = (hashed?, context?);
        let mut records = Vec::with_capacity(hashed.len());
        let mut updates = Vec::new();
        for item in hashed {
            records.extend(item.record);
            updates.extend(item.update);
        }
        self.cache.update(updates);
        self.cache
            .persist(&self.prefix, self.tracked.len(), |path| {
                self.is_tracked(path)
            });

        let untracked = self
            .untracked
            .get()?
            .iter()
            .filter(|path| {
                inputs
                    .set
                    .is_match_candidate(&Candidate::from_bytes(&path[..]))
            })
            .map(|path| String::from_utf8_lossy(path).into_owned())
            .collect();

        let mut stream = Stream::new(spec.platform, spec.build_args);
        stream.dockerfile(
            dockerfile_bytes.len() as u64,
            blake3::hash(&dockerfile_bytes).as_bytes(),
        );
        stream.context(&listing.dir);
        stream.ignore_file(listing.ignore.as_ref().map(|file| &file.content[..]));
        let images: Vec<(&str, &str)> = analysis
            .froms
            .iter()
            .map(|from| {
                let digest = spec.base_images.get(&from.reference);
                (from.reference.as_str(), digest.map_or("", String::as_str))
            })
            .collect();
        stream.images(&images);
        stream.files(&records);
        Ok(ServiceHash {
            tag: stream.tag(),
            files: records.len(),
            bytes: records.iter().map(|r| r.len).sum(),
            untracked,
            inputs: effective.into_owned(),
            context,
            froms: analysis.froms,
            unhashed: analysis.unhashed,
        })
    }

    /// The tracked files matching the inputs, in path order, and per tracked file whether the
    /// inputs match it; an error for a glob matching none.
    fn select(&self, inputs: &Inputs<'_>) -> Result<Selection<'_>, Error> {
        let mut matched = vec![false; inputs.globs.len()];
        let mut unmatched = matched.len();
        let mut indices = Vec::new();
        let mut files = Vec::new();
        let mut covered = vec![false; self.tracked.len()];
        for (index, tracked) in self.tracked.iter().enumerate() {
            let candidate = Candidate::from_bytes(&tracked.path[..]);
            if unmatched == 0 {
                if inputs.set.is_match_candidate(&candidate) {
                    files.push(tracked);
                    covered[index] = true;
                }
                continue;
            }
            inputs.set.matches_candidate_into(&candidate, &mut indices);
            if indices.is_empty() {
                continue;
            }
            files.push(tracked);
            covered[index] = true;
            for &index in &indices {
                if !matched[index] {
                    matched[index] = true;
                    unmatched -= 1;
                }
            }
        }
        match matched.iter().position(|&m| !m) {
            Some(index) => Err(self.no_match(&inputs.globs[index])),
            None => Ok(Selection { files, covered }),
        }
    }

    fn no_match(&self, glob: &str) -> Error {
        let matcher = pattern::builder(glob).build().map(|g| g.compile_matcher());
        let untracked = match (&matcher, self.untracked.get()) {
            (Ok(matcher), Ok(paths)) => paths
                .iter()
                .filter(|p| matcher.is_match_candidate(&Candidate::from_bytes(&p[..])))
                .count(),
            _ => 0,
        };
        let dir = format!("{}/", glob.trim_end_matches('/'));
        let hint = if untracked > 0 {
            format!(" (only {untracked} untracked file(s) do: `git add` them)")
        } else if !glob.contains(['*', '?', '[', '{'])
            && self
                .tracked
                .iter()
                .any(|t| t.path.starts_with(dir.as_bytes()))
        {
            format!(" (it is a directory: write `{dir}**` to include the files under it)")
        } else {
            " (check the spelling; paths are relative to the directory of deployer.toml)".to_owned()
        };
        Error::NoMatch {
            glob: glob.to_owned(),
            hint,
        }
    }

    fn is_tracked(&self, path: &[u8]) -> bool {
        self.tracked
            .binary_search_by(|t| (*t.path).cmp(path))
            .is_ok()
    }

    /// One file: from the cache when `lstat` matches the entry exactly, else read.
    fn hash_file<'a>(
        &self,
        tracked: &'a git::Tracked,
        map: &Map,
        started: i128,
    ) -> Result<Hashed<'a>, Error> {
        let rel = &tracked.path[..];
        let record = |kind, len, digest| Record {
            path: rel,
            kind,
            len,
            digest,
        };
        if let Some(commit) = &tracked.gitlink {
            let digest = *blake3::hash(commit).as_bytes();
            return Ok(Hashed {
                record: Some(record(Kind::Submodule, commit.len() as u64, digest)),
                update: None,
            });
        }
        let path = self.root.join(OsStr::from_bytes(rel));
        let key: Cow<'_, [u8]> = if self.prefix.is_empty() {
            Cow::Borrowed(rel)
        } else {
            Cow::Owned([&self.prefix[..], rel].concat())
        };
        let cached = map.get(&*key);
        if let Some(entry) = cached
            && let Ok(meta) = std::fs::symlink_metadata(&path)
            && meta.file_type().is_file()
            && StatKey::of(&meta) == entry.stat
        {
            #[cfg(test)]
            self.counters.hit();
            return Ok(Hashed {
                record: Some(record(kind_of(&entry.stat), entry.stat.size, entry.digest)),
                update: None,
            });
        }
        #[cfg(test)]
        self.counters.read();
        let forget = cached.map(|_| (Box::from(&*key), None));
        match file::read_entry(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })? {
            Entry::Missing => Ok(Hashed {
                record: None,
                update: forget,
            }),
            Entry::Symlink { target } => {
                let digest = *blake3::hash(&target).as_bytes();
                Ok(Hashed {
                    record: Some(record(Kind::Symlink, target.len() as u64, digest)),
                    update: forget,
                })
            }
            Entry::File { stat, len, digest } => {
                // Trusted only if nothing changed while reading (len = size) and the file is
                // older than the racy window; see cache.rs.
                let trusted =
                    len == stat.size && stat.newest_nanos() <= started - cache::RACY_NANOS;
                let update = if trusted {
                    Some((Box::from(&*key), Some(CacheEntry { stat, digest })))
                } else {
                    forget
                };
                Ok(Hashed {
                    record: Some(record(kind_of(&stat), len, digest)),
                    update,
                })
            }
            Entry::Unsupported { kind } => Err(Error::Unsupported { path, kind }),
        }
    }
}

/// One file's contribution: its record (none if deleted) and a cache change.
struct Hashed<'a> {
    record: Option<Record<'a>>,
    update: Option<(Box<[u8]>, Option<CacheEntry>)>,
}

fn kind_of(stat: &StatKey) -> Kind {
    if stat.executable() {
        Kind::Executable
    } else {
        Kind::File
    }
}

fn now_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => since.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

/// The tracked files the inputs select.
struct Selection<'a> {
    /// Matching files, in path order.
    files: Vec<&'a git::Tracked>,
    /// Per index of `Repo::tracked`: whether the inputs match it.
    covered: Vec<bool>,
}

/// The build args the Dockerfile is analysed with: `build_args`, and the `TARGET*` args
/// BuildKit derives from the platform (unless a build arg sets them).
fn analysis_args<'a>(
    platform: &str,
    build_args: &'a BTreeMap<String, String>,
) -> Cow<'a, BTreeMap<String, String>> {
    let mut parts = platform.splitn(3, '/');
    let (Some(os), Some(arch)) = (parts.next(), parts.next()) else {
        return Cow::Borrowed(build_args);
    };
    let variant = parts.next().unwrap_or("");
    let mut args = build_args.clone();
    for (key, value) in [
        ("TARGETPLATFORM", platform),
        ("TARGETOS", os),
        ("TARGETARCH", arch),
        ("TARGETVARIANT", variant),
    ] {
        args.entry(key.to_owned())
            .or_insert_with(|| value.to_owned());
    }
    Cow::Owned(args)
}

/// The compiled `inputs`.
struct Inputs<'a> {
    globs: &'a [String],
    set: GlobSet,
}

impl<'a> Inputs<'a> {
    /// `explicit`: written by the user (an empty list is an error), not derived.
    fn new(globs: &'a [String], explicit: bool) -> Result<Inputs<'a>, Error> {
        if explicit && globs.is_empty() {
            return Err(Error::EmptyInputs);
        }
        let mut set = GlobSetBuilder::new();
        for glob in globs {
            if glob.is_empty() || glob.starts_with('/') || glob.split('/').any(|part| part == "..")
            {
                return Err(Error::GlobOutsideRoot { glob: glob.clone() });
            }
            let compiled = pattern::builder(glob)
                .build()
                .map_err(|source| Error::InvalidGlob {
                    glob: glob.clone(),
                    source,
                })?;
            set.add(compiled);
        }
        let set = set.build().map_err(|source| Error::InvalidGlob {
            glob: globs.join(", "),
            source,
        })?;
        Ok(Inputs { globs, set })
    }
}
