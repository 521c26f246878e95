//! The OpenStack config-drive v2 model: what `openstack/<version>/` holds, parsed and validated
//! before anything is applied (SPEC §3, §5 step 1), plus Ironic's configdrive blob for `build`.
//!
//! The drive-wide copy (`ec2/`, `openstack/content/`, every version directory) is not modelled
//! here: the caller copies the tree as it is.

pub mod blob;
pub mod error;
mod json;
pub mod meta_data;
pub mod network_data;
pub mod version;

pub use blob::Blob;
pub use error::ModelError;
pub use meta_data::MetaData;
pub use network_data::NetworkData;

use serde::Serialize;
use serde_json::Value;

use crate::fs::{DriveFs, Entry, EntryKind, RelPath, read_small_file};

/// Largest JSON file read (`meta_data.json`, `network_data.json`, vendor data). Real ones are a
/// few KiB; Nova caps the whole metadata far below this.
pub const MAX_JSON: u64 = 4 << 20;
/// Largest `user_data` read. Nova caps it at 64 KiB; Ironic and Metal3 allow more.
pub const MAX_USER_DATA: u64 = 16 << 20;

/// A config drive's contents, as `seedpart run` acts on them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfigDrive {
    /// The version directory read: `latest` or a date such as `2015-10-15`.
    pub version: String,
    /// Its drive-relative path, e.g. `openstack/latest`.
    #[serde(serialize_with = "ser_relpath")]
    pub version_dir: RelPath,
    pub meta_data: MetaData,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_data: Option<NetworkData>,
    /// Rackspace's pre-Liberty `network_info.json` (same schema), read only when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_info: Option<NetworkData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_data2: Option<Value>,
    /// Raw bytes: a script, cloud-config, MIME multipart, gzip or anything else.
    #[serde(skip)]
    pub user_data: Option<Vec<u8>>,
}

/// What `inspect --json` prints as `metadata`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub uuid: String,
    pub hostname: Option<String>,
}

fn ser_relpath<S: serde::Serializer>(p: &RelPath, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

impl ConfigDrive {
    /// Reads and validates the drive. Walks the whole tree once (hostile entries anywhere fail
    /// here, before anything is applied).
    pub fn load(fs: &mut dyn DriveFs) -> Result<ConfigDrive, ModelError> {
        let entries = fs.entries()?;
        ConfigDrive::load_with(fs, &entries)
    }

    /// As `load`, with the tree already listed by the caller.
    pub fn load_with(fs: &mut dyn DriveFs, entries: &[Entry]) -> Result<ConfigDrive, ModelError> {
        let Some(version) = version::select(entries) else {
            let found = version::version_dirs(entries);
            let found = if found.is_empty() {
                if entries
                    .iter()
                    .any(|e| e.path.as_str().eq_ignore_ascii_case("openstack"))
                {
                    " (openstack/ holds no directory)".to_string()
                } else {
                    " (there is no openstack/ directory)".to_string()
                }
            } else {
                format!(" (openstack/ holds: {})", found.join(", "))
            };
            return Err(ModelError::NoVersion { found });
        };
        let top = find(entries, "openstack")
            .map_or_else(|| "openstack".to_string(), |e| e.path.to_string());
        let version_dir =
            RelPath::parse(&format!("{top}/{version}")).map_err(|why| ModelError::Missing {
                file: format!("{top}/{version}"),
                detail: why,
            })?;

        let mut read = |name: &str, limit: u64| -> Result<Option<(String, Vec<u8>)>, ModelError> {
            let want = format!("{version_dir}/{name}");
            let Some(entry) = find(entries, &want) else {
                return Ok(None);
            };
            if entry.kind == EntryKind::Dir {
                return Err(ModelError::Missing {
                    file: entry.path.to_string(),
                    detail: "is a directory, expected a file".into(),
                });
            }
            Ok(read_small_file(fs, &entry.path, limit)?.map(|b| (entry.path.to_string(), b)))
        };

        let Some((md_file, md)) = read("meta_data.json", MAX_JSON)? else {
            return Err(ModelError::Missing {
                file: format!("{version_dir}/meta_data.json"),
                detail: format!(
                    "missing: every config drive holds meta_data.json in its version directory ({version_dir} was chosen)"
                ),
            });
        };
        let meta_data = MetaData::parse(&md_file, &md)?;
        let network_data = read("network_data.json", MAX_JSON)?
            .map(|(f, b)| NetworkData::parse(&f, &b))
            .transpose()?;
        let network_info = read("network_info.json", MAX_JSON)?
            .map(|(f, b)| NetworkData::parse(&f, &b))
            .transpose()?;
        let vendor_data = read("vendor_data.json", MAX_JSON)?
            .map(|(f, b)| json::parse(&f, &b))
            .transpose()?;
        let vendor_data2 = read("vendor_data2.json", MAX_JSON)?
            .map(|(f, b)| json::parse(&f, &b))
            .transpose()?;
        let user_data = read("user_data", MAX_USER_DATA)?.map(|(_, b)| b);

        // An injected file whose content is missing would fail halfway through applying: find
        // out now, while nothing has changed.
        for (i, f) in meta_data.files.iter().enumerate() {
            let ok = find(entries, f.content.as_str())
                .is_some_and(|e| matches!(e.kind, EntryKind::File { .. }));
            if !ok {
                return Err(ModelError::Inconsistent {
                    file: md_file.clone(),
                    path: format!("files[{i}].content_path"),
                    detail: format!(
                        "{:?} names {}, which is not a file on the drive",
                        f.content_path, f.content
                    ),
                });
            }
        }

        Ok(ConfigDrive {
            version,
            version_dir,
            meta_data,
            network_data,
            network_info,
            vendor_data,
            vendor_data2,
            user_data,
        })
    }

    pub fn uuid(&self) -> &str {
        &self.meta_data.uuid
    }

    /// `hostname`, else `name`.
    pub fn hostname(&self) -> Option<&str> {
        self.meta_data.hostname()
    }

    /// `network_data.json`, else the legacy `network_info.json`.
    pub fn network(&self) -> Option<&NetworkData> {
        self.network_data.as_ref().or(self.network_info.as_ref())
    }

    pub fn summary(&self) -> Summary {
        Summary {
            uuid: self.uuid().to_string(),
            hostname: self.hostname().map(str::to_string),
        }
    }
}

/// The entry at `path`, matching each component exactly or, failing that, ignoring ASCII case:
/// a vfat drive written by some Windows tools upper-cases names.
fn find<'e>(entries: &'e [Entry], path: &str) -> Option<&'e Entry> {
    entries
        .iter()
        .find(|e| e.path.as_str() == path)
        .or_else(|| {
            entries
                .iter()
                .find(|e| e.path.as_str().eq_ignore_ascii_case(path))
        })
}
