//! Validators for the names, labels and paths a cluster description contains.
//!
//! This module owns the syntax rules that Kubernetes, PD and the node's shell
//! impose on user-chosen strings: object names, label keys and values, node
//! names and local volume directories. Checking them while compiling turns
//! what would be a rejected manifest, a PD that refuses its store labels or a
//! pod script that breaks on a space into an error that names the field and
//! says how to fix it. Each validator returns a [`NameError`] whose reason is
//! a short lowercase phrase and whose hint restates the rule.

use std::fmt;

/// Why a string is not acceptable, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameError {
    /// What is wrong, as a lowercase phrase.
    pub reason: String,
    /// How to fix it, as a lowercase phrase.
    pub hint: String,
}

impl NameError {
    fn new(reason: impl Into<String>, hint: impl Into<String>) -> NameError {
        NameError {
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NameError {}

/// Longest DNS-1123 label, from RFC 1123.
const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain, from RFC 1123.
const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest label value and label key name, from Kubernetes.
const LABEL_NAME_MAX: usize = 63;
/// Longest path Linux accepts (`PATH_MAX`, counting the terminating zero).
const HOST_PATH_MAX: usize = 4096;

/// Checks a Kubernetes DNS-1035 label of at most `max_len` characters:
/// lowercase letters, digits and `-`, starting with a letter and ending with
/// a letter or digit. Service names follow this rule, and the cluster name
/// uses it with a smaller limit because it prefixes generated names.
pub fn dns1035_label(s: &str, max_len: usize) -> Result<(), NameError> {
    let hint = format!(
        "use 1 to {max_len} lowercase letters, digits and `-`, \
         starting with a letter and ending with a letter or digit"
    );
    check_dns_part(s, "name", &hint)?;
    check_length(s, "name", max_len, &hint)?;
    let first = first_char(s);
    if !first.is_ascii_lowercase() {
        return Err(NameError::new(
            format!("name starts with {}, not a letter", describe(first)),
            hint,
        ));
    }
    Ok(())
}

/// Checks a Kubernetes DNS-1123 label, the rule for namespace names: 1 to 63
/// lowercase letters, digits and `-`, starting and ending with a letter or
/// digit.
pub fn dns1123_label(s: &str) -> Result<(), NameError> {
    let hint = "use 1 to 63 lowercase letters, digits and `-`, \
                starting and ending with a letter or digit";
    check_dns_part(s, "name", hint)?;
    check_length(s, "name", DNS1123_LABEL_MAX, hint)
}

/// Checks a Kubernetes DNS-1123 subdomain, the rule for Secret names: at most
/// 253 characters forming dot-separated parts of lowercase letters, digits
/// and `-`, each starting and ending with a letter or digit.
pub fn dns1123_subdomain(s: &str) -> Result<(), NameError> {
    check_subdomain(s, "name")
}

/// Checks a Kubernetes label key: an optional prefix that is a DNS-1123
/// subdomain followed by `/`, then a name of 1 to 63 letters, digits, `-`,
/// `_` and `.` that starts and ends with a letter or digit.
///
/// Keys also become PD store-label keys, which must match
/// `^[$]?[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$`; every valid Kubernetes
/// key does, and a debug assertion keeps that true.
pub fn label_key(s: &str) -> Result<(), NameError> {
    let hint = "write an optional DNS subdomain prefix and `/`, then 1 to 63 letters, \
                digits, `-`, `_` and `.` starting and ending with a letter or digit, \
                such as topology.kubernetes.io/zone or rack";
    if s.is_empty() {
        return Err(NameError::new("label key is empty", hint));
    }
    let name = match s.split_once('/') {
        None => s,
        Some((prefix, name)) => {
            if name.contains('/') {
                return Err(NameError::new("label key has more than one `/`", hint));
            }
            if prefix.is_empty() {
                return Err(NameError::new("label key prefix before `/` is empty", hint));
            }
            check_subdomain(prefix, "label key prefix")?;
            if name.is_empty() {
                return Err(NameError::new("label key name after `/` is empty", hint));
            }
            name
        }
    };
    check_label_text(name, "label key name", hint)?;
    debug_assert!(matches_pd_label_key(s), "{s:?} escapes PD's key pattern");
    Ok(())
}

/// Checks a Kubernetes label value: up to 63 letters, digits, `-`, `_` and
/// `.`, starting and ending with a letter or digit unless it is empty. Every
/// such value also matches PD's store-label value pattern `^[-A-Za-z0-9_./]*$`.
pub fn label_value(s: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Ok(());
    }
    check_label_text(
        s,
        "label value",
        "use up to 63 letters, digits, `-`, `_` and `.`, \
         starting and ending with a letter or digit",
    )
}

/// Checks a node name as it appears in the `kubernetes.io/hostname` label,
/// such as `172.17.4.101` or `node-a1`: a non-empty label value.
pub fn node_name(s: &str) -> Result<(), NameError> {
    let hint = "use the node's `kubernetes.io/hostname` label value: 1 to 63 letters, \
                digits, `-`, `_` and `.`, starting and ending with a letter or digit";
    if s.is_empty() {
        return Err(NameError::new("node name is empty", hint));
    }
    check_label_text(s, "node name", hint)
}

/// Checks a directory that becomes a local PersistentVolume path and is
/// written into pod scripts: absolute, normalized, made of quoting-safe
/// characters, at most 4096 bytes, and not a system location.
pub fn host_path(s: &str) -> Result<(), NameError> {
    const SHAPE: &str = "write an absolute directory path such as /mnt/disks/ssd0";
    if s.is_empty() {
        return Err(NameError::new("path is empty", SHAPE));
    }
    if !s.starts_with('/') {
        return Err(NameError::new("path is not absolute", SHAPE));
    }
    if s.len() > HOST_PATH_MAX {
        return Err(NameError::new(
            format!(
                "path is {} bytes long, more than the limit of {HOST_PATH_MAX}",
                s.len()
            ),
            "use a shorter directory path",
        ));
    }
    if let Some(c) = s.chars().find(|&c| !is_host_path_char(c)) {
        return Err(NameError::new(
            format!("path contains {}", describe(c)),
            "use only letters, digits and `.`, `_`, `-`, `+`, `@`, `/`; \
             quoting-safe characters are required because the path appears in pod scripts",
        ));
    }
    if s.contains("//") {
        return Err(NameError::new(
            "path has an empty component (`//`)",
            "separate components with a single `/`",
        ));
    }
    if s.len() > 1 && s.ends_with('/') {
        return Err(NameError::new(
            "path ends with `/`",
            "remove the trailing `/`",
        ));
    }
    let dot_hint = "write the directory the path resolves to, without `.` or `..` components";
    for component in s.split('/') {
        match component {
            "." => return Err(NameError::new("path has a `.` component", dot_hint)),
            ".." => return Err(NameError::new("path has a `..` component", dot_hint)),
            _ => {}
        }
    }
    check_not_system_location(s)
}

/// True when `inner` is `outer` or lies below it, comparing whole path
/// components, so `/mnt/a` is within `/mnt` but not within `/mnt/ab`.
///
/// Both paths are expected to be normalized; repeated and trailing `/` are
/// tolerated, but `..` is not resolved, and an absolute path is never within
/// a relative one or the other way round.
pub fn path_is_within(inner: &str, outer: &str) -> bool {
    if inner.starts_with('/') != outer.starts_with('/') {
        return false;
    }
    let mut inner_parts = components(inner);
    components(outer).all(|part| inner_parts.next() == Some(part))
}

/// The non-empty components of a path.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|part| !part.is_empty())
}

/// Characters that need no quoting in a POSIX shell word and have no special
/// meaning in a path, so a path made of them can be pasted into a script.
fn is_host_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-' | '+' | '@')
}

/// Directories that may not be used themselves.
const SYSTEM_DIRS: [&str; 13] = [
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/var/lib/kubelet",
];

/// Directories below which nothing may be used. The kernel file systems
/// (`/proc`, `/sys`, `/dev`) and the host's configuration and boot files
/// must never receive database files. `/var/lib/kubelet` is included because
/// kubelet keeps pod volumes, mounted Secrets and plugin sockets below it and
/// deletes pod directories when pods go away, so a local volume there could
/// expose another pod's data or be wiped by kubelet.
const SYSTEM_TREES: [&str; 6] = ["/proc", "/sys", "/dev", "/etc", "/boot", "/var/lib/kubelet"];

/// Rejects system directories, paths below the protected trees, and
/// ancestors of `/var/lib/kubelet` (`/var`, `/var/lib`), since a volume
/// there would hand kubelet's data to the pod that mounts it.
fn check_not_system_location(path: &str) -> Result<(), NameError> {
    let hint = "choose a dedicated data directory such as /mnt/disks/ssd0";
    if let Some(dir) = SYSTEM_DIRS.iter().find(|&&dir| dir == path) {
        return Err(NameError::new(
            format!("`{dir}` is a system location"),
            hint,
        ));
    }
    if let Some(tree) = SYSTEM_TREES
        .iter()
        .find(|&&tree| path_is_within(path, tree))
    {
        return Err(NameError::new(
            format!("path is inside `{tree}`, a system location"),
            hint,
        ));
    }
    if path_is_within("/var/lib/kubelet", path) {
        return Err(NameError::new(
            format!("`{path}` contains `/var/lib/kubelet`, a system location"),
            hint,
        ));
    }
    Ok(())
}

/// Checks the character set and the ends of one DNS label: lowercase
/// letters, digits and `-`, with a letter or digit at either end. Length is
/// left to the caller because the limits differ.
fn check_dns_part(s: &str, subject: &str, hint: &str) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::new(format!("{subject} is empty"), hint));
    }
    if let Some(c) = s.chars().find(|&c| !is_dns_char(c)) {
        let reason = if c.is_ascii_uppercase() {
            format!("{subject} contains uppercase {}", describe(c))
        } else {
            format!(
                "{subject} contains {}, which is not a lowercase letter, digit or `-`",
                describe(c)
            )
        };
        return Err(NameError::new(reason, hint));
    }
    check_alphanumeric_ends(s, subject, hint)
}

/// Checks a DNS-1123 subdomain with `subject` naming it in messages.
///
/// Like Kubernetes, this limits only the total length, not each part's.
fn check_subdomain(s: &str, subject: &str) -> Result<(), NameError> {
    let hint = "use up to 253 lowercase letters, digits, `-` and `.`, \
                with each dot-separated part starting and ending with a letter or digit";
    if s.is_empty() {
        return Err(NameError::new(format!("{subject} is empty"), hint));
    }
    if let Some(c) = s.chars().find(|&c| !is_dns_char(c) && c != '.') {
        let reason = if c.is_ascii_uppercase() {
            format!("{subject} contains uppercase {}", describe(c))
        } else {
            format!(
                "{subject} contains {}, which is not a lowercase letter, digit, `-` or `.`",
                describe(c)
            )
        };
        return Err(NameError::new(reason, hint));
    }
    check_length(s, subject, DNS1123_SUBDOMAIN_MAX, hint)?;
    if s.starts_with('.') {
        return Err(NameError::new(format!("{subject} starts with `.`"), hint));
    }
    if s.ends_with('.') {
        return Err(NameError::new(format!("{subject} ends with `.`"), hint));
    }
    if s.contains("..") {
        return Err(NameError::new(format!("{subject} contains `..`"), hint));
    }
    for part in s.split('.') {
        check_alphanumeric_ends(part, &format!("{subject} part `{part}`"), hint)?;
    }
    Ok(())
}

/// Checks a label value or the name part of a label key: letters, digits,
/// `-`, `_` and `.`, at most 63 of them, with a letter or digit at either
/// end. The caller has already handled the empty string.
fn check_label_text(s: &str, subject: &str, hint: &str) -> Result<(), NameError> {
    if let Some(c) = s.chars().find(|&c| !is_label_char(c)) {
        return Err(NameError::new(
            format!(
                "{subject} contains {}, which is not a letter, digit, `-`, `_` or `.`",
                describe(c)
            ),
            hint,
        ));
    }
    check_length(s, subject, LABEL_NAME_MAX, hint)?;
    check_alphanumeric_ends(s, subject, hint)
}

/// Rejects a string longer than `max` characters. Callers check the
/// character set first, so for them characters and bytes coincide.
fn check_length(s: &str, subject: &str, max: usize, hint: &str) -> Result<(), NameError> {
    let len = s.chars().count();
    if len > max {
        return Err(NameError::new(
            format!("{subject} is {len} characters long, more than the limit of {max}"),
            hint,
        ));
    }
    Ok(())
}

/// Rejects a non-empty string that does not start and end with an ASCII
/// letter or digit.
fn check_alphanumeric_ends(s: &str, subject: &str, hint: &str) -> Result<(), NameError> {
    let first = first_char(s);
    if !first.is_ascii_alphanumeric() {
        return Err(NameError::new(
            format!(
                "{subject} starts with {}, not a letter or digit",
                describe(first)
            ),
            hint,
        ));
    }
    let last = s.chars().next_back().unwrap_or(first);
    if !last.is_ascii_alphanumeric() {
        return Err(NameError::new(
            format!(
                "{subject} ends with {}, not a letter or digit",
                describe(last)
            ),
            hint,
        ));
    }
    Ok(())
}

/// The first character of a string the caller knows is not empty.
fn first_char(s: &str) -> char {
    s.chars().next().unwrap_or('\0')
}

fn is_dns_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Whether a key matches PD's store-label key pattern
/// `^[$]?[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$`.
fn matches_pd_label_key(key: &str) -> bool {
    let body = key.strip_prefix('$').unwrap_or(key);
    let bytes = body.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        }
        _ => false,
    }
}

/// A character quoted for a message, spelling out the invisible ones.
fn describe(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        c if c.is_ascii_graphic() => format!("`{c}`"),
        c => format!("`{}`", c.escape_debug()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `result` is an error whose reason is exactly `reason`.
    #[track_caller]
    fn assert_reason(result: Result<(), NameError>, reason: &str) {
        match result {
            Ok(()) => panic!("expected the error {reason:?}, got success"),
            Err(error) => {
                assert_eq!(error.reason, reason);
                assert_eq!(error.to_string(), reason);
                assert!(!error.hint.is_empty());
                for text in [&error.reason, &error.hint] {
                    assert!(!text.ends_with('.'), "{text}");
                    assert!(!text.starts_with(char::is_uppercase), "{text}");
                }
            }
        }
    }

    #[test]
    fn dns1035_label_accepts_valid_names() {
        for name in ["a", "basic", "tidb-prod", "a1", "a-1-b", "x0"] {
            assert_eq!(dns1035_label(name, 40), Ok(()), "{name}");
        }
        assert_eq!(dns1035_label(&"a".repeat(40), 40), Ok(()));
    }

    #[test]
    fn dns1035_label_rejects_invalid_names() {
        assert_reason(dns1035_label("", 40), "name is empty");
        assert_reason(
            dns1035_label(&"a".repeat(41), 40),
            "name is 41 characters long, more than the limit of 40",
        );
        assert_reason(
            dns1035_label("1abc", 40),
            "name starts with `1`, not a letter",
        );
        assert_reason(
            dns1035_label("-abc", 40),
            "name starts with `-`, not a letter or digit",
        );
        assert_reason(
            dns1035_label("abc-", 40),
            "name ends with `-`, not a letter or digit",
        );
        assert_reason(dns1035_label("Tidb", 40), "name contains uppercase `T`");
        assert_reason(
            dns1035_label("ti_db", 40),
            "name contains `_`, which is not a lowercase letter, digit or `-`",
        );
        assert_reason(
            dns1035_label("ti.db", 40),
            "name contains `.`, which is not a lowercase letter, digit or `-`",
        );
        assert_reason(
            dns1035_label("ti db", 40),
            "name contains a space, which is not a lowercase letter, digit or `-`",
        );
        assert_reason(
            dns1035_label("tidé", 40),
            "name contains `é`, which is not a lowercase letter, digit or `-`",
        );
        let error = dns1035_label(&"a".repeat(41), 40).unwrap_err();
        assert!(error.hint.contains("1 to 40"), "{}", error.hint);
    }

    #[test]
    fn dns1123_label_boundaries_and_rules() {
        for name in ["a", "1", "tidb-cluster", "0abc", "a-b", "123"] {
            assert_eq!(dns1123_label(name), Ok(()), "{name}");
        }
        assert_eq!(dns1123_label(&"a".repeat(63)), Ok(()));
        assert_reason(
            dns1123_label(&"a".repeat(64)),
            "name is 64 characters long, more than the limit of 63",
        );
        assert_reason(dns1123_label(""), "name is empty");
        assert_reason(
            dns1123_label("-a"),
            "name starts with `-`, not a letter or digit",
        );
        assert_reason(
            dns1123_label("a-"),
            "name ends with `-`, not a letter or digit",
        );
        assert_reason(dns1123_label("Prod"), "name contains uppercase `P`");
        assert_reason(
            dns1123_label("a.b"),
            "name contains `.`, which is not a lowercase letter, digit or `-`",
        );
        assert_reason(
            dns1123_label("a\tb"),
            "name contains `\\t`, which is not a lowercase letter, digit or `-`",
        );
    }

    #[test]
    fn dns1123_subdomain_boundaries_and_rules() {
        for name in ["a", "tls-secret", "a.b", "db.example.com", "1-2.3-4", "a.1"] {
            assert_eq!(dns1123_subdomain(name), Ok(()), "{name}");
        }
        let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(dns1123_subdomain(&longest), Ok(()));
        assert_reason(
            dns1123_subdomain(&format!("{longest}a")),
            "name is 254 characters long, more than the limit of 253",
        );
        // Kubernetes limits only the whole name, so one long part is fine.
        assert_eq!(dns1123_subdomain(&"a".repeat(100)), Ok(()));
        assert_reason(dns1123_subdomain(""), "name is empty");
        assert_reason(dns1123_subdomain(".a"), "name starts with `.`");
        assert_reason(dns1123_subdomain("a."), "name ends with `.`");
        assert_reason(dns1123_subdomain("a..b"), "name contains `..`");
        assert_reason(
            dns1123_subdomain("a.-b"),
            "name part `-b` starts with `-`, not a letter or digit",
        );
        assert_reason(
            dns1123_subdomain("a-.b"),
            "name part `a-` ends with `-`, not a letter or digit",
        );
        assert_reason(
            dns1123_subdomain("My.secret"),
            "name contains uppercase `M`",
        );
        assert_reason(
            dns1123_subdomain("my_secret"),
            "name contains `_`, which is not a lowercase letter, digit, `-` or `.`",
        );
    }

    #[test]
    fn label_key_accepts_valid_keys_that_pd_also_accepts() {
        let keys = [
            "zone",
            "rack",
            "host",
            "Zone",
            "a",
            "a.b_c-d",
            "topology.kubernetes.io/zone",
            "kubernetes.io/hostname",
            "example.com/Rack_1",
            "a/b",
        ];
        let long_name = "k".repeat(63);
        let long_prefix = format!("{0}.{0}.{0}.{1}", "p".repeat(63), "p".repeat(61));
        let long_key = format!("{long_prefix}/{long_name}");
        for key in keys.iter().copied().chain([&*long_name, &*long_key]) {
            assert_eq!(label_key(key), Ok(()), "{key}");
            assert!(matches_pd_label_key(key), "{key}");
        }
    }

    #[test]
    fn label_key_rejects_invalid_keys() {
        assert_reason(label_key(""), "label key is empty");
        assert_reason(label_key("a/b/c"), "label key has more than one `/`");
        assert_reason(label_key("/zone"), "label key prefix before `/` is empty");
        assert_reason(
            label_key("example.com/"),
            "label key name after `/` is empty",
        );
        assert_reason(
            label_key("Example.com/zone"),
            "label key prefix contains uppercase `E`",
        );
        assert_reason(
            label_key("-example.com/zone"),
            "label key prefix part `-example` starts with `-`, not a letter or digit",
        );
        assert_reason(
            label_key(&format!("{}/zone", "p".repeat(254))),
            "label key prefix is 254 characters long, more than the limit of 253",
        );
        assert_reason(
            label_key(&"k".repeat(64)),
            "label key name is 64 characters long, more than the limit of 63",
        );
        assert_reason(
            label_key(&format!("example.com/{}", "k".repeat(64))),
            "label key name is 64 characters long, more than the limit of 63",
        );
        assert_reason(
            label_key("_zone"),
            "label key name starts with `_`, not a letter or digit",
        );
        assert_reason(
            label_key("zone."),
            "label key name ends with `.`, not a letter or digit",
        );
        assert_reason(
            label_key("$zone"),
            "label key name contains `$`, which is not a letter, digit, `-`, `_` or `.`",
        );
        assert_reason(
            label_key("my zone"),
            "label key name contains a space, which is not a letter, digit, `-`, `_` or `.`",
        );
    }

    #[test]
    fn pd_key_pattern_is_checked_faithfully() {
        for key in ["a", "$a", "a/b", "a-b_c.d/e", "$a.b"] {
            assert!(matches_pd_label_key(key), "{key}");
        }
        for key in ["", "$", "-a", "a-", "a b", "a$", "$$a", "é"] {
            assert!(!matches_pd_label_key(key), "{key}");
        }
    }

    #[test]
    fn label_value_boundaries_and_rules() {
        for value in ["", "a", "z1", "rack-01", "R_1.a", "172.17.4.101", "1"] {
            assert_eq!(label_value(value), Ok(()), "{value:?}");
        }
        assert_eq!(label_value(&"v".repeat(63)), Ok(()));
        assert_reason(
            label_value(&"v".repeat(64)),
            "label value is 64 characters long, more than the limit of 63",
        );
        assert_reason(
            label_value("-a"),
            "label value starts with `-`, not a letter or digit",
        );
        assert_reason(
            label_value("a_"),
            "label value ends with `_`, not a letter or digit",
        );
        assert_reason(
            label_value("."),
            "label value starts with `.`, not a letter or digit",
        );
        assert_reason(
            label_value("a/b"),
            "label value contains `/`, which is not a letter, digit, `-`, `_` or `.`",
        );
        assert_reason(
            label_value("a:b"),
            "label value contains `:`, which is not a letter, digit, `-`, `_` or `.`",
        );
    }

    #[test]
    fn node_name_is_a_non_empty_label_value() {
        for name in [
            "172.17.4.101",
            "node-a1",
            "Node_1",
            "n00001",
            "ip-10-0-0-1.ec2.internal",
        ] {
            assert_eq!(node_name(name), Ok(()), "{name}");
        }
        assert_eq!(node_name(&"n".repeat(63)), Ok(()));
        assert_reason(node_name(""), "node name is empty");
        assert_reason(
            node_name(&"n".repeat(64)),
            "node name is 64 characters long, more than the limit of 63",
        );
        assert_reason(
            node_name("node-"),
            "node name ends with `-`, not a letter or digit",
        );
        assert_reason(
            node_name("node 1"),
            "node name contains a space, which is not a letter, digit, `-`, `_` or `.`",
        );
        assert!(
            node_name("")
                .unwrap_err()
                .hint
                .contains("kubernetes.io/hostname")
        );
    }

    #[test]
    fn host_path_accepts_normal_data_directories() {
        for path in [
            "/mnt/disks/ssd0",
            "/mnt/nvme0",
            "/data",
            "/data1/tikv_store-2",
            "/mnt/a+b@c",
            "/var/lib/tidb",
            "/var/lib/kubelet-data",
            "/usr/local/data",
            "/etcd",
            "/devices/ssd",
            "/mnt/.hidden",
            "/mnt/...",
            "/root2",
        ] {
            assert_eq!(host_path(path), Ok(()), "{path}");
        }
        let longest = format!("/{}", "a".repeat(HOST_PATH_MAX - 1));
        assert_eq!(host_path(&longest), Ok(()));
    }

    #[test]
    fn host_path_rejects_malformed_paths() {
        assert_reason(host_path(""), "path is empty");
        assert_reason(host_path("mnt/disks"), "path is not absolute");
        assert_reason(host_path("./mnt"), "path is not absolute");
        assert_reason(
            host_path(&format!("/{}", "a".repeat(HOST_PATH_MAX))),
            "path is 4097 bytes long, more than the limit of 4096",
        );
        assert_reason(host_path("/mnt/my disk"), "path contains a space");
        assert_reason(host_path("/mnt/$HOME"), "path contains `$`");
        assert_reason(host_path("/mnt/a'b"), "path contains `'`");
        assert_reason(host_path("/mnt/a;b"), "path contains `;`");
        assert_reason(host_path("/mnt/a\nb"), "path contains `\\n`");
        assert_reason(host_path("/mnt/disk*"), "path contains `*`");
        assert_reason(host_path("/mnt/dé"), "path contains `é`");
        assert_reason(
            host_path("/mnt//disks"),
            "path has an empty component (`//`)",
        );
        assert_reason(host_path("//mnt"), "path has an empty component (`//`)");
        assert_reason(host_path("/mnt/disks/"), "path ends with `/`");
        assert_reason(host_path("/mnt/./disks"), "path has a `.` component");
        assert_reason(host_path("/mnt/."), "path has a `.` component");
        assert_reason(host_path("/mnt/../etc"), "path has a `..` component");
        assert_reason(host_path("/.."), "path has a `..` component");
        let error = host_path("/mnt/my disk").unwrap_err();
        assert!(error.hint.contains("pod scripts"), "{}", error.hint);
    }

    #[test]
    fn host_path_rejects_system_locations() {
        for dir in SYSTEM_DIRS {
            assert_reason(host_path(dir), &format!("`{dir}` is a system location"));
        }
        for (path, tree) in [
            ("/proc/1", "/proc"),
            ("/sys/fs/cgroup", "/sys"),
            ("/dev/sda", "/dev"),
            ("/dev/disk/by-id/x", "/dev"),
            ("/etc/tidb", "/etc"),
            ("/boot/efi", "/boot"),
            ("/var/lib/kubelet/pods", "/var/lib/kubelet"),
            ("/var/lib/kubelet/plugins/x", "/var/lib/kubelet"),
        ] {
            assert_reason(
                host_path(path),
                &format!("path is inside `{tree}`, a system location"),
            );
        }
        assert_reason(
            host_path("/var"),
            "`/var` contains `/var/lib/kubelet`, a system location",
        );
        assert_reason(
            host_path("/var/lib"),
            "`/var/lib` contains `/var/lib/kubelet`, a system location",
        );
    }

    #[test]
    fn path_is_within_compares_whole_components() {
        assert!(path_is_within("/mnt/a", "/mnt/a"));
        assert!(path_is_within("/mnt/a/b", "/mnt/a"));
        assert!(path_is_within("/mnt/a/b/c", "/mnt"));
        assert!(path_is_within("/mnt", "/"));
        assert!(path_is_within("/", "/"));
        assert!(path_is_within("/mnt/a/", "/mnt/a"));
        assert!(path_is_within("/mnt/a", "/mnt/a/"));
        assert!(!path_is_within("/mnt/a", "/mnt/ab"));
        assert!(!path_is_within("/mnt/ab", "/mnt/a"));
        assert!(!path_is_within("/mnt", "/mnt/a"));
        assert!(!path_is_within("/", "/mnt"));
        assert!(!path_is_within("/mnt/a", "/data"));
        assert!(!path_is_within("mnt/a", "/mnt"));
        assert!(!path_is_within("/mnt/a", "mnt"));
        assert!(path_is_within("mnt/a", "mnt"));
    }
}
