//! `user_data` (SPEC section 4): kept in `/var/lib/seedpart/user-data`; a `#!` script runs once,
//! later in boot, through `seedpart-user-data.service`; anything else is left for cloud-init.
//!
//! The design, in three files of `/var/lib/seedpart/` (root-only):
//! - `user-data`: the bytes as given: 0600, or 0700 for a script (so it can be executed).
//! - `user-data.pending`: the marker, holding the instance uuid. The unit has
//!   `ConditionPathExists=` on it, so it does nothing on every later boot.
//! - `user-data.status`: JSON for `seedpart status`: `pending` when scheduled, `running` once
//!   started, then `success` or `failed` with the exit code or signal.
//!
//! [`run_pending`] (the `seedpart user-data` subcommand the unit runs) records `running`,
//! removes the marker durably, *then* runs the script: it runs at most once, even if it
//! reboots the machine or the power goes in the middle (the status then stays `running`).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::ApplyError;
use super::rootfs::{FileOpts, Root, rel};

pub const DIR: &str = "var/lib/seedpart";
pub const USER_DATA: &str = "var/lib/seedpart/user-data";
pub const PENDING: &str = "var/lib/seedpart/user-data.pending";
pub const STATUS: &str = "var/lib/seedpart/user-data.status";

/// What the user data is, by its first bytes (as cloud-init tells them apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `#!`: seedpart runs it (unless cloud-init is given the drive).
    Script,
    /// `#cloud-config`.
    CloudConfig,
    /// MIME multipart (`Content-Type:` / `MIME-Version:`).
    Mime,
    /// gzip-compressed (cloud-init decompresses it).
    Gzip,
    /// `#include`, `#cloud-boothook`, `#part-handler`, jinja templates...
    CloudInitOther,
    /// Anything else (opaque data for the image's own tools).
    Other,
    Empty,
}

pub fn classify(data: &[u8]) -> Kind {
    let start = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let lower: Vec<u8> = start.iter().take(32).map(u8::to_ascii_lowercase).collect();
    if data.iter().all(u8::is_ascii_whitespace) {
        Kind::Empty
    } else if start.starts_with(b"#!") {
        Kind::Script
    } else if start.starts_with(b"#cloud-config") && !start.starts_with(b"#cloud-config-archive") {
        Kind::CloudConfig
    } else if lower.starts_with(b"content-type:") || lower.starts_with(b"mime-version:") {
        Kind::Mime
    } else if start.starts_with(&[0x1f, 0x8b]) {
        Kind::Gzip
    } else if [
        &b"#include"[..],
        b"#cloud-boothook",
        b"#part-handler",
        b"#cloud-config-archive",
        b"## template:",
        b"#upstart-job",
    ]
    .iter()
    .any(|p| start.starts_with(p))
    {
        Kind::CloudInitOther
    } else {
        Kind::Other
    }
}

/// `user-data.status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    pub instance_uuid: String,
    /// `pending`, `running`, `success` or `failed`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Why it could not be started (a missing interpreter...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What [`keep`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub kind: Kind,
    /// A script marked to run later in boot.
    pub scheduled: bool,
}

/// Keeps `data` (or, with none, removes what an earlier instance left), and marks a script to
/// run when `run` (the config's `run_user_data`, and cloud-init not given the drive: it would
/// run the script too).
pub fn keep(
    root: &Root,
    uuid: &str,
    data: Option<&[u8]>,
    run: bool,
) -> Result<Option<Kept>, ApplyError> {
    let (user_data, pending) = (rel(USER_DATA), rel(PENDING));
    let Some(data) = data else {
        // A new instance with no user data: an older instance's script must not run for it.
        if root.remove_file(&pending)? {
            log::info!("an earlier instance's user-data script will not run: this one has none");
        }
        root.remove_file(&user_data)?;
        return Ok(None);
    };
    make_dir(root)?;
    let kind = classify(data);
    let script = kind == Kind::Script;
    root.write_file_if_changed(
        &user_data,
        data,
        FileOpts::mode(if script { 0o700 } else { 0o600 }),
    )?;
    let scheduled = script && run;
    if scheduled {
        write_status(
            root,
            &RunStatus {
                instance_uuid: uuid.to_string(),
                result: "pending".into(),
                scheduled: Some(crate::state::now()),
                started: None,
                finished: None,
                exit_code: None,
                signal: None,
                error: None,
            },
        )?;
        root.write_file(
            &pending,
            format!("{uuid}\n").as_bytes(),
            FileOpts::mode(0o600),
        )?;
        log::info!("user-data is a script: seedpart-user-data.service runs it once, later in boot");
    } else {
        root.remove_file(&pending)?;
        match kind {
            Kind::Script => log::info!(
                "user-data is a script, kept in /{USER_DATA} but not run (run_user_data = false, or cloud-init runs it)"
            ),
            Kind::Empty | Kind::Other => {
                log::info!("user-data kept in /{USER_DATA} ({kind:?}; nothing runs it)")
            }
            _ => log::info!("user-data ({kind:?}) kept in /{USER_DATA}, left for cloud-init"),
        }
    }
    Ok(Some(Kept { kind, scheduled }))
}

fn make_dir(root: &Root) -> Result<(), ApplyError> {
    let dir = rel(DIR);
    root.create_dir_all(&dir.parent(), 0o755, None)?;
    root.create_dir_all(&dir, 0o700, None)?;
    Ok(())
}

fn write_status(root: &Root, st: &RunStatus) -> Result<(), ApplyError> {
    let mut json = serde_json::to_vec_pretty(st).map_err(|e| ApplyError::Io {
        action: "encoding",
        path: root.host_path(&rel(STATUS)),
        source: e.into(),
    })?;
    json.push(b'\n');
    root.write_file(&rel(STATUS), &json, FileOpts::mode(0o600))?;
    Ok(())
}

/// `user-data.status` in `root`, if there is one.
pub fn read_status(root: &Path) -> Result<Option<RunStatus>, ApplyError> {
    let r = Root::open(root)?;
    let path = rel(STATUS);
    let Some(bytes) = r.read(&path, 1 << 20)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ApplyError::Io {
            action: "reading",
            path: r.host_path(&path),
            source: e.into(),
        })
}

/// Runs the pending script, if any (`None` when nothing is pending), at most once (see the
/// module documentation), with its output going where ours goes (the journal). The script's
/// failure is recorded in the status and returned in it, not as an `Err`.
pub fn run_pending(root: &Path) -> Result<Option<RunStatus>, ApplyError> {
    let r = Root::open(root)?;
    let pending = rel(PENDING);
    let Some(marker) = r.read(&pending, 4096)? else {
        return Ok(None);
    };
    let uuid = String::from_utf8_lossy(&marker).trim().to_string();
    let mut st = RunStatus {
        instance_uuid: uuid,
        result: "running".into(),
        scheduled: read_status(root).ok().flatten().and_then(|s| s.scheduled),
        started: Some(crate::state::now()),
        finished: None,
        exit_code: None,
        signal: None,
        error: None,
    };
    write_status(&r, &st)?;
    r.remove_file(&pending)?;
    let script = r.path().join(r.canonical(&rel(USER_DATA))?.as_str());
    log::info!("running the user-data script {}", script.display());
    match Command::new(&script)
        .current_dir("/")
        .stdin(Stdio::null())
        .status()
    {
        Ok(es) => {
            st.exit_code = es.code();
            st.signal = es.signal();
            st.result = if es.success() { "success" } else { "failed" }.into();
        }
        Err(e) => {
            st.result = "failed".into();
            st.error = Some(format!("cannot run {}: {e}", script.display()));
        }
    }
    st.finished = Some(crate::state::now());
    match (&st.error, st.exit_code, st.signal) {
        (Some(e), _, _) => log::error!("user-data script: {e}"),
        (None, Some(0), _) => log::info!("user-data script finished successfully"),
        (None, Some(c), _) => log::error!("user-data script failed with exit code {c}"),
        (None, _, Some(s)) => log::error!("user-data script killed by signal {s}"),
        _ => {}
    }
    write_status(&r, &st)?;
    Ok(Some(st))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_like_cloud_init() {
        assert_eq!(classify(b"#!/bin/sh\necho hi\n"), Kind::Script);
        assert_eq!(classify(b"\xef\xbb\xbf#!/bin/sh\n"), Kind::Script);
        assert_eq!(classify(b"#cloud-config\nusers: []\n"), Kind::CloudConfig);
        assert_eq!(classify(b"#cloud-config-archive\n"), Kind::CloudInitOther);
        assert_eq!(
            classify(b"Content-Type: multipart/mixed; b=x\n"),
            Kind::Mime
        );
        assert_eq!(classify(b"MIME-Version: 1.0\n"), Kind::Mime);
        assert_eq!(classify(&[0x1f, 0x8b, 8, 0]), Kind::Gzip);
        assert_eq!(classify(b"#include\nhttp://x\n"), Kind::CloudInitOther);
        assert_eq!(classify(b"role=web\n"), Kind::Other);
        assert_eq!(classify(b" \n"), Kind::Empty);
    }
}
