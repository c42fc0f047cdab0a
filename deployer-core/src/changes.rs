//! What a rollover would change item by item, for targets made of many items (a config set):
//! what `plan` shows and `status` calls drift. An image or a zip is one artifact and has no
//! such list.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The value shown in place of a secret one.
pub const REDACTED: &str = "(secret)";

/// What happens to one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The source has it, the store does not: it is written.
    Added,
    /// Both have it, with other values: it is written.
    Changed,
    /// Deployer wrote it earlier, the source no longer has it, `prune` is on: it is deleted.
    Removed,
    /// Deployer wrote it earlier, the source no longer has it, `prune` is off: it is kept.
    Kept,
    /// The store has it without deployer's owner mark and `adopt` is off: it is not touched
    /// (the source's version is not written).
    NotOwned,
    /// The store has it without the owner mark and `adopt` is on: it is taken over (written).
    Adopted,
    /// Both have it with the same values: nothing is written.
    Unchanged,
}

impl Change {
    /// The spelling in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Changed => "changed",
            Change::Removed => "removed",
            Change::Kept => "kept",
            Change::NotOwned => "not owned",
            Change::Adopted => "adopted",
            Change::Unchanged => "unchanged",
        }
    }

    /// Whether applying it writes or deletes something.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Change::Added | Change::Changed | Change::Removed | Change::Adopted
        )
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One attribute (or the value of a parameter) that differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeChange {
    /// The attribute name (`.`-joined path for a nested map key), or `value` for a parameter.
    pub name: String,
    /// The value in the store, rendered in one line; [`REDACTED`] for a secret; `None` when
    /// absent.
    pub old: Option<String>,
    /// The value in the source, likewise.
    pub new: Option<String>,
}

/// One item and what happens to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemChange {
    /// The item: its key (`pk=repo#acme/web, sk=config`) or its parameter name.
    pub item: String,
    /// What happens to it.
    pub change: Change,
    /// The attributes that differ (for `changed` and `adopted`), secrets redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeChange>,
}

/// Every item of a set against the store, in item order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The items: those of the source, then those only the store has.
    pub items: Vec<ItemChange>,
}

impl Changes {
    /// How many items have `change`.
    pub fn count(&self, change: Change) -> usize {
        self.items.iter().filter(|i| i.change == change).count()
    }

    /// Whether applying them writes or deletes anything.
    pub fn writes(&self) -> bool {
        self.items.iter().any(|i| i.change.writes())
    }

    /// `3 added, 1 changed, 1 removed, 2 unchanged` (the counts that are not zero).
    pub fn summary(&self) -> String {
        let parts: Vec<String> = [
            Change::Added,
            Change::Changed,
            Change::Adopted,
            Change::Removed,
            Change::Kept,
            Change::NotOwned,
            Change::Unchanged,
        ]
        .into_iter()
        .filter_map(|change| {
            let n = self.count(change);
            (n > 0).then(|| format!("{n} {change}"))
        })
        .collect();
        if parts.is_empty() {
            "no items".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(change: Change) -> ItemChange {
        ItemChange {
            item: "k".into(),
            change,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn the_summary_counts_what_is_there() {
        let changes = Changes {
            items: vec![
                item(Change::Added),
                item(Change::Added),
                item(Change::Kept),
                item(Change::Unchanged),
            ],
        };
        assert_eq!(changes.summary(), "2 added, 1 kept, 1 unchanged");
        assert!(changes.writes());
        let idle = Changes {
            items: vec![item(Change::Kept), item(Change::NotOwned)],
        };
        assert!(!idle.writes());
        assert_eq!(Changes::default().summary(), "no items");
    }
}
