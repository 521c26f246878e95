//! `seedpart status`: the state file and a fresh check of the copy of the drive (SPEC section 6).

use crate::cli::StatusArgs;
use crate::copy;
use crate::state::{self, State, StateError};
use anyhow::Result;
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// What `status --json` prints.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub state: Option<State>,
    pub copy: CopyStatus,
    /// The user-data script's run, as `seedpart user-data` recorded it (`None`: no script).
    pub user_data: Option<crate::apply::userdata::RunStatus>,
}

/// The copy under the root as checked now against its own `SHA256SUMS` (and against the
/// manifest hash the state file recorded).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct CopyStatus {
    pub path: String,
    pub verified: bool,
    pub files: Option<u64>,
    pub bytes: Option<u64>,
    pub problem: Option<String>,
}

/// Reads the state file and checks the copy. Only reads.
pub fn gather(root: &Path) -> Result<Report, StateError> {
    let state = state::load(root)?;
    let dest = copy::default_dest(root);
    let mut copy = CopyStatus {
        path: dest.display().to_string(),
        verified: false,
        files: None,
        bytes: None,
        problem: None,
    };
    match copy::verify_copy(&dest) {
        Ok(m) => {
            let recorded = state
                .as_ref()
                .and_then(|s| s.copy.as_ref())
                .map(|c| c.manifest_sha256.as_str())
                .filter(|h| !h.is_empty());
            let actual = copy::hex(&m.sums_sha256());
            copy.files = Some(m.file_count());
            copy.bytes = Some(m.total_bytes());
            match recorded {
                Some(h) if h != actual => {
                    copy.problem = Some(format!(
                        "{}: the copy is consistent but its {} (sha256 {actual}) is not the one state.json recorded ({h}): it was replaced after the run",
                        dest.display(),
                        copy::SUMS
                    ));
                }
                _ => copy.verified = true,
            }
        }
        Err(e) => copy.problem = Some(e.to_string()),
    }
    // An unreadable user-data status is shown as absent rather than hiding the rest.
    let user_data = crate::apply::userdata::read_status(root).unwrap_or_else(|e| {
        log::warn!("{e}");
        None
    });
    Ok(Report {
        state,
        copy,
        user_data,
    })
}

/// The human form: one line per step.
pub fn render(root: &Path, r: &Report) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<11} {v}\n"));
    let state_path = state::path(root);
    let Some(s) = &r.state else {
        line(
            "state:",
            format!(
                "seedpart has not run on this root (no {})",
                state_path.display()
            ),
        );
        line("copy:", copy_line(&r.copy));
        return out;
    };
    line(
        "state:",
        format!("{} (format {})", state_path.display(), s.format),
    );
    line(
        "last run:",
        match (&s.last_run, &s.last_result) {
            (Some(t), Some(res)) => format!("{t}: {res}"),
            (Some(t), None) => format!("{t}: (no result recorded)"),
            (None, Some(res)) => res.clone(),
            (None, None) => "never recorded".into(),
        },
    );
    line(
        "instance:",
        s.instance_uuid.clone().unwrap_or_else(|| "unknown".into()),
    );
    line(
        "drive:",
        match &s.drive {
            Some(d) => format!(
                "{} partition {} ({}), {} {:?}, {} at byte {}{}",
                d.disk,
                d.number,
                d.table,
                d.fs,
                d.label,
                size(d.size),
                d.start,
                d.partuuid
                    .as_deref()
                    .map(|u| format!(", PARTUUID={u}"))
                    .unwrap_or_default()
            ),
            None => "none found".into(),
        },
    );
    line(
        "copied:",
        match &s.copy {
            Some(c) => format!(
                "{}: {} files, {}, {}",
                c.path,
                c.files,
                size(c.bytes),
                if c.verified {
                    "verified after copying"
                } else {
                    "NOT verified"
                }
            ),
            None => "no".into(),
        },
    );
    line("copy:", copy_line(&r.copy));
    line(
        "partition:",
        if s.partition_deleted {
            "deleted".into()
        } else if s.drive.is_some() {
            "still in place".into()
        } else {
            "-".into()
        },
    );
    line(
        "grow:",
        match &s.partition_grown {
            Some(g) => format!(
                "partition {} grown from {} to {}",
                g.number,
                size(g.from),
                size(g.to)
            ),
            None => "not grown".into(),
        },
    );
    line(
        "filesystem:",
        match &s.filesystem_grown {
            Some(f) => match (&f.skipped, f.from, f.to) {
                (Some(why), _, _) => format!("{} not grown: {why}", f.fstype),
                (None, Some(from), Some(to)) => {
                    format!("{} grown from {} to {}", f.fstype, size(from), size(to))
                }
                _ => format!("{} (no sizes recorded)", f.fstype),
            },
            None => "not grown".into(),
        },
    );
    if let Some(u) = &r.user_data {
        line(
            "user-data:",
            format!(
                "instance {}: {}{}",
                u.instance_uuid,
                u.result,
                match (u.exit_code, u.signal, &u.error) {
                    (Some(c), _, _) => format!(" (exit status {c})"),
                    (_, Some(sig), _) => format!(" (signal {sig})"),
                    (_, _, Some(e)) => format!(" ({e})"),
                    _ => String::new(),
                }
            ),
        );
    }
    out
}

fn copy_line(c: &CopyStatus) -> String {
    match (&c.problem, c.files, c.bytes) {
        (Some(p), _, _) => format!("PROBLEM: {p}"),
        (None, Some(f), Some(b)) => format!(
            "{}: {f} files, {}, checked now against {}: intact",
            c.path,
            size(b),
            copy::SUMS
        ),
        _ => format!("{}: not checked", c.path),
    }
}

/// Bytes, with MiB/GiB alongside when large.
fn size(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if n >= GIB {
        format!("{n} bytes ({:.1} GiB)", n as f64 / GIB as f64)
    } else if n >= MIB {
        format!("{n} bytes ({:.1} MiB)", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

/// `seedpart status`: exit 0 whenever the state file could be read (or is absent), whatever
/// the copy's condition, which is reported.
pub fn status(a: &StatusArgs) -> Result<()> {
    let report = gather(&a.root)?;
    if let Some(p) = &report.copy.problem
        && report.state.is_some()
    {
        log::warn!("{p}");
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(render(&a.root, &report).as_bytes())?;
    }
    Ok(())
}
