//! `src/pod/pd-settings.sh`, the Job that applies PD's stored settings through
//! pd-ctl, run under bash with a cleared environment whose PATH holds only the
//! tools the script may use. A fake pd-ctl records each call's argv and can be
//! told, through files next to it, to fail its first N calls.

mod common;

use common::{host_tool, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const PD_SETTINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-settings.sh");

/// Tools the script may use; both are in the PD image.
const TOOLS: &[&str] = &["bash", "sleep", "wget"];

const PD_URL: &str = "http://prod-pd.tidb-prod.svc:2379";

/// A script slower than this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);

/// What real pd-ctl prints when PD refuses or cannot be reached; it exits 0.
const FAILED: &str = "Failed to set config: [PD:client:ErrClientGetLeader]get leader failed";

/// The fake pd-ctl. Call n (from 1) writes its argv, NUL-terminated, to
/// `call-n`. While n <= the number in `fail-first` it prints the text of
/// `fail-output` followed by " #n" to stderr and exits with the status in
/// `fail-status` (default 0, as real pd-ctl does); otherwise it prints
/// "Success!". Like real pd-ctl, it appends what it reads from a stdin that is
/// not a character device to its arguments. Only bash builtins, so it needs
/// nothing on PATH.
const FAKE_PD_CTL: &str = r#"
dir="${0%/*}"
if [[ ! -c /dev/stdin ]]; then
  set -- "$@" "$(</dev/stdin)"
fi
n=0
[[ -f "$dir/count" ]] && n="$(<"$dir/count")"
n=$((n + 1))
printf '%s' "$n" >"$dir/count"
printf '%s\0' "$@" >"$dir/call-$n"
fail_first=0
[[ -f "$dir/fail-first" ]] && fail_first="$(<"$dir/fail-first")"
if ((n <= fail_first)); then
  status=0
  [[ -f "$dir/fail-status" ]] && status="$(<"$dir/fail-status")"
  printf '%s #%s\n' "$(<"$dir/fail-output")" "$n" >&2
  exit "$status"
fi
echo "Success!"
"#;

/// The common sandbox (bin folder of TOOLS) with the fake pd-ctl.
struct Sandbox {
    base: common::Sandbox,
}

impl Sandbox {
    fn new() -> Sandbox {
        let sandbox = Sandbox {
            base: common::Sandbox::new(TOOLS),
        };
        let fake = format!("#!{}\n{FAKE_PD_CTL}", host_tool("bash").display());
        std::fs::write(sandbox.pd_ctl(), fake).unwrap();
        std::fs::set_permissions(sandbox.pd_ctl(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(sandbox.path("fail-output"), FAILED).unwrap();
        sandbox
    }

    fn path(&self, name: &str) -> PathBuf {
        self.base.path(name)
    }

    fn pd_ctl(&self) -> PathBuf {
        self.path("pd-ctl")
    }

    /// The next `n` calls fail: they print `output` and exit with `status`.
    fn fail_first(&self, n: usize, output: &str, status: i32) {
        std::fs::write(self.path("fail-first"), n.to_string()).unwrap();
        std::fs::write(self.path("fail-output"), output).unwrap();
        std::fs::write(self.path("fail-status"), status.to_string()).unwrap();
    }

    /// Runs the script with `args` and, besides PD_URL, PD_CTL and
    /// RETRY_SECONDS=0, the variables in `env` (which win).
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let pd_ctl = self.pd_ctl();
        let mut all = vec![
            ("PD_URL", PD_URL),
            ("PD_CTL", pd_ctl.to_str().unwrap()),
            ("RETRY_SECONDS", "0"),
        ];
        all.extend_from_slice(env);
        let mut command = self.base.bash(PD_SETTINGS);
        command
            .args(args)
            .envs(all)
            // A pipe at EOF, not /dev/null: the script must not hand its
            // stdin to pd-ctl, which would read it as more arguments.
            .stdin(Stdio::piped());
        common::output_within(&mut command, SCRIPT_DEADLINE, "pd-settings.sh")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// The argv of every pd-ctl call, in order.
    fn calls(&self) -> Vec<Vec<String>> {
        (1..)
            .map(|n| std::fs::read_to_string(self.path(&format!("call-{n}"))))
            .take_while(Result::is_ok)
            .map(|argv| {
                argv.unwrap()
                    .split_terminator('\0')
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }
}

/// The argv pd-settings.sh gives pd-ctl for one setting.
fn set(key: &str, value: &str) -> Vec<String> {
    ["-u", PD_URL, "config", "set", key, value]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(output),
        stderr(output)
    );
}

#[test]
fn applies_every_setting_in_order_with_exact_argv() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[
        "location-labels=zone,rack,host",
        "isolation-level=zone",
        "max-replicas=3",
        "store-limit-mode=a=b=c",
    ]);
    assert_exit(&output, 0);
    assert_eq!(
        sandbox.calls(),
        [
            set("location-labels", "zone,rack,host"),
            set("isolation-level", "zone"),
            set("max-replicas", "3"),
            set("store-limit-mode", "a=b=c"),
        ]
    );
    assert_eq!(
        stdout(&output),
        "pd-settings: set location-labels = zone,rack,host\n\
         pd-settings: set isolation-level = zone\n\
         pd-settings: set max-replicas = 3\n\
         pd-settings: set store-limit-mode = a=b=c\n\
         pd-settings: 4 settings applied\n"
    );
}

#[test]
fn passes_an_empty_value_as_an_empty_argument() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["isolation-level="]);
    assert_exit(&output, 0);
    assert_eq!(sandbox.calls(), [set("isolation-level", "")]);
    assert!(
        stdout(&output).ends_with("pd-settings: 1 settings applied\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn retries_through_failures_then_succeeds() {
    let sandbox = Sandbox::new();
    sandbox.fail_first(2, FAILED, 1);
    let output = sandbox.run_with(
        &["max-replicas=5", "leader-schedule-limit=4"],
        &[("ATTEMPTS", "3")],
    );
    assert_exit(&output, 0);
    let first = set("max-replicas", "5");
    assert_eq!(
        sandbox.calls(),
        [
            first.clone(),
            first.clone(),
            first,
            set("leader-schedule-limit", "4"),
        ]
    );
    assert_eq!(
        stdout(&output),
        "pd-settings: set max-replicas = 5\n\
         pd-settings: set leader-schedule-limit = 4\n\
         pd-settings: 2 settings applied\n"
    );
    let message = stderr(&output);
    assert!(message.contains("retrying"), "{message}");
    assert!(message.contains(&format!("{FAILED} #2")), "{message}");
}

#[test]
fn waits_retry_seconds_between_attempts() {
    let sandbox = Sandbox::new();
    sandbox.fail_first(2, FAILED, 0);
    let start = Instant::now();
    let output = sandbox.run_with(&["max-replicas=3"], &[("RETRY_SECONDS", "0.3")]);
    let elapsed = start.elapsed();
    assert_exit(&output, 0);
    assert_eq!(sandbox.calls().len(), 3);
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
}

#[test]
fn gives_up_after_attempts_naming_the_key() {
    let sandbox = Sandbox::new();
    sandbox.fail_first(100, FAILED, 1);
    let output = sandbox.run_with(
        &["max-replicas=3", "isolation-level=zone"],
        &[("ATTEMPTS", "4")],
    );
    assert_exit(&output, 1);
    assert_eq!(sandbox.calls(), vec![set("max-replicas", "3"); 4]);
    let message = stderr(&output);
    let last = message.lines().last().unwrap_or_default();
    assert!(last.starts_with("pd-settings: "), "{message}");
    for needle in ["max-replicas", "4 attempts", &format!("{FAILED} #4")] {
        assert!(last.contains(needle), "no {needle:?} in {last}");
    }
    assert!(!last.contains("isolation-level"), "{last}");
    assert!(
        !stdout(&output).contains("settings applied"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn attempts_default_to_30() {
    let sandbox = Sandbox::new();
    sandbox.fail_first(100, FAILED, 0);
    let output = sandbox.run(&["max-replicas=3"]);
    assert_exit(&output, 1);
    assert_eq!(sandbox.calls().len(), 30);
}

#[test]
fn an_output_without_success_counts_as_failure() {
    // Real pd-ctl reports a refused value with exit status 0.
    let sandbox = Sandbox::new();
    let refused = "Failed to set config: [400] \"isolation-level zone is not in location-labels\"";
    sandbox.fail_first(100, refused, 0);
    let output = sandbox.run_with(&["isolation-level=zone"], &[("ATTEMPTS", "2")]);
    assert_exit(&output, 1);
    assert_eq!(sandbox.calls(), vec![set("isolation-level", "zone"); 2]);
    let message = stderr(&output);
    assert!(message.contains("isolation-level"), "{message}");
    assert!(message.contains(&format!("{refused} #2")), "{message}");
}

#[test]
fn a_failing_exit_status_counts_as_failure_even_after_success() {
    let sandbox = Sandbox::new();
    sandbox.fail_first(100, "Success!", 1);
    let output = sandbox.run_with(&["max-replicas=3"], &[("ATTEMPTS", "2")]);
    assert_exit(&output, 1);
    assert_eq!(sandbox.calls().len(), 2);
    assert!(
        stderr(&output).contains("max-replicas"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_bad_argument_exits_2_without_calling_pd_ctl() {
    for bad in ["max-replicas", "=3", ""] {
        let sandbox = Sandbox::new();
        // A valid setting before the bad one must not be applied either.
        let output = sandbox.run(&["location-labels=zone,host", bad]);
        assert_exit(&output, 2);
        assert_eq!(sandbox.calls(), Vec::<Vec<String>>::new(), "{bad:?}");
        assert!(stdout(&output).is_empty(), "{}", stdout(&output));
        let message = stderr(&output);
        assert!(message.starts_with("pd-settings: "), "{message}");
        assert!(message.contains(&format!("'{bad}'")), "{message}");
    }
}

#[test]
fn bad_environment_exits_2_without_calling_pd_ctl() {
    for env in [
        [("PD_URL", ""), ("ATTEMPTS", "3")],
        [("ATTEMPTS", "0"), ("RETRY_SECONDS", "0")],
        [("ATTEMPTS", "three"), ("RETRY_SECONDS", "0")],
        [("ATTEMPTS", "3"), ("RETRY_SECONDS", "-1")],
    ] {
        let sandbox = Sandbox::new();
        let output = sandbox.run_with(&["max-replicas=3"], &env);
        assert_exit(&output, 2);
        assert!(sandbox.calls().is_empty(), "{env:?}");
        assert!(
            stderr(&output).starts_with("pd-settings: "),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn no_arguments_applies_nothing() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&[]);
    assert_exit(&output, 0);
    assert_eq!(stdout(&output), "pd-settings: 0 settings applied\n");
    assert!(sandbox.calls().is_empty());
}

#[test]
fn replication_goes_to_pd_in_one_request_before_the_other_settings() {
    let pd = common::FakePd::start();
    pd.on(
        "POST /pd/api/v1/config/replicate",
        vec![
            common::Reply::Status(500, "\"not leader\"".into()),
            common::ok("\"The config is updated.\""),
        ],
    );
    let sandbox = Sandbox::new();
    let json = r#"{"isolation-level":"zone","location-labels":"zone,host","max-replicas":3}"#;
    let output = sandbox.run_with(
        &["leader-schedule-limit=4"],
        &[("PD_URL", pd.url.as_str()), ("REPLICATION_JSON", json)],
    );
    assert_exit(&output, 0);
    let posts: Vec<_> = pd
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/pd/api/v1/config/replicate")
        .collect();
    assert_eq!(posts.len(), 2, "retried once after the 500");
    assert!(posts.iter().all(|r| r.body == json), "{posts:?}");
    assert_eq!(posts[1].content_type.as_deref(), Some("application/json"));
    // pd-ctl ran after the replication config was accepted.
    let calls = sandbox.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0][1], pd.url);
    assert!(stdout(&output).contains("set replication"));
}

#[test]
fn a_refused_replication_config_stops_before_the_other_settings() {
    let pd = common::FakePd::start();
    pd.on(
        "POST /pd/api/v1/config/replicate",
        vec![common::Reply::Status(400, "\"invalid\"".into())],
    );
    let sandbox = Sandbox::new();
    let output = sandbox.run_with(
        &["leader-schedule-limit=4"],
        &[
            ("PD_URL", pd.url.as_str()),
            ("REPLICATION_JSON", r#"{"max-replicas":3}"#),
            ("ATTEMPTS", "2"),
        ],
    );
    assert_exit(&output, 1);
    assert!(stderr(&output).contains("could not set the replication config"));
    assert_eq!(pd.calls().len(), 2);
    assert!(sandbox.calls().is_empty(), "pd-ctl must not run");
}
