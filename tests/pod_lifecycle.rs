//! The lifecycle scripts of the pods (`src/pod/tikv-start.sh`,
//! `tikv-prestop.sh`, `pd-prestop.sh`), run under bash with a cleared
//! environment whose PATH holds only the tools the script may use from its
//! image. A fake server records the arguments it was exec'd with; a fake PD on
//! 127.0.0.1 records every request and answers from per-route sequences, so a
//! test can make PD's answers change over time.

mod common;

use common::not_bootstrapped as status500;
use common::{FakePd, Hook, Reply, Store, compact, list, ok, refused_url, stores_json, strings};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const TIKV_START: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/tikv-start.sh");
const TIKV_PRESTOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/tikv-prestop.sh");
const PD_PRESTOP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-prestop.sh");
/// Sourced by the tikv scripts (and by tikv-gate.sh, run in tests/pod_gate.rs).
const PD_API: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-api.sh");
const TIKV_GATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/tikv-gate.sh");

/// Tools each script may use; every one is in the image that runs it.
const TIKV_START_TOOLS: &[&str] = &["bash", "wget", "grep", "sleep", "mv", "rm"];
const TIKV_PRESTOP_TOOLS: &[&str] = &["bash", "wget", "grep", "sleep", "mv", "sync"];
const PD_PRESTOP_TOOLS: &[&str] = &["bash", "wget", "jq", "sleep"];

/// A script slower than this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);
/// How long a test waits for the start script's background loop.
const LOOP_DEADLINE: Duration = Duration::from_secs(10);

/// How a script run ended.
struct Finished {
    code: Option<i32>,
    elapsed: Duration,
}

/// A temp folder with a bin folder of allowed tools, a fake server, the pod's
/// data directory and the script's output (in files: the start script's
/// background loop keeps writing after the script itself is gone).
type Sandbox = common::Sandbox;

fn sandbox(tools: &[&str]) -> Sandbox {
    let sandbox = Sandbox::with_server(tools);
    std::fs::create_dir(sandbox.data()).unwrap();
    sandbox
}

trait LoggedRun {
    fn data(&self) -> PathBuf;
    fn data_dir(&self) -> String;
    fn run(&self, script: &str, env: &[(&str, &str)], args: &[String]) -> Finished;
    fn assert_ended(&self, finished: &Finished, code: i32, prefix: &str);
    fn assert_logged(&self, needle: &str);
    fn assert_execd(&self, finished: &Finished, args: &[String]);
}

impl LoggedRun for Sandbox {
    /// The pod's data directory.
    fn data(&self) -> PathBuf {
        self.path("data")
    }

    fn data_dir(&self) -> String {
        self.data().to_str().unwrap().to_owned()
    }

    fn run(&self, script: &str, env: &[(&str, &str)], args: &[String]) -> Finished {
        let start = Instant::now();
        let mut child = self
            .logged(script)
            .args(args)
            .envs(env.iter().copied())
            .spawn()
            .expect("run bash");
        let Some(status) = common::wait_within(&mut child, SCRIPT_DEADLINE) else {
            panic!("{script} did not finish within {SCRIPT_DEADLINE:?}");
        };
        Finished {
            code: status.code(),
            elapsed: start.elapsed(),
        }
    }

    /// Asserts the script ended with `code`, logged only lines starting with
    /// `prefix`, and printed nothing on stdout.
    fn assert_ended(&self, finished: &Finished, code: i32, prefix: &str) {
        let log = self.stderr();
        assert_eq!(finished.code, Some(code), "{log}");
        for line in log.lines() {
            assert!(line.starts_with(prefix), "{line:?} in {log}");
        }
        assert_eq!(self.stdout(), "", "stdout");
    }

    fn assert_logged(&self, needle: &str) {
        let log = self.stderr();
        assert!(log.contains(needle), "no {needle:?} in {log}");
    }

    /// Asserts the script replaced itself with the server (`exec`) and passed
    /// `args` on unchanged, so the server is the one that gets the pod's
    /// signals.
    fn assert_execd(&self, finished: &Finished, args: &[String]) {
        self.check_execd(finished.code, &self.stderr(), args);
    }
}

/// Waits until `done` holds, or panics after LOOP_DEADLINE.
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < LOOP_DEADLINE,
            "{what}: not within {LOOP_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- PD's JSON

/// This pod's store address.
const ME: &str = "prod-tikv-3-0.prod-tikv-peer.tidb-prod.svc:20160";

/// Stores with addresses close to ME, and ME in other fields.
fn neighbours() -> Vec<Store> {
    let mut odd = Store::new(1001, "prod-tikv-13-0.prod-tikv-peer.tidb-prod.svc:20160");
    odd.peer_address = ME.to_owned();
    // A string with escapes and JSON punctuation in it.
    odd.deploy_path = r#"/data/tikv \"x\", {y}: [z] \\"#.to_owned();
    vec![
        Store::new(1, "prod-tikv-0-0.prod-tikv-peer.tidb-prod.svc:20160").leaders(Some(40)),
        Store::new(5, "prod-tikv-3-0.prod-tikv-peer.tidb-staging.svc:20160").leaders(Some(7)),
        odd.leaders(Some(3)),
        Store::new(7, &format!("x{ME}")).leaders(Some(9)),
        Store::new(6, "prod-tikv-4-0.prod-tikv-peer.tidb-prod.svc:20160")
            .state("Offline")
            .leaders(None),
    ]
}

/// A cluster where this pod's store is 4, among the neighbours.
fn cluster(me: Store) -> String {
    let mut stores = neighbours();
    stores.insert(3, me);
    stores_json(&stores)
}

/// The evict-leader scheduler's config (GET
/// /pd/api/v1/scheduler-config/evict-leader-scheduler/list) with these stores.
fn evicted_json(ids: &[u64]) -> String {
    let entries: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                "\"{id}\": [\n      {{\n        \"start-key\": \"\",\n        \"end-key\": \"\"\n      }}\n    ]"
            )
        })
        .collect();
    format!(
        "{{\n  \"store-id-ranges\": {{\n    {}\n  }},\n  \"batch\": 3\n}}\n",
        entries.join(",\n    ")
    )
}

fn store(leaders: Option<u64>) -> Reply {
    ok(&Store::new(4, ME).leaders(leaders).json())
}

fn store_in(state: &'static str) -> Reply {
    ok(&Store::new(4, ME).state(state).json())
}

const STORES: &str = "GET /pd/api/v1/stores";
const STORE_4: &str = "GET /pd/api/v1/store/4";
const ADD_SCHEDULER: &str = "POST /pd/api/v1/schedulers";
const EVICTED: &str = "GET /pd/api/v1/scheduler-config/evict-leader-scheduler/list";
const REMOVE_SCHEDULER_4: &str = "DELETE /pd/api/v1/schedulers/evict-leader-scheduler-4";
const MARKER: &str = ".tidb-gitops-evicting";

// ---------------------------------------------------------------- tikv-prestop

struct Prestop {
    sandbox: Sandbox,
    pd: FakePd,
}

impl Prestop {
    fn new() -> Prestop {
        Prestop {
            sandbox: sandbox(TIKV_PRESTOP_TOOLS),
            pd: FakePd::start(),
        }
    }

    fn run(&self, env: &[(&str, &str)]) -> Finished {
        self.run_against(&self.pd.url, env)
    }

    fn run_against(&self, pd_url: &str, env: &[(&str, &str)]) -> Finished {
        let data = self.sandbox.data_dir();
        let mut all = vec![
            ("PD_URL", pd_url),
            ("ADVERTISE_ADDR", ME),
            ("DATA_DIR", data.as_str()),
            ("POLL_SECONDS", "0.05"),
            ("HTTP_TIMEOUT_SECONDS", "2"),
        ];
        all.extend_from_slice(env);
        let finished = self.sandbox.run(TIKV_PRESTOP, &all, &[]);
        // A preStop hook always exits 0.
        self.sandbox.assert_ended(&finished, 0, "tikv-prestop: ");
        finished
    }

    fn marker(&self) -> Option<String> {
        std::fs::read_to_string(self.sandbox.data().join(MARKER)).ok()
    }

    /// Asserts the marker names store 4 on its first line, and nothing else
    /// is left in the data directory.
    fn assert_marked(&self) {
        let marker = self.marker().expect("the marker was not written");
        let lines: Vec<&str> = marker.lines().collect();
        assert_eq!(lines.len(), 2, "{marker:?}");
        assert_eq!(lines[0], "4", "{marker:?}");
        assert_eq!(list(&self.sandbox.data()), [MARKER]);
    }

    /// PD with store 4 among others; a person evicts stores 1 and 14.
    fn serve_cluster(&self) {
        self.pd
            .on(STORES, vec![ok(&cluster(Store::new(4, ME)))])
            .on(EVICTED, vec![ok(&evicted_json(&[1, 14]))])
            .on(ADD_SCHEDULER, vec![ok("\"The scheduler is created.\"\n")]);
    }
}

#[test]
fn tikv_prestop_evicts_the_leaders_of_its_own_store_among_several() {
    let hook = Prestop::new();
    hook.serve_cluster();
    hook.pd.on(STORE_4, vec![store(Some(0))]);
    hook.run(&[]);
    let requests = hook.pd.requests();
    assert_eq!(hook.pd.calls(), [STORES, EVICTED, ADD_SCHEDULER, STORE_4]);
    assert_eq!(
        requests[2].body,
        r#"{"name":"evict-leader-scheduler","store_id":4}"#
    );
    assert_eq!(
        requests[2].content_type.as_deref(),
        Some("application/json")
    );
    hook.assert_marked();
    hook.sandbox.assert_logged("store 4 has no leader left");
}

#[test]
fn tikv_prestop_reads_compact_json_too() {
    let hook = Prestop::new();
    let stores = compact(&cluster(Store::new(4, ME)));
    assert!(!stores.contains('\n'));
    let busy = compact(&Store::new(4, ME).leaders(Some(10)).json());
    let idle = compact(&Store::new(4, ME).leaders(None).json());
    hook.pd
        .on(STORES, vec![ok(&stores)])
        .on(ADD_SCHEDULER, vec![ok("\"The scheduler is created.\"")])
        .on(STORE_4, vec![ok(&busy), ok(&idle)]);
    hook.run(&[]);
    // No evict-leader scheduler at all: PD's 404.
    assert_eq!(
        hook.pd.calls(),
        [STORES, EVICTED, ADD_SCHEDULER, STORE_4, STORE_4]
    );
    assert_eq!(
        hook.pd.requests()[2].body,
        r#"{"name":"evict-leader-scheduler","store_id":4}"#
    );
    hook.sandbox.assert_logged("store 4 still has 10 leaders");
    hook.sandbox
        .assert_logged("store 4 has no leader left; done");
}

#[test]
fn tikv_prestop_waits_until_no_leader_is_left() {
    let hook = Prestop::new();
    hook.serve_cluster();
    // 12, a failed read, 3, then no leader_count at all (which means 0).
    hook.pd.on(
        STORE_4,
        vec![store(Some(12)), status500(), store(Some(3)), store(None)],
    );
    hook.run(&[]);
    assert_eq!(
        hook.pd.calls(),
        [
            STORES,
            EVICTED,
            ADD_SCHEDULER,
            STORE_4,
            STORE_4,
            STORE_4,
            STORE_4
        ]
    );
    for needle in [
        "store 4 still has 12 leaders",
        "did not answer GET /pd/api/v1/store/4",
        "store 4 still has 3 leaders",
        "store 4 has no leader left; done",
    ] {
        hook.sandbox.assert_logged(needle);
    }
    hook.assert_marked();
}

#[test]
fn tikv_prestop_gives_up_at_the_timeout() {
    let hook = Prestop::new();
    hook.serve_cluster();
    hook.pd.on(STORE_4, vec![store(Some(5))]);
    let finished = hook.run(&[("EVICT_TIMEOUT_SECONDS", "1"), ("POLL_SECONDS", "0.1")]);
    assert!(
        finished.elapsed >= Duration::from_secs(1) && finished.elapsed < Duration::from_secs(5),
        "{:?}",
        finished.elapsed
    );
    let polls = hook.pd.calls().iter().filter(|c| *c == STORE_4).count();
    assert!(polls >= 3, "{:?}", hook.pd.calls());
    hook.sandbox
        .assert_logged("still has leaders after 1s; giving up");
    hook.assert_marked();
}

#[test]
fn tikv_prestop_exits_at_once_when_pd_is_unreachable() {
    let hook = Prestop::new();
    let finished = hook.run_against(&refused_url(), &[]);
    assert!(
        finished.elapsed < Duration::from_secs(3),
        "{:?}",
        finished.elapsed
    );
    hook.sandbox
        .assert_logged("did not answer GET /pd/api/v1/stores");
    assert_eq!(hook.marker(), None);
}

#[test]
fn tikv_prestop_exits_at_once_when_pd_does_not_list_its_store() {
    let not_bootstrapped = status500();
    let without_me = ok(&stores_json(&neighbours()));
    // The same address twice: not a store to evict.
    let twice = ok(&stores_json(&[Store::new(4, ME), Store::new(8, ME)]));
    for reply in [not_bootstrapped, without_me, twice] {
        let hook = Prestop::new();
        hook.pd.on(STORES, vec![reply]);
        let finished = hook.run(&[]);
        assert!(
            finished.elapsed < Duration::from_secs(3),
            "{:?}",
            finished.elapsed
        );
        assert_eq!(hook.pd.calls(), [STORES]);
        assert_eq!(hook.marker(), None);
    }
}

#[test]
fn tikv_prestop_leaves_an_eviction_set_by_a_person_alone() {
    let hook = Prestop::new();
    hook.serve_cluster();
    hook.pd
        .on(EVICTED, vec![ok(&evicted_json(&[1, 4]))])
        .on(STORE_4, vec![store(Some(2)), store(None)]);
    hook.run(&[]);
    // No marker and no scheduler of its own: the next start must not remove
    // the person's scheduler. It still waits for the leaders to go.
    assert_eq!(hook.pd.calls(), [STORES, EVICTED, STORE_4, STORE_4]);
    assert_eq!(hook.marker(), None);
    assert!(list(&hook.sandbox.data()).is_empty());
    hook.sandbox
        .assert_logged("did not add; leaving it as it is");
}

#[test]
fn tikv_prestop_renews_the_marker_of_an_unfinished_earlier_stop() {
    let hook = Prestop::new();
    hook.serve_cluster();
    hook.pd
        .on(EVICTED, vec![ok(&evicted_json(&[4]))])
        .on(STORE_4, vec![store(None)]);
    std::fs::write(hook.sandbox.data().join(MARKER), "4\nearlier\n").unwrap();
    hook.run(&[]);
    // The eviction is its own (the marker says so): no need to ask.
    assert_eq!(hook.pd.calls(), [STORES, ADD_SCHEDULER, STORE_4]);
    hook.assert_marked();
    assert_ne!(hook.marker().as_deref(), Some("4\nearlier\n"));
}

#[test]
fn tikv_prestop_does_not_wait_when_pd_refuses_the_scheduler() {
    let hook = Prestop::new();
    hook.pd
        .on(STORES, vec![ok(&cluster(Store::new(4, ME)))])
        .on(ADD_SCHEDULER, vec![status500()])
        .on(STORE_4, vec![store(Some(12))]);
    hook.run(&[]);
    assert_eq!(hook.pd.calls(), [STORES, EVICTED, ADD_SCHEDULER]);
    // The request may have reached PD: the marker stays for the next start.
    hook.assert_marked();
    hook.sandbox
        .assert_logged("did not accept the evict-leader scheduler");
}

#[test]
fn tikv_prestop_does_not_evict_when_it_cannot_write_the_marker() {
    let hook = Prestop::new();
    hook.serve_cluster();
    let missing = hook.sandbox.path("missing");
    hook.run(&[("DATA_DIR", missing.to_str().unwrap())]);
    assert_eq!(hook.pd.calls(), [STORES, EVICTED]);
    hook.sandbox.assert_logged("could not write");
}

#[test]
fn tikv_prestop_exits_0_without_its_environment() {
    let hook = Prestop::new();
    let data = hook.sandbox.data_dir();
    let finished = hook.sandbox.run(
        TIKV_PRESTOP,
        &[("ADVERTISE_ADDR", ME), ("DATA_DIR", &data)],
        &[],
    );
    hook.sandbox.assert_ended(&finished, 0, "tikv-prestop: ");
    hook.sandbox.assert_logged("PD_URL is not set");
    assert!(hook.pd.calls().is_empty());
}

#[test]
fn tikv_prestop_exits_0_on_an_unexpected_error() {
    let hook = Prestop::new();
    hook.serve_cluster();
    hook.pd.on(STORE_4, vec![store(Some(5))]);
    // Without sleep the wait loop fails (set -e); the hook must still exit 0.
    std::fs::remove_file(hook.sandbox.path("bin/sleep")).unwrap();
    let data = hook.sandbox.data_dir();
    let finished = hook.sandbox.run(
        TIKV_PRESTOP,
        &[
            ("PD_URL", &hook.pd.url),
            ("ADVERTISE_ADDR", ME),
            ("DATA_DIR", &data),
        ],
        &[],
    );
    assert_eq!(finished.code, Some(0), "{}", hook.sandbox.stderr());
    assert_eq!(hook.pd.calls(), [STORES, EVICTED, ADD_SCHEDULER, STORE_4]);
    hook.sandbox
        .assert_logged("tikv-prestop: stopped early by an unexpected error (status 127)");
    hook.assert_marked();
}

// ---------------------------------------------------------------- tikv-start

struct Start {
    sandbox: Sandbox,
    pd: FakePd,
    /// This TiKV's own status server (GET /status).
    status: FakePd,
}

impl Start {
    fn new() -> Start {
        let status = FakePd::start();
        status.on("GET /status", vec![ok("")]);
        Start {
            sandbox: sandbox(TIKV_START_TOOLS),
            pd: FakePd::start(),
            status,
        }
    }

    fn args() -> Vec<String> {
        strings(&[
            "--pd=http://prod-pd.tidb-prod.svc:2379",
            &format!("--advertise-addr={ME}"),
            "--addr=0.0.0.0:20160",
            "--labels",
            "zone=a,host=node a",
            "",
            "--config=/etc/tikv/tikv.toml",
        ])
    }

    fn run(&self, env: &[(&str, &str)]) -> Finished {
        let data = self.sandbox.data_dir();
        let server = self.sandbox.server();
        let status_url = format!("{}/status", self.status.url);
        let mut all = vec![
            ("PD_URL", self.pd.url.as_str()),
            ("STATUS_URL", status_url.as_str()),
            ("ADVERTISE_ADDR", ME),
            ("DATA_DIR", data.as_str()),
            ("TIKV_SERVER", server.to_str().unwrap()),
            ("RETRY_SECONDS", "0.05"),
            ("HTTP_TIMEOUT_SECONDS", "2"),
        ];
        all.extend_from_slice(env);
        let finished = self.sandbox.run(TIKV_START, &all, &Start::args());
        self.sandbox.assert_execd(&finished, &Start::args());
        finished
    }

    fn marker_path(&self) -> PathBuf {
        self.sandbox.data().join(MARKER)
    }

    fn write_marker(&self, text: &str) {
        std::fs::write(self.marker_path(), text).unwrap();
    }

    fn marker(&self) -> Option<String> {
        std::fs::read_to_string(self.marker_path()).ok()
    }

    /// Waits until the background loop removed the marker, then checks it
    /// made no more calls and left nothing behind.
    fn wait_until_undone(&self) {
        wait_for("the marker is removed", || !self.marker_path().exists());
        self.assert_loop_ended();
        assert!(
            list(&self.sandbox.data()).is_empty(),
            "{:?}",
            list(&self.sandbox.data())
        );
    }

    /// Asserts that PD hears nothing more from the loop.
    fn assert_loop_ended(&self) {
        let calls = self.pd.calls().len();
        thread::sleep(Duration::from_millis(300));
        assert_eq!(self.pd.calls().len(), calls, "{:?}", self.pd.calls());
    }
}

#[test]
fn tikv_start_without_marker_execs_at_once_and_asks_pd_nothing() {
    let start = Start::new();
    start.pd.on(STORE_4, vec![store_in("Up")]);
    start.run(&[]);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(start.pd.calls(), Vec::<String>::new());
    assert_eq!(start.sandbox.stderr(), "");
}

#[test]
fn tikv_start_with_marker_removes_the_scheduler_once_the_store_is_up() {
    let start = Start::new();
    start.write_marker("4\n1730000000.123456.77.4242\n");
    start
        .pd
        .on(
            STORE_4,
            vec![
                Reply::Close,
                store_in("Offline"),
                store_in("Disconnected"),
                store_in("Up"),
            ],
        )
        .on(
            REMOVE_SCHEDULER_4,
            vec![
                status500(),
                status500(),
                ok("\"The scheduler is removed.\"\n"),
            ],
        );
    start.run(&[]);
    start.wait_until_undone();
    assert_eq!(
        start.pd.calls(),
        [
            STORE_4,
            STORE_4,
            STORE_4,
            STORE_4,
            REMOVE_SCHEDULER_4,
            STORE_4,
            REMOVE_SCHEDULER_4,
            STORE_4,
            REMOVE_SCHEDULER_4,
        ]
    );
    for needle in [
        "did not answer GET /pd/api/v1/store/4",
        "store 4 is \"Offline\", not Up yet",
        "store 4 is \"Disconnected\", not Up yet",
        "PD answered 500",
        "removed evict-leader-scheduler-4",
        "; done",
    ] {
        start.sandbox.assert_logged(needle);
    }
    for line in start.sandbox.stderr().lines() {
        assert!(line.starts_with("tikv-start: "), "{line:?}");
    }
}

#[test]
fn tikv_start_waits_for_its_own_status_server_before_it_asks_pd() {
    let start = Start::new();
    start.write_marker("4\nn\n");
    // The status server answers only on the third try (recovery done).
    start
        .status
        .on("GET /status", vec![status500(), Reply::Close, ok("")]);
    start.pd.on(STORE_4, vec![store_in("Up")]).on(
        REMOVE_SCHEDULER_4,
        vec![ok("\"The scheduler is removed.\"\n")],
    );
    start.run(&[]);
    start.wait_until_undone();
    assert_eq!(start.status.calls().len(), 3, "{:?}", start.status.calls());
    // PD was asked nothing until TiKV itself answered.
    assert_eq!(start.pd.calls(), [STORE_4, REMOVE_SCHEDULER_4]);
    start.sandbox.assert_logged("does not answer yet");
}

#[test]
fn tikv_start_takes_404_for_a_scheduler_already_gone() {
    let start = Start::new();
    start.write_marker("4\nn\n");
    start.pd.on(STORE_4, vec![store_in("Up")]).on(
        REMOVE_SCHEDULER_4,
        vec![Reply::Status(404, "\"scheduler not found\"\n".to_owned())],
    );
    start.run(&[]);
    start.wait_until_undone();
    assert_eq!(start.pd.calls(), [STORE_4, REMOVE_SCHEDULER_4]);
    start.sandbox.assert_logged("already gone");
}

#[test]
fn tikv_start_looks_its_store_up_when_the_marker_names_none() {
    for text in ["", "garbage\n"] {
        let start = Start::new();
        start.write_marker(text);
        start
            .pd
            .on(
                STORES,
                vec![
                    status500(),
                    ok(&cluster(Store::new(4, ME).state("Disconnected"))),
                ],
            )
            .on(STORE_4, vec![store_in("Up")])
            .on(
                REMOVE_SCHEDULER_4,
                vec![ok("\"The scheduler is removed.\"\n")],
            );
        start.run(&[]);
        start.wait_until_undone();
        assert_eq!(
            start.pd.calls(),
            [STORES, STORES, STORE_4, REMOVE_SCHEDULER_4]
        );
    }
}

#[test]
fn tikv_start_stops_when_the_pod_is_stopped_again() {
    let start = Start::new();
    start.write_marker("4\nfirst\n");
    let marker = start.marker_path();
    // tikv-prestop.sh writes a new marker while this loop still waits for the
    // store; by the next try the store is Up, but the pod is stopping.
    let new_stop: Hook = Arc::new(move || std::fs::write(&marker, "4\nsecond\n").unwrap());
    start.pd.on(
        STORE_4,
        vec![
            store_in("Disconnected"),
            Reply::After(new_stop, Box::new(store_in("Disconnected"))),
            store_in("Up"),
        ],
    );
    start.run(&[]);
    wait_for("the loop sees the new marker", || {
        start.sandbox.stderr().contains("was rewritten")
    });
    start.assert_loop_ended();
    assert_eq!(start.pd.calls(), [STORE_4, STORE_4]);
    assert_eq!(start.marker().as_deref(), Some("4\nsecond\n"));
}

#[test]
fn tikv_start_keeps_a_marker_rewritten_while_it_removed_the_scheduler() {
    let start = Start::new();
    start.write_marker("4\nfirst\n");
    let marker = start.marker_path();
    // A new stop writes its marker while PD handles the DELETE.
    let new_stop: Hook = Arc::new(move || std::fs::write(&marker, "4\nsecond\n").unwrap());
    start.pd.on(STORE_4, vec![store_in("Up")]).on(
        REMOVE_SCHEDULER_4,
        vec![Reply::After(
            new_stop,
            Box::new(ok("\"The scheduler is removed.\"\n")),
        )],
    );
    start.run(&[]);
    wait_for("the loop ends", || {
        start
            .sandbox
            .stderr()
            .contains("kept it for the next start")
    });
    start.assert_loop_ended();
    assert_eq!(start.pd.calls(), [STORE_4, REMOVE_SCHEDULER_4]);
    assert_eq!(start.marker().as_deref(), Some("4\nsecond\n"));
    assert_eq!(list(&start.sandbox.data()), [MARKER]);
}

#[test]
fn tikv_start_leaves_the_scheduler_alone_when_the_marker_disappears() {
    let start = Start::new();
    start.write_marker("4\nfirst\n");
    let marker = start.marker_path();
    // Someone removes the marker while the loop waits for the store.
    let removed: Hook = Arc::new(move || std::fs::remove_file(&marker).unwrap());
    start.pd.on(
        STORE_4,
        vec![
            store_in("Offline"),
            Reply::After(removed, Box::new(store_in("Offline"))),
            store_in("Up"),
        ],
    );
    start.run(&[]);
    wait_for("the loop ends", || {
        start.sandbox.stderr().contains("is gone")
    });
    start.assert_loop_ended();
    assert_eq!(start.pd.calls(), [STORE_4, STORE_4]);
}

#[test]
fn tikv_start_refuses_to_start_without_its_environment() {
    let start = Start::new();
    let data = start.sandbox.data_dir();
    let server = start.sandbox.server();
    let finished = start.sandbox.run(
        TIKV_START,
        &[
            ("PD_URL", &start.pd.url),
            ("DATA_DIR", &data),
            ("TIKV_SERVER", server.to_str().unwrap()),
        ],
        &Start::args(),
    );
    start.sandbox.assert_ended(&finished, 1, "tikv-start: ");
    start.sandbox.assert_logged("ADVERTISE_ADDR is not set");
    assert_eq!(start.sandbox.server_args(), None, "the server was started");
}

#[test]
fn tikv_scripts_source_pd_api_and_define_none_of_its_functions() {
    let pd_api = std::fs::read_to_string(PD_API).unwrap();
    let defined = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|line| line.strip_suffix("() {"))
            .filter(|name| !name.is_empty() && !name.contains(char::is_whitespace))
            .map(str::to_owned)
            .collect()
    };
    let shared = defined(&pd_api);
    assert!(shared.iter().any(|f| f == "json_flat"), "{shared:?}");
    for script in [TIKV_START, TIKV_PRESTOP, TIKV_GATE] {
        let text = std::fs::read_to_string(script).unwrap();
        assert!(
            text.lines()
                .any(|line| line == r#"source "${BASH_SOURCE[0]%/*}/pd-api.sh""#),
            "{script} does not source pd-api.sh from its own folder"
        );
        for name in defined(&text) {
            assert!(
                !shared.contains(&name),
                "{script} defines {name}() itself; it comes from pd-api.sh"
            );
        }
    }
}

// ---------------------------------------------------------------- pd-prestop

/// A PD member as PD's API shows it (GET /pd/api/v1/leader).
fn member_json(name: &str) -> String {
    let id = name.bytes().map(u64::from).sum::<u64>();
    format!(
        r#"{{
  "name": "{name}",
  "member_id": 1327{id},
  "peer_urls": [
    "http://prod-{name}.prod-pd-peer.tidb-prod.svc:2380"
  ],
  "client_urls": [
    "http://prod-{name}.prod-pd-peer.tidb-prod.svc:2379"
  ],
  "deploy_path": "/",
  "binary_version": "v8.5.1",
  "git_hash": "0b0c4bc2bcb5f4cb8bc0a0bd4ef34b36f2b3e3a1"
}}
"#
    )
}

/// PD's health list (GET /pd/api/v1/health).
fn health_json(members: &[(&str, bool)]) -> String {
    let entries: Vec<String> = members
        .iter()
        .map(|(name, health)| {
            format!(
                "{{\n    \"name\": \"{name}\",\n    \"member_id\": 1327{},\n    \
                 \"client_urls\": [\n      \"http://prod-{name}.prod-pd-peer.tidb-prod.svc:2379\"\n    ],\n    \
                 \"health\": {health}\n  }}",
                name.len()
            )
        })
        .collect();
    format!("[\n  {}\n]\n", entries.join(",\n  "))
}

fn leader(name: &str) -> Reply {
    ok(&member_json(name))
}

const LEADER: &str = "GET /pd/api/v1/leader";
const HEALTH: &str = "GET /pd/api/v1/health";
const RESIGN: &str = "POST /pd/api/v1/leader/resign";

struct PdHook {
    sandbox: Sandbox,
    pd: FakePd,
}

impl PdHook {
    fn new() -> PdHook {
        PdHook {
            sandbox: sandbox(PD_PRESTOP_TOOLS),
            pd: FakePd::start(),
        }
    }

    fn run(&self, env: &[(&str, &str)]) -> Finished {
        let mut all = vec![
            ("PD_NAME", "pd-1"),
            ("LOCAL_URL", self.pd.url.as_str()),
            ("POLL_SECONDS", "0.05"),
            ("HTTP_TIMEOUT_SECONDS", "2"),
        ];
        all.extend_from_slice(env);
        let finished = self.sandbox.run(PD_PRESTOP, &all, &[]);
        // A preStop hook always exits 0.
        self.sandbox.assert_ended(&finished, 0, "pd-prestop: ");
        finished
    }
}

#[test]
fn pd_prestop_transfers_leadership_to_a_healthy_member() {
    let hook = PdHook::new();
    hook.pd
        .on(LEADER, vec![leader("pd-1"), leader("pd-1"), leader("pd-2")])
        .on(
            HEALTH,
            vec![ok(&health_json(&[
                ("pd-0", false),
                ("pd-1", true),
                ("pd-2", true),
            ]))],
        )
        .on(
            "POST /pd/api/v1/leader/transfer/pd-2",
            vec![ok("\"The transfer command is submitted.\"\n")],
        );
    hook.run(&[]);
    assert_eq!(
        hook.pd.calls(),
        [
            LEADER,
            HEALTH,
            "POST /pd/api/v1/leader/transfer/pd-2",
            LEADER,
            LEADER
        ]
    );
    assert_eq!(hook.pd.requests()[2].body, "");
    hook.sandbox.assert_logged("pd-2 leads now; done");
}

#[test]
fn pd_prestop_does_nothing_when_another_member_leads() {
    // pd-10 is not pd-1.
    for other in ["pd-0", "pd-10"] {
        let hook = PdHook::new();
        hook.pd.on(LEADER, vec![leader(other)]).on(
            HEALTH,
            vec![ok(&health_json(&[("pd-0", true), ("pd-1", true)]))],
        );
        hook.run(&[]);
        assert_eq!(hook.pd.calls(), [LEADER]);
        hook.sandbox.assert_logged("nothing to do");
    }
}

#[test]
fn pd_prestop_resigns_when_no_other_member_is_healthy() {
    let hook = PdHook::new();
    hook.pd
        .on(LEADER, vec![leader("pd-1"), status500(), leader("pd-0")])
        .on(
            HEALTH,
            vec![ok(&health_json(&[
                ("pd-0", false),
                ("pd-1", true),
                ("pd-2", false),
            ]))],
        )
        .on(RESIGN, vec![ok("\"The resign command is submitted.\"\n")]);
    hook.run(&[]);
    assert_eq!(hook.pd.calls(), [LEADER, HEALTH, RESIGN, LEADER, LEADER]);
    hook.sandbox
        .assert_logged("no other member is reported healthy");
    hook.sandbox.assert_logged("pd-0 leads now; done");
}

#[test]
fn pd_prestop_resigns_when_the_transfer_fails() {
    let hook = PdHook::new();
    hook.pd
        .on(LEADER, vec![leader("pd-1"), leader("pd-2")])
        .on(
            HEALTH,
            vec![ok(&health_json(&[("pd-0", true), ("pd-1", true)]))],
        )
        .on("POST /pd/api/v1/leader/transfer/pd-0", vec![status500()])
        .on(RESIGN, vec![ok("\"The resign command is submitted.\"\n")]);
    hook.run(&[]);
    assert_eq!(
        hook.pd.calls(),
        [
            LEADER,
            HEALTH,
            "POST /pd/api/v1/leader/transfer/pd-0",
            RESIGN,
            LEADER
        ]
    );
}

#[test]
fn pd_prestop_gives_up_at_the_timeout() {
    let hook = PdHook::new();
    hook.pd
        .on(LEADER, vec![leader("pd-1")])
        .on(
            HEALTH,
            vec![ok(&health_json(&[("pd-1", true), ("pd-2", true)]))],
        )
        .on(
            "POST /pd/api/v1/leader/transfer/pd-2",
            vec![ok("\"The transfer command is submitted.\"\n")],
        );
    let finished = hook.run(&[("TRANSFER_TIMEOUT_SECONDS", "1"), ("POLL_SECONDS", "0.1")]);
    assert!(
        finished.elapsed >= Duration::from_secs(1) && finished.elapsed < Duration::from_secs(5),
        "{:?}",
        finished.elapsed
    );
    let polls = hook.pd.calls().iter().filter(|c| *c == LEADER).count();
    assert!(polls >= 4, "{:?}", hook.pd.calls());
    hook.sandbox.assert_logged("giving up");
}

#[test]
fn pd_prestop_exits_0_when_pd_is_down() {
    for url in [refused_url(), FakePd::start().url] {
        // A PD that answers 404 to everything is as good as down.
        let hook = PdHook::new();
        let finished = hook.run(&[("LOCAL_URL", &url)]);
        assert!(
            finished.elapsed < Duration::from_secs(3),
            "{:?}",
            finished.elapsed
        );
        hook.sandbox.assert_logged("did not name a leader");
    }
}

#[test]
fn pd_prestop_exits_0_without_its_environment() {
    let hook = PdHook::new();
    let finished = hook
        .sandbox
        .run(PD_PRESTOP, &[("LOCAL_URL", &hook.pd.url)], &[]);
    hook.sandbox.assert_ended(&finished, 0, "pd-prestop: ");
    hook.sandbox.assert_logged("PD_NAME is not set");
    assert!(hook.pd.calls().is_empty());
}
