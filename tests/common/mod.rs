//! The harness the pod script tests (`tests/pod_*.rs`) share: a temp folder
//! whose bin folder holds symlinks to only the host tools a script may use, a
//! fake server that records how it was exec'd, running a script under that
//! bin folder's bash with a cleared environment, and a fake PD HTTP server on
//! 127.0.0.1 that records every request and answers from per-route
//! sequences.

// Each test binary that says `mod common;` compiles this module on its own
// and uses only part of it; the rest would warn as dead code in that binary.
#![allow(dead_code)]

pub mod tree;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The first executable file `name` on the host's PATH.
pub fn host_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").expect("PATH is set");
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| panic!("{name} not found on the host PATH"))
}

/// A temp folder with a bin folder of allowed tools (symlinks to the host's),
/// the only folder on a script's PATH.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(tools: &[&str]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for tool in tools {
            symlink(host_tool(tool), bin.join(tool)).unwrap();
        }
        Sandbox { dir }
    }

    /// A sandbox with a fake server (`server()`), which records its parent's
    /// pid and its arguments.
    pub fn with_server(tools: &[&str]) -> Sandbox {
        let sandbox = Sandbox::new(tools);
        let server = format!(
            "#!{}\nprintf '%s' \"$PPID\" >'{}'\nprintf '%s\\0' \"$@\" >'{}'\n",
            host_tool("bash").display(),
            sandbox.path("ppid").display(),
            sandbox.path("argv").display(),
        );
        std::fs::write(sandbox.server(), server).unwrap();
        std::fs::set_permissions(sandbox.server(), std::fs::Permissions::from_mode(0o755)).unwrap();
        sandbox
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn server(&self) -> PathBuf {
        self.path("server")
    }

    /// `bash SCRIPT` with the sandbox's bash, a cleared environment whose
    /// PATH is the bin folder, and stdin from /dev/null.
    pub fn bash(&self, script: &str) -> Command {
        let mut command = Command::new(self.path("bin/bash"));
        command
            .arg(script)
            .env_clear()
            .env("PATH", self.path("bin"))
            .stdin(Stdio::null());
        command
    }

    /// `bash(script)` with stdout and stderr going to the files `stdout` and
    /// `stderr` in the sandbox, not to pipes: a script's background loop may
    /// keep writing after the script itself is gone.
    pub fn logged(&self, script: &str) -> Command {
        let mut command = self.bash(script);
        command
            .stdout(File::create(self.path("stdout")).unwrap())
            .stderr(File::create(self.path("stderr")).unwrap());
        command
    }

    /// Everything a `logged` script (and its background loop) wrote on stderr
    /// so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr")).unwrap_or_default()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.path("stdout")).unwrap_or_default()
    }

    /// The fake server's arguments, if the script started it.
    pub fn server_args(&self) -> Option<Vec<String>> {
        let argv = std::fs::read_to_string(self.path("argv")).ok()?;
        Some(argv.split_terminator('\0').map(str::to_owned).collect())
    }

    /// Asserts a script that ended with `code` (and logged `log`) replaced
    /// itself with the fake server (`exec`) and passed it `args`, so the
    /// server is the one that gets the pod's signals.
    pub fn check_execd(&self, code: Option<i32>, log: &str, args: &[String]) {
        assert_eq!(code, Some(0), "{log}");
        assert_eq!(self.server_args().as_deref(), Some(args));
        let ppid = std::fs::read_to_string(self.path("ppid")).unwrap();
        assert_eq!(
            ppid,
            std::process::id().to_string(),
            "the server is not the script's process: the script ran it without exec"
        );
    }
}

/// Waits for `child` to end; after `deadline` kills it, reaps it and returns
/// None.
pub fn wait_within(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `command` with stdout and stderr piped and its stdin (if piped) at
/// EOF; panics when `what` takes longer than `deadline`.
pub fn output_within(command: &mut Command, deadline: Duration, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    drop(child.stdin.take());
    if wait_within(&mut child, deadline).is_none() {
        panic!("{what} did not finish within {deadline:?}");
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The names in `dir`, sorted.
pub fn list(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

// ---------------------------------------------------------------- fake PD

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request line, as "GET /pd/api/v1/members HTTP/1.1".
    pub line: String,
    pub method: String,
    pub path: String,
    pub body: String,
    pub content_type: Option<String>,
}

pub type Hook = Arc<dyn Fn() + Send + Sync>;

#[derive(Clone)]
pub enum Reply {
    Status(u16, String),
    /// Closes the connection without an answer.
    Close,
    /// Runs the hook (while the client waits), then answers.
    After(Hook, Box<Reply>),
}

pub fn ok(body: &str) -> Reply {
    Reply::Status(200, body.to_owned())
}

/// PD's answer before the first TiKV registers.
pub fn not_bootstrapped() -> Reply {
    Reply::Status(
        500,
        "\"[PD:cluster:ErrNotBootstrapped]TiKV cluster not bootstrapped, please start TiKV first\"\n"
            .to_owned(),
    )
}

#[derive(Default)]
struct PdState {
    /// "METHOD /path" to the answers still to give; the last one repeats.
    routes: HashMap<String, VecDeque<Reply>>,
    /// The answer to a route without answers of its own.
    fallback: Option<Reply>,
    requests: Vec<Request>,
}

/// A PD stand-in on 127.0.0.1. A route without answers gets 404, as from PD's
/// router, unless the server was started `answering` everything.
pub struct FakePd {
    pub url: String,
    state: Arc<Mutex<PdState>>,
}

impl FakePd {
    pub fn start() -> FakePd {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(PdState::default()));
        let shared = Arc::clone(&state);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        FakePd { url, state }
    }

    /// A fake PD that gives every request the same reply.
    pub fn answering(reply: Reply) -> FakePd {
        let pd = FakePd::start();
        pd.state.lock().unwrap().fallback = Some(reply);
        pd
    }

    /// Sets the answers to `route` ("GET /pd/api/v1/stores"), given in turn;
    /// the last one repeats.
    pub fn on(&self, route: &str, replies: Vec<Reply>) -> &FakePd {
        assert!(!replies.is_empty());
        let mut state = self.state.lock().unwrap();
        state.routes.insert(route.to_owned(), replies.into());
        self
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The requests so far, as "METHOD /path".
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// The request lines so far ("GET /path HTTP/1.1").
    pub fn request_lines(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.line).collect()
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<PdState>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut data = Vec::new();
    let mut buf = [0; 4096];
    let header_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).into_owned();
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default().to_owned();
    let mut first = line.split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let mut length = 0;
    let mut content_type = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "content-type" => content_type = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    while data.len() < header_end + length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
    let body = String::from_utf8_lossy(&data[header_end..]).into_owned();
    let route = format!("{method} {path}");
    let reply = {
        let mut state = state.lock().unwrap();
        state.requests.push(Request {
            line,
            method,
            path,
            body,
            content_type,
        });
        match state.routes.get_mut(&route) {
            Some(replies) if replies.len() > 1 => replies.pop_front().unwrap(),
            Some(replies) => replies[0].clone(),
            None => match &state.fallback {
                Some(reply) => reply.clone(),
                None => Reply::Status(404, "404 page not found\n".to_owned()),
            },
        }
    };
    answer(&mut stream, reply);
}

fn answer(stream: &mut TcpStream, reply: Reply) {
    let (code, body) = match reply {
        Reply::Status(code, body) => (code, body),
        Reply::Close => return,
        Reply::After(hook, reply) => {
            hook();
            return answer(stream, *reply);
        }
    };
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        _ => "Internal Server Error",
    };
    let response = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json; charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A script may stop reading a long reply once it has what it needs.
    let _ = stream.write_all(response.as_bytes());
}

/// A URL where nothing listens.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

// ---------------------------------------------------------------- PD's JSON

/// Indents every line but the first by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    text.trim_end()
        .replace('\n', &format!("\n{}", " ".repeat(n)))
}

/// The JSON text without whitespace outside strings.
pub fn compact(json: &str) -> String {
    let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------- PD's stores

/// One entry of PD's store list, or the reply to GET /pd/api/v1/store/{id}:
/// `{"store":{...},"status":{...}}`, indented as PD does.
#[derive(Clone)]
pub struct Store {
    pub id: u64,
    pub address: String,
    pub peer_address: String,
    pub deploy_path: String,
    pub state: &'static str,
    pub leaders: Option<u64>,
}

impl Store {
    pub fn new(id: u64, address: &str) -> Store {
        Store {
            id,
            address: address.to_owned(),
            peer_address: address.to_owned(),
            deploy_path: "/".to_owned(),
            state: "Up",
            leaders: Some(10),
        }
    }

    pub fn deploy_path(mut self, path: &str) -> Store {
        self.deploy_path = path.to_owned();
        self
    }

    pub fn state(mut self, state: &'static str) -> Store {
        self.state = state;
        self
    }

    /// None: no leader_count at all (Go's omitempty drops a zero).
    pub fn leaders(mut self, leaders: Option<u64>) -> Store {
        self.leaders = leaders;
        self
    }

    pub fn json(&self) -> String {
        let state = match self.state {
            "Up" | "Disconnected" | "Down" => "\"node_state\": 1".to_owned(),
            "Offline" => "\"state\": 1,\n    \"node_state\": 2".to_owned(),
            "Tombstone" => "\"state\": 2,\n    \"node_state\": 3".to_owned(),
            other => panic!("unknown state {other}"),
        };
        let leaders = match self.leaders {
            Some(n) => format!("\n    \"leader_count\": {n},"),
            None => String::new(),
        };
        let Store {
            id,
            address,
            peer_address,
            deploy_path,
            state: state_name,
            ..
        } = self;
        let status_address = address.replace(":20160", ":20180");
        format!(
            r#"{{
  "store": {{
    "id": {id},
    "address": "{address}",
    "labels": [
      {{
        "key": "zone",
        "value": "a"
      }},
      {{
        "key": "host",
        "value": "node-{id}"
      }}
    ],
    "version": "8.5.1",
    "peer_address": "{peer_address}",
    "status_address": "{status_address}",
    "git_hash": "5e6b8c1e2a9bb1fd5d4a5cba3a6a0a8d4e0f9b21",
    "start_timestamp": 1730000000,
    "deploy_path": "{deploy_path}",
    "last_heartbeat": 1730000123456789012,
    {state},
    "state_name": "{state_name}"
  }},
  "status": {{
    "capacity": "1.718TiB",
    "available": "1.5TiB",
    "used_size": "12.5GiB",{leaders}
    "leader_weight": 1,
    "leader_score": 12,
    "leader_size": 1234,
    "region_count": 36,
    "region_weight": 1,
    "region_score": 4012.5,
    "region_size": 3600,
    "slow_score": 1,
    "slow_trend": {{
      "cause_value": 250000.5,
      "cause_rate": 0,
      "result_value": 0,
      "result_rate": 0
    }},
    "start_ts": "2024-10-27T03:33:20Z",
    "last_heartbeat_ts": "2024-10-27T03:35:23.456789012Z",
    "uptime": "2m3.456789012s"
  }}
}}
"#
        )
    }
}

/// PD's store list (GET /pd/api/v1/stores).
pub fn stores_json(stores: &[Store]) -> String {
    let entries: Vec<String> = stores.iter().map(|s| indent(&s.json(), 4)).collect();
    format!(
        "{{\n  \"count\": {},\n  \"stores\": [\n    {}\n  ]\n}}\n",
        stores.len(),
        entries.join(",\n    ")
    )
}
