//! The gate Job after a TiKV wave (`src/pod/tikv-gate.sh`), run under bash
//! with a cleared environment whose PATH holds only the tools it may use from
//! the TiKV image. A fake PD on 127.0.0.1 records every request and answers
//! each route from a sequence (the last answer repeats), so PD's state can
//! change from one poll to the next: every poll asks for the store list, then
//! the down-peer and the pending-peer Regions, once each.

mod common;

use common::{FakePd, Reply, Store, compact, host_tool, indent, not_bootstrapped, ok, stores_json};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

const TIKV_GATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/tikv-gate.sh");
const PD_API: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-api.sh");

/// Tools the gate may use; every one is in the TiKV image.
const TOOLS: &[&str] = &["bash", "wget", "grep", "sleep"];

/// A gate still running after this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(20);
/// How long a "keeps waiting" test lets the gate poll.
const WAIT_FOR: Duration = Duration::from_millis(1200);
/// The polls of a waiting gate: several within WAIT_FOR, not a busy loop.
const WAITING: &[(&str, Option<&str>)] = &[("POLL_SECONDS", Some("0.05"))];

const STORES: &str = "GET /pd/api/v1/stores";
const DOWN: &str = "GET /pd/api/v1/regions/check/down-peer";
const PENDING: &str = "GET /pd/api/v1/regions/check/pending-peer";

/// The wave's stores, as the compiler passes them in STORES.
const WAVE: [&str; 3] = [
    "prod-tikv-0-0.prod-tikv-peer.tidb-prod.svc:20160",
    "prod-tikv-3-0.prod-tikv-peer.tidb-prod.svc:20160",
    "prod-tikv-6-0.prod-tikv-peer.tidb-prod.svc:20160",
];

// ---------------------------------------------------------------- fake PD

/// What the gate asks the common fake PD.
trait GatePd {
    fn healthy(&self) -> &FakePd;
    fn count(&self, route: &str) -> usize;
    fn assert_polled(&self, polls: Option<usize>);
}

impl GatePd for FakePd {
    /// A healthy cluster: the wave Up, no down or pending peer.
    fn healthy(&self) -> &FakePd {
        self.on(STORES, vec![ok(&stores_json(&wave_up()))])
            .on(DOWN, vec![ok(&regions_json(0, "down_peers"))])
            .on(PENDING, vec![ok(&regions_json(0, "pending_peers"))])
    }

    /// How many requests `route` got.
    fn count(&self, route: &str) -> usize {
        self.calls().iter().filter(|c| *c == route).count()
    }

    /// Asserts the gate asked only for the three things it checks, once each
    /// per poll, `polls` times (None: any number, at least 3).
    fn assert_polled(&self, polls: Option<usize>) {
        let calls = self.calls();
        for call in &calls {
            assert!(
                [STORES, DOWN, PENDING].contains(&call.as_str()),
                "unexpected request {call:?} in {calls:?}"
            );
        }
        let stores = self.count(STORES);
        match polls {
            Some(n) => assert_eq!(stores, n, "{calls:?}"),
            None => assert!(stores >= 3, "only {stores} polls: {calls:?}"),
        }
        // The poll in progress when a running gate was stopped may be short.
        for route in [DOWN, PENDING] {
            assert!(
                self.count(route) == stores || self.count(route) + 1 == stores,
                "{route}: {calls:?}"
            );
        }
        if polls.is_some() {
            assert_eq!(self.count(DOWN), stores, "{calls:?}");
            assert_eq!(self.count(PENDING), stores, "{calls:?}");
        }
    }
}

// ---------------------------------------------------------------- PD's JSON

/// A store as PD lists it; its deploy path holds JSON punctuation, escaped
/// quotes and a backslash, which the gate's parser must step over.
fn store(id: u64, address: &str, state: &'static str) -> Store {
    Store::new(id, address)
        .state(state)
        .deploy_path(r#"/data/tikv \"x\", {y}: [z] \\"#)
}

/// The wave's stores, all Up.
fn wave_up() -> Vec<Store> {
    WAVE.iter()
        .zip([1, 4, 7])
        .map(|(address, id)| store(id, address, "Up"))
        .collect()
}

/// The wave with the store at `index` in `state`.
fn wave_with(index: usize, state: &'static str) -> Vec<Store> {
    let mut stores = wave_up();
    stores[index].state = state;
    stores
}

/// The reply to GET /pd/api/v1/regions/check/{down,pending}-peer: `count`
/// Regions, each with the peer on store 4 listed under `field`
/// ("down_peers" or "pending_peers"), indented as PD does.
fn regions_json(count: usize, field: &str) -> String {
    if count == 0 {
        return "{\n  \"count\": 0,\n  \"regions\": []\n}\n".to_owned();
    }
    let peer = |id: usize, store: u64| {
        format!("{{\n  \"role_name\": \"Voter\",\n  \"id\": {id},\n  \"store_id\": {store}\n}}")
    };
    let regions: Vec<String> = (0..count)
        .map(|i| {
            let id = 1000 + i * 10;
            let listed = match field {
                "down_peers" => format!(
                    "{{\n  \"down_seconds\": 700,\n  \"peer\": {}\n}}",
                    indent(&peer(id + 2, 4), 2)
                ),
                _ => peer(id + 2, 4),
            };
            let peers = [peer(id + 1, 1), peer(id + 2, 4), peer(id + 3, 7)].map(|p| indent(&p, 4));
            format!(
                "{{\n  \"id\": {id},\n  \"start_key\": \"7480000000000000FF{i:04X}\",\n  \
                 \"end_key\": \"7480000000000000FF{:04X}\",\n  \
                 \"epoch\": {{\n    \"conf_ver\": 5,\n    \"version\": 3\n  }},\n  \
                 \"peers\": [\n    {}\n  ],\n  \"leader\": {},\n  \
                 \"{field}\": [\n    {}\n  ],\n  \
                 \"cpu_usage\": 0,\n  \"written_bytes\": 0,\n  \"read_bytes\": 0,\n  \
                 \"written_keys\": 0,\n  \"read_keys\": 0,\n  \
                 \"approximate_size\": 1,\n  \"approximate_keys\": 0\n}}",
                i + 1,
                peers.join(",\n    "),
                indent(&peer(id + 1, 1), 2),
                indent(&listed, 4),
            )
        })
        .map(|r| indent(&r, 4))
        .collect();
    format!(
        "{{\n  \"count\": {count},\n  \"regions\": [\n    {}\n  ]\n}}\n",
        regions.join(",\n    ")
    )
}

fn down(count: usize) -> Reply {
    ok(&regions_json(count, "down_peers"))
}

fn pending(count: usize) -> Reply {
    ok(&regions_json(count, "pending_peers"))
}

// ---------------------------------------------------------------- the gate

/// How a gate run ended.
struct Finished {
    code: Option<i32>,
    log: String,
}

/// A temp folder with a bin folder of the allowed tools and the gate's
/// output, next to a fake PD.
struct Gate {
    sandbox: common::Sandbox,
    pd: FakePd,
}

impl Gate {
    fn new() -> Gate {
        Gate {
            sandbox: common::Sandbox::new(TOOLS),
            pd: FakePd::start(),
        }
    }

    /// The gate's environment: the fake PD, the wave, fast polls, and then
    /// `env` (which wins; a value of None removes the variable).
    fn spawn(&self, env: &[(&str, Option<&str>)]) -> Child {
        let stores = WAVE.join(",");
        let mut vars: Vec<(&str, Option<&str>)> = vec![
            ("PD_URL", Some(&self.pd.url)),
            ("STORES", Some(&stores)),
            ("POLL_SECONDS", Some("0")),
            ("HTTP_TIMEOUT_SECONDS", Some("2")),
        ];
        vars.extend_from_slice(env);
        let mut command = self.sandbox.logged(TIKV_GATE);
        for (name, value) in vars {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command.spawn().expect("run bash")
    }

    /// Runs the gate to its end.
    fn run(&self, env: &[(&str, Option<&str>)]) -> Finished {
        let mut child = self.spawn(env);
        let Some(status) = common::wait_within(&mut child, SCRIPT_DEADLINE) else {
            panic!(
                "the gate did not finish within {SCRIPT_DEADLINE:?}:\n{}",
                self.log()
            );
        };
        let finished = Finished {
            code: status.code(),
            log: self.log(),
        };
        self.assert_clean_output(&finished.log);
        finished
    }

    /// Runs the gate for WAIT_FOR, then as `stop_waiting`.
    fn run_for_a_while(&self, env: &[(&str, Option<&str>)]) -> String {
        let child = self.spawn(&[env, WAITING].concat());
        thread::sleep(WAIT_FOR);
        self.stop_waiting(child)
    }

    /// Asserts the gate is still waiting, stops it and returns its log.
    fn stop_waiting(&self, mut child: Child) -> String {
        let status = child.try_wait().unwrap();
        if status.is_none() {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let log = self.log();
        assert_eq!(status, None, "the gate ended instead of waiting:\n{log}");
        self.assert_clean_output(&log);
        log
    }

    fn log(&self) -> String {
        self.sandbox.stderr()
    }

    /// Every line on stderr has the gate's prefix; nothing on stdout.
    fn assert_clean_output(&self, log: &str) {
        for line in log.lines() {
            assert!(line.starts_with("tikv-gate: "), "{line:?} in:\n{log}");
        }
        assert_eq!(self.sandbox.stdout(), "", "stdout");
    }
}

/// The poll lines of a log (the first line says what the gate waits for).
fn polls(log: &str) -> Vec<&str> {
    log.lines().skip(1).collect()
}

fn assert_done(finished: &Finished) {
    assert_eq!(finished.code, Some(0), "{}", finished.log);
    let last = finished.log.lines().last().unwrap_or_default();
    assert!(last.ends_with("; done"), "{}", finished.log);
}

fn assert_logged(log: &str, needle: &str) {
    assert!(log.contains(needle), "no {needle:?} in:\n{log}");
}

// ---------------------------------------------------------------- passing

#[test]
fn gate_exits_once_the_wave_is_up_and_no_peer_is_down_or_pending() {
    let gate = Gate::new();
    let mut offline = wave_with(1, "Offline");
    offline.remove(2);
    gate.pd
        .on(
            STORES,
            vec![
                not_bootstrapped(),
                ok(&stores_json(&offline)),
                ok(&stores_json(&wave_with(2, "Disconnected"))),
                ok(&stores_json(&wave_up())),
            ],
        )
        .on(DOWN, vec![not_bootstrapped(), down(0)])
        .on(
            PENDING,
            vec![
                not_bootstrapped(),
                pending(5),
                pending(5),
                pending(5),
                pending(0),
            ],
        );
    // STABLE_POLLS is left at its default, 3.
    let finished = gate.run(&[]);
    assert_done(&finished);
    // Four polls with something missing, then three clean ones.
    gate.pd.assert_polled(Some(7));
    let log = &finished.log;
    let lines = polls(log);
    assert_eq!(lines.len(), 7, "{log}");
    for line in &lines[..4] {
        assert!(line.starts_with("tikv-gate: not yet: "), "{log}");
    }
    assert_logged(lines[0], "no store list from PD");
    assert_logged(lines[0], "no down-peer count");
    assert_logged(lines[0], "no pending-peer count");
    assert_logged(
        lines[1],
        &format!(
            "not Up: {} (Offline), {} (not registered)",
            WAVE[1], WAVE[2]
        ),
    );
    assert_logged(lines[1], "Regions with a pending peer: 5");
    assert_logged(lines[2], &format!("not Up: {} (Disconnected)", WAVE[2]));
    assert!(!lines[3].contains("not Up"), "{log}");
    assert_logged(lines[3], "Regions with a pending peer: 5");
    assert_logged(lines[4], "1 of 3");
    assert_logged(lines[5], "2 of 3");
    assert_logged(lines[6], "3 of 3");
}

#[test]
fn gate_honours_stable_polls() {
    let gate = Gate::new();
    gate.pd.healthy();
    assert_done(&gate.run(&[("STABLE_POLLS", Some("1"))]));
    gate.pd.assert_polled(Some(1));

    let gate = Gate::new();
    gate.pd.healthy();
    assert_done(&gate.run(&[("STABLE_POLLS", Some("5"))]));
    gate.pd.assert_polled(Some(5));
}

#[test]
fn gate_does_not_count_a_clean_poll_followed_by_a_dirty_one() {
    let gate = Gate::new();
    gate.pd
        .on(
            STORES,
            vec![
                ok(&stores_json(&wave_up())),
                ok(&stores_json(&wave_up())),
                ok(&stores_json(&wave_up())),
                ok(&stores_json(&wave_up())),
                ok(&stores_json(&wave_with(0, "Disconnected"))),
                ok(&stores_json(&wave_up())),
            ],
        )
        .on(DOWN, vec![down(0)])
        .on(
            PENDING,
            vec![pending(0), pending(2), pending(0), pending(0)],
        );
    // Clean, dirty (pending), clean, clean, dirty (store), then clean from
    // poll 6 on: without a reset, poll 4 would already be the third clean one.
    let finished = gate.run(&[("STABLE_POLLS", Some("3"))]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(8));
    let lines = polls(&finished.log);
    assert_logged(lines[3], "2 of 3");
    assert_logged(lines[5], "1 of 3");
}

/// Replies that are not a count of Regions, or not a whole one.
fn bad_region_replies() -> Vec<Reply> {
    vec![
        Reply::Status(404, "404 page not found\n".to_owned()),
        not_bootstrapped(),
        Reply::Close,
        ok(""),
        ok("404 page not found\n"),
        ok("\"TiKV cluster not bootstrapped\""),
        ok("0"),
        ok("[{\"count\": 0}]"),
        ok("{}"),
        ok("{\"count\": \"0\", \"regions\": []}"),
        ok("{\"count\": null, \"regions\": []}"),
        // A count inside a Region is not the reply's count.
        ok("{\"regions\": [{\"id\": 2, \"count\": 0}]}"),
        // Truncated, or closed with the wrong bracket.
        ok("{\"count\": 0, \"regions\": ["),
        ok("{\"count\": 0, \"regions\": []"),
        ok("{\"count\": 0, \"regions\": [}]"),
        ok("}"),
    ]
}

#[test]
fn gate_takes_error_and_unparsable_replies_for_not_yet() {
    // Each bad reply comes alone in its poll, the other two checks clean, so
    // the gate (STABLE_POLLS=1) would stop early if it took one for clean.
    let gate = Gate::new();
    let bad_stores = vec![
        not_bootstrapped(),
        Reply::Close,
        ok(""),
        ok("<html><body>502 Bad Gateway</body></html>\n"),
        ok("not json"),
        ok("[]"),
        ok("{}"),
        ok("}"),
    ];
    let (s, r) = (bad_stores.len(), bad_region_replies().len());
    let stores: Vec<Reply> = bad_stores
        .into_iter()
        .chain([ok(&stores_json(&wave_up()))])
        .collect();
    let downs: Vec<Reply> = (0..s)
        .map(|_| down(0))
        .chain(bad_region_replies())
        .chain([down(0)])
        .collect();
    let pendings: Vec<Reply> = (0..s + r)
        .map(|_| pending(0))
        .chain(bad_region_replies())
        .chain([pending(0)])
        .collect();
    gate.pd
        .on(STORES, stores)
        .on(DOWN, downs)
        .on(PENDING, pendings);
    let finished = gate.run(&[("STABLE_POLLS", Some("1"))]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(s + 2 * r + 1));
    let lines = polls(&finished.log);
    let expect = |range: std::ops::Range<usize>, what: &str| {
        let expected =
            format!("tikv-gate: not yet: {what} (no reply, an error reply, or not JSON)");
        for line in &lines[range] {
            assert_eq!(*line, expected, "{}", finished.log);
        }
    };
    expect(0..s, "no store list from PD");
    expect(s..s + r, "no down-peer count from PD");
    expect(s + r..s + 2 * r, "no pending-peer count from PD");
}

#[test]
fn gate_reads_compact_json_too() {
    let gate = Gate::new();
    gate.pd
        .on(
            STORES,
            vec![
                ok(&compact(&stores_json(&wave_with(1, "Offline")))),
                ok(&compact(&stores_json(&wave_up()))),
            ],
        )
        .on(
            DOWN,
            vec![ok(&compact(&regions_json(2, "down_peers"))), down(0)],
        )
        .on(
            PENDING,
            vec![
                ok(&compact(&regions_json(3, "pending_peers"))),
                ok(&compact(&regions_json(0, "pending_peers"))),
            ],
        );
    let finished = gate.run(&[("STABLE_POLLS", Some("2"))]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(3));
    let first = polls(&finished.log)[0];
    assert_logged(first, &format!("not Up: {} (Offline)", WAVE[1]));
    assert_logged(first, "Regions with a down peer: 2");
    assert_logged(first, "Regions with a pending peer: 3");
}

#[test]
fn gate_ignores_stores_outside_its_wave_but_not_their_down_peers() {
    let gate = Gate::new();
    let mut stores = wave_up();
    // Other waves' stores, in states that would block if they were this
    // wave's, and addresses that contain or resemble the wave's.
    let mut lookalike = store(
        9,
        "prod-tikv-9-0.prod-tikv-peer.tidb-prod.svc:20160",
        "Down",
    );
    lookalike.peer_address = WAVE[0].to_owned();
    stores.extend([
        store(
            2,
            "prod-tikv-1-0.prod-tikv-peer.tidb-prod.svc:20160",
            "Down",
        ),
        store(
            5,
            "prod-tikv-4-0.prod-tikv-peer.tidb-prod.svc:20160",
            "Offline",
        ),
        store(8, &format!("x{}", WAVE[1]), "Disconnected"),
        store(10, &WAVE[2].replace("tidb-prod", "tidb-staging"), "Down"),
        lookalike,
    ]);
    gate.pd
        .on(STORES, vec![ok(&stores_json(&stores))])
        // The Down store's Regions have down peers until PD replaces them.
        .on(DOWN, vec![down(4), down(4), down(0)])
        .on(PENDING, vec![pending(0)]);
    let finished = gate.run(&[("STABLE_POLLS", Some("1"))]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(3));
    let lines = polls(&finished.log);
    assert_eq!(
        lines[0], "tikv-gate: not yet: Regions with a down peer: 4",
        "{}",
        finished.log
    );
}

#[test]
fn gate_never_asks_for_missing_peers() {
    // A new cluster created domain by domain: the first domain is Up, and
    // every Region lacks replicas until more domains exist.
    let gate = Gate::new();
    gate.pd.healthy().on(
        "GET /pd/api/v1/regions/check/miss-peer",
        vec![ok(&regions_json(12, "pending_peers"))],
    );
    let finished = gate.run(&[]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(3));
    assert!(
        gate.pd.calls().iter().all(|c| !c.contains("miss-peer")),
        "{:?}",
        gate.pd.calls()
    );
}

#[test]
fn gate_does_not_walk_a_long_region_list() {
    // A restarted domain leaves a pending peer in many Regions; parsing all
    // of them in bash would take minutes per poll.
    let gate = Gate::new();
    let long = pending(20_000);
    gate.pd
        .healthy()
        .on(PENDING, vec![long.clone(), long, pending(0)]);
    let start = Instant::now();
    let finished = gate.run(&[("STABLE_POLLS", Some("1"))]);
    assert_done(&finished);
    gate.pd.assert_polled(Some(3));
    assert_logged(&finished.log, "Regions with a pending peer: 20000");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

// ---------------------------------------------------------------- waiting

#[test]
fn gate_keeps_waiting_while_a_store_of_the_wave_is_not_up() {
    let cases = [
        (
            wave_with(1, "Disconnected"),
            format!("{} (Disconnected)", WAVE[1]),
        ),
        (wave_with(2, "Offline"), format!("{} (Offline)", WAVE[2])),
        (wave_with(0, "Down"), format!("{} (Down)", WAVE[0])),
        (
            wave_up()[..2].to_vec(),
            format!("{} (not registered)", WAVE[2]),
        ),
    ];
    // All at once, to keep the test short.
    let running: Vec<(Gate, Child, String)> = cases
        .into_iter()
        .map(|(stores, needle)| {
            let gate = Gate::new();
            gate.pd
                .healthy()
                .on(STORES, vec![ok(&stores_json(&stores))]);
            let child = gate.spawn(&[WAITING, &[("STABLE_POLLS", Some("1"))]].concat());
            (gate, child, needle)
        })
        .collect();
    thread::sleep(WAIT_FOR);
    for (gate, child, needle) in running {
        let log = gate.stop_waiting(child);
        gate.pd.assert_polled(None);
        for line in polls(&log) {
            assert_eq!(
                line,
                format!("tikv-gate: not yet: not Up: {needle}"),
                "{log}"
            );
        }
    }
}

#[test]
fn gate_keeps_waiting_before_pd_has_a_cluster() {
    let gate = Gate::new();
    gate.pd
        .on(STORES, vec![not_bootstrapped()])
        .on(DOWN, vec![not_bootstrapped()])
        .on(PENDING, vec![not_bootstrapped()]);
    let log = gate.run_for_a_while(&[("STABLE_POLLS", Some("1"))]);
    gate.pd.assert_polled(None);
    assert_logged(&log, "no store list from PD");
}

#[test]
fn gate_keeps_waiting_while_a_region_has_a_down_peer() {
    let gate = Gate::new();
    gate.pd.healthy().on(DOWN, vec![down(1)]);
    let log = gate.run_for_a_while(&[("STABLE_POLLS", Some("1"))]);
    gate.pd.assert_polled(None);
    for line in polls(&log) {
        assert_eq!(
            line, "tikv-gate: not yet: Regions with a down peer: 1",
            "{log}"
        );
    }
}

#[test]
fn gate_keeps_waiting_while_a_region_has_a_pending_peer() {
    let gate = Gate::new();
    gate.pd.healthy().on(PENDING, vec![pending(5)]);
    let log = gate.run_for_a_while(&[("STABLE_POLLS", Some("1"))]);
    gate.pd.assert_polled(None);
    for line in polls(&log) {
        assert_eq!(
            line, "tikv-gate: not yet: Regions with a pending peer: 5",
            "{log}"
        );
    }
}

#[test]
fn gate_keeps_waiting_while_clean_and_dirty_polls_alternate() {
    let gate = Gate::new();
    let flapping: Vec<Reply> = (0..100).map(|i| pending(i % 2)).collect();
    gate.pd.healthy().on(PENDING, flapping);
    let log = gate.run_for_a_while(&[("STABLE_POLLS", Some("2"))]);
    gate.pd.assert_polled(None);
    assert!(!log.contains("2 of 2"), "{log}");
}

#[test]
fn gate_ends_at_once_on_sigterm() {
    // In the Job, bash is PID 1 and would ignore SIGTERM without a handler.
    let gate = Gate::new();
    gate.pd.healthy().on(PENDING, vec![pending(1)]);
    let mut child = gate.spawn(WAITING);
    let start = Instant::now();
    while polls(&gate.log()).is_empty() {
        assert!(
            start.elapsed() < SCRIPT_DEADLINE,
            "no poll:\n{}",
            gate.log()
        );
        thread::sleep(Duration::from_millis(10));
    }
    let killed = Command::new(host_tool("kill"))
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            panic!("the gate did not end on SIGTERM:\n{}", gate.log());
        }
        thread::sleep(Duration::from_millis(10));
    };
    let log = gate.log();
    assert_eq!(status.code(), Some(143), "{log}");
    assert_eq!(
        log.lines().last(),
        Some("tikv-gate: stopped by a signal before the wave was ready"),
        "{log}"
    );
}

// ---------------------------------------------------------------- refusing

#[test]
fn gate_refuses_to_start_without_a_valid_environment() {
    for (env, needle) in [
        (("PD_URL", None), "PD_URL is not set"),
        (("STORES", None), "STORES is not set"),
        (("STORES", Some(" , ,")), "names no store address"),
        (("POLL_SECONDS", Some("10s")), "POLL_SECONDS='10s'"),
        (
            ("HTTP_TIMEOUT_SECONDS", Some("-1")),
            "HTTP_TIMEOUT_SECONDS='-1'",
        ),
        (("STABLE_POLLS", Some("0")), "STABLE_POLLS='0'"),
        (("STABLE_POLLS", Some("1.5")), "STABLE_POLLS='1.5'"),
    ] {
        let gate = Gate::new();
        gate.pd.healthy();
        let finished = gate.run(&[env]);
        assert_eq!(finished.code, Some(1), "{env:?}: {}", finished.log);
        assert_logged(&finished.log, needle);
        assert_eq!(gate.pd.calls(), Vec::<String>::new(), "{env:?}");
    }
}

// ---------------------------------------------------------------- the text

#[test]
fn gate_writes_no_here_documents() {
    // bash writes a here-document or here-string longer than a pipe buffer to
    // a temp file, and the gate's Job has a read-only root filesystem and no
    // /tmp: a store list of some 40 stores would break it. The same holds for
    // pd-api.sh, which the gate sources.
    for script in [TIKV_GATE, PD_API] {
        let text = std::fs::read_to_string(script).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with('#') {
                continue;
            }
            assert!(!code.contains("<<"), "{script} line {}: {line}", n + 1);
        }
    }
}
