//! The backup scripts (`src/pod/backup.sh`, `log-backup-start.sh`,
//! `restore.sh` in the BR image; `backup-prune-{s3,gcs,azblob}.sh` in the
//! clouds' CLI images), run under bash with a cleared environment whose PATH
//! holds only the tools each image carries, next to fakes of the programs they
//! drive:
//! - a fake `br` that records its argv and the NAMES of its environment
//!   variables (never their values), writes a log and a fake backup, and can
//!   be told to fail or to wait for a signal;
//! - fake `aws`, `gcloud` and `az` that act on a local folder standing in for
//!   the bucket (one folder per bucket or container, a file per object), and
//!   refuse any command they do not know.
//!
//! `scripts/test-backup-scripts.sh` runs the S3 prune against a real S3 API
//! (moto) with the real AWS CLI.

mod common;

use common::{host_tool, stderr, stdout};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const POD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pod");

/// A script slower than this is stuck.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);

/// Tools the BR scripts may use from the BR image (Rocky Linux coreutils).
const BR_TOOLS: &[&str] = &["bash", "date", "tail"];

const PD_ADDR: &str = "prod-pd.tidb-prod.svc:2379";
/// What the fake `date` prints.
const NOW: &str = "2026-11-20T020000Z";

/// Credentials as a pod gets them; none may reach a command line or a log.
const SECRETS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "AKIAFAKEACCESSKEY0001"),
    ("AWS_SECRET_ACCESS_KEY", "fake-secret-key-0123456789abcdef"),
    ("AZURE_STORAGE_KEY", "ZmFrZS1henVyZS1rZXktMDEyMw=="),
];

fn script(name: &str) -> String {
    format!("{POD}/{name}")
}

// ---------------------------------------------------------------- the sandbox

/// Records every call of a fake: call n (from 1) writes its argv,
/// NUL-terminated, to `call-n` and the names of its environment variables,
/// one a line, to `call-n.env`, in the sandbox folder `DIR`.
const RECORD: &str = r#"
n=0
[[ -f "$DIR/count" ]] && n="$(<"$DIR/count")"
n=$((n + 1))
printf '%s' "$n" >"$DIR/count"
printf '%s\0' "$@" >"$DIR/call-$n"
compgen -e >"$DIR/call-$n.env"
"#;

/// The fake br. Besides recording the call, it appends 60 numbered lines
/// (and, when it fails, an error line) to the file after --log-file, and:
/// - with a file `br-hang`: writes `br-started` and waits; SIGTERM makes it
///   write `br-got-term` and exit 143;
/// - with a file `br-fail-<cmd>` (cmd: backup-full, log-start, restore-full,
///   restore-point): exits with the status in it;
/// - `log status`: prints `status-output` and exits with `status-exit`; with
///   no such files, fails as BR does for a task that does not exist;
/// - `backup full` (succeeding): writes `backupmeta` under
///   `storage/<URL without its scheme>` and a progress line on stdout.
const FAKE_BR: &str = r#"
log_file=""
storage=""
task=""
prev=""
for arg in "$@"; do
  case "$prev" in
    --log-file) log_file="$arg" ;;
    --storage) storage="$arg" ;;
  esac
  case "$arg" in --task-name=*) task="${arg#*=}" ;; esac
  prev="$arg"
done
what="$1-$2"
if [[ -n "$log_file" ]]; then
  for ((i = 1; i <= 60; i++)); do
    echo "[INFO] [fake-br] $what log line $i" >>"$log_file"
  done
fi
if [[ -f "$DIR/br-hang" ]]; then
  trap 'echo TERM >"$DIR/br-got-term"; exit 143' TERM
  echo started >"$DIR/br-started"
  while :; do "$SLEEP" 0.05; done
fi
if [[ -f "$DIR/br-fail-$what" ]]; then
  echo "[ERROR] [fake-br] $what failed: injected failure" >>"$log_file"
  echo "Error: injected failure of $what" >&2
  exit "$(<"$DIR/br-fail-$what")"
fi
case "$what" in
  log-status)
    if [[ -f "$DIR/status-output" ]]; then
      printf '%s\n' "$(<"$DIR/status-output")"
      exit "$(<"$DIR/status-exit")"
    fi
    echo "Error: no such task $task: [BR:PiTR:ErrTaskNotFound]task not found" >&2
    exit 1
    ;;
  backup-full)
    dest="$DIR/storage/${storage#*://}"
    "$MKDIR" -p "$dest"
    echo meta >"$dest/backupmeta"
    echo "Full Backup <-------------------------------------> 100.00%"
    ;;
esac
exit 0
"#;

/// A fake `date` that knows only the call backup.sh makes.
const FAKE_DATE: &str = r#"
if [[ "$*" == "-u +%Y-%m-%dT%H%M%SZ" ]]; then
  echo "$NOW"
else
  echo "fake date: unexpected arguments: $*" >&2
  exit 1
fi
"#;

/// Parses the fake CLIs' arguments: `pos` the words, `opt[--name]` the
/// options' values (`--name value` or `--name=value`), `flag[--name]` the
/// options without a value (listed in BOOLEAN).
const PARSE: &str = r#"
declare -A opt=() flag=()
pos=()
set -- "$@"
while (($# > 0)); do
  case "$1" in
    --*=*) opt[${1%%=*}]="${1#*=}" ;;
    --* | -r)
      if [[ " $BOOLEAN " == *" $1 "* ]]; then
        flag[$1]=1
      else
        (($# > 1)) || { echo "fake: $1 needs a value" >&2; exit 3; }
        opt[$1]="$2"
        shift
      fi
      ;;
    *) pos+=("$1") ;;
  esac
  shift
done
unknown() {
  echo "fake: unknown command: ${pos[*]}" >&2
  exit 3
}
# need NAME VALUE: the option NAME must be VALUE.
need() {
  [[ "${opt[$1]-<none>}" == "$2" ]] || { echo "fake: $1 is '${opt[$1]-<none>}', not '$2'" >&2; exit 3; }
}
# list_dir DIR: the entries of DIR, folders with a trailing slash, in name
# order (as the stores list keys: byte order).
list_dir() {
  local e
  shopt -s nullglob dotglob
  for e in "$1"/*; do
    if [[ -d "$e" ]]; then echo "${e##*/}/"; else echo "${e##*/}"; fi
  done
}
"#;

/// A fake AWS CLI over `buckets/<bucket>/<key>`.
const FAKE_AWS: &str = r#"
BOOLEAN="--recursive --only-show-errors"
case "${pos[0]-} ${pos[1]-}" in
  "s3api list-objects-v2")
    ((${#pos[@]} == 2)) || unknown
    need --delimiter /
    need --query 'CommonPrefixes[].[Prefix]'
    need --output text
    [[ -f "$DIR/fail-list" ]] && { echo "An error occurred (AccessDenied) when calling the ListObjectsV2 operation: Access Denied" >&2; exit 254; }
    [[ -d "$ROOT/${opt[--bucket]}" ]] || { echo "An error occurred (NoSuchBucket)" >&2; exit 254; }
    prefix="${opt[--prefix]-}"
    [[ -z "$prefix" || "$prefix" == */ ]] || { echo "fake: prefix without a trailing slash" >&2; exit 3; }
    found=0
    while IFS= read -r e; do
      [[ "$e" == */ ]] || continue
      echo "$prefix$e"
      found=1
    done < <(list_dir "$ROOT/${opt[--bucket]}/$prefix")
    ((found)) || echo None
    ;;
  "s3 rm")
    ((${#pos[@]} == 3)) && [[ -n "${flag[--recursive]-}" && -n "${flag[--only-show-errors]-}" ]] || unknown
    url="${pos[2]}"
    [[ "$url" == s3://*/*/ ]] || { echo "fake: not a folder URL: $url" >&2; exit 3; }
    for f in "$DIR"/fail-rm-*; do
      [[ -f "$f" && "$url" == *"${f##*/fail-rm-}"* ]] && { echo "delete failed: $url" >&2; exit 1; }
    done
    "$RM" -rf "$ROOT/${url#s3://}"
    ;;
  *) unknown ;;
esac
"#;

/// A fake gcloud over `buckets/<bucket>/<key>`.
const FAKE_GCLOUD: &str = r#"
BOOLEAN="-r"
case "${pos[0]-} ${pos[1]-}" in
  "auth activate-service-account")
    ((${#pos[@]} == 2)) || unknown
    [[ -r "${opt[--key-file]-}" ]] || { echo "ERROR: key file not readable" >&2; exit 1; }
    echo "Activated service account credentials"
    ;;
  "storage ls")
    ((${#pos[@]} == 3)) || unknown
    [[ -f "$DIR/fail-list" ]] && { echo "ERROR: (gcloud.storage.ls) HTTPError 403: forbidden" >&2; exit 1; }
    url="${pos[2]}"
    [[ "$url" == gs://*/ ]] || { echo "fake: not a folder URL: $url" >&2; exit 3; }
    dir="$ROOT/${url#gs://}"
    [[ -d "$dir" ]] || { echo "ERROR: (gcloud.storage.ls) One or more URLs matched no objects." >&2; exit 1; }
    while IFS= read -r e; do echo "$url$e"; done < <(list_dir "$dir")
    ;;
  "storage rm")
    ((${#pos[@]} == 3)) && [[ -n "${flag[-r]-}" ]] || unknown
    url="${pos[2]}"
    [[ "$url" == gs://*/*/ ]] || { echo "fake: not a folder URL: $url" >&2; exit 3; }
    for f in "$DIR"/fail-rm-*; do
      [[ -f "$f" && "$url" == *"${f##*/fail-rm-}"* ]] && { echo "ERROR: removal failed: $url" >&2; exit 1; }
    done
    "$RM" -rf "$ROOT/${url#gs://}"
    ;;
  *) unknown ;;
esac
"#;

/// A fake az over `buckets/<container>/<blob name>`. delete-batch matches
/// the pattern against every blob name of the container as bash does, where
/// `*` also matches `/` (as Python's fnmatch in az), then drops the folders it
/// emptied (blob storage has no folders of its own).
const FAKE_AZ: &str = r#"
BOOLEAN="--identity"
case "${pos[0]-} ${pos[1]-} ${pos[2]-}" in
  "login  ")
    [[ -n "${flag[--identity]-}" ]] || unknown
    need --output none
    ;;
  "storage blob list")
    ((${#pos[@]} == 3)) || unknown
    need --delimiter /
    need --num-results '*'
    need --query '[].name'
    need --output tsv
    [[ -n "${opt[--account-name]-}" && -n "${opt[--auth-mode]-}" ]] || { echo "fake: no account or auth mode" >&2; exit 3; }
    [[ -f "$DIR/fail-list" ]] && { echo "ERROR: This request is not authorized to perform this operation." >&2; exit 1; }
    container="$ROOT/${opt[--container-name]}"
    [[ -d "$container" ]] || { echo "ERROR: The specified container does not exist." >&2; exit 1; }
    prefix="${opt[--prefix]-}"
    while IFS= read -r e; do echo "$prefix$e"; done < <(list_dir "$container/$prefix")
    ;;
  "storage blob delete-batch")
    ((${#pos[@]} == 3)) || unknown
    need --output none
    [[ -n "${opt[--account-name]-}" && -n "${opt[--auth-mode]-}" ]] || { echo "fake: no account or auth mode" >&2; exit 3; }
    pattern="${opt[--pattern]}"
    for f in "$DIR"/fail-rm-*; do
      [[ -f "$f" && "$pattern" == *"${f##*/fail-rm-}"* ]] && { echo "ERROR: delete failed: $pattern" >&2; exit 1; }
    done
    container="$ROOT/${opt[--source]}"
    shopt -s globstar nullglob dotglob
    for f in "$container"/**; do
      name="${f#"$container"/}"
      # shellcheck disable=SC2053 # the pattern is meant as a pattern
      if [[ -f "$f" && "$name" == $pattern ]]; then "$RM" -f "$f"; fi
    done
    "$FIND" "$container" -mindepth 1 -type d -empty -delete
    ;;
  *) unknown ;;
esac
"#;

/// One call of a fake: its argv and the names of its environment variables.
#[derive(Debug, Clone)]
struct Call {
    argv: Vec<String>,
    env: Vec<String>,
}

/// A temp folder with a bin folder of the allowed tools, the fakes, a TMPDIR
/// (`tmp`) and the buckets (`buckets`).
struct Pod {
    sandbox: common::Sandbox,
}

impl Pod {
    fn new(tools: &[&str]) -> Pod {
        let pod = Pod {
            sandbox: common::Sandbox::new(tools),
        };
        std::fs::create_dir(pod.path("tmp")).unwrap();
        std::fs::create_dir(pod.path("buckets")).unwrap();
        pod
    }

    /// The BR image's tools and the fake br at `br`.
    fn br() -> Pod {
        let pod = Pod::new(BR_TOOLS);
        pod.fake(&pod.path("br"), &[RECORD, FAKE_BR].concat());
        pod
    }

    /// As `br()`, with a fake `date` that prints NOW.
    fn br_at_now() -> Pod {
        let pod = Pod::new(&["bash", "tail"]);
        pod.fake(&pod.path("br"), &[RECORD, FAKE_BR].concat());
        pod.fake(&pod.path("bin/date"), FAKE_DATE);
        pod
    }

    fn path(&self, name: &str) -> PathBuf {
        self.sandbox.path(name)
    }

    fn dir(&self) -> String {
        self.path("")
            .to_str()
            .unwrap()
            .trim_end_matches('/')
            .to_owned()
    }

    /// Writes an executable bash script at `at`, with the sandbox's folders
    /// and the host tools the fakes use set at its top.
    fn fake(&self, at: &Path, body: &str) {
        let text = format!(
            "#!{bash}\nDIR='{dir}'\nROOT='{dir}/buckets'\nNOW='{NOW}'\nSLEEP='{sleep}'\n\
             MKDIR='{mkdir}'\nRM='{rm}'\nFIND='{find}'\n{body}",
            bash = host_tool("bash").display(),
            dir = self.dir(),
            sleep = host_tool("sleep").display(),
            mkdir = host_tool("mkdir").display(),
            rm = host_tool("rm").display(),
            find = host_tool("find").display(),
        );
        std::fs::write(at, text).unwrap();
        std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// `bash SCRIPT` with TMPDIR in the sandbox and `env` (an empty value is
    /// passed as empty).
    fn command(&self, name: &str, env: &[(&str, &str)]) -> Command {
        let mut command = self.sandbox.bash(&script(name));
        command.env("TMPDIR", self.path("tmp"));
        command.envs(env.iter().copied());
        command
    }

    fn run(&self, name: &str, env: &[(&str, &str)]) -> Output {
        common::output_within(&mut self.command(name, env), SCRIPT_DEADLINE, name)
    }

    /// Every call of the fakes, in order.
    fn calls(&self) -> Vec<Call> {
        (1..)
            .map(|n| {
                (
                    std::fs::read_to_string(self.path(&format!("call-{n}"))),
                    std::fs::read_to_string(self.path(&format!("call-{n}.env"))),
                )
            })
            .take_while(|(argv, _)| argv.is_ok())
            .map(|(argv, env)| Call {
                argv: argv
                    .unwrap()
                    .split_terminator('\0')
                    .map(str::to_owned)
                    .collect(),
                env: env.unwrap().lines().map(str::to_owned).collect(),
            })
            .collect()
    }

    fn argvs(&self) -> Vec<Vec<String>> {
        self.calls().into_iter().map(|c| c.argv).collect()
    }

    fn touch(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// An object `key` in `bucket`.
    fn put(&self, bucket: &str, key: &str) {
        let path = self.path("buckets").join(bucket).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, key).unwrap();
    }

    /// Every object key in `bucket`, sorted.
    fn keys(&self, bucket: &str) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(
                        path.strip_prefix(base)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
        }
        let base = self.path("buckets").join(bucket);
        let mut keys = Vec::new();
        walk(&base, &base, &mut keys);
        keys.sort();
        keys
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
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

/// Asserts no credential value is in any argv, nor in the script's output.
fn assert_no_secret(pod: &Pod, output: &Output) {
    for call in pod.calls() {
        for arg in &call.argv {
            for (name, value) in SECRETS {
                assert!(
                    !arg.contains(value),
                    "{name}'s value on a command line: {:?}",
                    call.argv
                );
            }
        }
    }
    for (name, value) in SECRETS {
        assert!(!stdout(output).contains(value), "{name}'s value on stdout");
        assert!(!stderr(output).contains(value), "{name}'s value on stderr");
    }
}

/// Asserts the script stopped before calling anything, with exit status 2
/// and a message naming `word`.
fn assert_refused(pod: &Pod, output: &Output, word: &str) {
    assert_exit(output, 2);
    assert!(
        stderr(output).contains(word),
        "no '{word}' in: {}",
        stderr(output)
    );
    assert!(pod.calls().is_empty(), "called: {:?}", pod.argvs());
}

// ---------------------------------------------------------------- backup.sh

/// backup.sh's environment: the fake br, PD, the bucket, a run file; then
/// `more` (later entries win).
fn backup_env<'a>(
    br: &'a str,
    run_file: &'a str,
    more: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("BR", br),
        ("PD_ADDR", PD_ADDR),
        ("STORAGE_BASE", "s3://backups/prod"),
        ("RUN_FILE", run_file),
    ];
    env.extend_from_slice(more);
    env
}

fn br_path(pod: &Pod) -> String {
    pod.path("br").to_str().unwrap().to_owned()
}

fn run_file(pod: &Pod) -> String {
    pod.path("run").to_str().unwrap().to_owned()
}

fn tmp_file(pod: &Pod, name: &str) -> String {
    pod.path("tmp").join(name).to_str().unwrap().to_owned()
}

/// The argv backup.sh gives br for `url`, with `flags` before --log-file.
fn backup_argv(pod: &Pod, url: &str, run: &str, flags: &[&str]) -> Vec<String> {
    let mut argv = strings(&["backup", "full", "--pd", PD_ADDR, "--storage", url]);
    argv.extend(strings(flags));
    argv.push("--log-file".into());
    argv.push(tmp_file(pod, &format!("br-backup-{run}.log")));
    argv
}

#[test]
fn backup_writes_each_run_to_a_folder_named_by_the_utc_start_time() {
    let pod = Pod::br_at_now();
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let output = pod.run("backup.sh", &backup_env(&br, &rf, &[]));
    assert_exit(&output, 0);
    let url = format!("s3://backups/prod/{NOW}");
    assert_eq!(pod.argvs(), [backup_argv(&pod, &url, NOW, &[])]);
    // Only the URL on stdout: br's own output (a progress line) is on stderr.
    assert_eq!(stdout(&output), format!("{url}\n"));
    assert!(
        stderr(&output).contains("Full Backup <---"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output)
            .lines()
            .all(|l| l.starts_with("backup: ") || l.starts_with("Full Backup"))
    );
    assert_eq!(std::fs::read_to_string(&rf).unwrap(), format!("{NOW}\n"));
    assert!(
        pod.path(&format!("storage/backups/prod/{NOW}/backupmeta"))
            .is_file()
    );
}

#[test]
fn backup_run_names_from_the_real_clock_are_utc_and_sortable() {
    let pod = Pod::br();
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let utc = || {
        let out = Command::new(host_tool("date"))
            .args(["-u", "+%Y-%m-%dT%H%M%SZ"])
            .env_clear()
            .env("TZ", "America/New_York")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let before = utc();
    // A local time zone far from UTC: the name must still be UTC.
    let output = pod.run(
        "backup.sh",
        &backup_env(&br, &rf, &[("TZ", "America/New_York")]),
    );
    let after = utc();
    assert_exit(&output, 0);
    let run = std::fs::read_to_string(&rf).unwrap().trim().to_owned();
    let shape = |s: &str| {
        s.len() == 18
            && s.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                10 => c == 'T',
                17 => c == 'Z',
                _ => c.is_ascii_digit(),
            })
    };
    assert!(shape(&run), "run name {run:?}");
    assert!(
        before <= run && run <= after,
        "{before} <= {run} <= {after}"
    );
    assert_eq!(stdout(&output), format!("s3://backups/prod/{run}\n"));
}

#[test]
fn backup_run_name_replaces_the_time_and_an_empty_prefix_is_the_bucket_top() {
    // No date on the PATH: with RUN_NAME the script does not need it.
    let pod = Pod::new(&["bash", "tail"]);
    pod.fake(&pod.path("br"), &[RECORD, FAKE_BR].concat());
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let env = backup_env(
        &br,
        &rf,
        &[
            ("STORAGE_BASE", "s3://backups"),
            ("RUN_NAME", "before-v8.5.2"),
        ],
    );
    let output = pod.run("backup.sh", &env);
    assert_exit(&output, 0);
    let url = "s3://backups/before-v8.5.2";
    assert_eq!(pod.argvs(), [backup_argv(&pod, url, "before-v8.5.2", &[])]);
    assert_eq!(stdout(&output), format!("{url}\n"));
    assert_eq!(std::fs::read_to_string(&rf).unwrap(), "before-v8.5.2\n");
}

#[test]
fn backup_passes_each_optional_flag_only_when_given() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("S3_REGION", "us-east-1", &["--s3.region", "us-east-1"]),
        (
            "S3_ENDPOINT",
            "https://minio.storage.svc:9000",
            &["--s3.endpoint", "https://minio.storage.svc:9000"],
        ),
        ("S3_PROVIDER", "ceph", &["--s3.provider", "ceph"]),
        ("RATE_LIMIT", "120", &["--ratelimit", "120"]),
        ("CONCURRENCY", "8", &["--concurrency", "8"]),
        (
            "SEND_CREDENTIALS",
            "false",
            &["--send-credentials-to-tikv=false"],
        ),
        ("SEND_CREDENTIALS", "true", &[]),
    ];
    let unset: Vec<(&str, &str)> = [
        "S3_REGION",
        "S3_ENDPOINT",
        "S3_PROVIDER",
        "RATE_LIMIT",
        "CONCURRENCY",
        "SEND_CREDENTIALS",
        "RUN_FILE",
    ]
    .iter()
    .map(|v| (*v, ""))
    .collect();
    for (name, value, flags) in cases {
        let pod = Pod::br_at_now();
        let br = br_path(&pod);
        // Every other optional variable set but empty: empty means not given.
        let mut env = backup_env(&br, "", &unset);
        env.push((name, value));
        let output = pod.run("backup.sh", &env);
        assert_exit(&output, 0);
        let url = format!("s3://backups/prod/{NOW}");
        assert_eq!(
            pod.argvs(),
            [backup_argv(&pod, &url, NOW, flags)],
            "{name}={value}"
        );
    }
    // All at once, in the documented order.
    let pod = Pod::br_at_now();
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let all: Vec<(&str, &str)> = cases[..6].iter().map(|(n, v, _)| (*n, *v)).collect();
    let output = pod.run("backup.sh", &backup_env(&br, &rf, &all));
    assert_exit(&output, 0);
    let flags: Vec<&str> = cases[..6]
        .iter()
        .flat_map(|(_, _, f)| f.iter().copied())
        .collect();
    assert_eq!(
        pod.argvs(),
        [backup_argv(
            &pod,
            &format!("s3://backups/prod/{NOW}"),
            NOW,
            &flags
        )]
    );
}

#[test]
fn backup_refuses_a_missing_or_bad_environment_before_running_br() {
    let bad: &[(&str, &str, &str)] = &[
        ("PD_ADDR", "", "PD_ADDR"),
        ("STORAGE_BASE", "", "STORAGE_BASE"),
        ("STORAGE_BASE", "s3://backups/prod/", "must not end in /"),
        ("STORAGE_BASE", "http://backups/prod", "STORAGE_BASE"),
        ("STORAGE_BASE", "s3:///prod", "STORAGE_BASE"),
        ("RATE_LIMIT", "fast", "RATE_LIMIT"),
        ("RATE_LIMIT", "0", "RATE_LIMIT"),
        ("CONCURRENCY", "-1", "CONCURRENCY"),
        ("SEND_CREDENTIALS", "no", "SEND_CREDENTIALS"),
        ("RUN_NAME", "a/b", "RUN_NAME"),
        ("RUN_NAME", "..", "RUN_NAME"),
    ];
    for (name, value, word) in bad {
        let pod = Pod::br_at_now();
        let (br, rf) = (br_path(&pod), run_file(&pod));
        let output = pod.run("backup.sh", &backup_env(&br, &rf, &[(name, value)]));
        assert_refused(&pod, &output, word);
        assert!(!Path::new(&rf).exists(), "{name}={value}: run file written");
        assert_eq!(stdout(&output), "", "{name}={value}");
    }
    // Unset (not only empty).
    for name in ["PD_ADDR", "STORAGE_BASE"] {
        let pod = Pod::br_at_now();
        let (br, rf) = (br_path(&pod), run_file(&pod));
        let mut command = pod.command("backup.sh", &backup_env(&br, &rf, &[]));
        command.env_remove(name);
        let output = common::output_within(&mut command, SCRIPT_DEADLINE, "backup.sh");
        assert_refused(
            &pod,
            &output,
            &format!("environment variable {name} is not set"),
        );
    }
}

#[test]
fn backup_failure_exits_non_zero_with_the_tail_of_brs_log() {
    let pod = Pod::br_at_now();
    pod.touch("br-fail-backup-full", "7");
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let output = pod.run("backup.sh", &backup_env(&br, &rf, &[]));
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(err.contains("exit status 7"), "{err}");
    // The last 40 lines of the log: its end, not its start.
    assert!(
        err.contains("[ERROR] [fake-br] backup-full failed: injected failure"),
        "{err}"
    );
    assert!(err.contains("backup-full log line 60\n"), "{err}");
    assert!(err.contains("backup-full log line 22\n"), "{err}");
    assert!(!err.contains("backup-full log line 21\n"), "{err}");
    assert!(
        err.contains("FAILED: no backup at s3://backups/prod/2026-11-20T020000Z"),
        "{err}"
    );
    assert_eq!(stdout(&output), "");
    assert!(!Path::new(&rf).exists(), "the run file names a failed run");
}

#[test]
fn backup_an_unwritable_run_file_fails() {
    let pod = Pod::br_at_now();
    let br = br_path(&pod);
    let rf = pod.path("no-such-folder/run").to_str().unwrap().to_owned();
    let output = pod.run("backup.sh", &backup_env(&br, &rf, &[]));
    assert_exit(&output, 1);
    assert!(
        stderr(&output).contains("could not write the run name"),
        "{}",
        stderr(&output)
    );
    assert_eq!(stdout(&output), "");
}

#[test]
fn credentials_reach_br_only_through_the_environment() {
    let pod = Pod::br_at_now();
    let (br, rf) = (br_path(&pod), run_file(&pod));
    let mut env = backup_env(&br, &rf, &[("S3_REGION", "us-east-1")]);
    env.extend_from_slice(SECRETS);
    let output = pod.run("backup.sh", &env);
    assert_exit(&output, 0);
    let calls = pod.calls();
    assert_eq!(calls.len(), 1);
    for (name, _) in SECRETS {
        assert!(
            calls[0].env.iter().any(|n| n == name),
            "{name} not passed to br: {:?}",
            calls[0].env
        );
    }
    assert_no_secret(&pod, &output);

    // The same for the other BR scripts.
    let pod = Pod::br();
    let mut env = log_env(&pod);
    env.extend(SECRETS.iter().map(|(a, b)| (*a, b.to_string())));
    let output = pod.run(
        "log-backup-start.sh",
        &env.iter()
            .map(|(a, b)| (*a, b.as_str()))
            .collect::<Vec<_>>(),
    );
    assert_exit(&output, 0);
    assert_eq!(pod.calls().len(), 2);
    assert!(
        pod.calls()
            .iter()
            .all(|c| c.env.iter().any(|n| n == "AWS_SECRET_ACCESS_KEY"))
    );
    assert_no_secret(&pod, &output);

    let pod = Pod::br();
    let br = br_path(&pod);
    let mut env = restore_env(&br, "point");
    env.extend_from_slice(SECRETS);
    let output = pod.run("restore.sh", &env);
    assert_exit(&output, 0);
    assert!(
        pod.calls()[0]
            .env
            .iter()
            .any(|n| n == "AWS_SECRET_ACCESS_KEY")
    );
    assert_no_secret(&pod, &output);
}

#[test]
fn sigterm_to_the_script_reaches_br() {
    // bash is PID 1 in the Job's container and would ignore SIGTERM; the
    // scripts pass it on to BR.
    for name in ["backup.sh", "restore.sh"] {
        let pod = Pod::br_at_now();
        pod.touch("br-hang", "");
        let (br, rf) = (br_path(&pod), run_file(&pod));
        let env = if name == "backup.sh" {
            backup_env(&br, &rf, &[])
        } else {
            restore_env(&br, "full")
        };
        let mut child = pod
            .command(name, &env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !pod.path("br-started").exists() {
            assert!(start.elapsed() < SCRIPT_DEADLINE, "br did not start");
            thread::sleep(Duration::from_millis(10));
        }
        let kill = Command::new(host_tool("bash"))
            .args(["-c", &format!("kill -TERM {}", child.id())])
            .status()
            .unwrap();
        assert!(kill.success());
        let status = common::wait_within(&mut child, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{name} did not end after SIGTERM"));
        assert_eq!(status.code(), Some(1), "{name}");
        assert!(
            pod.path("br-got-term").exists(),
            "{name}: br did not get SIGTERM"
        );
    }
}

// ---------------------------------------------------------------- log-backup-start.sh

fn log_env(pod: &Pod) -> Vec<(&'static str, String)> {
    vec![
        ("BR", br_path(pod)),
        ("PD_ADDR", PD_ADDR.into()),
        ("LOG_STORAGE", "s3://backups/prod/log".into()),
        ("TASK_NAME", "pitr".into()),
    ]
}

fn run_log(pod: &Pod, more: &[(&'static str, &str)]) -> Output {
    let mut env = log_env(pod);
    env.extend(more.iter().map(|(a, b)| (*a, b.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (*a, b.as_str())).collect();
    pod.run("log-backup-start.sh", &env)
}

fn status_argv(pod: &Pod) -> Vec<String> {
    let mut argv = strings(&[
        "log",
        "status",
        "--task-name=pitr",
        "--pd",
        PD_ADDR,
        "--log-file",
    ]);
    argv.push(tmp_file(pod, "br-log-status.log"));
    argv
}

fn start_argv(pod: &Pod, flags: &[&str]) -> Vec<String> {
    let mut argv = strings(&[
        "log",
        "start",
        "--task-name=pitr",
        "--pd",
        PD_ADDR,
        "--storage",
        "s3://backups/prod/log",
    ]);
    argv.extend(strings(flags));
    argv.push("--log-file".into());
    argv.push(tmp_file(pod, "br-log-start.log"));
    argv
}

/// What `br log status --task-name=pitr` prints for a task (the table of
/// br/pkg/stream/stream_status.go, without colours: not a terminal).
fn status_table(state: &str) -> String {
    format!(
        "● Total 1 Tasks.\n> #1 <\n              name: pitr\n            status: ● {state}\n\
         \x20            start: 2026-11-20 02:00:00.000 +0000\n               end: 2090-11-18 14:07:45.624 +0000\n\
         \x20          storage: s3://backups/prod/log\n       speed(est.): 0.00 ops/s\n\
         checkpoint[global]: 2026-11-20 10:00:00.000 +0000; gap=4s\n"
    )
}

#[test]
fn log_backup_starts_the_task_when_there_is_none() {
    let pod = Pod::br();
    let output = run_log(&pod, &[]);
    assert_exit(&output, 0);
    assert_eq!(pod.argvs(), [status_argv(&pod), start_argv(&pod, &[])]);
    assert!(
        stderr(&output).contains("no log backup task pitr yet"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("log backup task pitr started"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn log_backup_passes_the_optional_flags_to_start() {
    let pod = Pod::br();
    let output = run_log(
        &pod,
        &[
            ("S3_REGION", "eu-west-1"),
            ("S3_ENDPOINT", "https://s3.example.com"),
            ("S3_PROVIDER", "aws"),
            ("SEND_CREDENTIALS", "false"),
        ],
    );
    assert_exit(&output, 0);
    let flags = [
        "--s3.region",
        "eu-west-1",
        "--s3.endpoint",
        "https://s3.example.com",
        "--s3.provider",
        "aws",
        "--send-credentials-to-tikv=false",
    ];
    assert_eq!(pod.argvs(), [status_argv(&pod), start_argv(&pod, &flags)]);
}

#[test]
fn log_backup_is_idempotent_when_the_task_exists() {
    let pod = Pod::br();
    pod.touch("status-output", &status_table("NORMAL"));
    pod.touch("status-exit", "0");
    let output = run_log(&pod, &[]);
    assert_exit(&output, 0);
    assert_eq!(pod.argvs(), [status_argv(&pod)], "started a task that runs");
    assert!(
        stderr(&output).contains("exists and runs (NORMAL); nothing to do"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn log_backup_leaves_a_paused_task_alone_and_says_so() {
    for state in ["PAUSE", "ERROR"] {
        let pod = Pod::br();
        pod.touch("status-output", &status_table(state));
        pod.touch("status-exit", "0");
        let output = run_log(&pod, &[]);
        assert_exit(&output, 0);
        assert_eq!(pod.argvs(), [status_argv(&pod)]);
        assert!(
            stderr(&output).contains(&format!("WARNING: the task pitr exists but is {state}")),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn log_backup_takes_no_task_yet_as_missing() {
    let pod = Pod::br();
    pod.touch("status-output", "○ No Task Yet.");
    pod.touch("status-exit", "0");
    let output = run_log(&pod, &[]);
    assert_exit(&output, 0);
    assert_eq!(pod.argvs(), [status_argv(&pod), start_argv(&pod, &[])]);
}

#[test]
fn log_backup_starts_nothing_when_the_status_query_fails_otherwise() {
    let pod = Pod::br();
    pod.touch(
        "status-output",
        "Error: failed to connect to PD: [PD:client:ErrClientGetLeader]get leader failed: context deadline exceeded",
    );
    pod.touch("status-exit", "1");
    let output = run_log(&pod, &[]);
    assert_exit(&output, 1);
    assert_eq!(pod.argvs(), [status_argv(&pod)]);
    let err = stderr(&output);
    assert!(err.contains("get leader failed"), "{err}");
    assert!(
        err.contains("FAILED: cannot tell whether the task exists; nothing started"),
        "{err}"
    );
}

#[test]
fn log_backup_start_failure_shows_the_log_tail() {
    let pod = Pod::br();
    pod.touch("br-fail-log-start", "1");
    let output = run_log(&pod, &[]);
    assert_exit(&output, 1);
    let err = stderr(&output);
    assert!(
        err.contains("[ERROR] [fake-br] log-start failed: injected failure"),
        "{err}"
    );
    assert!(
        err.contains("FAILED: the log backup task pitr did not start"),
        "{err}"
    );
}

#[test]
fn log_backup_refuses_a_missing_environment() {
    for (name, value, word) in [
        ("PD_ADDR", "", "PD_ADDR"),
        ("LOG_STORAGE", "", "LOG_STORAGE"),
        ("TASK_NAME", "", "TASK_NAME"),
        ("LOG_STORAGE", "/data/log", "LOG_STORAGE"),
        ("TASK_NAME", "a b", "TASK_NAME"),
        ("SEND_CREDENTIALS", "0", "SEND_CREDENTIALS"),
    ] {
        let pod = Pod::br();
        let output = run_log(&pod, &[(name, value)]);
        assert_refused(&pod, &output, word);
    }
}

// ---------------------------------------------------------------- restore.sh

fn restore_env<'a>(br: &'a str, mode: &'static str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("BR", br),
        ("PD_ADDR", PD_ADDR),
        ("MODE", mode),
        ("FROM", "s3://backups/prod/2026-11-20T020000Z"),
        ("LOG_FROM", "s3://backups/prod/log"),
        ("RESTORED_TS", "2026-11-20 10:00:00+0000"),
    ]
}

#[test]
fn restore_full_runs_br_restore_full_from_the_snapshot() {
    let pod = Pod::br();
    let br = br_path(&pod);
    let output = pod.run("restore.sh", &restore_env(&br, "full"));
    assert_exit(&output, 0);
    let mut argv = strings(&[
        "restore",
        "full",
        "--pd",
        PD_ADDR,
        "--storage",
        "s3://backups/prod/2026-11-20T020000Z",
    ]);
    argv.extend(strings(&[
        "--log-file",
        &tmp_file(&pod, "br-restore-full.log"),
    ]));
    assert_eq!(pod.argvs(), [argv]);
    assert_eq!(stdout(&output), "");
}

#[test]
fn restore_point_replays_the_log_backup_up_to_the_time() {
    let pod = Pod::br();
    let br = br_path(&pod);
    let mut env = restore_env(&br, "point");
    env.extend([
        ("S3_REGION", "us-east-1"),
        ("S3_ENDPOINT", "http://minio:9000"),
        ("S3_PROVIDER", "minio"),
        ("SEND_CREDENTIALS", "false"),
    ]);
    let output = pod.run("restore.sh", &env);
    assert_exit(&output, 0);
    let argv = strings(&[
        "restore",
        "point",
        "--pd",
        PD_ADDR,
        "--storage",
        "s3://backups/prod/log",
        "--full-backup-storage",
        "s3://backups/prod/2026-11-20T020000Z",
        "--restored-ts",
        "2026-11-20 10:00:00+0000",
        "--s3.region",
        "us-east-1",
        "--s3.endpoint",
        "http://minio:9000",
        "--s3.provider",
        "minio",
        "--send-credentials-to-tikv=false",
        "--log-file",
        &tmp_file(&pod, "br-restore-point.log"),
    ]);
    assert_eq!(pod.argvs(), [argv]);
}

#[test]
fn restore_refuses_a_missing_environment() {
    let cases: &[(&str, &str, &str)] = &[
        ("PD_ADDR", "", "PD_ADDR"),
        ("MODE", "", "MODE"),
        ("MODE", "snapshot", "neither full nor point"),
        ("FROM", "", "FROM"),
        ("FROM", "backups/prod", "FROM"),
    ];
    for mode in ["full", "point"] {
        for (name, value, word) in cases {
            let pod = Pod::br();
            let br = br_path(&pod);
            let mut env = restore_env(&br, mode);
            env.push((name, value));
            let output = pod.run("restore.sh", &env);
            assert_refused(&pod, &output, word);
        }
    }
    for name in ["LOG_FROM", "RESTORED_TS"] {
        let pod = Pod::br();
        let br = br_path(&pod);
        let mut env = restore_env(&br, "point");
        env.push((name, ""));
        let output = pod.run("restore.sh", &env);
        assert_refused(
            &pod,
            &output,
            &format!("{name} is not set (MODE=point needs it)"),
        );
        // A full restore does not need them.
        let pod = Pod::br();
        let br = br_path(&pod);
        let mut env = restore_env(&br, "full");
        env.push((name, ""));
        assert_exit(&pod.run("restore.sh", &env), 0);
    }
}

#[test]
fn restore_failure_shows_the_log_tail() {
    for mode in ["full", "point"] {
        let pod = Pod::br();
        pod.touch(&format!("br-fail-restore-{mode}"), "1");
        let br = br_path(&pod);
        let output = pod.run("restore.sh", &restore_env(&br, mode));
        assert_exit(&output, 1);
        let err = stderr(&output);
        assert!(
            err.contains(&format!(
                "[ERROR] [fake-br] restore-{mode} failed: injected failure"
            )),
            "{err}"
        );
        assert!(err.contains("FAILED: the restore did not finish"), "{err}");
    }
}

// ---------------------------------------------------------------- the prune scripts

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cloud {
    S3,
    Gcs,
    Azblob,
}

const CLOUDS: [Cloud; 3] = [Cloud::S3, Cloud::Gcs, Cloud::Azblob];

const BUCKET: &str = "backups";
const PREFIX: &str = "tidb/prod";

/// Five runs, oldest first.
const RUNS: [&str; 5] = [
    "2026-11-16T020000Z",
    "2026-11-17T020000Z",
    "2026-11-18T020000Z",
    "2026-11-19T020000Z",
    "2026-11-20T020000Z",
];

/// Keys that are not runs under the prefix, or are outside it: never touched.
const OTHERS: &[&str] = &[
    "tidb/prod/log/backup.lock",
    "tidb/prod/log/v1/backupmeta/0001.meta",
    "tidb/prod/before-v8.5.2/backupmeta",
    "tidb/prod/2026-11-15T020000Z.txt",
    "tidb/prod/2026-11-1T020000Z/backupmeta",
    "tidb/prod/20261114T020000Z/backupmeta",
    "tidb/prod/notes.txt",
    "tidb/prod/2026-11-10T020000Z",
    "tidb/prod-old/2026-11-01T020000Z/backupmeta",
    "tidb/2026-11-02T020000Z/backupmeta",
    "other/2026-11-03T020000Z/backupmeta",
];

impl Cloud {
    fn script(self) -> &'static str {
        match self {
            Cloud::S3 => "backup-prune-s3.sh",
            Cloud::Gcs => "backup-prune-gcs.sh",
            Cloud::Azblob => "backup-prune-azblob.sh",
        }
    }

    /// A sandbox with bash alone (the scripts need nothing else from the
    /// image) and this cloud's fake CLI.
    fn pod(self) -> Pod {
        let pod = Pod::new(&["bash"]);
        let (name, body) = match self {
            Cloud::S3 => ("aws", FAKE_AWS),
            Cloud::Gcs => ("gcloud", FAKE_GCLOUD),
            Cloud::Azblob => ("az", FAKE_AZ),
        };
        // PARSE needs BOOLEAN, which the body sets: the body's first line.
        let (boolean, rest) = body.trim_start().split_once('\n').unwrap();
        pod.fake(
            &pod.path(&format!("bin/{name}")),
            &[RECORD, boolean, "\n", PARSE, rest].concat(),
        );
        pod
    }

    /// The script's environment for the runs under `prefix` (the run file
    /// names `current`); then `more` (later entries win).
    fn env(
        self,
        pod: &Pod,
        prefix: &str,
        keep: &str,
        current: Option<&str>,
        more: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let rf = run_file(pod);
        if let Some(run) = current {
            pod.touch("run", &format!("{run}\n"));
        }
        let mut env: Vec<(String, String)> = match self {
            Cloud::S3 | Cloud::Gcs => vec![("BUCKET".into(), BUCKET.into())],
            Cloud::Azblob => vec![
                ("CONTAINER".into(), BUCKET.into()),
                ("AZURE_STORAGE_ACCOUNT".into(), "tidbbackups".into()),
                ("AZURE_STORAGE_KEY".into(), SECRETS[2].1.into()),
            ],
        };
        env.extend([
            ("PREFIX".into(), prefix.into()),
            ("KEEP".into(), keep.into()),
            ("RUN_FILE".into(), rf),
        ]);
        if self == Cloud::S3 {
            env.extend(
                SECRETS[..2]
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string())),
            );
        }
        env.extend(more.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        env
    }

    fn run(self, pod: &Pod, env: &[(String, String)]) -> Output {
        let env: Vec<(&str, &str)> = env.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        pod.run(self.script(), &env)
    }

    /// The URL the script prints for a removed run.
    fn url(self, prefix: &str, run: &str) -> String {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        match self {
            Cloud::S3 => format!("s3://{BUCKET}/{p}{run}/"),
            Cloud::Gcs => format!("gs://{BUCKET}/{p}{run}/"),
            Cloud::Azblob => format!("azure://{BUCKET}/{p}{run}/"),
        }
    }

    /// The argv of the listing call.
    fn list_argv(self, prefix: &str) -> Vec<String> {
        let p = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let mut argv = match self {
            Cloud::S3 => strings(&[
                "s3api",
                "list-objects-v2",
                "--bucket",
                BUCKET,
                "--delimiter",
                "/",
            ]),
            Cloud::Gcs => return vec!["storage".into(), "ls".into(), format!("gs://{BUCKET}/{p}")],
            Cloud::Azblob => strings(&[
                "storage",
                "blob",
                "list",
                "--container-name",
                BUCKET,
                "--delimiter",
                "/",
                "--num-results",
                "*",
            ]),
        };
        if !p.is_empty() {
            argv.extend(["--prefix".into(), p]);
        }
        match self {
            Cloud::S3 => argv.extend(strings(&[
                "--query",
                "CommonPrefixes[].[Prefix]",
                "--output",
                "text",
            ])),
            Cloud::Azblob => argv.extend(strings(&[
                "--query",
                "[].name",
                "--output",
                "tsv",
                "--account-name",
                "tidbbackups",
                "--auth-mode",
                "key",
            ])),
            Cloud::Gcs => {}
        }
        argv
    }

    /// Whether a call removes something.
    fn is_removal(self, argv: &[String]) -> bool {
        match self {
            Cloud::S3 => {
                argv.first().is_some_and(|a| a == "s3") && argv.get(1).is_some_and(|a| a == "rm")
            }
            Cloud::Gcs => argv.get(1).is_some_and(|a| a == "rm"),
            Cloud::Azblob => argv.get(2).is_some_and(|a| a == "delete-batch"),
        }
    }
}

/// Fills the bucket: each run holds two objects; OTHERS besides.
fn fill(pod: &Pod, prefix: &str, runs: &[&str]) {
    let p = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    for run in runs {
        pod.put(BUCKET, &format!("{p}{run}/backupmeta"));
        pod.put(BUCKET, &format!("{p}{run}/1/5_2_a.sst"));
    }
    for key in OTHERS {
        pod.put(BUCKET, key);
    }
}

/// The keys of `fill(prefix, runs)`, sorted.
fn expected_keys(prefix: &str, runs: &[&str]) -> Vec<String> {
    let p = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut keys: Vec<String> = runs
        .iter()
        .flat_map(|run| {
            [
                format!("{p}{run}/backupmeta"),
                format!("{p}{run}/1/5_2_a.sst"),
            ]
        })
        .chain(OTHERS.iter().map(|k| k.to_string()))
        .collect();
    keys.sort();
    keys
}

fn removals(cloud: Cloud, pod: &Pod) -> Vec<Vec<String>> {
    pod.argvs()
        .into_iter()
        .filter(|a| cloud.is_removal(a))
        .collect()
}

#[test]
fn prune_keeps_the_newest_runs_and_touches_nothing_else() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "2", Some(RUNS[4]), &[]));
        assert_exit(&output, 0);
        assert_eq!(
            pod.keys(BUCKET),
            expected_keys(PREFIX, &RUNS[3..]),
            "{cloud:?}"
        );
        let removed: Vec<String> = RUNS[..3].iter().map(|r| cloud.url(PREFIX, r)).collect();
        assert_eq!(
            stdout(&output),
            format!("{}\n", removed.join("\n")),
            "{cloud:?}"
        );
        let argvs = pod.argvs();
        assert_eq!(argvs[0], cloud.list_argv(PREFIX), "{cloud:?}");
        let expected_removals: Vec<Vec<String>> = RUNS[..3]
            .iter()
            .map(|run| match cloud {
                Cloud::S3 => strings(&[
                    "s3",
                    "rm",
                    "--recursive",
                    "--only-show-errors",
                    &cloud.url(PREFIX, run),
                ]),
                Cloud::Gcs => strings(&["storage", "rm", "-r", &cloud.url(PREFIX, run)]),
                Cloud::Azblob => strings(&[
                    "storage",
                    "blob",
                    "delete-batch",
                    "--source",
                    BUCKET,
                    "--pattern",
                    &format!("{PREFIX}/{run}/*"),
                    "--account-name",
                    "tidbbackups",
                    "--auth-mode",
                    "key",
                    "--output",
                    "none",
                ]),
            })
            .collect();
        assert_eq!(argvs[1..], expected_removals[..], "{cloud:?}");
        assert!(
            stderr(&output).contains("5 runs under"),
            "{cloud:?}: {}",
            stderr(&output)
        );
        assert_no_secret(&pod, &output);
    }
}

#[test]
fn prune_with_keep_above_the_number_of_runs_removes_nothing() {
    for cloud in CLOUDS {
        for keep in ["5", "6", "100"] {
            let pod = cloud.pod();
            fill(&pod, PREFIX, &RUNS);
            let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, keep, Some(RUNS[4]), &[]));
            assert_exit(&output, 0);
            assert_eq!(
                pod.keys(BUCKET),
                expected_keys(PREFIX, &RUNS),
                "{cloud:?} KEEP={keep}"
            );
            assert!(removals(cloud, &pod).is_empty(), "{cloud:?}");
            assert_eq!(stdout(&output), "");
        }
    }
}

#[test]
fn prune_keep_one_leaves_only_the_current_run() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "1", Some(RUNS[4]), &[]));
        assert_exit(&output, 0);
        assert_eq!(
            pod.keys(BUCKET),
            expected_keys(PREFIX, &RUNS[4..]),
            "{cloud:?}"
        );
    }
}

#[test]
fn prune_removes_nothing_when_the_current_run_is_not_in_the_bucket() {
    for cloud in CLOUDS {
        for current in [
            "2026-11-21T020000Z",
            "before-v8.5.2",
            "2026-11-20T020000Z/x",
            "",
        ] {
            let pod = cloud.pod();
            fill(&pod, PREFIX, &RUNS);
            let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "1", Some(current), &[]));
            assert_exit(&output, 1);
            assert!(
                stderr(&output).contains("REFUSED"),
                "{cloud:?}: {}",
                stderr(&output)
            );
            assert_eq!(
                pod.keys(BUCKET),
                expected_keys(PREFIX, &RUNS),
                "{cloud:?} {current}"
            );
            assert!(removals(cloud, &pod).is_empty(), "{cloud:?}");
        }
    }
}

#[test]
fn prune_removes_nothing_when_the_current_run_is_not_among_the_newest() {
    // A run named after the current one (a clock set wrong once) would make
    // KEEP=2 remove the run just written.
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "2", Some(RUNS[2]), &[]));
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("is not among the newest 2"),
            "{cloud:?}: {}",
            stderr(&output)
        );
        assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS), "{cloud:?}");
        assert!(removals(cloud, &pod).is_empty(), "{cloud:?}");
    }
}

#[test]
fn prune_without_a_run_file_removes_nothing() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "1", None, &[]));
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("cannot read RUN_FILE"),
            "{cloud:?}: {}",
            stderr(&output)
        );
        assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS), "{cloud:?}");
        assert!(pod.calls().is_empty(), "{cloud:?}: {:?}", pod.argvs());
    }
}

#[test]
fn prune_runs_at_the_top_of_the_bucket_with_an_empty_prefix() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, "", &RUNS);
        let output = cloud.run(&pod, &cloud.env(&pod, "", "3", Some(RUNS[4]), &[]));
        assert_exit(&output, 0);
        assert_eq!(pod.keys(BUCKET), expected_keys("", &RUNS[2..]), "{cloud:?}");
        assert_eq!(pod.argvs()[0], cloud.list_argv(""), "{cloud:?}");
        let removed: Vec<String> = RUNS[..2].iter().map(|r| cloud.url("", r)).collect();
        assert_eq!(
            stdout(&output),
            format!("{}\n", removed.join("\n")),
            "{cloud:?}"
        );
    }
}

#[test]
fn prune_accepts_a_prefix_with_a_trailing_slash() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        let output = cloud.run(
            &pod,
            &cloud.env(&pod, &format!("{PREFIX}/"), "4", Some(RUNS[4]), &[]),
        );
        assert_exit(&output, 0);
        assert_eq!(
            pod.keys(BUCKET),
            expected_keys(PREFIX, &RUNS[1..]),
            "{cloud:?}"
        );
    }
}

#[test]
fn prune_fails_without_removing_when_the_listing_fails() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        pod.touch("fail-list", "");
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "1", Some(RUNS[4]), &[]));
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("FAILED"),
            "{cloud:?}: {}",
            stderr(&output)
        );
        assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS), "{cloud:?}");
        assert!(removals(cloud, &pod).is_empty(), "{cloud:?}");
    }
}

#[test]
fn prune_goes_on_past_a_failed_removal_and_fails_at_the_end() {
    for cloud in CLOUDS {
        let pod = cloud.pod();
        fill(&pod, PREFIX, &RUNS);
        pod.touch(&format!("fail-rm-{}", RUNS[1]), "");
        let output = cloud.run(&pod, &cloud.env(&pod, PREFIX, "2", Some(RUNS[4]), &[]));
        assert_exit(&output, 1);
        assert!(
            stderr(&output).contains("FAILED: 1 of 3 runs were not removed completely"),
            "{cloud:?}: {}",
            stderr(&output)
        );
        let left = [RUNS[1], RUNS[3], RUNS[4]];
        assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &left), "{cloud:?}");
        assert_eq!(
            stdout(&output),
            format!(
                "{}\n{}\n",
                cloud.url(PREFIX, RUNS[0]),
                cloud.url(PREFIX, RUNS[2])
            ),
            "{cloud:?}"
        );
    }
}

#[test]
fn prune_refuses_a_missing_or_bad_environment() {
    for cloud in CLOUDS {
        let required: &[&str] = match cloud {
            Cloud::S3 | Cloud::Gcs => &["BUCKET", "KEEP", "RUN_FILE"],
            Cloud::Azblob => &["CONTAINER", "KEEP", "RUN_FILE", "AZURE_STORAGE_ACCOUNT"],
        };
        for name in required.iter().chain(&["PREFIX"]) {
            let pod = cloud.pod();
            fill(&pod, PREFIX, &RUNS);
            let env: Vec<(String, String)> = cloud
                .env(&pod, PREFIX, "1", Some(RUNS[4]), &[])
                .into_iter()
                .filter(|(n, _)| n.as_str() != *name)
                .collect();
            let output = cloud.run(&pod, &env);
            assert_refused(
                &pod,
                &output,
                &format!("environment variable {name} is not set"),
            );
        }
        let bucket_var = if cloud == Cloud::Azblob {
            "CONTAINER"
        } else {
            "BUCKET"
        };
        for (name, value, word) in [
            ("KEEP", "0", "KEEP"),
            ("KEEP", "-1", "KEEP"),
            ("KEEP", "two", "KEEP"),
            ("KEEP", "1000000", "KEEP"),
            ("PREFIX", "/tidb/prod", "PREFIX"),
            ("PREFIX", "tidb//prod", "PREFIX"),
            (bucket_var, "backups/tidb", bucket_var),
        ] {
            let pod = cloud.pod();
            fill(&pod, PREFIX, &RUNS);
            let output = cloud.run(
                &pod,
                &cloud.env(&pod, PREFIX, "1", Some(RUNS[4]), &[(name, value)]),
            );
            assert_refused(&pod, &output, word);
            assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS), "{cloud:?}");
        }
    }
}

#[test]
fn prune_s3_passes_the_endpoint_and_region_to_every_call() {
    let pod = Cloud::S3.pod();
    fill(&pod, PREFIX, &RUNS);
    let more = [
        ("S3_ENDPOINT", "https://minio.storage.svc:9000"),
        ("AWS_REGION", "eu-central-1"),
    ];
    let output = Cloud::S3.run(
        &pod,
        &Cloud::S3.env(&pod, PREFIX, "4", Some(RUNS[4]), &more),
    );
    assert_exit(&output, 0);
    let tail = strings(&[
        "--endpoint-url",
        "https://minio.storage.svc:9000",
        "--region",
        "eu-central-1",
    ]);
    let argvs = pod.argvs();
    assert_eq!(argvs.len(), 2);
    assert_eq!(
        argvs[0],
        [Cloud::S3.list_argv(PREFIX), tail.clone()].concat()
    );
    assert_eq!(
        argvs[1],
        [
            strings(&[
                "s3",
                "rm",
                "--recursive",
                "--only-show-errors",
                &Cloud::S3.url(PREFIX, RUNS[0])
            ]),
            tail
        ]
        .concat()
    );
    // The credentials reach aws through the environment alone.
    for call in pod.calls() {
        assert!(
            call.env.iter().any(|n| n == "AWS_SECRET_ACCESS_KEY"),
            "{:?}",
            call.env
        );
        assert!(call.env.iter().any(|n| n == "AWS_PAGER"), "{:?}", call.env);
    }
    assert_no_secret(&pod, &output);
}

#[test]
fn prune_gcs_activates_a_mounted_key_file_first() {
    let pod = Cloud::Gcs.pod();
    fill(&pod, PREFIX, &RUNS);
    let key = pod.path("key.json");
    std::fs::write(
        &key,
        r#"{"type":"service_account","private_key":"-----BEGIN PRIVATE KEY-----fake"}"#,
    )
    .unwrap();
    let key = key.to_str().unwrap();
    let output = Cloud::Gcs.run(
        &pod,
        &Cloud::Gcs.env(
            &pod,
            PREFIX,
            "4",
            Some(RUNS[4]),
            &[("GOOGLE_APPLICATION_CREDENTIALS", key)],
        ),
    );
    assert_exit(&output, 0);
    let argvs = pod.argvs();
    assert_eq!(
        argvs[0],
        strings(&[
            "auth",
            "activate-service-account",
            &format!("--key-file={key}")
        ])
    );
    assert_eq!(argvs[1], Cloud::Gcs.list_argv(PREFIX));
    assert_eq!(argvs.len(), 3);
    for argv in &argvs {
        assert!(argv.iter().all(|a| !a.contains("PRIVATE KEY")), "{argv:?}");
    }
    // An unreadable key file: nothing asked of GCS.
    let pod = Cloud::Gcs.pod();
    fill(&pod, PREFIX, &RUNS);
    let output = Cloud::Gcs.run(
        &pod,
        &Cloud::Gcs.env(
            &pod,
            PREFIX,
            "1",
            Some(RUNS[4]),
            &[("GOOGLE_APPLICATION_CREDENTIALS", "/no/such/key.json")],
        ),
    );
    assert_exit(&output, 1);
    assert!(pod.calls().is_empty());
    assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS));
}

#[test]
fn prune_azblob_uses_the_managed_identity_without_a_key() {
    let pod = Cloud::Azblob.pod();
    fill(&pod, PREFIX, &RUNS);
    let env: Vec<(String, String)> = Cloud::Azblob
        .env(&pod, PREFIX, "4", Some(RUNS[4]), &[])
        .into_iter()
        .filter(|(n, _)| n != "AZURE_STORAGE_KEY")
        .collect();
    let output = Cloud::Azblob.run(&pod, &env);
    assert_exit(&output, 0);
    let argvs = pod.argvs();
    assert_eq!(
        argvs[0],
        strings(&["login", "--identity", "--output", "none"])
    );
    let mut list = Cloud::Azblob.list_argv(PREFIX);
    *list.last_mut().unwrap() = "login".into();
    assert_eq!(argvs[1], list);
    assert!(
        argvs[2].ends_with(&strings(&["--auth-mode", "login", "--output", "none"])),
        "{:?}",
        argvs[2]
    );
    assert_eq!(pod.keys(BUCKET), expected_keys(PREFIX, &RUNS[1..]));
}

#[test]
fn prune_azblob_key_reaches_az_through_the_environment_only() {
    let pod = Cloud::Azblob.pod();
    fill(&pod, PREFIX, &RUNS);
    let output = Cloud::Azblob.run(
        &pod,
        &Cloud::Azblob.env(&pod, PREFIX, "2", Some(RUNS[4]), &[]),
    );
    assert_exit(&output, 0);
    for call in pod.calls() {
        assert!(
            call.env.iter().any(|n| n == "AZURE_STORAGE_KEY"),
            "{:?}",
            call.env
        );
    }
    assert_no_secret(&pod, &output);
}

#[test]
fn prune_scripts_share_one_selection_library() {
    // The three scripts run in three images but from one ConfigMap folder:
    // they source one copy of the run selection, shipped beside them.
    let lib = std::fs::read_to_string(script("backup-prune-lib.sh")).unwrap();
    assert!(lib.contains("plan_prune()") && lib.contains("RUN_PATTERN="));
    for name in [
        "backup-prune-s3.sh",
        "backup-prune-gcs.sh",
        "backup-prune-azblob.sh",
    ] {
        let text = std::fs::read_to_string(script(name)).unwrap();
        assert!(
            text.contains("source \"${BASH_SOURCE[0]%/*}/backup-prune-lib.sh\""),
            "{name}"
        );
        assert!(
            !text.contains("plan_prune() {"),
            "{name} defines its own copy"
        );
    }
    assert!(
        tidb_gitops::manifest::backup::scripts()
            .iter()
            .any(|(key, text)| *key == "backup-prune-lib.sh" && *text == lib),
        "the library is not in the backup scripts ConfigMap"
    );
}

#[test]
fn br_scripts_share_one_library_shipped_beside_them() {
    let lib = std::fs::read_to_string(script("br-lib.sh")).unwrap();
    assert!(lib.contains("run_br()") && lib.contains("s3_flags()"));
    for name in ["backup.sh", "restore.sh", "log-backup-start.sh"] {
        let text = std::fs::read_to_string(script(name)).unwrap();
        assert!(
            text.contains("source \"${BASH_SOURCE[0]%/*}/br-lib.sh\""),
            "{name}"
        );
        assert!(!text.contains("run_br() {"), "{name} defines its own copy");
    }
    assert!(
        tidb_gitops::manifest::backup::scripts()
            .iter()
            .any(|(key, text)| *key == "br-lib.sh" && *text == lib),
        "the library is not in the backup scripts ConfigMap"
    );
}
