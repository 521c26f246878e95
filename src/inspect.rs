//! `seedpart inspect`: what was found and what `run` would do.

use crate::configdrive::ConfigDrive;
use crate::discover;
use crate::locate::Located;
use crate::plan::plan_growth;
use anyhow::{Context, Result};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Report {
    pub disk: String,
    pub table: Option<&'static str>,
    pub sector_size: Option<u64>,
    pub partition: Option<PartitionReport>,
    pub metadata: Option<MetadataReport>,
    pub grow: Option<GrowReport>,
    pub filesystem: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PartitionReport {
    pub device: Option<String>,
    pub disk: String,
    pub number: Option<u32>,
    pub table: Option<&'static str>,
    pub name: Option<String>,
    pub fs: Option<&'static str>,
    pub label: Option<String>,
    pub start: u64,
    pub size: u64,
    pub found_by: Vec<String>,
    /// Whether `run` would delete it (it is on the root's disk).
    pub deletable: bool,
}

#[derive(Debug, Serialize)]
pub struct MetadataReport {
    pub uuid: String,
    pub hostname: Option<String>,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct GrowReport {
    pub partition: Option<String>,
    pub number: u32,
    pub from: u64,
    pub to: u64,
    pub relocate_backup_header: bool,
}

/// Builds the report: reads the drive's metadata (a bad drive is an error) and plans growth.
pub fn report(loc: &mut Located) -> Result<Report> {
    let disk = loc.disk.path.display().to_string();
    let warnings = loc
        .table
        .as_ref()
        .map(|t| t.warnings.clone())
        .unwrap_or_default();
    let (partition, metadata) = match &loc.candidate {
        None => (None, None),
        Some(c) => {
            let where_ = match c.number {
                Some(n) => format!("{disk} partition {n}"),
                None => disk.clone(),
            };
            let device = c
                .number
                .and_then(|n| loc.disk.partition_node(n))
                .map(|p| p.display().to_string());
            let mut fs = discover::open_drive(&mut loc.disk.file, c)
                .with_context(|| format!("config drive on {where_}"))?;
            let cd = ConfigDrive::load(fs.as_mut())
                .with_context(|| format!("config drive on {where_}"))?;
            (
                Some(PartitionReport {
                    device,
                    disk: disk.clone(),
                    number: c.number,
                    table: c.table.map(|t| t.name()),
                    name: c.name.clone(),
                    fs: c.probe.as_ref().map(|p| p.fs.name()),
                    label: c.probe.as_ref().map(|p| p.label.clone()),
                    start: c.start,
                    size: c.size,
                    found_by: c.reasons.clone(),
                    deletable: loc.deletable,
                }),
                Some(MetadataReport {
                    uuid: cd.meta_data.uuid.clone(),
                    hostname: cd.hostname().map(str::to_string),
                    version: cd.version.clone(),
                }),
            )
        }
    };
    // The root grows on its own disk; the drive is deleted first only when it is there too.
    let (root_disk, root_table, delete) = match &loc.root_disk {
        Some((d, t)) => (d, Some(t), None),
        None => (
            &loc.disk,
            loc.table.as_ref(),
            loc.candidate
                .as_ref()
                .filter(|_| loc.deletable)
                .and_then(|c| c.number),
        ),
    };
    let grow = match (root_table, loc.root_number) {
        (Some(t), Some(root)) => plan_growth(t, root, delete).map(|p| GrowReport {
            partition: root_disk
                .partition_node(root)
                .map(|p| p.display().to_string()),
            number: root,
            from: t.bytes(p.old_sectors),
            to: t.bytes(p.new_sectors),
            relocate_backup_header: p.relocate_backup,
        }),
        _ => None,
    };
    Ok(Report {
        disk,
        table: loc.table.as_ref().map(|t| t.kind.name()),
        sector_size: loc.table.as_ref().map(|t| t.sector_size),
        partition,
        metadata,
        grow,
        filesystem: loc.root_fs.clone(),
        warnings,
    })
}

fn mib(b: u64) -> String {
    if b.is_multiple_of(1 << 20) {
        format!("{} MiB", b >> 20)
    } else {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// The human form of the report.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let table = r.table.unwrap_or("none");
    s += &format!("disk:        {} ({table}", r.disk);
    if let Some(ss) = r.sector_size {
        s += &format!(", {ss}-byte sectors");
    }
    s += ")\n";
    match &r.partition {
        None => s += "config drive: none found\n",
        Some(p) => {
            s += &format!(
                "config drive: {} {} at {} ({}), {} label {:?}, found by {}{}\n",
                p.device.clone().unwrap_or_else(|| p.disk.to_string()),
                p.number
                    .map_or_else(|| "(whole device)".into(), |n| format!("partition {n}")),
                p.start,
                mib(p.size),
                p.fs.unwrap_or("unknown filesystem"),
                p.label.clone().unwrap_or_default(),
                p.found_by.join(", "),
                if p.deletable {
                    ""
                } else {
                    " (not on the root's disk: read only, never deleted)"
                }
            );
        }
    }
    if let Some(m) = &r.metadata {
        s += &format!(
            "metadata:    uuid {}, hostname {}, from openstack/{}\n",
            m.uuid,
            m.hostname.as_deref().unwrap_or("(none)"),
            m.version
        );
    }
    match &r.grow {
        None => s += "grow:        nothing to grow\n",
        Some(g) => {
            s += &format!(
                "grow:        partition {} from {} to {}{}\n",
                g.number,
                mib(g.from),
                mib(g.to),
                if g.relocate_backup_header {
                    " (after moving the backup GPT header to the disk's end)"
                } else {
                    ""
                }
            );
        }
    }
    s += &format!(
        "filesystem:  {}\n",
        r.filesystem.as_deref().unwrap_or("unknown")
    );
    for w in &r.warnings {
        s += &format!("warning:     {w}\n");
    }
    s
}
