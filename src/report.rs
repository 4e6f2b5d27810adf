//! What `place` prints: the placement grouped by failure domain, as a table
//! for people or JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::lock::{Lock, State};
use crate::model::{Component, Model, Node};
use crate::place::{Event, Retire};

#[derive(Serialize)]
struct JsonReport<'a> {
    instances: Vec<JsonInstance<'a>>,
    changes: Vec<String>,
}

#[derive(Serialize)]
struct JsonInstance<'a> {
    id: String,
    component: &'static str,
    node: &'a str,
    path: &'a str,
    state: &'static str,
    /// Location label values, coarse to fine (`host` last).
    domain: BTreeMap<&'a str, &'a str>,
    request: String,
    capacity: Option<String>,
}

/// One line per change the solver made, for people.
pub fn describe_event(event: &Event) -> String {
    match event {
        Event::Placed {
            id,
            node,
            path,
            replaces: None,
        } => format!("place {id} on {node}:{path}"),
        Event::Placed {
            id,
            node,
            path,
            replaces: Some(old),
        } => {
            format!("place {id} on {node}:{path}, replacing {old}")
        }
        Event::Failed { id, reason } => format!("mark {id} failed: {reason}"),
        Event::Advanced {
            id,
            to: Some(state),
            why,
        } => format!("mark {id} {}: {why}", state.as_str()),
        Event::Advanced { id, to: None, why } => format!("drop {id}: {why}"),
        Event::Retired {
            id,
            why: Retire::ScaleIn,
        } => format!("retire {id}: fewer replicas are wanted"),
        Event::Retired {
            id,
            why: Retire::Rebalance,
        } => format!("retire {id}: moved to even out the spread"),
    }
}

pub fn json(model: &Model, lock: &Lock, events: &[Event]) -> String {
    let levels = &model.cluster.topology.location_labels;
    let instances = lock
        .entries
        .iter()
        .map(|e| {
            let node = model.inventory.node(&e.node);
            let domain = levels
                .iter()
                .filter_map(|l| node.and_then(|n| n.labels.get_key_value(l)))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            JsonInstance {
                id: e.id.to_string(),
                component: e.id.component.as_str(),
                node: &e.node.0,
                path: &e.path.0,
                state: e.state.as_str(),
                domain,
                request: model.cluster.stateful(e.id.component).storage.to_string(),
                capacity: node
                    .and_then(|n| n.dir(&e.path))
                    .map(|d| d.capacity.to_string()),
            }
        })
        .collect();
    let report = JsonReport {
        instances,
        changes: events.iter().map(describe_event).collect(),
    };
    serde_json::to_string_pretty(&report).expect("plain data serializes") + "\n"
}

/// The table: one block per coarsest domain, its nodes and their used
/// directories, and a summary line per domain.
pub fn table(model: &Model, lock: &Lock, events: &[Event]) -> String {
    let levels = &model.cluster.topology.location_labels;
    let top = &levels[0];
    let mut by_node: BTreeMap<&str, Vec<&crate::lock::Entry>> = BTreeMap::new();
    for e in &lock.entries {
        by_node.entry(&e.node.0).or_default().push(e);
    }
    // Domains in name order, nodes in name order within them.
    let mut domains: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
    for node in &model.inventory.nodes {
        let domain = node.labels.get(top).map_or("(unlabelled)", String::as_str);
        domains.entry(domain).or_default().push(node);
    }

    let mut rows: Vec<[String; 6]> = Vec::new();
    let mut summaries: Vec<(usize, String)> = Vec::new();
    for (domain, nodes) in &domains {
        let (mut pd, mut tikv, mut used, mut total) = (0, 0, 0, 0);
        let mut first = true;
        for node in nodes {
            total += node.dirs.len();
            let mut first_of_node = true;
            for e in by_node.get(node.name.0.as_str()).into_iter().flatten() {
                used += 1;
                if e.state == State::Up {
                    match e.id.component {
                        Component::Pd => pd += 1,
                        _ => tikv += 1,
                    }
                }
                let capacity = node
                    .dir(&e.path)
                    .map_or("gone".to_string(), |d| d.capacity.to_string());
                let request = &model.cluster.stateful(e.id.component).storage;
                rows.push([
                    if first {
                        format!("{top}={domain}")
                    } else {
                        String::new()
                    },
                    if first_of_node {
                        node.name.0.clone()
                    } else {
                        String::new()
                    },
                    e.path.0.clone(),
                    e.id.to_string(),
                    e.state.as_str().to_string(),
                    format!("{request} of {capacity}"),
                ]);
                first = false;
                first_of_node = false;
            }
        }
        if first {
            continue; // nothing placed in this domain
        }
        summaries.push((
            rows.len(),
            format!(
                "{top}={domain}: {pd} PD, {tikv} TiKV up; {used} of {total} directories used on {} node{}",
                nodes.len(),
                if nodes.len() == 1 { "" } else { "s" }
            ),
        ));
    }
    // Instances whose node left the inventory still own their data.
    for (node, entries) in &by_node {
        if model
            .inventory
            .node(&crate::model::NodeName((*node).to_string()))
            .is_none()
        {
            for e in entries {
                rows.push([
                    "(not in inventory)".into(),
                    node.to_string(),
                    e.path.0.clone(),
                    e.id.to_string(),
                    e.state.as_str().into(),
                    "-".into(),
                ]);
            }
            summaries.push((rows.len(), format!("node {node} is not in the inventory")));
        }
    }

    let header = ["DOMAIN", "NODE", "DIRECTORY", "INSTANCE", "STATE", "USED"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[String; 6]| {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut out, &header);
    let mut next_summary = summaries.iter().peekable();
    for (i, row) in rows.iter().enumerate() {
        line(&mut out, row);
        while let Some((at, text)) = next_summary.peek() {
            if *at == i + 1 {
                let _ = writeln!(out, "  {text}");
                next_summary.next();
            } else {
                break;
            }
        }
    }
    let up = |c| {
        lock.entries
            .iter()
            .filter(|e| e.id.component == c && e.state == State::Up)
            .count()
    };
    let _ = writeln!(
        out,
        "{} PD and {} TiKV up; {} instance{} retired or failed",
        up(Component::Pd),
        up(Component::Tikv),
        lock.entries.len() - up(Component::Pd) - up(Component::Tikv),
        if lock.entries.len() - up(Component::Pd) - up(Component::Tikv) == 1 {
            ""
        } else {
            "s"
        }
    );
    if !events.is_empty() {
        out.push_str("\nchanges:\n");
        for event in events {
            let _ = writeln!(out, "  {}", describe_event(event));
        }
    }
    out
}
