//! The build context as the builder gets it (tracked files under the context directory, less
//! what the ignore file excludes), the copy sources resolved in it, and the coverage check.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use globset::GlobMatcher;

use crate::dockerfile::CopySource;
use crate::dockerignore::{Ignore, Memo};
use crate::git::{IndexMode, Tracked};
use crate::pattern::{self, Via};
use crate::{Error, Repo};

/// The build context: what `COPY`/`ADD` can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The context directory, relative to the root, cleaned (`.` for the root itself).
    pub dir: String,
    /// Every file git tracks under the directory that the ignore file does not exclude,
    /// relative to the directory, sorted by bytes. A tracked file deleted from the work tree is
    /// still listed (the hash leaves it out; a tar of the context skips it the same way).
    pub files: Vec<ContextFile>,
    /// Untracked, not git-ignored files under the directory that the ignore file does not
    /// exclude, relative to it, sorted: on disk, but not part of the build (nor of the tag).
    pub untracked: Vec<String>,
    /// The ignore file applied, relative to the root: `<dockerfile>.dockerignore` when it exists
    /// (BuildKit's rule), else `<dir>/.dockerignore` when it exists, else none.
    pub ignore_file: Option<String>,
    /// The Dockerfile relative to the directory, when it lies inside it. Docker always sends
    /// it (and the ignore file), even when excluded; `COPY` cannot copy it then.
    pub dockerfile: Option<String>,
}

/// One file of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Relative to the context directory, `/`-separated (git's bytes; not UTF-8 bytes are
    /// replaced by U+FFFD).
    pub path: String,
    /// What git's index records it as.
    pub kind: FileKind,
}

/// What a context file is, as git's index records it. The hash itself reads the kind from the
/// work tree (`lstat`), and so should a tar of the context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (mode 100644).
    Regular,
    /// A regular file with the execute bit (mode 100755).
    Executable,
    /// A symbolic link (mode 120000).
    Symlink,
    /// A submodule (mode 160000): a directory whose files git lists in the submodule, not here.
    Submodule,
}

/// A file the Dockerfile copies that `inputs` do not cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncovered {
    /// The file, relative to the root.
    pub file: String,
    /// The 1-based line of the `COPY`/`ADD` that copies it.
    pub line: usize,
    /// That instruction's text.
    pub instruction: String,
    /// A glob for `inputs` that covers it (and everything else that source copies).
    pub suggestion: String,
}

/// The context directory, checked and cleaned.
pub(crate) fn clean_dir(context: &str) -> Result<String, Error> {
    let cleaned = pattern::clean(context);
    if cleaned.starts_with('/') || cleaned == ".." || cleaned.starts_with("../") {
        return Err(Error::ContextOutsideRoot {
            context: context.to_owned(),
        });
    }
    Ok(cleaned)
}

/// The ignore file in effect: its root-relative path, content and patterns.
pub(crate) struct IgnoreFile {
    pub(crate) path: String,
    pub(crate) content: Vec<u8>,
    pub(crate) ignore: Ignore,
}

/// The context as indices into the repository's tracked listing.
pub(crate) struct Listing<'r> {
    pub(crate) dir: String,
    /// `dir/`, or empty for the root.
    prefix: String,
    /// Indices into `Repo::tracked` of the context's files, and their paths relative to `dir`.
    pub(crate) members: Vec<(usize, Cow<'r, str>)>,
    pub(crate) ignore: Option<IgnoreFile>,
    /// The Dockerfile, cleaned, relative to the root.
    dockerfile: String,
}

impl Repo {
    /// The build context of `context` (a directory relative to the root, `.` for the root) for
    /// the Dockerfile at `dockerfile` (relative to the root): see [`Context`]. Reads only the
    /// ignore file; the files come from the listing [`Repo::open`] made.
    pub fn context(&self, context: &str, dockerfile: &str) -> Result<Context, Error> {
        let listing = self.listing(context, dockerfile)?;
        self.context_of(&listing)
    }

    /// Lists the context: the tracked files under it, less the ignore file's exclusions.
    pub(crate) fn listing(&self, context: &str, dockerfile: &str) -> Result<Listing<'_>, Error> {
        let dir = clean_dir(context)?;
        let prefix = if dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        let dockerfile = pattern::clean(dockerfile);
        let ignore = self.ignore_file(&dir, &dockerfile)?;
        let start = self
            .tracked
            .partition_point(|t| *t.path < *prefix.as_bytes());
        let mut memo = Memo::default();
        let mut members = Vec::with_capacity(if prefix.is_empty() {
            self.tracked.len()
        } else {
            0
        });
        for (index, tracked) in self.tracked.iter().enumerate().skip(start) {
            let Some(rel) = tracked.path.strip_prefix(prefix.as_bytes()) else {
                break;
            };
            let rel = String::from_utf8_lossy(rel);
            if let Some(file) = &ignore
                && file.ignore.excludes(&rel, &mut memo)
            {
                continue;
            }
            members.push((index, rel));
        }
        if members.is_empty() && dir != "." && !self.root.join(&dir).is_dir() {
            return Err(Error::ContextMissing { context: dir });
        }
        Ok(Listing {
            dir,
            prefix,
            members,
            ignore,
            dockerfile,
        })
    }

    /// `<dockerfile>.dockerignore`, else `<dir>/.dockerignore`, else none.
    fn ignore_file(&self, dir: &str, dockerfile: &str) -> Result<Option<IgnoreFile>, Error> {
        let beside = format!("{dockerfile}.dockerignore");
        let in_context = if dir == "." {
            ".dockerignore".to_owned()
        } else {
            format!("{dir}/.dockerignore")
        };
        for path in [beside, in_context] {
            let full = self.root.join(&path);
            match std::fs::read(&full) {
                Ok(content) => {
                    let ignore = Ignore::parse(&content).map_err(|bad| Error::Dockerignore {
                        path: PathBuf::from(&path),
                        line: bad.line,
                        pattern: bad.pattern,
                        reason: bad.reason,
                    })?;
                    return Ok(Some(IgnoreFile {
                        path,
                        content,
                        ignore,
                    }));
                }
                Err(error) if crate::file::is_missing(&error) => {}
                Err(error) if error.kind() == std::io::ErrorKind::IsADirectory => {}
                Err(source) => return Err(Error::Read { path: full, source }),
            }
        }
        Ok(None)
    }

    /// The public view of a listing.
    pub(crate) fn context_of(&self, listing: &Listing<'_>) -> Result<Context, Error> {
        let files = listing
            .members
            .iter()
            .map(|(index, rel)| ContextFile {
                path: rel.clone().into_owned(),
                kind: match self.tracked[*index].mode {
                    IndexMode::File => FileKind::Regular,
                    IndexMode::Executable => FileKind::Executable,
                    IndexMode::Symlink => FileKind::Symlink,
                    IndexMode::Submodule => FileKind::Submodule,
                },
            })
            .collect();
        let mut memo = Memo::default();
        let untracked = self
            .untracked
            .get()?
            .iter()
            .filter_map(|path| path.strip_prefix(listing.prefix.as_bytes()))
            .map(|rel| String::from_utf8_lossy(rel).into_owned())
            .filter(|rel| {
                listing
                    .ignore
                    .as_ref()
                    .is_none_or(|file| !file.ignore.excludes(rel, &mut memo))
            })
            .collect();
        Ok(Context {
            dir: listing.dir.clone(),
            files,
            untracked,
            ignore_file: listing.ignore.as_ref().map(|file| file.path.clone()),
            dockerfile: listing
                .dockerfile
                .strip_prefix(&listing.prefix)
                .filter(|rel| !rel.starts_with("../") && !rel.starts_with('/'))
                .map(str::to_owned),
        })
    }
}

/// How a copy source is matched against context paths (relative to the context directory).
enum SourceMatcher {
    /// `.`: everything.
    All,
    /// A path: the file, or everything under the directory.
    Path(String),
    /// A wildcard pattern: what it matches, and everything under a directory it matches.
    Glob { glob: String, matcher: GlobMatcher },
}

impl SourceMatcher {
    /// BuildKit's reading of a source: relative to the context root (a leading `/` and `..`
    /// cannot leave it), cleaned.
    fn new(source: &str) -> Result<SourceMatcher, String> {
        let cleaned = pattern::clean(&format!("/{source}"));
        let cleaned = cleaned.trim_start_matches('/');
        if cleaned.is_empty() {
            return Ok(SourceMatcher::All);
        }
        if pattern::has_wildcards(cleaned) {
            let (glob, compiled) = pattern::compile(cleaned)?;
            return Ok(SourceMatcher::Glob {
                glob,
                matcher: compiled.compile_matcher(),
            });
        }
        Ok(SourceMatcher::Path(cleaned.to_owned()))
    }

    fn matches(&self, rel: &str) -> Option<Via> {
        match self {
            SourceMatcher::All => Some(Via::Directory),
            SourceMatcher::Path(path) => {
                if rel == path {
                    Some(Via::Itself)
                } else if rel.len() > path.len()
                    && rel.starts_with(path.as_str())
                    && rel.as_bytes()[path.len()] == b'/'
                {
                    Some(Via::Directory)
                } else {
                    None
                }
            }
            SourceMatcher::Glob { matcher, .. } => pattern::matches_or_parent(matcher, rel),
        }
    }

    /// A glob, relative to the context directory, covering what matched this way.
    fn glob(&self, via: Via) -> String {
        match (self, via) {
            (SourceMatcher::All, _) => "**".to_owned(),
            (SourceMatcher::Path(path), Via::Itself) => pattern::escape(path),
            (SourceMatcher::Path(path), Via::Directory) => format!("{}/**", pattern::escape(path)),
            (SourceMatcher::Glob { glob, .. }, Via::Itself) => glob.clone(),
            (SourceMatcher::Glob { glob, .. }, Via::Directory) => format!("{glob}/**"),
        }
    }
}

/// Every context file the copy sources copy, and the globs that cover them.
pub(crate) struct Resolution {
    /// Root-relative globs, in the order of the sources, each once: the derived `inputs`.
    pub(crate) globs: Vec<String>,
    /// (source index, index into `Repo::tracked`, index into `globs`) per copied file.
    copies: Vec<(usize, usize, usize)>,
}

impl Listing<'_> {
    /// Resolves each source in the context as Docker does; a source that matches nothing, or
    /// that is not a valid pattern, is an error naming its line.
    pub(crate) fn resolve(
        &self,
        repo: &Repo,
        sources: &[CopySource],
        dockerfile: &Path,
    ) -> Result<Resolution, Error> {
        let mut globs: Vec<String> = Vec::new();
        let mut copies = Vec::new();
        for (number, source) in sources.iter().enumerate() {
            let problem = |problem: String| Error::CopySource {
                dockerfile: dockerfile.to_owned(),
                line: source.line,
                instruction: source.text.clone(),
                pattern: source.pattern.clone(),
                problem,
            };
            let matcher = SourceMatcher::new(&source.pattern)
                .map_err(|reason| problem(format!("is not a valid pattern: {reason}")))?;
            // The glob index for each way of matching, made on first use.
            let mut glob_of = [None, None];
            if let SourceMatcher::All = matcher {
                copies.reserve(self.members.len());
            }
            let before = copies.len();
            for (index, rel) in &self.members {
                let Some(via) = matcher.matches(rel) else {
                    continue;
                };
                let slot = &mut glob_of[via as usize];
                let glob = *slot.get_or_insert_with(|| {
                    let glob = self.root_glob(&matcher.glob(via));
                    match globs.iter().position(|g| *g == glob) {
                        Some(at) => at,
                        None => {
                            globs.push(glob);
                            globs.len() - 1
                        }
                    }
                });
                copies.push((number, *index, glob));
            }
            if copies.len() == before {
                return Err(problem(self.nothing_matches(repo, &matcher)?));
            }
        }
        Ok(Resolution { globs, copies })
    }

    /// A context-relative glob made root-relative.
    fn root_glob(&self, glob: &str) -> String {
        if self.prefix.is_empty() {
            glob.to_owned()
        } else {
            format!("{}/{glob}", pattern::escape(&self.dir))
        }
    }

    /// Why a source matches nothing: untracked files, the ignore file, or nothing at all.
    fn nothing_matches(&self, repo: &Repo, matcher: &SourceMatcher) -> Result<String, Error> {
        let prefix = self.prefix.as_bytes();
        let in_context = |path: &[u8]| {
            path.strip_prefix(prefix)
                .map(|rel| String::from_utf8_lossy(rel).into_owned())
        };
        let untracked = repo
            .untracked
            .get()?
            .iter()
            .filter_map(|path| in_context(path))
            .filter(|rel| matcher.matches(rel).is_some())
            .count();
        let excluded = repo
            .tracked
            .iter()
            .filter_map(|t: &Tracked| in_context(&t.path))
            .any(|rel| matcher.matches(&rel).is_some());
        let dir = &self.dir;
        Ok(if untracked > 0 {
            format!(
                "matches no file git tracks in the build context `{dir}` (only {untracked} \
                 untracked file(s) do: `git add` them; the build gets tracked files only)"
            )
        } else if excluded {
            let ignore = self.ignore.as_ref().map_or("", |f| f.path.as_str());
            format!(
                "matches only files that `{ignore}` excludes from the build context `{dir}`: \
                 Docker would fail the build"
            )
        } else {
            format!(
                "matches no file in the build context `{dir}`: Docker would fail the build \
                 (paths in COPY/ADD are relative to the context, not to the Dockerfile)"
            )
        })
    }

    /// The coverage check: every copied file must be matched by the inputs (`covered`, per
    /// tracked index). The Dockerfile and the ignore file are hashed as themselves.
    pub(crate) fn check_coverage(
        &self,
        repo: &Repo,
        sources: &[CopySource],
        resolution: &Resolution,
        covered: &[bool],
        dockerfile: &Path,
    ) -> Result<(), Error> {
        let exempt = |index: usize| {
            let path = &*repo.tracked[index].path;
            path == self.dockerfile.as_bytes()
                || self
                    .ignore
                    .as_ref()
                    .is_some_and(|file| path == file.path.as_bytes())
        };
        let mut uncovered: Vec<Uncovered> = Vec::new();
        for &(number, index, glob) in &resolution.copies {
            if covered[index] || exempt(index) {
                continue;
            }
            let source = &sources[number];
            let file = String::from_utf8_lossy(&repo.tracked[index].path).into_owned();
            if uncovered
                .iter()
                .any(|u| u.line == source.line && u.file == file)
            {
                continue;
            }
            uncovered.push(Uncovered {
                file,
                line: source.line,
                instruction: source.text.clone(),
                suggestion: resolution.globs[glob].clone(),
            });
        }
        if uncovered.is_empty() {
            return Ok(());
        }
        Err(Error::NotCovered {
            dockerfile: dockerfile.to_owned(),
            files: uncovered,
        })
    }
}

/// At most this many files are named in a [`Error::NotCovered`] message.
const SHOWN: usize = 20;

/// The message of [`Error::NotCovered`], in one line (errors are printed on one): per
/// Dockerfile line, the files it copies that are not covered and the globs that would cover
/// them; at most [`SHOWN`] files are named, the rest counted.
pub(crate) fn not_covered_message(dockerfile: &Path, files: &[Uncovered]) -> String {
    let mut distinct: Vec<&str> = files.iter().map(|u| u.file.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let mut lines: Vec<usize> = files.iter().map(|u| u.line).collect();
    lines.sort_unstable();
    lines.dedup();
    let mut shown = 0;
    let mut groups = Vec::new();
    for line in lines {
        let group: Vec<&Uncovered> = files.iter().filter(|u| u.line == line).collect();
        let mut globs: Vec<&str> = group.iter().map(|u| u.suggestion.as_str()).collect();
        globs.dedup();
        let globs = globs
            .iter()
            .map(|g| format!("`{g}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let room = SHOWN.saturating_sub(shown).min(group.len());
        let mut named: Vec<String> = group[..room].iter().map(|u| u.file.clone()).collect();
        shown += room;
        if group.len() > room {
            let more = group.len() - room;
            named.push(if room == 0 {
                format!("{more} file(s)")
            } else {
                format!("and {more} more")
            });
        }
        groups.push(format!(
            "line {line} `{}` copies {} (cover with {globs})",
            group[0].instruction,
            named.join(", ")
        ));
    }
    format!(
        "`inputs` leave out {} file(s) that {} copies into the image, so a change to them would \
         not change the tag and the image would go stale: {}; add the globs to `inputs`, or \
         leave `inputs` out to derive them from the Dockerfile",
        distinct.len(),
        dockerfile.display(),
        groups.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn sources_resolve_like_docker() {
        let cases: &[(&str, &str, Option<Via>)] = &[
            (".", "a/b", Some(Via::Directory)),
            ("./", "a", Some(Via::Directory)),
            ("/", "a", Some(Via::Directory)),
            ("a", "a", Some(Via::Itself)),
            ("a/", "a/b", Some(Via::Directory)),
            ("/a/./b/../b", "a/b", Some(Via::Itself)),
            ("../a", "a", Some(Via::Itself)),
            ("a", "ab", None),
            ("a/b", "a", None),
            ("*.py", "x.py", Some(Via::Itself)),
            ("*.py", "d/x.py", None),
            ("src*", "src/deep/x", Some(Via::Directory)),
            ("*/x", "d/x", Some(Via::Itself)),
        ];
        for (source, path, expected) in cases {
            let matcher = SourceMatcher::new(source).unwrap();
            assert_eq!(matcher.matches(path), *expected, "{source} vs {path}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        /// Any source against any path, and any ignore file against any path: an answer or an
        /// error, never a panic.
        #[test]
        fn matching_never_panics(
            pattern in "[a-z*?\\\\\\[\\]^!{}/.-]{0,12}",
            path in "[a-z*/.\\[\\]!]{0,12}",
            ignore in any::<Vec<u8>>(),
        ) {
            if let Ok(matcher) = SourceMatcher::new(&pattern) {
                let _ = matcher.matches(&path);
                let _ = matcher.glob(Via::Itself);
            }
            if let Ok(ignore) = Ignore::parse(&ignore) {
                let _ = ignore.excludes(&path, &mut Memo::default());
            }
            if let Ok(ignore) = Ignore::parse(pattern.as_bytes()) {
                let _ = ignore.excludes(&path, &mut Memo::default());
            }
        }

        /// Every translated pattern compiles: the translation only writes valid globset syntax.
        #[test]
        fn translated_patterns_compile(pattern in prop_oneof![
            any::<String>(),
            "[a*?\\\\\\[\\]^!{},/-]{0,10}",
        ]) {
            if let Ok(glob) = pattern::to_glob(&pattern) {
                prop_assert!(pattern::builder(&glob).build().is_ok(), "{:?} gave {:?}", pattern, glob);
            }
        }
    }
}
