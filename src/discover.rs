//! Finding the config drive among a disk's partitions (SPEC section 2): by filesystem label
//! `config-2`/`CONFIG-2` on vfat or ISO 9660, by GPT name `config-v2`, by MBR type `0x99`.

use crate::disk::{NoWrite, Table, TableKind, Window};
use crate::fs::{DriveFs, DriveFsKind, FsError, fat, iso9660};
use crate::plan::has_config_marker;
use std::io::{self, Read, Seek};

/// What filesystem a drive carries, and its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriveProbe {
    pub fs: DriveFsKind,
    pub label: String,
}

pub fn is_config_label(label: &str) -> bool {
    label == "config-2" || label == "CONFIG-2"
}

/// Looks at the start of a partition (or whole device) for a vfat or ISO 9660 filesystem.
pub fn probe_drive<D: Read + Seek>(dev: &mut D) -> io::Result<Option<DriveProbe>> {
    if let Some(label) = iso9660::probe_label(dev)? {
        return Ok(Some(DriveProbe {
            fs: DriveFsKind::Iso9660,
            label,
        }));
    }
    if let Some(label) = fat::probe_label(dev)? {
        return Ok(Some(DriveProbe {
            fs: DriveFsKind::Vfat,
            label,
        }));
    }
    Ok(None)
}

/// A partition (or a whole device without a table) that holds, or claims to hold, a config drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Partition number; `None` for a whole device (a CD-ROM or a table-less disk).
    pub number: Option<u32>,
    pub table: Option<TableKind>,
    /// Byte extent on its device.
    pub start: u64,
    pub size: u64,
    /// GPT partition name, if any.
    pub name: Option<String>,
    pub probe: Option<DriveProbe>,
    /// Why it was picked: `label config-2`, `GPT name config-v2`, `MBR type 0x99`.
    pub reasons: Vec<String>,
}

/// The candidates among a table's partitions.
pub fn candidates_in_table<D: Read + Seek>(
    dev: &mut D,
    table: &Table,
) -> io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for p in table.data_partitions() {
        let (start, size) = (table.bytes(p.start), table.bytes(p.sectors));
        let probe = probe_drive(&mut Window::read_only(&mut *dev, start, size))?;
        let mut reasons = Vec::new();
        if let Some(pr) = probe.as_ref().filter(|pr| is_config_label(&pr.label)) {
            reasons.push(format!("{} label {}", pr.fs.name(), pr.label));
        }
        if has_config_marker(&p.kind) {
            reasons.push(match p.mbr_type() {
                Some(t) => format!("MBR type {t:#04x}"),
                None => "GPT name config-v2".to_string(),
            });
        }
        if !reasons.is_empty() {
            out.push(Candidate {
                number: Some(p.number),
                table: Some(table.kind),
                start,
                size,
                name: p.name().map(str::to_string),
                probe,
                reasons,
            });
        }
    }
    Ok(out)
}

/// A whole device (no partition table) that is itself a config drive, as a CD-ROM is.
pub fn candidate_whole<D: Read + Seek>(dev: &mut D, len: u64) -> io::Result<Option<Candidate>> {
    Ok(probe_drive(dev)?
        .filter(|pr| is_config_label(&pr.label))
        .map(|pr| Candidate {
            number: None,
            table: None,
            start: 0,
            size: len,
            name: None,
            reasons: vec![format!("{} label {}", pr.fs.name(), pr.label)],
            probe: Some(pr),
        }))
}

/// Opens the drive's filesystem read-only on its window of `dev`.
pub fn open_drive<'a, D: Read + Seek + 'a>(
    dev: D,
    c: &Candidate,
) -> Result<Box<dyn DriveFs + 'a>, FsError> {
    let window = Window::read_only(NoWrite(dev), c.start, c.size);
    match c.probe.as_ref().map(|p| p.fs) {
        Some(DriveFsKind::Iso9660) => Ok(Box::new(iso9660::Iso9660::open(window)?)),
        Some(DriveFsKind::Vfat) => Ok(Box::new(fat::Fat::open(window)?)),
        _ => Err(FsError::Corrupt {
            fs: "config drive",
            detail: format!(
                "partition {} is marked as a config drive ({}) but holds neither a vfat nor an ISO 9660 filesystem",
                c.number
                    .map_or_else(|| "(whole device)".to_string(), |n| n.to_string()),
                c.reasons.join(", ")
            ),
        }),
    }
}
