//! `meta_data.json`: the instance's identity, keys and injected files.
//!
//! What seedpart acts on is validated strictly, and a bad value fails the whole drive (SPEC §5:
//! abort with no change): `uuid` (required: per-instance semantics hang on it), `hostname` and
//! `name` (strings of at most 255 and 1024 bytes, no control characters: a longer one cannot be
//! a host name at all, and a newline would forge lines in `/etc/hosts`; the 64-byte cut of SPEC
//! §4 is the apply step's), `public_keys` and `keys` (strings), `files` (absolute target paths
//! without `..`, `content_path` naming a file of `openstack/content/`) and `random_seed`
//! (base64). Everything else is read leniently: a value of an unexpected type is logged and
//! kept in `extra`, as is every unknown key, so nothing the producer wrote is lost.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::ModelError;
use super::json::{self, Node, Obj};
use crate::fs::RelPath;

/// Longest `hostname`: a DNS name is at most 253 bytes.
pub const MAX_HOSTNAME: usize = 255;
/// Longest `name` (Nova's display name: 255 characters of up to 4 UTF-8 bytes each).
pub const MAX_NAME: usize = 1024;
/// Longest `uuid`: real ones are 36 bytes, but producers such as KubeVirt write any id.
pub const MAX_UUID: usize = 255;

/// The parsed `meta_data.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MetaData {
    /// The instance id: Nova's and Ironic's are UUIDs, other producers write any string.
    pub uuid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// A number, or a string holding one, in the wild.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub launch_index: Option<u64>,
    /// Key name to key text. A text may hold several keys, one a line (vexxhost does that).
    pub public_keys: BTreeMap<String, String>,
    pub keys: Vec<Key>,
    pub files: Vec<InjectedFile>,
    /// `nova boot --meta k=v`; values are strings from Nova but anything from other producers.
    pub meta: Map<String, Value>,
    /// Base64, as written; see `random_seed_bytes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<String>,
    /// Never serialized: `inspect --json` output ends up in logs.
    #[serde(skip_serializing)]
    pub admin_pass: Option<String>,
    pub devices: Vec<Value>,
    pub dedicated_cpus: Vec<Value>,
    /// The pre-`network_data.json` pointer to an `/etc/network/interfaces` file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_config: Option<LegacyNetworkConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Keys seedpart does not model, and modelled keys whose value had an unexpected type.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Key {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ssh` or `x509`; `ssh` when absent.
    #[serde(rename = "type")]
    pub key_type: String,
    pub data: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of `files` (`nova boot --file`): `content_path`'s bytes go to `path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InjectedFile {
    /// As written, e.g. `/etc/motd`.
    pub path: String,
    /// `path` relative to the target root (`etc/motd`): joining it cannot leave the root.
    #[serde(skip)]
    pub target: RelPath,
    /// As written, e.g. `/content/0000`.
    pub content_path: String,
    /// The drive-relative file holding the bytes, e.g. `openstack/content/0000`.
    #[serde(skip)]
    pub content: RelPath,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The legacy `network_config` item: `{"content_path": "/content/0000", "name": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LegacyNetworkConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_path: Option<String>,
    /// Drive-relative, e.g. `openstack/content/0000`. Not required to exist: the glean rax-iad
    /// capture names one that is not on the drive, and seedpart does not read it.
    #[serde(skip)]
    pub content: Option<RelPath>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MetaData {
    /// Parses the bytes of `file` (a drive-relative path, used in errors).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<MetaData, ModelError> {
        let v = json::parse(file, bytes)?;
        MetaData::from_value(file, &v)
    }

    pub fn from_value(file: &str, v: &Value) -> Result<MetaData, ModelError> {
        let root = Node::root(file, v);
        let mut o = root.obj()?;

        let uuid_node = o.take("uuid");
        let uuid = uuid_node.string_or_number().map_err(|_| {
            uuid_node.invalid("the instance id (a string such as a UUID): every boot is matched to an instance by it")
        })?;
        check_text(&uuid_node, &uuid, MAX_UUID, "the instance id")?;
        if uuid.is_empty() || uuid.contains('/') {
            return Err(uuid_node.invalid("a non-empty instance id without '/'"));
        }

        let hostname = opt_text(&mut o, "hostname", MAX_HOSTNAME, "a host name")?;
        let name = opt_text(&mut o, "name", MAX_NAME, "the instance name")?;

        let public_keys = match o.take("public_keys").opt() {
            None => BTreeMap::new(),
            Some(n) => public_keys(&n)?,
        };
        let keys = match o.take("keys").opt() {
            None => Vec::new(),
            Some(n) => n.items()?.iter().map(key).collect::<Result<_, _>>()?,
        };
        let files = match o.take("files").opt() {
            None => Vec::new(),
            Some(n) => n
                .items()?
                .iter()
                .map(injected_file)
                .collect::<Result<_, _>>()?,
        };
        let random_seed = match o.take("random_seed").opt() {
            None => None,
            Some(n) => {
                let s = n.str()?;
                if decode_seed(s).is_none() {
                    return Err(n.invalid("base64 data"));
                }
                Some(s.to_string())
            }
        };
        let network_config = match o.take("network_config").opt() {
            None => None,
            Some(n) => Some(legacy_network_config(&n)?),
        };

        let availability_zone = o.lenient("availability_zone", |n| Ok(n.str()?.to_string()));
        let project_id = o.lenient("project_id", |n| n.string_or_number());
        let launch_index = o.lenient("launch_index", |n| n.uint(0, u64::MAX, "an index"));
        let admin_pass = o.lenient("admin_pass", |n| Ok(n.str()?.to_string()));
        let instance_type = o.lenient("instance_type", |n| Ok(n.str()?.to_string()));
        let meta = o
            .lenient("meta", |n| Ok(n.obj()?.rest()))
            .unwrap_or_default();
        let devices = o
            .lenient("devices", |n| array_values(&n))
            .unwrap_or_default();
        let dedicated_cpus = o
            .lenient("dedicated_cpus", |n| array_values(&n))
            .unwrap_or_default();

        Ok(MetaData {
            uuid,
            name,
            hostname,
            availability_zone,
            project_id,
            launch_index,
            public_keys,
            keys,
            files,
            meta,
            random_seed,
            admin_pass,
            devices,
            dedicated_cpus,
            network_config,
            instance_type,
            extra: o.rest(),
        })
    }

    /// `hostname`, else `name` (SPEC §4), skipping empty ones.
    pub fn hostname(&self) -> Option<&str> {
        [&self.hostname, &self.name]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
    }

    /// The decoded `random_seed`, when there is one (checked at parse time, so `Some` whenever
    /// `random_seed` is).
    pub fn random_seed_bytes(&self) -> Option<Vec<u8>> {
        self.random_seed.as_deref().and_then(decode_seed)
    }

    /// Every SSH public key line from `public_keys` and `keys` (type `ssh`), trimmed, without
    /// blank and `#` lines, each once, in a stable order (`public_keys` by name, then `keys`).
    pub fn authorized_keys(&self) -> Vec<String> {
        let texts = self.public_keys.values().map(String::as_str).chain(
            self.keys
                .iter()
                .filter(|k| k.key_type.eq_ignore_ascii_case("ssh"))
                .map(|k| k.data.as_str()),
        );
        let mut out: Vec<String> = Vec::new();
        for text in texts {
            // Nova also lists x509 keypairs in public_keys: a PEM block is no SSH key.
            if text.trim_start().starts_with("-----BEGIN") {
                continue;
            }
            for line in text.lines().map(str::trim) {
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                if !out.iter().any(|l| l == line) {
                    out.push(line.to_string());
                }
            }
        }
        out
    }
}

/// Strict about the alphabet, lenient about layout: the afterburn sample's seed has a space in
/// it, which Python's `b64decode` (cloud-init) skips.
fn decode_seed(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()
        .or_else(|| {
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(compact.trim_end_matches('=').as_bytes())
                .ok()
        })
}

fn check_text(n: &Node<'_>, s: &str, max: usize, what: &str) -> Result<(), ModelError> {
    if s.len() > max {
        return Err(n.invalid(format!("{what} of at most {max} bytes")));
    }
    if s.chars().any(char::is_control) {
        return Err(n.invalid(format!("{what} without control characters")));
    }
    Ok(())
}

fn opt_text(
    o: &mut Obj<'_>,
    key: &str,
    max: usize,
    what: &str,
) -> Result<Option<String>, ModelError> {
    let Some(n) = o.take(key).opt() else {
        return Ok(None);
    };
    let s = n
        .str()
        .map_err(|_| n.invalid(format!("{what} (a string)")))?;
    check_text(&n, s, max, what)?;
    Ok(Some(s.to_string()))
}

fn public_keys(n: &Node<'_>) -> Result<BTreeMap<String, String>, ModelError> {
    let mut out = BTreeMap::new();
    // Nova writes a name-to-key object; a list (what CirrOS cannot read, so Ironic converts it)
    // is accepted too, its keys named by index.
    if n.value().is_array() {
        for (i, k) in n.items()?.iter().enumerate() {
            out.insert(
                i.to_string(),
                k.str()
                    .map_err(|_| k.invalid("an SSH public key (a string)"))?
                    .to_string(),
            );
        }
        return Ok(out);
    }
    let mut o = n.obj()?;
    for (name, k) in o.take_all() {
        let key = k
            .str()
            .map_err(|_| k.invalid("an SSH public key (a string)"))?;
        out.insert(name.to_string(), key.to_string());
    }
    Ok(out)
}

fn key(n: &Node<'_>) -> Result<Key, ModelError> {
    let mut o = n.obj()?;
    let data_node = o.take("data");
    let data = data_node
        .str()
        .map_err(|_| data_node.invalid("the key's text (a string)"))?
        .to_string();
    let key_type = match o.take("type").opt() {
        None => "ssh".to_string(),
        Some(t) => t.str()?.to_string(),
    };
    let name = match o.take("name").opt() {
        None => None,
        Some(t) => Some(t.string_or_number()?),
    };
    Ok(Key {
        name,
        key_type,
        data,
        extra: o.rest(),
    })
}

fn injected_file(n: &Node<'_>) -> Result<InjectedFile, ModelError> {
    let mut o = n.obj()?;
    let path_node = o.take("path");
    let path = path_node.str()?.to_string();
    let target = target_path(&path).map_err(|why| {
        path_node.invalid(format!("an absolute path inside the instance ({why})"))
    })?;
    let cp_node = o.take("content_path");
    let content_path = cp_node.str()?.to_string();
    let content = content_rel(&content_path)
        .map_err(|why| cp_node.invalid(format!("a content path like /content/0000 ({why})")))?;
    Ok(InjectedFile {
        path,
        target,
        content_path,
        content,
        extra: o.rest(),
    })
}

fn legacy_network_config(n: &Node<'_>) -> Result<LegacyNetworkConfig, ModelError> {
    let mut o = n.obj()?;
    let (content_path, content) = match o.take("content_path").opt() {
        None => (None, None),
        Some(c) => {
            let s = c.str()?;
            let rel = content_rel(s)
                .map_err(|why| c.invalid(format!("a content path like /content/0000 ({why})")))?;
            (Some(s.to_string()), Some(rel))
        }
    };
    Ok(LegacyNetworkConfig {
        content_path,
        content,
        extra: o.rest(),
    })
}

fn array_values(n: &Node<'_>) -> Result<Vec<Value>, ModelError> {
    Ok(n.items()?.iter().map(|i| i.value().clone()).collect())
}

/// `/etc/motd` -> `etc/motd`. Empty and `.` components are dropped (`//etc/./motd` is the same
/// file); `..` is refused rather than resolved, since nothing legitimate needs it.
pub fn target_path(path: &str) -> Result<RelPath, String> {
    if !path.starts_with('/') {
        return Err("not absolute".into());
    }
    let mut rel = RelPath::root();
    for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err("'..' would leave the instance's root".into());
        }
        rel = rel.join(c)?;
    }
    if rel.is_root() {
        return Err("names the root directory itself".into());
    }
    Ok(rel)
}

/// `/content/0000` -> `openstack/content/0000`: Nova's content paths are relative to the
/// drive's `openstack/` directory, and always one file directly in `content/`.
pub fn content_rel(content_path: &str) -> Result<RelPath, String> {
    let inner = content_path.strip_prefix('/').unwrap_or(content_path);
    let mut parts = inner.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("content"), Some(name), None) => {
            RelPath::parse("openstack/content").and_then(|p| p.join(name))
        }
        _ => Err("must be one file name under /content/".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<MetaData, ModelError> {
        MetaData::parse("openstack/latest/meta_data.json", s.as_bytes())
    }

    #[test]
    fn full_nova_document() {
        let md = parse(
            r#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "name": "test", "hostname": "test.novalocal",
                "availability_zone": "nova", "project_id": "p1", "launch_index": "0",
                "public_keys": {"mykey": "ssh-ed25519 AAAA one\n\nssh-rsa BBBB two\n", "dup": "ssh-ed25519 AAAA one"},
                "keys": [{"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAA one"},
                         {"name": "cert", "type": "x509", "data": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}],
                "files": [{"path": "/etc/motd", "content_path": "/content/0000"},
                          {"path": "//etc/./x", "content_path": "content/0001"}],
                "meta": {"role": "web", "n": 3, "nested": {"a": 1}},
                "random_seed": "AAEC", "admin_pass": "secret",
                "devices": [{"type": "nic", "bus": "pci"}], "dedicated_cpus": [1, 2],
                "network_config": {"content_path": "/content/0002", "name": "network_config"},
                "instance_type": "m1.small", "local-hostname": "kept"}"#,
        )
        .unwrap();
        assert_eq!(md.hostname(), Some("test.novalocal"));
        assert_eq!(md.launch_index, Some(0));
        assert_eq!(md.public_keys.len(), 2);
        assert_eq!(md.keys.len(), 2);
        assert_eq!(
            md.authorized_keys(),
            ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]
        );
        assert_eq!(md.files[0].target.as_str(), "etc/motd");
        assert_eq!(md.files[0].content.as_str(), "openstack/content/0000");
        assert_eq!(md.files[1].target.as_str(), "etc/x");
        assert_eq!(md.files[1].content.as_str(), "openstack/content/0001");
        assert_eq!(md.meta["n"], 3);
        assert_eq!(md.random_seed_bytes(), Some(vec![0, 1, 2]));
        assert_eq!(md.dedicated_cpus.len(), 2);
        assert_eq!(
            md.network_config
                .as_ref()
                .unwrap()
                .content
                .as_ref()
                .unwrap()
                .as_str(),
            "openstack/content/0002"
        );
        assert_eq!(md.extra["local-hostname"], "kept");
        let json = serde_json::to_value(&md).unwrap();
        assert!(
            json.get("admin_pass").is_none(),
            "admin_pass must not be serialized"
        );
        assert_eq!(json["local-hostname"], "kept");
    }

    #[test]
    fn lenient_fields_keep_odd_values() {
        let md = parse(
            r#"{"uuid": "u", "launch_index": "first", "meta": "oops", "availability_zone": null}"#,
        )
        .unwrap();
        assert_eq!(md.launch_index, None);
        assert_eq!(md.extra["launch_index"], "first");
        assert_eq!(md.extra["meta"], "oops");
        assert!(md.availability_zone.is_none());
    }

    #[test]
    fn name_is_the_fallback_hostname() {
        let md = parse(r#"{"uuid": "u", "name": "n1", "hostname": ""}"#).unwrap();
        assert_eq!(md.hostname(), Some("n1"));
        let md = parse(r#"{"uuid": "u"}"#).unwrap();
        assert_eq!(md.hostname(), None);
    }

    #[test]
    fn strict_fields_are_refused_with_their_path() {
        let cases = [
            (r#"{"name": "x"}"#, "uuid: expected the instance id"),
            (r#"{"uuid": ""}"#, "uuid: expected a non-empty instance id"),
            (
                r#"{"uuid": "u", "hostname": 42}"#,
                "hostname: expected a host name (a string), found 42",
            ),
            (
                r#"{"uuid": "u", "hostname": "a\nb"}"#,
                "hostname: expected a host name without control characters",
            ),
            (
                r#"{"uuid": "u", "public_keys": {"k": 1}}"#,
                "public_keys.k: expected an SSH public key (a string), found 1",
            ),
            (
                r#"{"uuid": "u", "public_keys": {"my key": 1}}"#,
                r#"public_keys["my key"]: expected"#,
            ),
            (
                r#"{"uuid": "u", "keys": [{"name": "k"}]}"#,
                "keys[0].data: expected the key's text (a string), found nothing",
            ),
            (
                r#"{"uuid": "u", "files": [{"path": "etc/x", "content_path": "/content/0000"}]}"#,
                "files[0].path: expected an absolute path inside the instance (not absolute)",
            ),
            (
                r#"{"uuid": "u", "files": [{"path": "/etc/../../x", "content_path": "/content/0000"}]}"#,
                "files[0].path: expected an absolute path",
            ),
            (
                r#"{"uuid": "u", "files": [{"path": "/x", "content_path": "/content/../../etc/shadow"}]}"#,
                "files[0].content_path: expected a content path like /content/0000",
            ),
            (
                r#"{"uuid": "u", "files": [{"path": "/x", "content_path": "/content/.."}]}"#,
                "files[0].content_path: expected a content path like /content/0000 (file name \"..\" points outside its directory)",
            ),
            (
                r#"{"uuid": "u", "random_seed": "not base64!"}"#,
                "random_seed: expected base64 data",
            ),
            (
                r#"[1]"#,
                "(top level): expected a JSON object, found an array of 1 items",
            ),
        ];
        for (doc, want) in cases {
            let e = parse(doc).unwrap_err().to_string();
            assert!(e.starts_with("openstack/latest/meta_data.json: "), "{e}");
            assert!(e.contains(want), "{doc}: got {e:?}, want {want:?}");
        }
    }

    #[test]
    fn huge_hostname_is_refused_with_a_short_message() {
        let doc = format!(r#"{{"uuid": "u", "hostname": "{}"}}"#, "a".repeat(10 << 20));
        let e = parse(&doc).unwrap_err().to_string();
        assert!(e.contains("hostname: expected a host name of at most 255 bytes, found a string of 10485760 bytes"), "{}", &e[..200]);
        assert!(e.len() < 300, "message is {} bytes", e.len());
        // 255 bytes is still a (long) host name; the apply step shortens it.
        let doc = format!(r#"{{"uuid": "u", "hostname": "{}"}}"#, "a".repeat(255));
        assert_eq!(parse(&doc).unwrap().hostname().unwrap().len(), 255);
    }

    #[test]
    fn public_keys_as_a_list() {
        let md = parse(r#"{"uuid": "u", "public_keys": ["ssh-rsa A a", "ssh-rsa B b"]}"#).unwrap();
        assert_eq!(md.public_keys["1"], "ssh-rsa B b");
    }
}
