//! Secret values scrubbed from text that came from AWS.

use std::fmt;

/// Replaces secret values (the environment variable values of the resource a deployer reads and
/// sends back) by `***` in text that came from AWS: error messages, failure reasons, events. A
/// service may echo a request's values in its answer; a deployer passes every such text through
/// the redactor of the resource before it reports it.
///
/// Values shorter than [`Redactor::MIN_LEN`] characters are left alone: they cannot hide a
/// secret worth the name, and replacing `1` or `on` everywhere would garble every message. The
/// `Debug` form shows how many values it holds, never the values.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a value containing another is replaced whole.
    secrets: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// Shorter values are not redacted.
    pub const MIN_LEN: usize = 3;

    /// What a secret value is replaced by.
    pub const MASK: &'static str = "***";

    /// A redactor for `values` (e.g. every value of a resource's environment variables).
    /// [`Redactor::default`] redacts nothing: for calls whose requests and answers carry no
    /// secret values.
    pub fn new<I>(values: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(|value| value.as_ref().to_owned())
            .filter(|value| value.chars().count() >= Self::MIN_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret value replaced by [`Redactor::MASK`].
    pub fn apply(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), Self::MASK);
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn redacts_long_values_longest_first() {
        let env = HashMap::from([
            ("A".to_owned(), "s3cr3t".to_owned()),
            ("B".to_owned(), "s3cr3t-and-more".to_owned()),
            ("C".to_owned(), "1".to_owned()),
            ("D".to_owned(), "s3cr3t".to_owned()),
        ]);
        let redactor = Redactor::new(env.values());
        assert_eq!(
            redactor.apply("x s3cr3t-and-more y s3cr3t z 1"),
            "x *** y *** z 1"
        );
        assert_eq!(format!("{redactor:?}"), "Redactor { secrets: 2 }");
    }

    #[test]
    fn the_minimum_length_counts_characters() {
        let redactor = Redactor::new(["éé", "ééé", "ab"]);
        assert_eq!(redactor.apply("ab éé ééé"), "ab éé ***");
    }

    #[test]
    fn the_default_redacts_nothing() {
        assert_eq!(Redactor::default().apply("s3cr3t"), "s3cr3t");
    }
}
