//! The day-2 Jobs' scripts (`src/pod/store-delete.sh`,
//! `pd-member-delete.sh`, `reclaim.sh`), run under bash with a cleared
//! environment whose PATH holds only the tools the script may use from its
//! image. A fake PD on 127.0.0.1 records every request and answers each route
//! from a sequence (the last answer repeats), so PD can refuse a few times and
//! then accept. The reclaim tests work on a temp directory standing in for the
//! hostPath, with a symlink out of it and a fake mountinfo.

mod common;

use common::{FakePd, Reply, Store, compact, not_bootstrapped, ok, refused_url, stores_json};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const STORE_DELETE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/store-delete.sh");
const PD_MEMBER_DELETE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-member-delete.sh");
const RECLAIM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/reclaim.sh");

/// Tools each script may use; every one is in the image that runs it
/// (store-delete.sh and reclaim.sh: TiKV; pd-member-delete.sh: PD).
const STORE_DELETE_TOOLS: &[&str] = &["bash", "wget", "grep", "sleep"];
const PD_MEMBER_DELETE_TOOLS: &[&str] = &["bash", "wget", "jq", "sleep"];
const RECLAIM_TOOLS: &[&str] = &["bash", "rm", "du", "stat", "sync"];

/// A script slower than this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);

type Sandbox = common::Sandbox;

/// How a script run ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// Asserts the exit code and that every line on stderr has the script's
    /// prefix.
    fn assert_ended(&self, code: i32, prefix: &str) -> &Run {
        assert_eq!(self.code, Some(code), "{}{}", self.stdout, self.stderr);
        for line in self.stderr.lines() {
            assert!(line.starts_with(prefix), "{line:?} in:\n{}", self.stderr);
        }
        self
    }

    fn assert_logged(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "no {needle:?} in:\n{}",
            self.stderr
        );
        self
    }

    /// The last line on stderr.
    fn last(&self) -> &str {
        self.stderr.lines().last().unwrap_or_default()
    }
}

/// Runs `script` with `defaults` in its environment, then `env` on top (a
/// value of None removes the variable).
fn run(
    sandbox: &Sandbox,
    script: &str,
    defaults: &[(&str, &str)],
    env: &[(&str, Option<&str>)],
) -> Run {
    let mut command = sandbox.bash(script);
    command.envs(defaults.iter().copied());
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    let start = Instant::now();
    let output = common::output_within(&mut command, SCRIPT_DEADLINE, script);
    Run {
        code: output.status.code(),
        stdout: common::stdout(&output),
        stderr: common::stderr(&output),
        elapsed: start.elapsed(),
    }
}

/// Asserts a run that retried until DEADLINE_SECONDS=1 took about that long.
fn assert_took_the_deadline(run: &Run) {
    assert!(
        run.elapsed >= Duration::from_secs(1) && run.elapsed < Duration::from_secs(8),
        "{:?}:\n{}",
        run.elapsed,
        run.stderr
    );
}

/// How often `route` was asked.
fn count(pd: &FakePd, route: &str) -> usize {
    pd.calls().iter().filter(|c| *c == route).count()
}

// ---------------------------------------------------------------- store-delete

/// The retired instance's store address.
const ME: &str = "prod-tikv-3-0.prod-tikv-peer.tidb-prod.svc:20160";
/// Every store in every state: Up, Offline and Tombstone.
const LIST: &str = "GET /pd/api/v1/stores?state=0&state=1&state=2";
const DELETE_4: &str = "DELETE /pd/api/v1/store/4";
const FORCE_DELETE_4: &str = "DELETE /pd/api/v1/store/4?force";
/// PD's refusal while too few Up stores would be left.
const NOT_ENOUGH: &str = "[PD:core:ErrStoresNotEnough]can not remove store 4 since the number of up stores would be 2 while need 3";

fn refusal() -> Reply {
    Reply::Status(400, format!("\"{NOT_ENOUGH}\"\n"))
}

fn offline_now() -> Reply {
    ok("\"The store is set as Offline.\"\n")
}

/// Other stores, with addresses close to ME, ME in another field, and in
/// states that would stop the script were they its store's.
fn neighbours() -> Vec<Store> {
    let mut odd = Store::new(1001, "prod-tikv-13-0.prod-tikv-peer.tidb-prod.svc:20160");
    odd.peer_address = ME.to_owned();
    // A string with escapes and JSON punctuation in it.
    odd.deploy_path = r#"/data/tikv \"x\", {y}: [z] \\"#.to_owned();
    vec![
        Store::new(1, "prod-tikv-0-0.prod-tikv-peer.tidb-prod.svc:20160"),
        Store::new(5, "prod-tikv-3-0.prod-tikv-peer.tidb-staging.svc:20160"),
        odd,
        Store::new(7, &format!("x{ME}")).state("Offline"),
        Store::new(8, &format!("{ME}0")).state("Tombstone"),
        Store::new(6, "prod-tikv-4-0.prod-tikv-peer.tidb-prod.svc:20160").state("Down"),
    ]
}

/// PD's list of every store: the neighbours with `mine` among them.
fn cluster(mine: &[Store]) -> String {
    let mut stores = neighbours();
    for (i, store) in mine.iter().enumerate() {
        stores.insert(2 + i, store.clone());
    }
    stores_json(&stores)
}

fn me(state: &'static str) -> Store {
    Store::new(4, ME).state(state)
}

struct StoreDelete {
    sandbox: Sandbox,
    pd: FakePd,
}

impl StoreDelete {
    fn new() -> StoreDelete {
        StoreDelete {
            sandbox: Sandbox::new(STORE_DELETE_TOOLS),
            pd: FakePd::start(),
        }
    }

    /// PD lists `mine` among the neighbours.
    fn listing(&self, mine: &[Store]) -> &StoreDelete {
        self.pd.on(LIST, vec![ok(&cluster(mine))]);
        self
    }

    fn run(&self, env: &[(&str, Option<&str>)]) -> Run {
        let defaults = [
            ("PD_URL", self.pd.url.as_str()),
            ("STORE_ADDRESS", ME),
            ("FORCE", "false"),
            ("INSTANCE", "tikv-3"),
            ("RETRY_SECONDS", "0.05"),
            ("HTTP_TIMEOUT_SECONDS", "2"),
        ];
        let run = run(&self.sandbox, STORE_DELETE, &defaults, env);
        assert_eq!(run.stdout, "", "stdout");
        run
    }
}

#[test]
fn store_delete_removes_a_store_that_is_up_disconnected_or_down() {
    for state in ["Up", "Disconnected", "Down"] {
        let job = StoreDelete::new();
        job.listing(&[me(state)])
            .pd
            .on(DELETE_4, vec![offline_now()]);
        let run = job.run(&[]);
        run.assert_ended(0, "store-delete: ").assert_logged(&format!(
            "store 4 at {ME} (tikv-3) was {state}; PD accepted DELETE /pd/api/v1/store/4 (The store is set as Offline.)"
        ));
        assert_eq!(job.pd.calls(), [LIST, DELETE_4], "{state}");
    }
}

#[test]
fn store_delete_forces_the_removal_when_the_node_is_destroyed() {
    // With too few Up stores left, PD refuses an unforced removal; forced, it
    // accepts.
    let job = StoreDelete::new();
    job.listing(&[me("Down")])
        .pd
        .on(DELETE_4, vec![refusal()])
        .on(FORCE_DELETE_4, vec![offline_now()]);
    let run = job.run(&[("FORCE", Some("true"))]);
    run.assert_ended(0, "store-delete: ")
        .assert_logged("forced: its node is declared destroyed")
        .assert_logged("PD accepted DELETE /pd/api/v1/store/4?force");
    assert_eq!(job.pd.calls(), [LIST, FORCE_DELETE_4]);
    assert_eq!(
        job.pd.request_lines()[1],
        format!("{FORCE_DELETE_4} HTTP/1.1")
    );
}

#[test]
fn store_delete_does_not_ask_again_for_an_offline_store() {
    for force in ["false", "true"] {
        let job = StoreDelete::new();
        job.listing(&[me("Offline")])
            .pd
            .on(DELETE_4, vec![offline_now()])
            .on(FORCE_DELETE_4, vec![offline_now()]);
        let run = job.run(&[("FORCE", Some(force))]);
        run.assert_ended(0, "store-delete: ")
            .assert_logged(&format!("store 4 at {ME} (tikv-3) is already Offline"));
        assert_eq!(job.pd.calls(), [LIST], "FORCE={force}");
    }
}

#[test]
fn store_delete_is_done_when_the_store_is_tombstone() {
    let job = StoreDelete::new();
    job.listing(&[me("Tombstone")])
        .pd
        .on(DELETE_4, vec![offline_now()]);
    let run = job.run(&[]);
    run.assert_ended(0, "store-delete: ");
    assert_eq!(
        run.last(),
        format!("store-delete: store 4 at {ME} (tikv-3) is already Tombstone; nothing to do")
    );
    assert_eq!(job.pd.calls(), [LIST]);
}

#[test]
fn store_delete_removes_the_live_store_beside_a_tombstone_at_the_same_address() {
    // The instance's first store was buried, and it came back as store 9.
    let job = StoreDelete::new();
    job.listing(&[me("Tombstone"), Store::new(9, ME)])
        .pd
        .on("DELETE /pd/api/v1/store/9", vec![offline_now()]);
    let run = job.run(&[]);
    run.assert_ended(0, "store-delete: ")
        .assert_logged("store 9 at");
    assert_eq!(job.pd.calls(), [LIST, "DELETE /pd/api/v1/store/9"]);
}

#[test]
fn store_delete_is_done_when_pd_does_not_know_the_address() {
    let job = StoreDelete::new();
    job.listing(&[]).pd.on(DELETE_4, vec![offline_now()]);
    let run = job.run(&[]);
    run.assert_ended(0, "store-delete: ");
    assert!(
        run.last()
            .contains(&format!("knows no store at {ME} (in any state)")),
        "{}",
        run.stderr
    );
    assert_eq!(job.pd.calls(), [LIST]);
}

#[test]
fn store_delete_reads_compact_json_too() {
    let job = StoreDelete::new();
    job.pd
        .on(LIST, vec![ok(&compact(&cluster(&[me("Up")])))])
        .on(DELETE_4, vec![offline_now()]);
    job.run(&[]).assert_ended(0, "store-delete: ");
    assert_eq!(job.pd.calls(), [LIST, DELETE_4]);
}

#[test]
fn store_delete_retries_while_pd_refuses_and_succeeds_once_it_accepts() {
    let job = StoreDelete::new();
    job.listing(&[me("Up")])
        .pd
        .on(DELETE_4, vec![refusal(), refusal(), offline_now()]);
    let run = job.run(&[]);
    run.assert_ended(0, "store-delete: ");
    assert_eq!(
        job.pd.calls(),
        [LIST, DELETE_4, LIST, DELETE_4, LIST, DELETE_4]
    );
    // PD's message each time, and a pause that doubles.
    let retries: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("not yet"))
        .collect();
    let said = format!(
        "store-delete: not yet: store 4 at {ME} (tikv-3) is Up; DELETE /pd/api/v1/store/4: HTTP 400: {NOT_ENOUGH}; retrying in "
    );
    assert_eq!(
        retries,
        [format!("{said}0.050s"), format!("{said}0.100s")],
        "{}",
        run.stderr
    );
    run.assert_logged("PD accepted DELETE /pd/api/v1/store/4");
}

#[test]
fn store_delete_gives_up_at_the_deadline_with_pds_message() {
    let job = StoreDelete::new();
    job.listing(&[me("Up")]).pd.on(DELETE_4, vec![refusal()]);
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "store-delete: ");
    assert_took_the_deadline(&run);
    assert_eq!(
        run.last(),
        format!(
            "store-delete: gave up after 1s: store 4 at {ME} (tikv-3) is Up; DELETE /pd/api/v1/store/4: HTTP 400: {NOT_ENOUGH}"
        )
    );
    let deletes = count(&job.pd, DELETE_4);
    assert!(deletes >= 3, "{:?}", job.pd.calls());
    assert_eq!(count(&job.pd, LIST), deletes, "{:?}", job.pd.calls());
}

#[test]
fn store_delete_retries_without_a_store_list() {
    // Each reply is followed by a pause and a new try, until a real list.
    let job = StoreDelete::new();
    let not_a_list = vec![
        not_bootstrapped(),
        Reply::Close,
        ok("<html><body>502 Bad Gateway</body></html>\n"),
        ok("{}"),
        Reply::Status(500, "\"unknown StoreState: 2\"\n".to_owned()),
    ];
    let n = not_a_list.len();
    let replies: Vec<Reply> = not_a_list
        .into_iter()
        .chain([ok(&cluster(&[me("Up")]))])
        .collect();
    job.pd.on(LIST, replies).on(DELETE_4, vec![offline_now()]);
    let run = job.run(&[("RETRY_SECONDS", Some("0.01"))]);
    run.assert_ended(0, "store-delete: ")
        .assert_logged("HTTP 500: [PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped")
        .assert_logged(&format!("GET {}: no reply", &LIST[4..]))
        .assert_logged("not a store list: <html><body>502 Bad Gateway</body></html>");
    assert_eq!(count(&job.pd, LIST), n + 1, "{:?}", job.pd.calls());
    assert_eq!(count(&job.pd, DELETE_4), 1);
}

#[test]
fn store_delete_does_not_guess_a_state_it_does_not_know() {
    let job = StoreDelete::new();
    let text = cluster(&[me("Up")]);
    // The state_name of store 4 (after its address) becomes Preparing.
    let at = text.find(&format!("\"address\": \"{ME}\"")).unwrap();
    let (head, tail) = text.split_at(at);
    let text = format!(
        "{head}{}",
        tail.replacen("\"state_name\": \"Up\"", "\"state_name\": \"Preparing\"", 1)
    );
    job.pd
        .on(LIST, vec![ok(&text)])
        .on(DELETE_4, vec![offline_now()]);
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.2")),
    ]);
    run.assert_ended(1, "store-delete: ")
        .assert_logged("store 4 (state 'Preparing')");
    assert_eq!(count(&job.pd, DELETE_4), 0, "{:?}", job.pd.calls());
}

#[test]
fn store_delete_takes_gone_and_not_found_for_done() {
    // 410: PD buried the store meanwhile; 404: its record is gone.
    for (reply, needle) in [
        (
            Reply::Status(
                410,
                "\"[PD:core:ErrStoreRemoved]store 4 has been removed\"\n".to_owned(),
            ),
            "already removed (Tombstone)",
        ),
        (
            Reply::Status(
                404,
                "\"[PD:core:ErrStoreNotFound]store 4 not found\"\n".to_owned(),
            ),
            "is gone from PD",
        ),
    ] {
        let job = StoreDelete::new();
        job.listing(&[me("Up")]).pd.on(DELETE_4, vec![reply]);
        job.run(&[])
            .assert_ended(0, "store-delete: ")
            .assert_logged(needle);
        assert_eq!(job.pd.calls(), [LIST, DELETE_4]);
    }
}

#[test]
fn store_delete_gives_up_when_pd_does_not_answer() {
    let job = StoreDelete::new();
    let run = job.run(&[
        ("PD_URL", Some(&refused_url())),
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "store-delete: ");
    assert_took_the_deadline(&run);
    assert!(
        run.last()
            .starts_with("store-delete: gave up after 1s: GET /pd/api/v1/stores?state=0&state=1&state=2: no reply"),
        "{}",
        run.stderr
    );
}

#[test]
fn store_delete_refuses_a_bad_environment() {
    for (env, needle) in [
        (("PD_URL", None), "PD_URL is not set"),
        (("STORE_ADDRESS", None), "STORE_ADDRESS is not set"),
        (("FORCE", None), "FORCE is not set"),
        (("INSTANCE", None), "INSTANCE is not set"),
        (
            ("FORCE", Some("yes")),
            "FORCE must be true or false, not 'yes'",
        ),
        (("DEADLINE_SECONDS", Some("1.5")), "DEADLINE_SECONDS='1.5'"),
        (("RETRY_SECONDS", Some("5s")), "RETRY_SECONDS='5s'"),
        (
            ("STORE_ADDRESS", Some("a b:20160")),
            "STORE_ADDRESS='a b:20160'",
        ),
    ] {
        let job = StoreDelete::new();
        job.listing(&[me("Up")])
            .pd
            .on(DELETE_4, vec![offline_now()]);
        let run = job.run(&[env]);
        run.assert_ended(2, "store-delete: ").assert_logged(needle);
        assert!(job.pd.calls().is_empty(), "{env:?}: {:?}", job.pd.calls());
    }
}

// ---------------------------------------------------------------- pd-member-delete

const MEMBERS: &str = "GET /pd/api/v1/members";
const LEADER: &str = "GET /pd/api/v1/leader";
const HEALTH: &str = "GET /pd/api/v1/health";
const DELETE_PD_1: &str = "DELETE /pd/api/v1/members/name/pd-1";

/// A PD member as PD's API shows it, indented by `indent`.
fn member_json(name: &str, indent: usize) -> String {
    let id = 1327 + name.bytes().map(u64::from).sum::<u64>();
    let text = format!(
        r#"{{
  "name": "{name}",
  "member_id": {id}0000000000,
  "peer_urls": [
    "http://prod-{name}.prod-pd-peer.tidb-prod.svc:2380"
  ],
  "client_urls": [
    "http://prod-{name}.prod-pd-peer.tidb-prod.svc:2379"
  ],
  "deploy_path": "/",
  "binary_version": "v8.5.1",
  "git_hash": "0b0c4bc2bcb5f4cb8bc0a0bd4ef34b36f2b3e3a1"
}}"#
    );
    common::indent(&text, indent)
}

/// PD's member list (GET /pd/api/v1/members) with `leader` leading.
fn members(names: &[&str], leader: &str) -> Reply {
    let list: Vec<String> = names.iter().map(|n| member_json(n, 4)).collect();
    ok(&format!(
        "{{\n  \"header\": {{\n    \"cluster_id\": 7412345678901234567\n  }},\n  \
         \"members\": [\n    {}\n  ],\n  \"leader\": {},\n  \"etcd_leader\": {}\n}}\n",
        list.join(",\n    "),
        member_json(leader, 2),
        member_json(leader, 2),
    ))
}

fn leader(name: &str) -> Reply {
    ok(&(member_json(name, 0) + "\n"))
}

/// PD's health list (GET /pd/api/v1/health).
fn health(members: &[(&str, bool)]) -> Reply {
    let entries: Vec<String> = members
        .iter()
        .map(|(name, health)| {
            format!(
                "{{\n    \"name\": \"{name}\",\n    \"member_id\": 13270000000{},\n    \
                 \"client_urls\": [\n      \"http://prod-{name}.prod-pd-peer.tidb-prod.svc:2379\"\n    ],\n    \
                 \"health\": {health}\n  }}",
                name.len()
            )
        })
        .collect();
    ok(&format!("[\n  {}\n]\n", entries.join(",\n  ")))
}

fn removed() -> Reply {
    ok("\"removed, pd: pd-1\"\n")
}

struct MemberDelete {
    sandbox: Sandbox,
    pd: FakePd,
}

impl MemberDelete {
    fn new() -> MemberDelete {
        MemberDelete {
            sandbox: Sandbox::new(PD_MEMBER_DELETE_TOOLS),
            pd: FakePd::start(),
        }
    }

    fn run(&self, env: &[(&str, Option<&str>)]) -> Run {
        let defaults = [
            ("PD_URL", self.pd.url.as_str()),
            ("MEMBER", "pd-1"),
            ("RETRY_SECONDS", "0.05"),
            ("POLL_SECONDS", "0.05"),
            ("HTTP_TIMEOUT_SECONDS", "2"),
        ];
        let run = run(&self.sandbox, PD_MEMBER_DELETE, &defaults, env);
        assert_eq!(run.stdout, "", "stdout");
        run
    }
}

#[test]
fn member_delete_is_done_when_the_member_is_not_listed() {
    // pd-10 and pd-11 are not pd-1.
    let job = MemberDelete::new();
    job.pd
        .on(MEMBERS, vec![members(&["pd-0", "pd-10", "pd-11"], "pd-10")])
        .on(LEADER, vec![leader("pd-10")])
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[]);
    run.assert_ended(0, "pd-member-delete: ");
    assert!(
        run.last()
            .contains("pd-1 is not a member of the PD cluster"),
        "{}",
        run.stderr
    );
    assert_eq!(job.pd.calls(), [MEMBERS]);
}

#[test]
fn member_delete_removes_a_follower_and_confirms() {
    let job = MemberDelete::new();
    job.pd
        .on(
            MEMBERS,
            vec![
                members(&["pd-0", "pd-1", "pd-2"], "pd-0"),
                members(&["pd-0", "pd-2"], "pd-0"),
            ],
        )
        .on(LEADER, vec![leader("pd-0")])
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[]);
    run.assert_ended(0, "pd-member-delete: ")
        .assert_logged("PD removed pd-1: removed, pd: pd-1");
    assert_eq!(
        run.last(),
        "pd-member-delete: pd-1 is no longer listed by GET /pd/api/v1/members; done"
    );
    assert_eq!(job.pd.calls(), [MEMBERS, LEADER, DELETE_PD_1, MEMBERS]);
}

#[test]
fn member_delete_moves_leadership_to_a_healthy_member_first() {
    let job = MemberDelete::new();
    job.pd
        .on(
            MEMBERS,
            vec![
                members(&["pd-0", "pd-1", "pd-2"], "pd-1"),
                members(&["pd-0", "pd-2"], "pd-2"),
            ],
        )
        .on(
            LEADER,
            vec![leader("pd-1"), leader("pd-1"), status500(), leader("pd-2")],
        )
        .on(
            HEALTH,
            vec![health(&[("pd-0", false), ("pd-1", true), ("pd-2", true)])],
        )
        .on(
            "POST /pd/api/v1/leader/transfer/pd-2",
            vec![ok("\"The transfer command is submitted.\"\n")],
        )
        .on("POST /pd/api/v1/leader/transfer/pd-0", vec![ok("null\n")])
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[]);
    run.assert_ended(0, "pd-member-delete: ")
        .assert_logged("pd-1 leads; asked PD to transfer leadership to pd-2")
        .assert_logged("pd-2 leads now");
    assert_eq!(
        job.pd.calls(),
        [
            MEMBERS,
            LEADER,
            HEALTH,
            "POST /pd/api/v1/leader/transfer/pd-2",
            LEADER,
            LEADER,
            LEADER,
            DELETE_PD_1,
            MEMBERS
        ]
    );
}

fn status500() -> Reply {
    Reply::Status(500, "\"no leader\"\n".to_owned())
}

#[test]
fn member_delete_does_not_remove_the_leader_when_no_one_can_take_over() {
    let job = MemberDelete::new();
    job.pd
        .on(MEMBERS, vec![members(&["pd-0", "pd-1", "pd-2"], "pd-1")])
        .on(LEADER, vec![leader("pd-1")])
        .on(
            HEALTH,
            vec![health(&[("pd-0", false), ("pd-1", true), ("pd-2", false)])],
        )
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "pd-member-delete: ");
    assert_took_the_deadline(&run);
    assert_eq!(
        run.last(),
        "pd-member-delete: gave up after 1s: pd-1 leads and no other member is reported healthy (GET /pd/api/v1/health), so no one can take over"
    );
    assert_eq!(count(&job.pd, DELETE_PD_1), 0, "{:?}", job.pd.calls());
    assert!(count(&job.pd, HEALTH) >= 3, "{:?}", job.pd.calls());
}

#[test]
fn member_delete_does_not_remove_a_leader_that_keeps_leading() {
    let job = MemberDelete::new();
    job.pd
        .on(MEMBERS, vec![members(&["pd-0", "pd-1"], "pd-1")])
        .on(LEADER, vec![leader("pd-1")])
        .on(HEALTH, vec![health(&[("pd-0", true), ("pd-1", true)])])
        .on(
            "POST /pd/api/v1/leader/transfer/pd-0",
            vec![ok("\"The transfer command is submitted.\"\n")],
        )
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("TRANSFER_TIMEOUT_SECONDS", Some("0")),
        ("POLL_SECONDS", Some("0.1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "pd-member-delete: ");
    assert_took_the_deadline(&run);
    assert_eq!(
        run.last(),
        "pd-member-delete: gave up after 1s: pd-1 still leads 0s after the transfer to pd-0"
    );
    assert_eq!(count(&job.pd, DELETE_PD_1), 0, "{:?}", job.pd.calls());
    // Every try polls the leader after its transfer.
    let calls = job.pd.calls();
    let transfers = count(&job.pd, "POST /pd/api/v1/leader/transfer/pd-0");
    assert!(transfers >= 1, "{calls:?}");
    assert!(count(&job.pd, LEADER) >= 2 * transfers, "{calls:?}");
}

#[test]
fn member_delete_takes_not_found_for_gone() {
    let job = MemberDelete::new();
    job.pd
        .on(
            MEMBERS,
            vec![
                members(&["pd-0", "pd-1", "pd-2"], "pd-0"),
                members(&["pd-0", "pd-2"], "pd-0"),
            ],
        )
        .on(LEADER, vec![leader("pd-0")])
        .on(
            DELETE_PD_1,
            vec![Reply::Status(404, "\"not found, pd: pd-1\"\n".to_owned())],
        );
    job.run(&[])
        .assert_ended(0, "pd-member-delete: ")
        .assert_logged("PD does not know pd-1 as a member: not found, pd: pd-1");
    assert_eq!(job.pd.calls(), [MEMBERS, LEADER, DELETE_PD_1, MEMBERS]);
}

/// etcd's refusal of a removal that would cost the quorum, as PD passes it on.
const UNHEALTHY: &str = "etcdserver: unhealthy cluster";

#[test]
fn member_delete_retries_a_failed_removal() {
    let job = MemberDelete::new();
    let failure = Reply::Status(500, format!("\"{UNHEALTHY}\"\n"));
    job.pd
        .on(
            MEMBERS,
            vec![
                members(&["pd-0", "pd-1", "pd-2"], "pd-0"),
                members(&["pd-0", "pd-1", "pd-2"], "pd-0"),
                members(&["pd-0", "pd-1", "pd-2"], "pd-0"),
                members(&["pd-0", "pd-2"], "pd-0"),
            ],
        )
        .on(LEADER, vec![leader("pd-0")])
        .on(DELETE_PD_1, vec![failure.clone(), failure, removed()]);
    let run = job.run(&[]);
    run.assert_ended(0, "pd-member-delete: ");
    assert_eq!(
        job.pd.calls(),
        [
            MEMBERS,
            LEADER,
            DELETE_PD_1,
            MEMBERS,
            LEADER,
            DELETE_PD_1,
            MEMBERS,
            LEADER,
            DELETE_PD_1,
            MEMBERS
        ]
    );
    let said = format!(
        "pd-member-delete: not yet: DELETE /pd/api/v1/members/name/pd-1: HTTP 500: {UNHEALTHY}; retrying in "
    );
    let retries: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("not yet"))
        .collect();
    assert_eq!(retries, [format!("{said}0.050s"), format!("{said}0.100s")]);
}

#[test]
fn member_delete_gives_up_at_the_deadline() {
    let job = MemberDelete::new();
    job.pd
        .on(MEMBERS, vec![members(&["pd-0", "pd-1", "pd-2"], "pd-0")])
        .on(LEADER, vec![leader("pd-0")])
        .on(
            DELETE_PD_1,
            vec![Reply::Status(500, format!("\"{UNHEALTHY}\"\n"))],
        );
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "pd-member-delete: ");
    assert_took_the_deadline(&run);
    assert_eq!(
        run.last(),
        format!(
            "pd-member-delete: gave up after 1s: DELETE /pd/api/v1/members/name/pd-1: HTTP 500: {UNHEALTHY}"
        )
    );
    assert!(count(&job.pd, DELETE_PD_1) >= 3, "{:?}", job.pd.calls());
}

#[test]
fn member_delete_does_not_stop_while_the_member_is_still_listed() {
    // PD accepted the removal, but its member list still holds pd-1.
    let job = MemberDelete::new();
    job.pd
        .on(MEMBERS, vec![members(&["pd-0", "pd-1"], "pd-0")])
        .on(LEADER, vec![leader("pd-0")])
        .on(DELETE_PD_1, vec![removed()]);
    let run = job.run(&[
        ("DEADLINE_SECONDS", Some("1")),
        ("RETRY_SECONDS", Some("0.1")),
    ]);
    run.assert_ended(1, "pd-member-delete: ");
    assert_eq!(
        run.last(),
        "pd-member-delete: gave up after 1s: GET /pd/api/v1/members still lists pd-1 after its removal"
    );
}

#[test]
fn member_delete_gives_up_when_pd_does_not_answer() {
    for url in [refused_url(), FakePd::start().url] {
        // A PD that answers 404 to everything is no member list either.
        let job = MemberDelete::new();
        let run = job.run(&[
            ("PD_URL", Some(&url)),
            ("DEADLINE_SECONDS", Some("1")),
            ("RETRY_SECONDS", Some("0.1")),
        ]);
        run.assert_ended(1, "pd-member-delete: ");
        assert_took_the_deadline(&run);
        assert!(
            run.last()
                .starts_with("pd-member-delete: gave up after 1s: GET /pd/api/v1/members: "),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn member_delete_refuses_a_bad_environment() {
    for (env, needle) in [
        (("PD_URL", None), "PD_URL is not set"),
        (("MEMBER", None), "MEMBER is not set"),
        (("MEMBER", Some("pd-1/../x")), "MEMBER='pd-1/../x'"),
        (("DEADLINE_SECONDS", Some("ten")), "DEADLINE_SECONDS='ten'"),
        (("POLL_SECONDS", Some("-1")), "POLL_SECONDS='-1'"),
    ] {
        let job = MemberDelete::new();
        job.pd
            .on(MEMBERS, vec![members(&["pd-0", "pd-1"], "pd-0")])
            .on(LEADER, vec![leader("pd-0")])
            .on(DELETE_PD_1, vec![removed()]);
        let run = job.run(&[env]);
        run.assert_ended(2, "pd-member-delete: ")
            .assert_logged(needle);
        assert!(job.pd.calls().is_empty(), "{env:?}: {:?}", job.pd.calls());
    }
}

// ---------------------------------------------------------------- reclaim

const OWNER: &str = "tidb-gitops cluster=tidb-prod/prod instance=tikv-3";
const MARKER: &str = ".tidb-gitops-owner";
const HOST_PATH: &str = "/mnt/nvme0";
const NODE: &str = "node-a1";

/// A temp folder with the tools, the hostPath stand-in (`disk`, with a
/// lost+found holding a file), a folder outside it (`outside`), a fake
/// mountinfo where `disk` is a mount and the termination log.
struct Reclaim {
    sandbox: Sandbox,
    disk: PathBuf,
    outside: PathBuf,
}

impl Reclaim {
    fn new() -> Reclaim {
        let sandbox = Sandbox::new(RECLAIM_TOOLS);
        let disk = sandbox.path("disk");
        let outside = sandbox.path("outside");
        std::fs::create_dir_all(disk.join("lost+found")).unwrap();
        std::fs::write(disk.join("lost+found/#1234"), "fsck found this\n").unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "not the instance's\n").unwrap();
        std::fs::write(sandbox.path("termination-log"), "").unwrap();
        let reclaim = Reclaim {
            sandbox,
            disk,
            outside,
        };
        reclaim.mountinfo("");
        reclaim
    }

    fn disk_dir(&self) -> &str {
        self.disk.to_str().unwrap()
    }

    /// A mountinfo where `disk` is a mount of its own, then `extra`.
    fn mountinfo(&self, extra: &str) {
        let text = format!(
            "520 480 0:50 / / rw,relatime master:200 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n\
             521 520 0:53 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
             530 520 259:1 / {} rw,relatime - ext4 /dev/nvme0n1 rw\n\
             {extra}",
            self.disk_dir().replace(' ', "\\040")
        );
        std::fs::write(self.sandbox.path("mountinfo"), text).unwrap();
    }

    fn mark(&self, text: &str) {
        std::fs::write(self.disk.join(MARKER), text).unwrap();
    }

    /// The retired instance's data: nested directories, a 3 MB file, hidden
    /// and odd names, symlinks out of the directory (to a folder, to a file)
    /// and a dangling one, a marker temp file, and the marker. Returns how
    /// many entries that is.
    fn fill(&self) -> usize {
        let d = &self.disk;
        std::fs::create_dir_all(d.join("db/sub")).unwrap();
        std::fs::create_dir(d.join("raft")).unwrap();
        std::fs::write(d.join("db/000001.sst"), vec![b'x'; 3_000_000]).unwrap();
        std::fs::write(d.join("db/CURRENT"), "MANIFEST-000001\n").unwrap();
        std::fs::write(d.join("db/sub/deep.log"), "deep\n").unwrap();
        std::fs::write(d.join("raft/0001.raftlog"), "raft\n").unwrap();
        std::fs::write(d.join(".hidden"), "h\n").unwrap();
        std::fs::write(d.join("-rf"), "dash\n").unwrap();
        std::fs::write(d.join("odd\nname with spaces"), "odd\n").unwrap();
        std::fs::write(d.join("last_tikv.toml"), "# config\n").unwrap();
        std::fs::write(d.join(format!("{MARKER}.tmp")), format!("{OWNER}\n")).unwrap();
        symlink(&self.outside, d.join("escape")).unwrap();
        symlink(self.outside.join("secret"), d.join("db/secret-link")).unwrap();
        symlink("/nonexistent/tidb-gitops", d.join("db/dangling")).unwrap();
        self.mark(&format!("{OWNER}\n"));
        16
    }

    fn run(&self, env: &[(&str, Option<&str>)]) -> Run {
        let mountinfo = self.sandbox.path("mountinfo");
        let log = self.sandbox.path("termination-log");
        let defaults = [
            ("RECLAIM_DIR", self.disk_dir()),
            ("OWNER", OWNER),
            ("HOST_PATH", HOST_PATH),
            ("NODE_NAME", NODE),
            ("MOUNTINFO", mountinfo.to_str().unwrap()),
            ("TERMINATION_LOG", log.to_str().unwrap()),
        ];
        run(&self.sandbox, RECLAIM, &defaults, env)
    }

    fn termination_log(&self) -> String {
        std::fs::read_to_string(self.sandbox.path("termination-log")).unwrap()
    }

    /// Everything under `disk` and `outside`, symlinks not followed.
    fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.disk, &self.sandbox.path(""), &mut out);
        walk(&self.outside, &self.sandbox.path(""), &mut out);
        out.sort();
        out
    }

    /// Asserts a refusal: exit 1, `needle` in the line on stdout and in the
    /// termination log, and nothing touched.
    fn assert_refused(&self, run: &Run, before: &[String], needle: &str) {
        run.assert_ended(1, "reclaim: ");
        assert!(
            run.stdout.contains(needle),
            "no {needle:?} in {:?}",
            run.stdout
        );
        assert!(run.stdout.starts_with("reclaim: ") && run.stdout.lines().count() == 1);
        assert_eq!(self.termination_log(), run.stdout);
        assert_eq!(self.tree(), before, "something was touched");
    }

    /// Asserts only lost+found is left, untouched, and nothing outside.
    fn assert_emptied(&self) {
        assert_eq!(common::list(&self.disk), ["lost+found"]);
        assert_eq!(
            std::fs::read_to_string(self.disk.join("lost+found/#1234")).unwrap(),
            "fsck found this\n"
        );
        assert_eq!(
            std::fs::read_to_string(self.outside.join("secret")).unwrap(),
            "not the instance's\n"
        );
        assert_eq!(common::list(&self.outside), ["secret"]);
    }
}

/// One line per entry under `dir`: kind, path relative to `base`, and the
/// content or link target.
fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
    let name = dir.strip_prefix(base).unwrap().display().to_string();
    let meta = std::fs::symlink_metadata(dir).unwrap();
    if meta.file_type().is_symlink() {
        out.push(format!(
            "l {name:?} -> {:?}",
            std::fs::read_link(dir).unwrap()
        ));
    } else if meta.is_dir() {
        out.push(format!("d {name:?} {:o}", meta.permissions().mode()));
        for entry in std::fs::read_dir(dir).unwrap() {
            walk(&entry.unwrap().path(), base, out);
        }
    } else {
        let data = std::fs::read(dir).unwrap();
        out.push(format!(
            "f {name:?} {} {:?}",
            data.len(),
            &data[..data.len().min(40)]
        ));
    }
}

fn report(what: &str) -> String {
    format!("reclaim: {what} from {NODE}:{HOST_PATH}, owner {OWNER}\n")
}

#[test]
fn reclaim_removes_everything_but_lost_found_and_never_follows_a_symlink() {
    let job = Reclaim::new();
    let entries = job.fill();
    let run = job.run(&[]);
    run.assert_ended(0, "reclaim: ");
    job.assert_emptied();
    assert!(job.disk.is_dir());
    assert_eq!(
        run.stdout,
        report(&format!("removed {entries} entries (2.9 MiB)")),
        "{}",
        run.stderr
    );
    assert_eq!(job.termination_log(), run.stdout);
}

#[test]
fn reclaim_takes_a_marker_without_its_final_newline() {
    let job = Reclaim::new();
    let entries = job.fill();
    job.mark(OWNER);
    let run = job.run(&[]);
    run.assert_ended(0, "reclaim: ");
    job.assert_emptied();
    assert!(
        run.stdout
            .starts_with(&format!("reclaim: removed {entries} entries ("))
    );
}

#[test]
fn reclaim_refuses_a_marker_that_names_anything_else() {
    let other = "tidb-gitops cluster=tidb-prod/prod instance=tikv-4";
    let staging = "tidb-gitops cluster=tidb-staging/prod instance=tikv-3";
    for (marker, needle) in [
        (
            format!("{other}\n"),
            format!("its owner marker says '{other}', not '{OWNER}'"),
        ),
        (
            format!("{staging}\n"),
            format!("its owner marker says '{staging}'"),
        ),
        (
            format!("{OWNER} \n"),
            format!("its owner marker says '{OWNER} '"),
        ),
        (String::new(), "its owner marker says ''".to_owned()),
        (
            format!("{OWNER}\nextra\n"),
            "holds more than that one line".to_owned(),
        ),
        (
            format!("{OWNER}\n\n"),
            "holds more than that one line".to_owned(),
        ),
        (
            format!("{OWNER}\n\0"),
            "holds more than that one line".to_owned(),
        ),
    ] {
        let job = Reclaim::new();
        job.fill();
        job.mark(&marker);
        let before = job.tree();
        let run = job.run(&[]);
        job.assert_refused(&run, &before, &needle);
        assert!(run.stdout.contains("nothing removed"), "{}", run.stdout);
    }
}

#[test]
fn reclaim_refuses_a_marker_that_is_not_a_regular_file() {
    // A symlink to a file that says the right thing, and a directory.
    let job = Reclaim::new();
    job.fill();
    std::fs::write(job.outside.join("owner"), format!("{OWNER}\n")).unwrap();
    std::fs::remove_file(job.disk.join(MARKER)).unwrap();
    symlink(job.outside.join("owner"), job.disk.join(MARKER)).unwrap();
    let before = job.tree();
    let run = job.run(&[]);
    job.assert_refused(&run, &before, "is not a regular file");

    let job = Reclaim::new();
    job.fill();
    std::fs::remove_file(job.disk.join(MARKER)).unwrap();
    std::fs::create_dir(job.disk.join(MARKER)).unwrap();
    let before = job.tree();
    let run = job.run(&[]);
    job.assert_refused(&run, &before, "is not a regular file");
}

#[test]
fn reclaim_refuses_data_without_a_marker() {
    let job = Reclaim::new();
    job.fill();
    std::fs::remove_file(job.disk.join(MARKER)).unwrap();
    let before = job.tree();
    let run = job.run(&[]);
    job.assert_refused(&run, &before, "has no owner marker but is not empty");
    // 8 entries at the top besides the marker; bash lists them sorted.
    assert!(
        run.stdout.contains("(found -rf and 7 more)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("unknown origin"), "{}", run.stdout);

    // A single stray file is data too.
    let job = Reclaim::new();
    std::fs::write(job.disk.join("LOCK"), "").unwrap();
    let before = job.tree();
    let run = job.run(&[]);
    job.assert_refused(&run, &before, "(found LOCK)");
}

#[test]
fn reclaim_is_done_with_an_empty_directory() {
    // Only lost+found; nothing at all; only the temp file of a marker that
    // init-dir.sh never finished (it ignores it too).
    for setup in ["lost+found", "nothing", "temp marker"] {
        let job = Reclaim::new();
        match setup {
            "nothing" => std::fs::remove_dir_all(job.disk.join("lost+found")).unwrap(),
            "temp marker" => std::fs::write(job.disk.join(format!("{MARKER}.tmp")), "x\n").unwrap(),
            _ => {}
        }
        let before = job.tree();
        let run = job.run(&[]);
        run.assert_ended(0, "reclaim: ");
        assert_eq!(
            run.stdout,
            format!(
                "reclaim: {NODE}:{HOST_PATH} is already empty (no owner marker, nothing but lost+found); nothing to remove\n"
            ),
            "{setup}"
        );
        assert_eq!(job.termination_log(), run.stdout);
        assert_eq!(job.tree(), before, "{setup}");
    }
}

#[test]
fn reclaim_finishes_a_run_that_was_interrupted() {
    // The first run removed the db folder and .hidden, then stopped: the
    // marker is still there.
    let job = Reclaim::new();
    let entries = job.fill();
    std::fs::remove_dir_all(job.disk.join("db")).unwrap();
    std::fs::remove_file(job.disk.join(".hidden")).unwrap();
    let run = job.run(&[]);
    run.assert_ended(0, "reclaim: ");
    job.assert_emptied();
    // db held 6 entries besides itself.
    let left = entries - 7 - 1;
    assert!(
        run.stdout
            .starts_with(&format!("reclaim: removed {left} entries (")),
        "{}",
        run.stdout
    );
}

#[test]
fn reclaim_keeps_the_marker_when_it_cannot_remove_everything_and_a_rerun_finishes() {
    let job = Reclaim::new();
    job.fill();
    // An rm that removes its first operand only, then fails as on a busy
    // file.
    let real_rm = common::host_tool("rm");
    let rm = job.sandbox.path("bin/rm");
    std::fs::remove_file(&rm).unwrap();
    let fake = format!(
        "#!{}\nfiles=()\nfor a in \"$@\"; do case \"$a\" in -*) ;; *) files+=(\"$a\") ;; esac; done\n\
         if [[ \" $* \" == *' --one-file-system '* ]]; then\n  '{}' -rf -- \"${{files[0]}}\"\n  \
         echo \"rm: cannot remove '${{files[1]}}': Device or resource busy\" >&2\n  exit 1\nfi\n\
         exec '{}' \"$@\"\n",
        common::host_tool("bash").display(),
        real_rm.display(),
        real_rm.display(),
    );
    std::fs::write(&rm, fake).unwrap();
    std::fs::set_permissions(&rm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = job.run(&[]);
    run.assert_ended(1, "reclaim: ")
        .assert_logged("Device or resource busy");
    assert!(
        run.stdout
            .contains("the owner marker stays, so running again continues"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(job.disk.join(MARKER)).unwrap(),
        format!("{OWNER}\n")
    );
    assert!(
        common::list(&job.disk).len() > 2,
        "{:?}",
        common::list(&job.disk)
    );

    std::fs::remove_file(&rm).unwrap();
    symlink(real_rm, &rm).unwrap();
    let run = job.run(&[]);
    run.assert_ended(0, "reclaim: ");
    job.assert_emptied();
}

#[test]
fn reclaim_refuses_when_a_filesystem_is_mounted_inside() {
    let job = Reclaim::new();
    job.fill();
    job.mountinfo(&format!(
        "540 530 259:2 / {}/db/my\\040disk rw,relatime - xfs /dev/nvme1n1 rw\n",
        job.disk_dir()
    ));
    let before = job.tree();
    let run = job.run(&[]);
    job.assert_refused(&run, &before, "another filesystem is mounted inside");
    assert!(run.stdout.contains("(at db/my disk)"), "{}", run.stdout);

    // A mount beside the directory, whose path starts the same, is no
    // concern.
    let job = Reclaim::new();
    job.fill();
    job.mountinfo(&format!(
        "540 520 259:2 / {}2 rw,relatime - xfs /dev/nvme1n1 rw\n",
        job.disk_dir()
    ));
    job.run(&[]).assert_ended(0, "reclaim: ");
    job.assert_emptied();

    // Without a mountinfo to check, nothing is removed.
    let job = Reclaim::new();
    job.fill();
    let before = job.tree();
    let run = job.run(&[("MOUNTINFO", Some("/nonexistent/mountinfo"))]);
    job.assert_refused(&run, &before, "cannot read /nonexistent/mountinfo");
}

#[test]
fn reclaim_refuses_a_directory_that_is_a_symlink() {
    let job = Reclaim::new();
    job.fill();
    let link = job.sandbox.path("link");
    symlink(&job.disk, &link).unwrap();
    let before = job.tree();
    let run = job.run(&[("RECLAIM_DIR", Some(link.to_str().unwrap()))]);
    job.assert_refused(&run, &before, "is not a directory");
}

#[test]
fn reclaim_refuses_a_bad_environment() {
    for (env, needle) in [
        (("RECLAIM_DIR", None), "RECLAIM_DIR is not set"),
        (("OWNER", None), "OWNER is not set"),
        (("HOST_PATH", None), "HOST_PATH is not set"),
        (("NODE_NAME", None), "NODE_NAME is not set"),
        (("OWNER", Some("a\nb")), "OWNER must be a single line"),
        (
            ("RECLAIM_DIR", Some("disk")),
            "RECLAIM_DIR='disk' is not an absolute path",
        ),
        (("RECLAIM_DIR", Some("//")), "RECLAIM_DIR is /"),
    ] {
        let job = Reclaim::new();
        job.fill();
        let before = job.tree();
        let run = job.run(&[env]);
        run.assert_ended(2, "reclaim: ").assert_logged(needle);
        assert_eq!(run.stdout, "", "{env:?}");
        assert_eq!(job.tree(), before, "{env:?}");
    }
}

// ---------------------------------------------------------------- the text

#[test]
fn day2_scripts_write_no_here_documents_and_store_delete_sources_pd_api() {
    // bash writes a long here-document or here-string to a temp file, and the
    // Jobs' root filesystem is read-only.
    for script in [STORE_DELETE, PD_MEMBER_DELETE, RECLAIM] {
        let text = std::fs::read_to_string(script).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if !code.starts_with('#') {
                assert!(!code.contains("<<"), "{script} line {}: {line}", n + 1);
            }
        }
    }
    // The day-2 scripts' ConfigMap holds pd-api.sh next to store-delete.sh.
    let text = std::fs::read_to_string(STORE_DELETE).unwrap();
    assert!(
        text.lines()
            .any(|line| line == r#"source "${BASH_SOURCE[0]%/*}/pd-api.sh""#),
        "store-delete.sh does not source pd-api.sh from its own folder"
    );
}
