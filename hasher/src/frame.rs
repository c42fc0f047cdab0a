//! The byte stream whose blake3 digest is the tag (format v2, see the crate doc).

use std::collections::BTreeMap;

/// Format version, the second field of the stream. Bump it when anything that goes into the
/// stream changes, so old and new tags never collide.
pub(crate) const FORMAT_VERSION: u64 = 2;

/// The first field of the stream.
pub(crate) const MAGIC: &[u8] = b"deployer-hasher";

/// Hex characters of the digest kept in the tag.
pub(crate) const TAG_HEX_CHARS: usize = 24;

/// What a hashed input file is, as written into the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// A regular file without the owner's execute bit.
    File = 0,
    /// A regular file with the owner's execute bit (`S_IXUSR`, git's rule).
    Executable = 1,
    /// A symlink; its content is the target string.
    Symlink = 2,
    /// A submodule (gitlink); its content is the commit id recorded in the index.
    Submodule = 3,
}

/// One input file as it enters the stream.
#[derive(Debug, Clone)]
pub(crate) struct Record<'a> {
    pub(crate) path: &'a [u8],
    pub(crate) kind: Kind,
    pub(crate) len: u64,
    pub(crate) digest: [u8; 32],
}

/// Writes the framed stream into a blake3 hasher.
pub(crate) struct Stream {
    hasher: blake3::Hasher,
}

impl Stream {
    /// Starts a stream: magic, version, platform, build args.
    pub(crate) fn new(platform: &str, build_args: &BTreeMap<String, String>) -> Stream {
        let mut stream = Stream {
            hasher: blake3::Hasher::new(),
        };
        stream.bytes(MAGIC);
        stream.u64(FORMAT_VERSION);
        stream.bytes(platform.as_bytes());
        stream.u64(build_args.len() as u64);
        // BTreeMap<String, _> iterates in byte order of the keys.
        for (key, value) in build_args {
            stream.bytes(key.as_bytes());
            stream.bytes(value.as_bytes());
        }
        stream
    }

    /// The Dockerfile: its length and the blake3 digest of its bytes.
    pub(crate) fn dockerfile(&mut self, len: u64, digest: &[u8; 32]) {
        self.u64(len);
        self.hasher.update(digest);
    }

    /// The build context directory (root-relative, cleaned, `.` for the root).
    pub(crate) fn context(&mut self, dir: &str) {
        self.bytes(dir.as_bytes());
    }

    /// The ignore file: a presence byte (0 absent, 1 present), then its content (empty when
    /// absent).
    pub(crate) fn ignore_file(&mut self, content: Option<&[u8]>) {
        self.hasher.update(&[u8::from(content.is_some())]);
        self.bytes(content.unwrap_or_default());
    }

    /// The image count, then per image its reference and its digest (empty when not resolved).
    pub(crate) fn images(&mut self, images: &[(&str, &str)]) {
        self.u64(images.len() as u64);
        for (reference, digest) in images {
            self.bytes(reference.as_bytes());
            self.bytes(digest.as_bytes());
        }
    }

    /// The file count, then every file (the caller passes them sorted by path bytes).
    pub(crate) fn files(&mut self, records: &[Record<'_>]) {
        self.u64(records.len() as u64);
        for record in records {
            self.bytes(record.path);
            self.hasher.update(&[record.kind as u8]);
            self.u64(record.len);
            self.hasher.update(&record.digest);
        }
    }

    /// The tag: the first [`TAG_HEX_CHARS`] lowercase hex characters of the digest.
    pub(crate) fn tag(&self) -> String {
        let hex = self.hasher.finalize().to_hex();
        hex[..TAG_HEX_CHARS].to_owned()
    }

    fn u64(&mut self, value: u64) {
        self.hasher.update(&value.to_le_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.hasher.update(bytes);
    }
}
