//! The difference between a set and what the store holds, item by item, with the precedence
//! rule applied: deployer changes and deletes only items that carry its owner mark (or, with
//! `adopt`, items that carry no mark at all); an item marked by another service is never
//! touched.

use std::collections::BTreeMap;

use deployer_core::{AttributeChange, Change, Changes, ItemChange};

use crate::secret::Secrets;
use crate::set::{ConfigSet, Item};
use crate::value::Value;

/// An item as the store holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveItem {
    /// Its id, as [`Item::id`].
    pub id: String,
    /// Its attributes, the owner mark left out.
    pub attributes: BTreeMap<String, Value>,
    /// Its owner mark (`<project>/<service>`), when it has one.
    pub owner: Option<String>,
    /// The store's own revision, when it has one (an SSM parameter's version).
    pub version: Option<i64>,
}

/// A write: what to write, and what the store must still hold for it to happen (the item as
/// read; `None`: no item).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Write `item` (with the owner mark) where `expected` is.
    Put {
        /// The item to write.
        item: Item,
        /// What the store held when it was read.
        expected: Option<LiveItem>,
    },
    /// Delete `expected`.
    Delete {
        /// What the store held when it was read.
        expected: LiveItem,
    },
}

impl Op {
    /// The item's id.
    pub fn id(&self) -> &str {
        match self {
            Op::Put { item, .. } => &item.id,
            Op::Delete { expected } => &expected.id,
        }
    }
}

/// What a deploy of a set would do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Every item and its change, for output.
    pub changes: Changes,
    /// The writes, in item order.
    pub ops: Vec<Op>,
}

impl Diff {
    /// The items of the set that the store holds without deployer's mark (or with another
    /// service's): a deploy would not write them.
    pub fn not_owned(&self) -> Vec<&str> {
        self.changes
            .items
            .iter()
            .filter(|i| i.change == Change::NotOwned)
            .map(|i| i.item.as_str())
            .collect()
    }
}

/// The difference between `set` and `live`, for the service whose mark is `owner`.
pub fn diff(
    set: &ConfigSet,
    live: &BTreeMap<String, LiveItem>,
    owner: &str,
    prune: bool,
    adopt: bool,
) -> Diff {
    let mut out = Diff::default();
    for item in set.items.values() {
        let found = live.get(&item.id);
        let (change, attributes) = match found {
            None => (Change::Added, Vec::new()),
            Some(held) => {
                let attributes =
                    attribute_changes(&set.secrets, &held.attributes, &item.attributes);
                match held.owner.as_deref() {
                    Some(mark) if mark == owner => {
                        if attributes.is_empty() {
                            (Change::Unchanged, attributes)
                        } else {
                            (Change::Changed, attributes)
                        }
                    }
                    None if adopt => (Change::Adopted, attributes),
                    _ => (Change::NotOwned, Vec::new()),
                }
            }
        };
        if matches!(change, Change::Added | Change::Changed | Change::Adopted) {
            out.ops.push(Op::Put {
                item: item.clone(),
                expected: found.cloned(),
            });
        }
        out.changes.items.push(ItemChange {
            item: item.id.clone(),
            change,
            attributes,
        });
    }
    for held in live.values() {
        if set.items.contains_key(&held.id) || held.owner.as_deref() != Some(owner) {
            continue;
        }
        let change = if prune { Change::Removed } else { Change::Kept };
        if prune {
            out.ops.push(Op::Delete {
                expected: held.clone(),
            });
        }
        out.changes.items.push(ItemChange {
            item: held.id.clone(),
            change,
            attributes: Vec::new(),
        });
    }
    out
}

/// The attributes that differ between `old` and `new`, values rendered with secrets hidden.
pub fn attribute_changes(
    secrets: &Secrets,
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
) -> Vec<AttributeChange> {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| {
            let path = [name.clone()];
            AttributeChange {
                name: name.clone(),
                old: old.get(name).map(|v| secrets.render(&path, v)),
                new: new.get(name).map(|v| secrets.render(&path, v)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::set::Layout;

    fn item(id: &str, value: &str) -> Item {
        Item {
            id: id.into(),
            attributes: BTreeMap::from([
                ("pk".into(), Value::String(id.into())),
                ("v".into(), Value::String(value.into())),
                ("token".into(), Value::String(format!("secret-{value}"))),
            ]),
        }
    }

    fn held(id: &str, value: &str, owner: Option<&str>) -> LiveItem {
        LiveItem {
            id: id.into(),
            attributes: item(id, value).attributes,
            owner: owner.map(str::to_owned),
            version: None,
        }
    }

    fn set(items: &[Item]) -> ConfigSet {
        ConfigSet {
            layout: Layout::Dynamodb {
                key: vec!["pk".into()],
            },
            secrets: Secrets::new(&["token".into()]),
            prune: false,
            items: items.iter().map(|i| (i.id.clone(), i.clone())).collect(),
        }
    }

    #[test]
    fn ownership_decides_what_is_written() {
        let wanted = set(&[
            item("a", "1"),
            item("b", "2"),
            item("c", "3"),
            item("d", "4"),
            item("e", "5"),
        ]);
        let live: BTreeMap<String, LiveItem> = [
            held("b", "2", Some("acme/repos")),
            held("c", "old", Some("acme/repos")),
            held("d", "iac", None),
            held("e", "other", Some("acme/other")),
            held("f", "gone", Some("acme/repos")),
            held("g", "iac only", None),
        ]
        .into_iter()
        .map(|l| (l.id.clone(), l))
        .collect();
        let kinds = |d: &Diff| -> Vec<(String, Change)> {
            d.changes
                .items
                .iter()
                .map(|i| (i.item.clone(), i.change))
                .collect()
        };
        let plain = diff(&wanted, &live, "acme/repos", false, false);
        assert_eq!(
            kinds(&plain),
            [
                ("a".to_owned(), Change::Added),
                ("b".to_owned(), Change::Unchanged),
                ("c".to_owned(), Change::Changed),
                ("d".to_owned(), Change::NotOwned),
                ("e".to_owned(), Change::NotOwned),
                ("f".to_owned(), Change::Kept),
            ]
        );
        let ops: Vec<&str> = plain.ops.iter().map(Op::id).collect();
        assert_eq!(ops, ["a", "c"]);
        assert_eq!(plain.not_owned(), ["d", "e"]);
        let changed = &plain.changes.items[2];
        let names: Vec<&str> = changed.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["token", "v"]);
        assert_eq!(changed.attributes[0].old.as_deref(), Some("(secret)"));
        assert_eq!(changed.attributes[1].new.as_deref(), Some("\"3\""));

        let bold = diff(&wanted, &live, "acme/repos", true, true);
        let ops: Vec<&str> = bold.ops.iter().map(Op::id).collect();
        assert_eq!(ops, ["a", "c", "d", "f"], "adopt takes unmarked items only");
        assert_eq!(bold.changes.items[3].change, Change::Adopted);
        assert_eq!(bold.changes.items[4].change, Change::NotOwned);
        assert_eq!(bold.changes.items[5].change, Change::Removed);
        assert!(matches!(&bold.ops[3], Op::Delete { expected } if expected.id == "f"));
    }
}
