//! The scripts that run inside pods (`src/pod/*.sh`), run under bash with a
//! cleared environment whose PATH holds only the tools the script may use from
//! its image. A fake server records the arguments it was exec'd with; a fake
//! PD on 127.0.0.1 plays the other members.

mod common;

use common::{FakePd, Reply, list, ok, refused_url, stderr, strings};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const INIT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/init-dir.sh");
const PD_START: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/pd-start.sh");
const TIDB_START: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod/tidb-start.sh");

/// Tools each script may use; every one is in the image that runs it.
const INIT_DIR_TOOLS: &[&str] = &["bash", "mv", "sync"];
const PD_TOOLS: &[&str] = &["bash", "getent", "wget", "sleep"];
const TIDB_TOOLS: &[&str] = &["bash", "rm"];

/// A script slower than this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);

/// Runs the scripts here with pipes: none of them leaves a process behind.
trait PipedRun {
    fn run(&self, script: &str, env: &[(&str, &str)]) -> Output;
    fn assert_execd(&self, output: &Output, args: &[String]);
    fn assert_refused(&self, output: &Output, prefix: &str);
}

/// A temp folder with a bin folder of allowed tools and a fake server.
type Sandbox = common::Sandbox;

impl PipedRun for Sandbox {
    fn run(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let mut command = self.bash(script);
        command.envs(env.iter().copied());
        common::output_within(&mut command, SCRIPT_DEADLINE, script)
    }

    /// Asserts the script replaced itself with the server (`exec`), so the
    /// server is the one that gets the pod's signals.
    fn assert_execd(&self, output: &Output, args: &[String]) {
        self.check_execd(output.status.code(), &stderr(output), args);
    }

    fn assert_refused(&self, output: &Output, prefix: &str) {
        assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
        assert!(stderr(output).starts_with(prefix), "{}", stderr(output));
        assert_eq!(self.server_args(), None, "the server was started");
    }
}

// ---------------------------------------------------------------- init-dir

const OWNER: &str = "tidb-gitops cluster=tidb-prod/prod instance=tikv-3";
const MARKER: &str = ".tidb-gitops-owner";

/// One /proc/self/mountinfo line, with the kernel's escaping of spaces.
fn mount_line(root: &str, mount_point: &str) -> String {
    format!(
        "1234 520 259:1 {root} {} rw,relatime shared:1 - ext4 /dev/nvme0n1 rw\n",
        mount_point.replace(' ', "\\040")
    )
}

/// The lines every container has, none of them for the data directory.
fn container_mounts() -> String {
    "520 480 0:50 / / rw,relatime master:200 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n\
     521 520 0:53 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n\
     530 520 259:0 /var/lib/kubelet/pods/0a1b/etc-hosts /etc/hosts rw,relatime - ext4 /dev/sda1 rw\n"
        .to_owned()
}

struct InitDir {
    sandbox: Sandbox,
    data: PathBuf,
}

impl InitDir {
    fn new() -> InitDir {
        InitDir::with_data_name("data")
    }

    fn with_data_name(name: &str) -> InitDir {
        let sandbox = Sandbox::with_server(INIT_DIR_TOOLS);
        let data = sandbox.path(name);
        std::fs::create_dir(&data).unwrap();
        let init = InitDir { sandbox, data };
        init.mountinfo(&(container_mounts() + &mount_line("/", init.data_dir())));
        init
    }

    fn data_dir(&self) -> &str {
        self.data.to_str().unwrap()
    }

    fn mountinfo(&self, text: &str) {
        std::fs::write(self.sandbox.path("mountinfo"), text).unwrap();
    }

    fn run(&self, require_mount: &str) -> Output {
        let mountinfo = self.sandbox.path("mountinfo");
        self.sandbox.run(
            INIT_DIR,
            &[
                ("DATA_DIR", self.data_dir()),
                ("OWNER", OWNER),
                ("HOST_PATH", "/mnt/nvme0"),
                ("NODE_NAME", "node-a"),
                ("REQUIRE_MOUNT", require_mount),
                ("MOUNTINFO", mountinfo.to_str().unwrap()),
            ],
        )
    }

    fn marker(&self) -> Option<String> {
        std::fs::read_to_string(self.data.join(MARKER)).ok()
    }

    fn assert_passed(&self, output: &Output) {
        assert_eq!(output.status.code(), Some(0), "{}", stderr(output));
        assert_eq!(self.marker().as_deref(), Some(&*format!("{OWNER}\n")));
    }

    fn assert_refused(&self, output: &Output) {
        self.sandbox.assert_refused(output, "init-dir: ");
    }
}

#[test]
fn init_dir_first_use_writes_the_marker() {
    let init = InitDir::new();
    let output = init.run("true");
    init.assert_passed(&output);
    assert_eq!(list(&init.data), [MARKER], "only the marker, no temp file");
}

#[test]
fn init_dir_first_use_ignores_lost_found_and_a_stale_temp_file() {
    let init = InitDir::new();
    std::fs::create_dir(init.data.join("lost+found")).unwrap();
    std::fs::write(init.data.join(format!("{MARKER}.tmp")), "half").unwrap();
    let output = init.run("true");
    init.assert_passed(&output);
    assert_eq!(list(&init.data), [MARKER, "lost+found"]);
}

#[test]
fn init_dir_same_owner_passes() {
    let init = InitDir::new();
    std::fs::write(init.data.join(MARKER), format!("{OWNER}\n")).unwrap();
    std::fs::write(init.data.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    let output = init.run("true");
    init.assert_passed(&output);
    assert_eq!(list(&init.data), [MARKER, "CURRENT"]);
}

#[test]
fn init_dir_refuses_another_owner_and_leaves_its_data_alone() {
    let init = InitDir::new();
    let other = "tidb-gitops cluster=tidb-prod/prod instance=tikv-7\n";
    std::fs::write(init.data.join(MARKER), other).unwrap();
    std::fs::write(init.data.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    let output = init.run("true");
    init.assert_refused(&output);
    let message = stderr(&output);
    assert!(message.contains("instance=tikv-7"), "{message}");
    assert!(
        message.contains("/mnt/nvme0") && message.contains("node-a"),
        "{message}"
    );
    assert_eq!(init.marker().as_deref(), Some(other));
    assert_eq!(list(&init.data), [MARKER, "CURRENT"]);
    assert_eq!(
        std::fs::read_to_string(init.data.join("CURRENT")).unwrap(),
        "MANIFEST-000001\n"
    );
}

#[test]
fn init_dir_refuses_unmarked_data() {
    let init = InitDir::new();
    std::fs::create_dir(init.data.join("db")).unwrap();
    let output = init.run("true");
    init.assert_refused(&output);
    assert!(
        stderr(&output).contains("unknown origin"),
        "{}",
        stderr(&output)
    );
    assert_eq!(init.marker(), None);
    assert_eq!(list(&init.data), ["db"]);
}

#[test]
fn init_dir_counts_hidden_files_as_data() {
    let init = InitDir::new();
    std::fs::write(init.data.join(".hidden"), "x").unwrap();
    let output = init.run("true");
    init.assert_refused(&output);
    assert_eq!(init.marker(), None);
}

#[test]
fn init_dir_refuses_a_plain_directory_on_another_filesystem() {
    let init = InitDir::new();
    init.mountinfo(&(container_mounts() + &mount_line("/mnt/x", init.data_dir())));
    let output = init.run("true");
    init.assert_refused(&output);
    let message = stderr(&output);
    for needle in ["/mnt/nvme0", "node-a", "/mnt/x", "require_mount = false"] {
        assert!(message.contains(needle), "no {needle:?} in {message}");
    }
    assert_eq!(init.marker(), None);
}

#[test]
fn init_dir_refuses_when_no_mountinfo_line_is_the_data_dir() {
    let init = InitDir::new();
    let parent = init.data.parent().unwrap().to_str().unwrap().to_owned();
    init.mountinfo(
        &(container_mounts()
            + &mount_line("/", &parent)
            + &mount_line("/", &format!("{}2", init.data_dir()))),
    );
    let output = init.run("true");
    init.assert_refused(&output);
    let message = stderr(&output);
    assert!(
        message.contains("is not a mount in this container"),
        "{message}"
    );
    assert_eq!(init.marker(), None);
}

#[test]
fn init_dir_last_mountinfo_line_wins() {
    let init = InitDir::new();
    let disk = mount_line("/", init.data_dir());
    let plain = mount_line("/mnt/x", init.data_dir());
    init.mountinfo(&(container_mounts() + &disk + &plain));
    init.assert_refused(&init.run("true"));
    init.mountinfo(&(container_mounts() + &plain + &disk));
    init.assert_passed(&init.run("true"));
}

#[test]
fn init_dir_unescapes_spaces_in_mountinfo() {
    let init = InitDir::with_data_name("my data");
    assert!(init.data_dir().contains(' '));
    let output = init.run("true");
    init.assert_passed(&output);
}

#[test]
fn init_dir_skips_the_mount_check_when_not_required() {
    let init = InitDir::new();
    init.mountinfo(&(container_mounts() + &mount_line("/mnt/x", init.data_dir())));
    let output = init.run("false");
    init.assert_passed(&output);
}

#[test]
fn init_dir_refuses_an_unknown_require_mount_value() {
    let init = InitDir::new();
    init.assert_refused(&init.run("yes"));
    assert_eq!(init.marker(), None);
}

// ---------------------------------------------------------------- fake PD

/// A PD member's answer while etcd has no leader.
fn no_leader() -> Reply {
    Reply::Status(500, "\"etcdserver: no leader\"\n".to_owned())
}

/// Holds the connection for 10s, then closes it without an answer.
fn hang() -> Reply {
    let wait: common::Hook = Arc::new(|| thread::sleep(Duration::from_secs(10)));
    Reply::After(wait, Box::new(Reply::Close))
}

/// A member list shaped like PD's reply (indented JSON).
fn members_json(names: &[&str]) -> String {
    let member = |name: &str| {
        format!(
            "{{\n    \"name\": \"{name}\",\n    \"member_id\": 1234,\n    \
             \"peer_urls\": [\n      \"http://prod-{name}-0.prod-pd-peer.tidb-prod.svc:2380\"\n    ],\n    \
             \"client_urls\": [\n      \"http://prod-{name}-0.prod-pd-peer.tidb-prod.svc:2379\"\n    ],\n    \
             \"deploy_path\": \"/\",\n    \"binary_version\": \"v8.5.1\"\n  }}"
        )
    };
    let members: Vec<String> = names.iter().map(|n| member(n)).collect();
    format!(
        "{{\n  \"header\": {{\n    \"cluster_id\": 7311000000000000000\n  }},\n  \
         \"members\": [\n  {}\n  ],\n  \"leader\": {},\n  \"etcd_leader\": {}\n}}\n",
        members.join(",\n  "),
        member(names[0]),
        member(names[0]),
    )
}

const MEMBERS_PATH: &str = "GET /pd/api/v1/members HTTP/1.1";

// ---------------------------------------------------------------- pd-start

struct PdStart {
    sandbox: Sandbox,
    data: PathBuf,
}

impl PdStart {
    fn new() -> PdStart {
        let sandbox = Sandbox::with_server(PD_TOOLS);
        let data = sandbox.path("pd");
        std::fs::create_dir(&data).unwrap();
        PdStart { sandbox, data }
    }

    fn run(&self, env: &[(&str, &str)]) -> Output {
        let server = self.sandbox.server();
        let mut all = vec![
            ("PD_NAME", "pd-1"),
            ("DATA_DIR", self.data.to_str().unwrap()),
            ("ADVERTISE_HOST", "localhost"),
            ("CONFIG", "/etc/pd/pd.toml"),
            ("PD_SERVER", server.to_str().unwrap()),
            ("DNS_WAIT_SECONDS", "5"),
            ("PROBE_TIMEOUT_SECONDS", "1"),
        ];
        all.extend_from_slice(env);
        self.sandbox.run(PD_START, &all)
    }

    fn bootstrap(&self, probe_urls: &[&str]) -> Output {
        self.run(&[
            ("PD_MODE", "bootstrap"),
            ("INITIAL_CLUSTER", "pd-1=http://localhost:2380"),
            ("PROBE_URLS", &probe_urls.join(",")),
        ])
    }

    fn join(&self, join_urls: &str) -> Output {
        self.run(&[("PD_MODE", "join"), ("JOIN_URLS", join_urls)])
    }

    fn args(&self, last: &str) -> Vec<String> {
        strings(&[
            "--name=pd-1",
            &format!("--data-dir={}", self.data.display()),
            "--peer-urls=http://0.0.0.0:2380",
            "--advertise-peer-urls=http://localhost:2380",
            "--client-urls=http://0.0.0.0:2379",
            "--advertise-client-urls=http://localhost:2379",
            "--config=/etc/pd/pd.toml",
            last,
        ])
    }

    fn assert_bootstrapped(&self, output: &Output) {
        let args = self.args("--initial-cluster=pd-1=http://localhost:2380");
        self.sandbox.assert_execd(output, &args);
    }
}

#[test]
fn pd_bootstrap_execs_initial_cluster_when_no_peer_answers() {
    let pd = PdStart::new();
    let output = pd.bootstrap(&[&refused_url(), "http://nonexistent.invalid:2379"]);
    pd.assert_bootstrapped(&output);
}

#[test]
fn pd_bootstrap_is_refused_when_a_peer_answers() {
    let pd = PdStart::new();
    let peer = FakePd::answering(ok(&members_json(&["pd-0"])));
    let output = pd.bootstrap(&[&refused_url(), &peer.url]);
    pd.sandbox.assert_refused(&output, "pd-start: ");
    let message = stderr(&output);
    for needle in [peer.url.as_str(), "second PD cluster", "inventory.toml"] {
        assert!(message.contains(needle), "no {needle:?} in {message}");
    }
    assert_eq!(peer.request_lines(), [MEMBERS_PATH]);
}

#[test]
fn pd_bootstrap_takes_a_500_for_no_answer() {
    let pd = PdStart::new();
    let peer = FakePd::answering(no_leader());
    let output = pd.bootstrap(&[&peer.url]);
    pd.assert_bootstrapped(&output);
    assert_eq!(peer.request_lines(), [MEMBERS_PATH], "asked once, no retry");
}

#[test]
fn pd_bootstrap_takes_a_closed_connection_for_no_answer() {
    let pd = PdStart::new();
    let peer = FakePd::answering(Reply::Close);
    let output = pd.bootstrap(&[&peer.url]);
    pd.assert_bootstrapped(&output);
    assert_eq!(peer.request_lines(), [MEMBERS_PATH], "asked once, no retry");
}

#[test]
fn pd_bootstrap_takes_a_timeout_for_no_answer() {
    let pd = PdStart::new();
    let peer = FakePd::answering(hang());
    let start = Instant::now();
    let output = pd.bootstrap(&[&peer.url]);
    pd.assert_bootstrapped(&output);
    assert_eq!(peer.request_lines(), [MEMBERS_PATH]);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn pd_bootstrap_guard_takes_an_empty_member_dir_for_no_data() {
    let pd = PdStart::new();
    std::fs::create_dir(pd.data.join("member")).unwrap();
    let peer = FakePd::answering(ok(&members_json(&["pd-0"])));
    let output = pd.bootstrap(&[&peer.url]);
    pd.sandbox.assert_refused(&output, "pd-start: ");
}

#[test]
fn pd_with_data_execs_without_asking() {
    let pd = PdStart::new();
    std::fs::create_dir_all(pd.data.join("member/wal")).unwrap();
    let peer = FakePd::answering(ok(&members_json(&["pd-0", "pd-1"])));
    let output = pd.bootstrap(&[&peer.url]);
    pd.assert_bootstrapped(&output);
    assert!(
        peer.request_lines().is_empty(),
        "{:?}",
        peer.request_lines()
    );
}

#[test]
fn pd_interrupted_join_execs_without_asking() {
    let pd = PdStart::new();
    std::fs::write(
        pd.data.join("join"),
        "pd-0=http://a:2380,pd-1=http://b:2380",
    )
    .unwrap();
    let peer = FakePd::answering(ok(&members_json(&["pd-0", "pd-1"])));
    let output = pd.join(&peer.url);
    let args = pd.args(&format!("--join={}", peer.url));
    pd.sandbox.assert_execd(&output, &args);
    assert!(
        peer.request_lines().is_empty(),
        "{:?}",
        peer.request_lines()
    );
}

#[test]
fn pd_join_execs_join() {
    let pd = PdStart::new();
    // pd-10 and pd-11 are not pd-1.
    let peer = FakePd::answering(ok(&members_json(&["pd-0", "pd-10", "pd-11"])));
    let join_urls = format!("{},http://nonexistent.invalid:2379", peer.url);
    let output = pd.join(&join_urls);
    let args = pd.args(&format!("--join={join_urls}"));
    pd.sandbox.assert_execd(&output, &args);
    assert_eq!(peer.request_lines(), [MEMBERS_PATH]);
}

#[test]
fn pd_join_is_refused_while_the_name_is_still_a_member() {
    let pd = PdStart::new();
    let peer = FakePd::answering(ok(&members_json(&["pd-0", "pd-1", "pd-2"])));
    // The first endpoint does not answer; the second one decides.
    let output = pd.join(&format!("{},{}", refused_url(), peer.url));
    pd.sandbox.assert_refused(&output, "pd-start: ");
    let message = stderr(&output);
    let delete = format!("DELETE {}/pd/api/v1/members/name/pd-1", peer.url);
    assert!(message.contains(&delete), "no {delete:?} in {message}");
}

#[test]
fn pd_gives_up_when_its_name_does_not_resolve() {
    let pd = PdStart::new();
    let start = Instant::now();
    let output = pd.run(&[
        ("ADVERTISE_HOST", "nonexistent.invalid"),
        ("DNS_WAIT_SECONDS", "1"),
        ("PD_MODE", "bootstrap"),
        ("INITIAL_CLUSTER", "pd-1=http://nonexistent.invalid:2380"),
        ("PROBE_URLS", &refused_url()),
    ]);
    pd.sandbox.assert_refused(&output, "pd-start: ");
    let message = stderr(&output);
    assert!(
        message.contains("nonexistent.invalid did not resolve"),
        "{message}"
    );
    assert!(start.elapsed() >= Duration::from_secs(1), "did not wait");
}

#[test]
fn pd_refuses_an_unknown_mode() {
    let pd = PdStart::new();
    let output = pd.run(&[("PD_MODE", "restore"), ("JOIN_URLS", &refused_url())]);
    pd.sandbox.assert_refused(&output, "pd-start: ");
}

// ---------------------------------------------------------------- tidb-start

struct TidbStart {
    sandbox: Sandbox,
}

impl TidbStart {
    fn new() -> TidbStart {
        TidbStart {
            sandbox: Sandbox::with_server(TIDB_TOOLS),
        }
    }

    fn init_sql(&self) -> PathBuf {
        self.sandbox.path("init.sql")
    }

    fn password_file(&self) -> PathBuf {
        self.sandbox.path("password")
    }

    fn run(&self, password_file: Option<&Path>) -> Output {
        let server = self.sandbox.server();
        let init_sql = self.init_sql();
        let mut env = vec![
            ("ADVERTISE_HOST", "prod-tidb-0.prod-tidb-peer.tidb-prod.svc"),
            ("PD_ADDR", "prod-pd.tidb-prod.svc:2379"),
            ("CONFIG", "/etc/tidb/tidb.toml"),
            ("TIDB_SERVER", server.to_str().unwrap()),
            ("INIT_SQL", init_sql.to_str().unwrap()),
        ];
        if let Some(file) = password_file {
            env.push(("ROOT_PASSWORD_FILE", file.to_str().unwrap()));
        }
        self.sandbox.run(TIDB_START, &env)
    }

    fn args(&self, with_init_sql: bool) -> Vec<String> {
        let mut args = strings(&[
            "--store=tikv",
            "--path=prod-pd.tidb-prod.svc:2379",
            "--advertise-address=prod-tidb-0.prod-tidb-peer.tidb-prod.svc",
            "--host=0.0.0.0",
            "-P",
            "4000",
            "--status=10080",
            "--config=/etc/tidb/tidb.toml",
        ]);
        if with_init_sql {
            args.push(format!(
                "--initialize-sql-file={}",
                self.init_sql().display()
            ));
        }
        args
    }

    fn run_with_password(&self, secret: &str) -> Output {
        std::fs::write(self.password_file(), secret).unwrap();
        self.run(Some(&self.password_file()))
    }

    fn assert_init_sql(&self, output: &Output, sql: &str) {
        self.sandbox.assert_execd(output, &self.args(true));
        assert_eq!(std::fs::read_to_string(self.init_sql()).unwrap(), sql);
        let mode = self.init_sql().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
}

#[test]
fn tidb_writes_an_escaped_init_sql_file_only_its_owner_can_read() {
    let tidb = TidbStart::new();
    // A readable file left by an earlier start must not keep its mode.
    std::fs::write(tidb.init_sql(), "stale").unwrap();
    std::fs::set_permissions(tidb.init_sql(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = tidb.run_with_password("it's a \\secret & \"$x\" %s\n");
    tidb.assert_init_sql(
        &output,
        "ALTER USER 'root'@'%' IDENTIFIED BY 'it''s a \\\\secret & \"$x\" %s';\n",
    );
}

#[test]
fn tidb_strips_one_trailing_crlf_from_the_password() {
    let tidb = TidbStart::new();
    let output = tidb.run_with_password("s3cret\r\n");
    tidb.assert_init_sql(&output, "ALTER USER 'root'@'%' IDENTIFIED BY 's3cret';\n");
}

#[test]
fn tidb_without_password_file_passes_no_init_sql() {
    let tidb = TidbStart::new();
    let output = tidb.run(None);
    tidb.sandbox.assert_execd(&output, &tidb.args(false));
    assert!(!tidb.init_sql().exists());
}

#[test]
fn tidb_refuses_a_missing_password_file() {
    let tidb = TidbStart::new();
    let output = tidb.run(Some(&tidb.password_file()));
    tidb.sandbox.assert_refused(&output, "tidb-start: ");
    assert!(stderr(&output).contains("password"), "{}", stderr(&output));
}

#[test]
fn tidb_refuses_an_empty_password() {
    for secret in ["", "\n"] {
        let tidb = TidbStart::new();
        let output = tidb.run_with_password(secret);
        tidb.sandbox.assert_refused(&output, "tidb-start: ");
        assert!(!tidb.init_sql().exists());
    }
}
