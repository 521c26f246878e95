//! `/etc/seedpart/seedpart.conf` in the target root (SPEC section 7), merged with the kernel
//! command line and the command-line flags.
//!
//! The file is TOML, restricted to what seedpart needs: a flat list of `key = value` lines, the
//! values double- or single-quoted strings and `true`/`false`, with `#` comments and blank
//! lines. The parser is strict: an unknown key, a bad value, a key set twice, a table or an
//! array is refused with an error naming the file, the line and the key, so a typo never
//! silently changes what the first boot does.
//!
//! Precedence: command-line flags > kernel command line > file. The flags and kernel options
//! are switches that turn things off (`--no-grow`, `seedpart.nogrow`, `--keep-partition`), or
//! name the device (`--device` over `seedpart.device=`; the file has no device key).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::apply::rootfs::{Root, RootError, rel};
use crate::cmdline::KernelOptions;

/// The file, relative to the target root.
pub const FILE: &str = "etc/seedpart/seedpart.conf";
/// A larger file is refused (it is a few lines).
const MAX_SIZE: u64 = 64 << 10;

/// `network = ...`: which stack's configuration is rendered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Whichever stack the target root uses.
    #[default]
    Auto,
    Networkd,
    NetworkManager,
    Netplan,
    Ifupdown,
    /// Render nothing.
    None,
}

impl Network {
    pub const ALL: [Network; 6] = [
        Network::Auto,
        Network::Networkd,
        Network::NetworkManager,
        Network::Netplan,
        Network::Ifupdown,
        Network::None,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Network::Auto => "auto",
            Network::Networkd => "networkd",
            Network::NetworkManager => "networkmanager",
            Network::Netplan => "netplan",
            Network::Ifupdown => "ifupdown",
            Network::None => "none",
        }
    }
}

/// `cloud_init_seed = ...`: whether the drive is handed to cloud-init.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudInitSeed {
    /// When cloud-init is installed in the target (`/usr/bin/cloud-init`).
    #[default]
    Auto,
    /// Always (`true`): seed it, and leave hostname, keys, network and scripts to it.
    Always,
    /// Never (`false`): seedpart applies everything itself.
    Never,
}

/// The effective configuration of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Whose `~/.ssh/authorized_keys` gets the keys.
    pub user: String,
    pub network: Network,
    pub grow: bool,
    pub delete_partition: bool,
    pub cloud_init_seed: CloudInitSeed,
    pub run_user_data: bool,
    /// `--device`, else `seedpart.device=` (the file has no such key).
    pub device: Option<String>,
    /// `seedpart.disable` on the kernel command line.
    pub disable: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            user: "root".into(),
            network: Network::Auto,
            grow: true,
            delete_partition: true,
            cloud_init_seed: CloudInitSeed::Auto,
            run_user_data: true,
            device: None,
            disable: false,
        }
    }
}

/// The command-line flags that take part in the merge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub device: Option<String>,
    pub no_grow: bool,
    pub keep_partition: bool,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Names the file, the line (from 1) and, when known, the key.
    #[error("{}:{line}: {}{msg}", file.display(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Invalid {
        file: PathBuf,
        line: usize,
        key: Option<String>,
        msg: String,
    },
    #[error(transparent)]
    Read(#[from] RootError),
}

const KEYS: &str = "user, network, grow, delete_partition, cloud_init_seed, run_user_data";

impl Config {
    /// The file in `root` (defaults when it does not exist), then the kernel command line, then
    /// the flags.
    pub fn resolve(
        root: &Path,
        kernel: &KernelOptions,
        flags: &Flags,
    ) -> Result<Config, ConfigError> {
        Ok(Config::load(root)?.with_kernel(kernel).with_flags(flags))
    }

    /// Reads `<root>/etc/seedpart/seedpart.conf` (through symlinks resolved inside the root);
    /// the defaults when it does not exist.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        Config::load_in(&Root::open(root)?)
    }

    pub fn load_in(root: &Root) -> Result<Config, ConfigError> {
        let path = rel(FILE);
        match root.read(&path, MAX_SIZE)? {
            None => Ok(Config::default()),
            Some(bytes) => Config::parse(&root.host_path(&path), &bytes),
        }
    }

    /// Applies the kernel command line: `seedpart.device=`, `seedpart.disable`,
    /// `seedpart.nogrow`.
    pub fn with_kernel(mut self, k: &KernelOptions) -> Config {
        if k.device.is_some() {
            self.device = k.device.clone();
        }
        self.disable |= k.disable;
        if k.nogrow {
            self.grow = false;
        }
        self
    }

    /// Applies the command-line flags, which win over everything.
    pub fn with_flags(mut self, f: &Flags) -> Config {
        if f.device.is_some() {
            self.device = f.device.clone();
        }
        if f.no_grow {
            self.grow = false;
        }
        if f.keep_partition {
            self.delete_partition = false;
        }
        self
    }

    /// Parses the file's bytes; `file` names it in errors.
    pub fn parse(file: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
        let bad = |line: usize, key: Option<&str>, msg: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            key: key.map(str::to_string),
            msg,
        };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count();
                return Err(bad(line, None, "not UTF-8 text".into()));
            }
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut cfg = Config::default();
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let (key, value) = match parse_line(line) {
                Ok(None) => continue,
                Ok(Some(kv)) => kv,
                Err((key, msg)) => return Err(bad(n, key.as_deref(), msg)),
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(bad(
                    n,
                    Some(&key),
                    format!("set twice (first on line {first})"),
                ));
            }
            seen.push((key.clone(), n));
            let expected =
                |what: &str| bad(n, Some(&key), format!("expected {what}, found {value}"));
            match key.as_str() {
                "user" => match &value {
                    Value::Str(s) => {
                        check_user(s).map_err(|why| bad(n, Some(&key), why))?;
                        cfg.user = s.clone();
                    }
                    _ => return Err(expected("a user name in double quotes, such as \"debian\"")),
                },
                "network" => {
                    let want = || {
                        let names: Vec<String> = Network::ALL
                            .iter()
                            .map(|n| format!("\"{}\"", n.name()))
                            .collect();
                        format!("one of {}", names.join(", "))
                    };
                    match &value {
                        Value::Str(s) => {
                            cfg.network = Network::ALL
                                .into_iter()
                                .find(|n| n.name() == s)
                                .ok_or_else(|| expected(&want()))?;
                        }
                        _ => return Err(expected(&want())),
                    }
                }
                "grow" | "delete_partition" | "run_user_data" => {
                    let Value::Bool(b) = value else {
                        return Err(expected("true or false (without quotes)"));
                    };
                    match key.as_str() {
                        "grow" => cfg.grow = b,
                        "delete_partition" => cfg.delete_partition = b,
                        _ => cfg.run_user_data = b,
                    }
                }
                "cloud_init_seed" => {
                    cfg.cloud_init_seed = match &value {
                        Value::Str(s) if s == "auto" => CloudInitSeed::Auto,
                        Value::Bool(true) => CloudInitSeed::Always,
                        Value::Bool(false) => CloudInitSeed::Never,
                        _ => return Err(expected("\"auto\", true or false")),
                    }
                }
                _ => {
                    return Err(bad(
                        n,
                        Some(&key),
                        format!("unknown key (the keys are: {KEYS})"),
                    ));
                }
            }
        }
        Ok(cfg)
    }
}

/// A value of the subset.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Str(String),
    Bool(bool),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "the string {s:?}"),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

type LineError = (Option<String>, String);

/// One line: `None` for a blank or comment line, else the key and its value.
fn parse_line(line: &str) -> Result<Option<(String, Value)>, LineError> {
    let s = line.trim_start_matches([' ', '\t']);
    if s.is_empty() || s.starts_with('#') {
        return Ok(None);
    }
    if s.starts_with('[') {
        return Err((
            None,
            "tables ([section]) are not supported: seedpart.conf is a flat list of `key = value` lines".into(),
        ));
    }
    if s.starts_with(['"', '\'']) {
        return Err((
            None,
            "quoted keys are not supported: write the key bare, e.g. `user = \"debian\"`".into(),
        ));
    }
    let key_len = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .unwrap_or(s.len());
    let key = &s[..key_len];
    if key.is_empty() {
        let c = s.chars().next().unwrap_or(' ');
        return Err((None, format!("expected a key, found {c:?}")));
    }
    let k = Some(key.to_string());
    let rest = s[key_len..].trim_start_matches([' ', '\t']);
    if rest.starts_with('.') {
        return Err((k, "dotted keys (tables) are not supported: seedpart.conf is a flat list of `key = value` lines".into()));
    }
    let Some(rest) = rest.strip_prefix('=') else {
        return Err((k, "expected `=` after the key".into()));
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    let (value, after) = parse_value(rest).map_err(|msg| (k.clone(), msg))?;
    let after = after.trim_start_matches([' ', '\t']);
    if !(after.is_empty() || after.starts_with('#')) {
        return Err((k, format!("unexpected {after:?} after the value")));
    }
    Ok(Some((key.to_string(), value)))
}

/// A value at the start of `s`, and what follows it.
fn parse_value(s: &str) -> Result<(Value, &str), String> {
    if s.starts_with("\"\"\"") || s.starts_with("'''") {
        return Err("multi-line strings are not supported".into());
    }
    if let Some(body) = s.strip_prefix('"') {
        return basic_string(body);
    }
    if let Some(body) = s.strip_prefix('\'') {
        let end = body
            .find('\'')
            .ok_or_else(|| "unterminated string (no closing ')".to_string())?;
        let text = &body[..end];
        if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!("control character {c:?} in a string"));
        }
        return Ok((Value::Str(text.to_string()), &body[end + 1..]));
    }
    if s.starts_with('[') {
        return Err(
            "arrays are not supported: seedpart.conf takes strings and true/false only".into(),
        );
    }
    if s.starts_with('{') {
        return Err(
            "inline tables are not supported: seedpart.conf takes strings and true/false only"
                .into(),
        );
    }
    let end = s.find([' ', '\t', '#']).unwrap_or(s.len());
    match &s[..end] {
        "true" => Ok((Value::Bool(true), &s[end..])),
        "false" => Ok((Value::Bool(false), &s[end..])),
        "" => Err("missing value after `=`".into()),
        other => Err(format!(
            "{other:?} is not a value seedpart.conf accepts: use a string in double quotes, or true/false"
        )),
    }
}

/// A TOML basic string's body (after the opening quote): escapes decoded.
fn basic_string(body: &str) -> Result<(Value, &str), String> {
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Value::Str(out), &body[i + 1..])),
            '\\' => {
                let (_, e) = chars
                    .next()
                    .ok_or_else(|| "unterminated string (no closing \")".to_string())?;
                match e {
                    'b' => out.push('\u{8}'),
                    't' => out.push('\t'),
                    'n' => out.push('\n'),
                    'f' => out.push('\u{c}'),
                    'r' => out.push('\r'),
                    'e' => out.push('\u{1b}'),
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'u' | 'U' => {
                        let len = if e == 'u' { 4 } else { 8 };
                        let hex: String = chars.by_ref().take(len).map(|(_, c)| c).collect();
                        let ch = (hex.len() == len && hex.chars().all(|c| c.is_ascii_hexdigit()))
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32)
                            .ok_or_else(|| format!("bad escape \\{e}{hex} in a string"))?;
                        out.push(ch);
                    }
                    other => return Err(format!("unknown escape \\{other} in a string")),
                }
            }
            c if c.is_control() && c != '\t' => {
                return Err(format!("control character {c:?} in a string"));
            }
            c => out.push(c),
        }
    }
    Err("unterminated string (no closing \")".into())
}

/// A user name as passwd files hold them: what `useradd` accepts, loosely.
fn check_user(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("the user name is empty".into());
    }
    if s.len() > 256 {
        return Err("the user name is over 256 bytes".into());
    }
    if s.starts_with('-') || s == "." || s == ".." {
        return Err(format!("{s:?} is not a usable user name"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, ':' | '/' | ','))
    {
        return Err(format!("the user name {s:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/r/etc/seedpart/seedpart.conf"), s.as_bytes())
    }

    /// The packaged file shows every key with its default: as shipped (all commented out) and
    /// with every key line uncommented it must mean the same as no file at all.
    #[test]
    fn packaged_file_shows_the_defaults() {
        let shipped = include_str!("../packaging/seedpart.conf");
        assert_eq!(parse(shipped).unwrap(), Config::default());
        let keys: Vec<&str> = shipped
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.contains(" = "))
            .collect();
        let named: Vec<&str> = keys
            .iter()
            .map(|l| l.split(" = ").next().unwrap())
            .collect();
        assert_eq!(
            named.join(","),
            KEYS.replace(' ', ""),
            "every key, in the documented order"
        );
        assert_eq!(parse(&keys.join("\n")).unwrap(), Config::default());
    }

    #[test]
    fn full_file_and_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        let c = parse(
            "\u{feff}# seedpart\n\nuser = \"debian\"  # the image's user\r\nnetwork='netplan'\n\tgrow = false\ndelete_partition=true\ncloud_init_seed = \"auto\"\nrun_user_data = false\n",
        )
        .unwrap();
        assert_eq!(c.user, "debian");
        assert_eq!(c.network, Network::Netplan);
        assert!(!c.grow && c.delete_partition && !c.run_user_data);
        assert_eq!(c.cloud_init_seed, CloudInitSeed::Auto);
        assert_eq!(
            parse("cloud_init_seed = false").unwrap().cloud_init_seed,
            CloudInitSeed::Never
        );
        assert_eq!(
            parse("cloud_init_seed = true").unwrap().cloud_init_seed,
            CloudInitSeed::Always
        );
        assert_eq!(parse("user = \"d\\u00e9b\\\"x\"").unwrap().user, "déb\"x");
        assert_eq!(
            parse("network = \"networkmanager\"").unwrap().network,
            Network::NetworkManager
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                "\n\nusr = \"x\"",
                "seedpart.conf:3: usr: unknown key (the keys are: user,",
            ),
            (
                "grow = \"false\"",
                ":1: grow: expected true or false (without quotes), found the string \"false\"",
            ),
            ("grow = 1", ":1: grow: \"1\" is not a value"),
            (
                "network = \"systemd\"",
                ":1: network: expected one of \"auto\", \"networkd\"",
            ),
            (
                "[main]\nuser = \"x\"",
                ":1: tables ([section]) are not supported",
            ),
            ("# c\nuser = [\"a\"]", ":2: user: arrays are not supported"),
            (
                "user = \"a\"\nuser = \"b\"",
                ":2: user: set twice (first on line 1)",
            ),
            ("user = \"a", ":1: user: unterminated string"),
            (
                "user = \"a\" x",
                ":1: user: unexpected \"x\" after the value",
            ),
            (
                "user = \"a b\"",
                ":1: user: the user name \"a b\" contains ' '",
            ),
            ("user \"a\"", ":1: user: expected `=` after the key"),
            ("a.b = true", ":1: a: dotted keys"),
            (
                "cloud_init_seed = \"yes\"",
                ":1: cloud_init_seed: expected \"auto\", true or false",
            ),
            ("grow =", ":1: grow: missing value"),
            ("user = \"\\q\"", ":1: user: unknown escape \\q"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("/r/etc/seedpart/seedpart.conf:"), "{e}");
            assert!(e.contains(want), "{text:?}: got {e:?}, want {want:?}");
        }
        let e = Config::parse(Path::new("f"), b"user = \"a\"\n\xff")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "f:2: not UTF-8 text");
    }

    #[test]
    fn flags_win_over_kernel_over_file() {
        let file = parse("grow = true\ndelete_partition = true").unwrap();
        let k = KernelOptions {
            device: Some("LABEL=k".into()),
            disable: false,
            nogrow: true,
        };
        let c = file.clone().with_kernel(&k);
        assert_eq!(c.device.as_deref(), Some("LABEL=k"));
        assert!(!c.grow, "seedpart.nogrow beats grow = true");
        let f = Flags {
            device: Some("/dev/vdb".into()),
            no_grow: false,
            keep_partition: true,
        };
        let c = c.with_flags(&f);
        assert_eq!(
            c.device.as_deref(),
            Some("/dev/vdb"),
            "--device beats seedpart.device="
        );
        assert!(!c.delete_partition);
        let c = file.with_flags(&Flags::default());
        assert!(c.grow && c.delete_partition && c.device.is_none());
    }
}
