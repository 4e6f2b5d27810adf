//! From a config table as the user wrote it to flat key paths, and back to
//! one merged table.
//!
//! A quoted key with dots (`"storage.block-cache.capacity" = "8GiB"`) means
//! the same as nested tables (`[tikv.config.storage.block-cache]` with
//! `capacity`), so every key is split at its dots and a table is described by
//! the paths of its values. The one exception is below a map-valued key
//! (TiKV's `server.labels`, TiDB's `labels`): there a key is the user's own
//! name, which may contain dots (`topology.kubernetes.io/zone`), and stays
//! whole.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::reference::Reference;

/// One value of a user's config table, by its full key path.
#[derive(Clone, Debug, PartialEq)]
pub struct Leaf<V> {
    pub path: Vec<String>,
    /// The span of the key that names the value (the last key on its line),
    /// for diagnostics; empty when the table did not come from text.
    pub span: Range<usize>,
    pub value: V,
}

/// The path segments of `key`, written inside the table at `parent`.
pub fn split_key(reference: &Reference, parent: &[String], key: &str) -> Vec<String> {
    let mut path = parent.to_vec();
    let mut parts = key.split('.');
    while let Some(part) = parts.next() {
        if reference.is_map(&path) || reference.map_prefix(&path).is_some() {
            // The rest of the key, dots and all, is one name of the map.
            let rest: Vec<&str> = std::iter::once(part).chain(parts).collect();
            path.push(rest.join("."));
            break;
        }
        path.push(part.to_string());
    }
    path.split_off(parent.len())
}

/// The values of a table parsed with spans, in no particular order.
pub fn leaves_spanned(reference: &Reference, table: &DeTable<'_>) -> Vec<Leaf<()>> {
    let mut out = Vec::new();
    walk_spanned(reference, table, &mut Vec::new(), &mut out);
    out
}

fn walk_spanned(
    reference: &Reference,
    table: &DeTable<'_>,
    parent: &mut Vec<String>,
    out: &mut Vec<Leaf<()>>,
) {
    for (key, value) in table.iter() {
        let segments = split_key(reference, parent, key.get_ref());
        let depth = parent.len();
        parent.extend(segments);
        match value.get_ref() {
            DeValue::Table(inner) => walk_spanned(reference, inner, parent, out),
            _ => out.push(Leaf {
                path: parent.clone(),
                span: key.span(),
                value: (),
            }),
        }
        parent.truncate(depth);
    }
}

/// The values of a table, in the table's order.
pub fn leaves(reference: &Reference, table: &toml::Table) -> Vec<Leaf<toml::Value>> {
    let mut out = Vec::new();
    walk(reference, table, &mut Vec::new(), &mut out);
    out
}

fn walk(
    reference: &Reference,
    table: &toml::Table,
    parent: &mut Vec<String>,
    out: &mut Vec<Leaf<toml::Value>>,
) {
    for (key, value) in table {
        let segments = split_key(reference, parent, key);
        let depth = parent.len();
        parent.extend(segments);
        match value {
            toml::Value::Table(inner) => walk(reference, inner, parent, out),
            other => out.push(Leaf {
                path: parent.clone(),
                span: 0..0,
                value: other.clone(),
            }),
        }
        parent.truncate(depth);
    }
}

/// The config table at `[<component>.config]` of a parsed cluster.toml.
pub fn config_table<'d, 'i>(root: &'d DeTable<'i>, component: &str) -> Option<&'d DeTable<'i>> {
    let section: &Spanned<DeValue<'i>> = root.get(component)?;
    let DeValue::Table(section) = section.get_ref() else {
        return None;
    };
    match section.get("config")?.get_ref() {
        DeValue::Table(config) => Some(config),
        _ => None,
    }
}

/// A table being assembled: nested maps keep their keys sorted, so the
/// result does not depend on the order values were set in.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    root: BTreeMap<String, Node>,
}

#[derive(Clone, Debug)]
enum Node {
    Value(toml::Value),
    Table(BTreeMap<String, Node>),
}

impl Tree {
    /// Sets the value at `path`, replacing whatever was there: a later value
    /// wins, and a value set below a key that held a value turns that key
    /// into a table.
    pub fn set(&mut self, path: &[String], value: toml::Value) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut table = &mut self.root;
        for segment in parents {
            let node = table
                .entry(segment.clone())
                .or_insert_with(|| Node::Table(BTreeMap::new()));
            if let Node::Value(_) = node {
                *node = Node::Table(BTreeMap::new());
            }
            let Node::Table(inner) = node else {
                unreachable!("a value was just replaced by a table")
            };
            table = inner;
        }
        table.insert(last.clone(), Node::Value(value));
    }

    /// Whether a value is set at `path`.
    pub fn contains(&self, path: &[String]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let mut table = &self.root;
        for segment in parents {
            match table.get(segment) {
                Some(Node::Table(inner)) => table = inner,
                _ => return false,
            }
        }
        matches!(table.get(last), Some(Node::Value(_)))
    }

    pub fn into_table(self) -> toml::Table {
        fn convert(map: BTreeMap<String, Node>) -> toml::Table {
            let mut table = toml::Table::new();
            for (key, node) in map {
                let value = match node {
                    Node::Value(value) => value,
                    Node::Table(inner) => toml::Value::Table(convert(inner)),
                };
                table.insert(key, value);
            }
            table
        }
        convert(self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Component;

    fn strings(path: &[&str]) -> Vec<String> {
        path.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dotted_keys_split_except_below_maps() {
        let tikv = Reference::of(Component::Tikv);
        assert_eq!(
            split_key(tikv, &[], "storage.block-cache.capacity"),
            strings(&["storage", "block-cache", "capacity"])
        );
        assert_eq!(
            split_key(tikv, &strings(&["storage"]), "block-cache.capacity"),
            strings(&["block-cache", "capacity"])
        );
        assert_eq!(
            split_key(tikv, &[], "server.labels.topology.kubernetes.io/zone"),
            strings(&["server", "labels", "topology.kubernetes.io/zone"])
        );
        assert_eq!(
            split_key(tikv, &strings(&["server", "labels"]), "a.b"),
            strings(&["a.b"])
        );
    }

    #[test]
    fn dotted_keys_and_nested_tables_give_the_same_paths() {
        let tikv = Reference::of(Component::Tikv);
        let dotted: toml::Table =
            toml::from_str("\"storage.block-cache.capacity\" = \"8GiB\"\n").unwrap();
        let nested: toml::Table =
            toml::from_str("[storage.block-cache]\ncapacity = \"8GiB\"\n").unwrap();
        let mixed: toml::Table =
            toml::from_str("[storage]\n\"block-cache\" = { capacity = \"8GiB\" }\n").unwrap();
        let expected = vec![Leaf {
            path: strings(&["storage", "block-cache", "capacity"]),
            span: 0..0,
            value: toml::Value::String("8GiB".into()),
        }];
        assert_eq!(leaves(tikv, &dotted), expected);
        assert_eq!(leaves(tikv, &nested), expected);
        assert_eq!(leaves(tikv, &mixed), expected);
    }

    #[test]
    fn tree_sorts_keys_and_later_values_win() {
        let mut tree = Tree::default();
        tree.set(&strings(&["b", "x"]), 1.into());
        tree.set(&strings(&["a"]), 2.into());
        tree.set(&strings(&["b", "x"]), 3.into());
        assert!(tree.contains(&strings(&["b", "x"])));
        assert!(!tree.contains(&strings(&["b"])));
        tree.set(&strings(&["a", "y"]), 4.into());
        let text = toml::to_string(&tree.into_table()).unwrap();
        assert_eq!(text, "[a]\ny = 4\n\n[b]\nx = 3\n");
    }
}
