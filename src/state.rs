//! The state file, `<root>/var/lib/seedpart/state.json` (SPEC section 5, step 3): what `run` did,
//! for `status` and for the per-instance rule. `run` checks the disk itself at every step rather
//! than trusting it, so a lost or stale state file costs a re-check, never data.
//!
//! Written atomically (temp file 0600, fsync, rename, fsync the directory). Fields a newer
//! seedpart added are kept through a load and save by an older one.

use crate::copy::{self, CopyError, Manifest};
use serde::{Deserialize, Serialize};
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The format this version writes.
pub const FORMAT: u32 = 1;
/// A state file larger than this is not read (it is a few hundred bytes).
const MAX_SIZE: u64 = 1 << 20;

type Extra = serde_json::Map<String, serde_json::Value>;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct State {
    pub format: u32,
    pub instance_uuid: Option<String>,
    /// Where the config drive was.
    pub drive: Option<DriveRecord>,
    pub copy: Option<CopyRecord>,
    pub partition_deleted: bool,
    pub partition_grown: Option<GrowRecord>,
    pub filesystem_grown: Option<FsGrowRecord>,
    /// RFC 3339 UTC, see [`rfc3339`].
    pub last_run: Option<String>,
    /// "done", "nothing to do", "failed: ...", "partial: ...".
    pub last_result: Option<String>,
    /// Fields from newer versions, kept as they are.
    #[serde(flatten)]
    pub extra: Extra,
}

impl State {
    /// An empty state of the current format.
    pub fn new() -> State {
        State {
            format: FORMAT,
            ..State::default()
        }
    }
}

/// The config partition as found before it was deleted. Sizes and offsets in bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct DriveRecord {
    /// The whole disk, e.g. `/dev/vda`.
    pub disk: String,
    /// Partition number.
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// `vfat` or `iso9660`.
    pub fs: String,
    pub label: String,
    pub partuuid: Option<String>,
    /// `gpt` or `mbr`.
    pub table: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The copy of the drive on the root filesystem.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct CopyRecord {
    pub path: String,
    pub files: u64,
    pub bytes: u64,
    /// SHA-256 (hex) of the copy's `SHA256SUMS`.
    pub manifest_sha256: String,
    pub verified: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CopyRecord {
    pub fn new(path: &Path, manifest: &Manifest, verified: bool) -> CopyRecord {
        CopyRecord {
            path: path.display().to_string(),
            files: manifest.file_count(),
            bytes: manifest.total_bytes(),
            manifest_sha256: copy::hex(&manifest.sums_sha256()),
            verified,
            extra: Extra::new(),
        }
    }
}

/// The root partition's growth, in bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct GrowRecord {
    pub number: u32,
    pub from: u64,
    pub to: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The root filesystem's growth in bytes, or why it was skipped.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[serde(default)]
pub struct FsGrowRecord {
    pub fstype: String,
    pub from: Option<u64>,
    pub to: Option<u64>,
    pub skipped: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl FsGrowRecord {
    pub fn grown(fstype: &str, from: u64, to: u64) -> FsGrowRecord {
        FsGrowRecord {
            fstype: fstype.to_string(),
            from: Some(from),
            to: Some(to),
            ..FsGrowRecord::default()
        }
    }

    pub fn skipped(fstype: &str, reason: &str) -> FsGrowRecord {
        FsGrowRecord {
            fstype: fstype.to_string(),
            skipped: Some(reason.to_string()),
            ..FsGrowRecord::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "{path}:{line}:{column}: the state file is not valid JSON ({reason}); move it aside and run again (seedpart re-checks the disk; the metadata of this instance may be applied again)"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error("{path}: the state file is {reason}; move it aside and run again")]
    Unusable { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Dir(#[from] CopyError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StateError + use<> {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        action,
        path,
        source,
    }
}

/// `<root>/var/lib/seedpart`.
pub fn dir(root: &Path) -> PathBuf {
    root.join("var/lib/seedpart")
}

/// `<root>/var/lib/seedpart/state.json`.
pub fn path(root: &Path) -> PathBuf {
    dir(root).join("state.json")
}

/// Reads the state file: `None` when there is none. A symlink, or a file that is not JSON, is
/// an error naming the file (and the line and column).
pub fn load(root: &Path) -> Result<Option<State>, StateError> {
    let dir = dir(root);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(CopyError::Symlink { path: dir }.into());
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("checking", &dir)(e)),
    }
    let path = path(root);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(CopyError::Symlink { path }.into());
        }
        Err(e) => return Err(io_err("opening", &path)(e)),
    };
    let unusable = |reason: &str| StateError::Unusable {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let meta = file.metadata().map_err(io_err("checking", &path))?;
    if !meta.is_file() {
        return Err(unusable("not a regular file"));
    }
    let mut raw = Vec::new();
    file.take(MAX_SIZE + 1)
        .read_to_end(&mut raw)
        .map_err(io_err("reading", &path))?;
    if raw.len() as u64 > MAX_SIZE {
        return Err(unusable(&format!("larger than {MAX_SIZE} bytes")));
    }
    match serde_json::from_slice(&raw) {
        Ok(state) => Ok(Some(state)),
        Err(e) => {
            let (line, column) = (e.line(), e.column());
            let text = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let reason = text.strip_suffix(&suffix).unwrap_or(&text).to_string();
            Err(StateError::Corrupt {
                path,
                line,
                column,
                reason,
            })
        }
    }
}

/// Writes the state file atomically: `state.json.tmp` (0600, root's), fsync, rename over
/// `state.json`, fsync the directory. Creates `<root>/var/lib/seedpart` (0700) as needed and
/// refuses to write through a symlink there.
pub fn save(root: &Path, state: &State) -> Result<(), StateError> {
    let dir = dir(root);
    copy::ensure_real_dir(&dir, 0o700)?;
    let path = path(root);
    let tmp = dir.join("state.json.tmp");
    let mut json = serde_json::to_vec_pretty(state)
        .map_err(io::Error::from)
        .map_err(io_err("encoding", &path))?;
    json.push(b'\n');

    // A leftover from a crash (or anything else by that name, a symlink included) goes first.
    match fs::symlink_metadata(&tmp) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(&tmp).map_err(io_err("removing", &tmp))?,
        Ok(_) => fs::remove_file(&tmp).map_err(io_err("removing", &tmp))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("checking", &tmp)(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    f.set_permissions(Permissions::from_mode(0o600))
        .map_err(io_err("setting the mode of", &tmp))?;
    let meta = f.metadata().map_err(io_err("checking", &tmp))?;
    if meta.uid() == 0 && meta.gid() != 0 {
        std::os::unix::fs::fchown(&f, Some(0), Some(0)).map_err(io_err("chown root", &tmp))?;
    }
    f.write_all(&json).map_err(io_err("writing", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err("renaming the new state file over", &path))?;
    copy::fsync_dir(&dir)?;
    Ok(())
}

/// `SystemTime` as RFC 3339 UTC with whole seconds, e.g. `2024-02-29T12:34:56Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let secs: i64 = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Now, as [`rfc3339`].
pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(at(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1969-12-31T23:59:59Z"
        );
    }

    #[test]
    fn rfc3339_matches_date_command() {
        // coreutils `date` as an independent oracle, over a spread of instants.
        for secs in [
            86_399u64,
            68_169_600,
            946_684_799,
            1_234_567_890,
            2_000_000_000,
            253_402_300_799,
        ] {
            let Ok(out) = std::process::Command::new("date")
                .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
                .output()
            else {
                eprintln!("SKIP: no `date` command");
                return;
            };
            assert!(out.status.success());
            assert_eq!(
                at(secs),
                String::from_utf8(out.stdout).unwrap().trim(),
                "{secs}"
            );
        }
    }
}
