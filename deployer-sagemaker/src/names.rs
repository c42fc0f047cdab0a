//! Names of the models and endpoint configs deployer creates.
//!
//! SageMaker names (models, endpoint configs) are at most 63 characters of ASCII letters,
//! digits and `-`, starting and ending with a letter or digit. deployer names its resources
//! `<endpoint>-<tag>` (one targeted model) or `<endpoint>-<variant>-<tag>` (several), where
//! `<tag>` is the content tag (24 hex characters; any other tag is cut to 24 characters of the
//! allowed set). The prefix is cut so that the name fits with room for a `-2` … `-9` suffix,
//! used when a resource of that name exists with other content. So every name deployer
//! creates for an endpoint starts with [`prefix`] (the endpoint name, cut to 36 characters).

/// SageMaker's limit on model and endpoint-config names.
pub(crate) const MAX_LEN: usize = 63;
/// The longest tag part of a name.
const TAG_LEN: usize = 24;
/// Room kept for a `-N` suffix.
const SUFFIX_LEN: usize = 2;
/// How many numbered names are tried before giving up (`name`, `name-2`, …, `name-9`).
pub(crate) const ATTEMPTS: usize = 9;

/// `text` with every character SageMaker does not allow in a name replaced by `-`.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The first `max` characters of an ASCII `text`.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.len().min(max)]
}

/// The tag as it appears in names.
fn tag_part(tag: &str) -> String {
    let tag = sanitize(tag);
    let tag = cut(tag.trim_matches('-'), TAG_LEN).trim_end_matches('-');
    if tag.is_empty() {
        "x".to_owned()
    } else {
        tag.to_owned()
    }
}

/// What every name deployer creates for `endpoint` starts with: the endpoint name cut to the
/// shortest prefix a name can have (36 characters).
pub(crate) fn prefix(endpoint: &str) -> String {
    cut(&sanitize(endpoint), MAX_LEN - 1 - TAG_LEN - SUFFIX_LEN - 1).to_owned()
}

/// The base name for a resource of `endpoint` (and `variant`, when several models are
/// replaced) at `tag`.
pub(crate) fn base(endpoint: &str, variant: Option<&str>, tag: &str) -> String {
    let tag = tag_part(tag);
    let stem = match variant {
        Some(variant) => format!("{}-{}", sanitize(endpoint), sanitize(variant)),
        None => sanitize(endpoint),
    };
    let room = MAX_LEN - SUFFIX_LEN - 1 - tag.len();
    let mut stem = cut(&stem, room).to_owned();
    // A name starts with a letter or digit (endpoint names always do; this is belt and braces).
    if !stem.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        stem.replace_range(..1, "x");
    }
    // `prefix()` must be a prefix of every name: the stem keeps at least that much.
    format!("{stem}-{tag}")
}

/// The `n`th name to try (1: `base`, then `base-2` …).
pub(crate) fn numbered(base: &str, n: usize) -> String {
    if n <= 1 {
        base.to_owned()
    } else {
        format!("{base}-{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        name.len() <= MAX_LEN
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name.ends_with(|c: char| c.is_ascii_alphanumeric())
    }

    #[test]
    fn short_names_are_endpoint_dash_tag() {
        let tag = "0123456789abcdef01234567";
        assert_eq!(
            base("acme-inference", None, tag),
            format!("acme-inference-{tag}")
        );
        assert_eq!(
            base("acme-inference", Some("AllTraffic"), tag),
            format!("acme-inference-AllTraffic-{tag}")
        );
        assert_eq!(numbered(&base("e", None, tag), 3), format!("e-{tag}-3"));
    }

    #[test]
    fn long_names_are_cut_to_63_with_room_for_a_suffix_and_keep_the_prefix() {
        let endpoint = "a".repeat(63);
        let tag = "0123456789abcdef01234567";
        for variant in [None, Some("variant-with-a-long-name")] {
            let name = base(&endpoint, variant, tag);
            assert!(name.ends_with(tag), "{name}");
            for n in 1..=ATTEMPTS {
                let name = numbered(&name, n);
                assert!(valid(&name), "{name}");
                assert!(name.starts_with(&prefix(&endpoint)), "{name}");
            }
        }
    }

    #[test]
    fn odd_tags_are_made_valid() {
        let name = base("ep", None, "v1.2_final-");
        assert_eq!(name, "ep-v1-2-final");
        assert!(valid(&name));
        assert!(valid(&base("ep", None, "___")));
        assert!(valid(&numbered(&base("ep", None, &"f".repeat(128)), 9)));
    }
}
