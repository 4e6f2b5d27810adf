//! The safety rules of `plan` (DESIGN §5), each shown on a change to the
//! compiled three-zone example, and that a safe change passes.

use std::path::Path;

use tidb_gitops::compile::{Options, compile};
use tidb_gitops::layout::Files;
use tidb_gitops::load::Texts;
use tidb_gitops::plan::{Plan, plan};

fn example() -> Files {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/three-zone");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let (cluster, inventory, lock) = (
        read("cluster.toml"),
        read("inventory.toml"),
        read("placement.lock"),
    );
    compile(
        Texts {
            cluster: &cluster,
            inventory: &inventory,
            lock: Some(&lock),
        },
        &Options {
            strict_config: false,
            repo_path: "deploy".into(),
            ..Default::default()
        },
    )
    .unwrap_or_else(|d| panic!("{d:?}"))
    .files
}

/// The path of an instance's file in the example's output.
fn instance_file(files: &Files, id: &str) -> String {
    files
        .keys()
        .find(|p| p.ends_with(&format!("/{id}.yaml")))
        .unwrap_or_else(|| panic!("no file for {id}"))
        .clone()
}

fn edit(files: &mut Files, id: &str, from: &str, to: &str) {
    let path = instance_file(files, id);
    let text = files.get_mut(&path).unwrap();
    assert!(text.contains(from), "{path} has no `{from}`");
    *text = text.replacen(from, to, 1);
}

/// Drops the StatefulSet (the last document) of an instance's file.
fn remove_workload(files: &mut Files, id: &str) {
    let path = instance_file(files, id);
    let text = files.get_mut(&path).unwrap();
    let cut = text.rfind("---\n").expect("three documents");
    text.truncate(cut);
}

fn unsafe_plan(base: &Files, new: &Files, expected: &str) -> Plan {
    let p = plan(Some(base), new, &[]).unwrap();
    assert!(
        p.unsafe_reasons.iter().any(|r| r.contains(expected)),
        "expected an unsafe reason containing `{expected}`, got {:?}",
        p.unsafe_reasons
    );
    assert!(p.refused());
    // Acknowledging the printed hash lets it through; another hash does not.
    assert!(
        !plan(Some(base), new, &["00000000".into()])
            .unwrap()
            .acknowledged
    );
    assert!(
        !plan(Some(base), new, std::slice::from_ref(&p.hash))
            .unwrap()
            .refused()
    );
    p
}

#[test]
fn a_safe_change_is_not_refused() {
    let base = example();
    let mut new = base.clone();
    edit(&mut new, "tikv-1", "periodSeconds: 10", "periodSeconds: 11");
    let p = plan(Some(&base), &new, &[]).unwrap();
    assert!(p.unsafe_reasons.is_empty(), "{:?}", p.unsafe_reasons);
    assert!(!p.refused());
    assert_eq!(p.waves.len(), 1);
}

#[test]
fn two_pd_members_removed_at_once_are_refused() {
    let base = example();
    let mut new = base.clone();
    remove_workload(&mut new, "pd-1");
    remove_workload(&mut new, "pd-2");
    unsafe_plan(&base, &new, "2 PD members would be removed at once");
    // One at a time is fine.
    let mut one = base.clone();
    remove_workload(&mut one, "pd-2");
    assert!(
        plan(Some(&base), &one, &[])
            .unwrap()
            .unsafe_reasons
            .is_empty()
    );
}

#[test]
fn fewer_tikv_domains_than_max_replicas_is_refused() {
    let base = example();
    let mut new = base.clone();
    for id in ["tikv-2", "tikv-5", "tikv-8"] {
        remove_workload(&mut new, id);
    }
    // The two other zones are read from unchanged files, without parsing.
    unsafe_plan(
        &base,
        &new,
        "TiKV would run in 2 zone domain(s), fewer than max-replicas 3",
    );
}

#[test]
fn a_wave_that_restarts_two_domains_is_refused() {
    let base = example();
    let mut new = base.clone();
    // tikv-1 (zone az-2) moved into az-1's wave folder, both restarting.
    let from = instance_file(&new, "tikv-1");
    let text = new.remove(&from).unwrap();
    let folder = instance_file(&new, "tikv-0");
    let to = folder.replace("tikv-0.yaml", "tikv-1.yaml");
    new.insert(to, text);
    edit(&mut new, "tikv-0", "periodSeconds: 10", "periodSeconds: 11");
    edit(&mut new, "tikv-1", "periodSeconds: 10", "periodSeconds: 11");
    unsafe_plan(&base, &new, "TiKV of 2 failure domains at once");
}

#[test]
fn a_statefulset_field_the_api_server_keeps_is_refused() {
    let base = example();
    let mut new = base.clone();
    edit(
        &mut new,
        "tikv-4",
        "serviceName: prod-tikv-peer",
        "serviceName: other",
    );
    unsafe_plan(&base, &new, "StatefulSet spec.serviceName");
}

#[test]
fn a_moved_volume_is_refused() {
    let base = example();
    let mut new = base.clone();
    edit(&mut new, "tikv-7", "path: /mnt/", "path: /mnt/moved-");
    unsafe_plan(&base, &new, "PersistentVolume moved");
}

#[test]
fn a_resized_claim_is_refused() {
    let base = example();
    let mut new = base.clone();
    edit(
        &mut new,
        "pd-0",
        "storage: '20Gi'
  storageClassName",
        "storage: '30Gi'
  storageClassName",
    );
    unsafe_plan(&base, &new, "storage request changed");
}
