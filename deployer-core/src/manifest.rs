//! The `deployer.toml` manifest: its model, and the validation that turns a bad manifest into
//! errors with file, line and column before anything is touched.
//!
//! ```toml
//! [project]
//! name = "acme"
//! region = "us-east-1"          # optional; otherwise the AWS config chain decides
//! ssm_prefix = "/acme"          # optional; default "/<name>"
//! registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
//!
//! [services.app-api]
//! kind = "ecs"                  # ecs | agentcore | lambda-image | lambda-zip | sagemaker | config
//! dockerfile = "backend/Dockerfile.app-api"
//! context = "backend"
//! platform = "linux/amd64"
//! inputs = ["backend/src/apis/app_api/**", "backend/uv.lock"]
//! repository = "acme/app-api"
//! cluster = "acme"
//! service = "app-api"
//! ```
//!
//! Every key is listed in [`keys`] with the kinds it applies to; README.md documents them.
//! The module is split along its three concerns: the model a validated manifest is (`model.rs`,
//! re-exported here), the raw serde shape of the file with its spans (`raw.rs`), and the
//! validation that turns one into the other, reporting every problem (`validate.rs`).
//! Paths are relative to the directory holding the manifest (the repository root) and may not
//! leave it, neither with `..` nor through a symlink.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::DeTable;

mod diagnostics;
pub mod keys;
pub mod lookup;
mod model;
mod order;
mod raw;
mod validate;

use diagnostics::Diagnostics;
pub use diagnostics::{Diagnostic, ManifestError};
pub use lookup::Lookup;
pub use model::*;
use raw::{Doc, RawManifest};
use validate::Validator;
pub use validate::{check_registry, check_repository, literal_prefix};

/// The file name looked for at the repository root.
pub const FILE_NAME: &str = "deployer.toml";

impl Manifest {
    /// Reads and validates the manifest at `path`; the repository root is its directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let source = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        let root = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        Manifest::parse(path, &source, &root)
    }

    /// Validates manifest text; `path` is used in messages, `root` to check paths.
    pub fn parse(path: &Path, source: &str, root: &Path) -> Result<Manifest, ManifestError> {
        let mut diags = Diagnostics::new(path, source);
        let table = match DeTable::parse(source) {
            Ok(table) => table,
            Err(error) => {
                diags.error(
                    error.span().unwrap_or(0..0),
                    error.message().trim_end().to_owned(),
                    None,
                );
                return Err(diags.into_error());
            }
        };
        let doc = Doc { table: &table };
        keys::check(&doc, &mut diags);
        if diags.has_errors() {
            return Err(diags.into_error());
        }
        let raw = match RawManifest::deserialize(toml::de::Deserializer::from(table.clone())) {
            Ok(raw) => raw,
            Err(error) => {
                diags.error(
                    error.span().unwrap_or(0..0),
                    error.message().trim_end().to_owned(),
                    None,
                );
                return Err(diags.into_error());
            }
        };
        let manifest = Validator {
            root,
            doc: &doc,
            diags: &mut diags,
        }
        .manifest(path, raw);
        if diags.has_errors() {
            return Err(diags.into_error());
        }
        manifest.ok_or_else(|| diags.into_error())
    }

    /// The services named in `names` (all of them when empty), or an error naming the unknown
    /// ones with a suggestion.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, String> {
        if names.is_empty() {
            return Ok(self.services.values().collect());
        }
        let mut selected = Vec::new();
        let mut seen = BTreeSet::new();
        for name in names {
            match self.services.get(name) {
                Some(service) => {
                    if seen.insert(name) {
                        selected.push(service);
                    }
                }
                None => {
                    let hint = did_you_mean(name, self.services.keys().map(String::as_str))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    let known: Vec<&str> = self.services.keys().map(String::as_str).collect();
                    return Err(format!(
                        "no service `{name}` in {}{hint} (services: {})",
                        self.path.display(),
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(selected)
    }
}

/// The closest candidate to `word`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Close by letters (jaro-winkler), or one or two edits away for short words (`smm` → `ssm`).
    let edits = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(word, candidate),
                strsim::damerau_levenshtein(word, candidate),
                candidate,
            )
        })
        .filter(|(score, distance, _)| *score > 0.8 || *distance <= edits)
        .max_by(|a, b| b.1.cmp(&a.1).then(a.0.total_cmp(&b.0)))
        .map(|(_, _, candidate)| candidate)
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
