//! Ironic's `configdrive` as given to `seedpart build --configdrive FILE`.
//!
//! Ironic accepts either an image (the base64 of a gzipped ISO 9660 image labelled `config-2`,
//! which is what it writes to the disk) or a JSON object `{meta_data, network_data, user_data,
//! vendor_data}` that its conductor turns into such an image with openstacksdk's
//! `baremetal.configdrive.build`. For convenience a gzipped ISO without base64 and a raw ISO are
//! accepted too.
//!
//! The JSON form is rendered the way Ironic renders it: the same files in both
//! `openstack/2012-08-10/` and `openstack/latest/` (openstacksdk's default versions),
//! `vendor_data` written as `vendor_data2.json`, `user_data` written as is when it is a string
//! and JSON-encoded when it is an object or array, and empty parts left out. Unlike Ironic,
//! `meta_data.uuid` is required (Ironic takes it from the node; `build` has no node), and
//! `meta_data` and `network_data` must pass the same validation `seedpart run` applies, so a
//! drive that `build` writes is one that `run` accepts.

use std::io::Read;

use base64::Engine as _;
use serde_json::Value;

use super::json::{self, Node};
use super::{MetaData, ModelError, NetworkData};
use crate::fs::{FileData, InputTree, RelPath};

/// Largest image accepted, compressed or not: Ironic's config partition is at most 64 MiB.
pub const MAX_IMAGE: u64 = 64 << 20;

/// Where an ISO 9660 volume descriptor's `CD001` magic sits (sector 16 of 2048 bytes, byte 1).
const ISO_MAGIC_AT: usize = 32769;

/// The version directories Ironic (openstacksdk) writes.
pub const VERSIONS: [&str; 2] = ["2012-08-10", "latest"];

/// An Ironic configdrive, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blob {
    /// The raw ISO 9660 image, to be written as is.
    Iso(Vec<u8>),
    /// The files to put on a new drive (the JSON form).
    Tree(InputTree),
}

impl Blob {
    /// Recognizes and decodes `data` (a whole `--configdrive` file).
    pub fn parse(data: &[u8]) -> Result<Blob, ModelError> {
        if data.trim_ascii_start().starts_with(b"{") {
            let v = json::parse("configdrive blob", data)?;
            return tree_from_json(&v).map(Blob::Tree);
        }
        if let Some(iso) = image(data)? {
            return Ok(Blob::Iso(iso));
        }
        let compact: Vec<u8> = data
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if !compact.is_empty()
            && compact
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b))
        {
            if compact.len() as u64 > MAX_IMAGE / 3 * 4 + 4 {
                return Err(ModelError::BlobTooLarge { limit: MAX_IMAGE });
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&compact)
                .map_err(|e| {
                    ModelError::Blob(format!("looks like base64 but does not decode: {e}"))
                })?;
            return match image(&raw)? {
                Some(iso) => Ok(Blob::Iso(iso)),
                None => Err(ModelError::Blob(
                    "the base64 decodes to neither a gzipped nor a raw ISO 9660 image".into(),
                )),
            };
        }
        Err(ModelError::Blob(
            "not a configdrive: expected base64 of a gzipped ISO 9660 image (Ironic's form), a gzipped or raw ISO 9660 image, or a JSON object {meta_data, network_data, user_data, vendor_data}".into(),
        ))
    }
}

/// `data` as an ISO image when it is one, gzipped or not; `None` when it is neither.
fn image(data: &[u8]) -> Result<Option<Vec<u8>>, ModelError> {
    if is_iso(data) {
        if data.len() as u64 > MAX_IMAGE {
            return Err(ModelError::BlobTooLarge { limit: MAX_IMAGE });
        }
        return Ok(Some(data.to_vec()));
    }
    if !data.starts_with(&[0x1f, 0x8b]) {
        return Ok(None);
    }
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly the limit" from "more".
    flate2::read::MultiGzDecoder::new(data)
        .take(MAX_IMAGE + 1)
        .read_to_end(&mut out)
        .map_err(|e| ModelError::Blob(format!("corrupt gzip stream: {e}")))?;
    if out.len() as u64 > MAX_IMAGE {
        return Err(ModelError::BlobTooLarge { limit: MAX_IMAGE });
    }
    if !is_iso(&out) {
        return Err(ModelError::Blob(format!(
            "the gzip stream holds {} bytes that are not an ISO 9660 image (no CD001 at byte {ISO_MAGIC_AT})",
            out.len()
        )));
    }
    Ok(Some(out))
}

fn is_iso(data: &[u8]) -> bool {
    data.get(ISO_MAGIC_AT..ISO_MAGIC_AT + 5) == Some(b"CD001")
}

/// Python's truthiness, which decides what openstacksdk leaves out.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The JSON form as a tree of files.
pub fn tree_from_json(v: &Value) -> Result<InputTree, ModelError> {
    let root = Node::root("configdrive blob", v);
    let mut o = root.obj()?;
    let meta_node = o.take("meta_data");
    let network_node = o.take("network_data");
    let user_node = o.take("user_data");
    let vendor_node = o.take("vendor_data");
    if let Some((key, _)) = o.rest().into_iter().next() {
        return Err(ModelError::Inconsistent {
            file: "configdrive blob".into(),
            path: key,
            detail:
                "unknown key: Ironic accepts meta_data, network_data, user_data and vendor_data"
                    .into(),
        });
    }

    let empty = Value::Object(Default::default());
    let meta = meta_node.clone().opt().map_or(&empty, |n| n.value());
    if !meta.is_object() {
        return Err(meta_node.invalid("a JSON object"));
    }
    MetaData::from_value("configdrive blob (meta_data)", meta)?;
    let mut files: Vec<(&str, Vec<u8>)> = vec![("meta_data.json", to_json(meta))];

    if let Some(n) = network_node.opt().filter(|n| truthy(n.value())) {
        if !n.value().is_object() {
            return Err(n.invalid("a JSON object"));
        }
        NetworkData::from_value("configdrive blob (network_data)", n.value())?;
        files.push(("network_data.json", to_json(n.value())));
    }
    if let Some(n) = vendor_node.opt().filter(|n| truthy(n.value())) {
        files.push(("vendor_data2.json", to_json(n.value())));
    }
    match user_node.clone().opt().map(|n| n.value()) {
        None => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => files.push(("user_data", s.as_bytes().to_vec())),
        Some(v @ (Value::Object(_) | Value::Array(_))) => files.push(("user_data", to_json(v))),
        Some(_) => return Err(user_node.invalid("a string, a JSON object or a JSON array")),
    }

    let mut tree = InputTree::default();
    for version in VERSIONS {
        let dir = RelPath::parse(&format!("openstack/{version}")).expect("a constant, valid path");
        for (name, bytes) in &files {
            let path = dir.join(name).expect("a constant, valid name");
            tree.add_file(path, FileData::Bytes(bytes.clone()));
        }
    }
    Ok(tree)
}

fn to_json(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a serde_json::Value always serializes")
}
