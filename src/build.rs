//! `seedpart build`: the deployer's half. Adds a config partition to a disk image or disk and
//! fills it, generic over the device so tests run on in-memory images.
//!
//! Order, so an interruption never leaves a partition that points at half-written data:
//! 1. everything is validated and placed in memory first;
//! 2. the filesystem is written into space no partition covers yet, and flushed;
//! 3. only then the table gains the partition (with the GPT backup header moved to the disk's
//!    end in the same crash-ordered write, see `disk::gpt::Gpt::write`).

use crate::cli::At;
use crate::disk::{self, Device, DiskError, TableKind, Window, gpt::Gpt, mbr::Mbr};
use crate::fs::{InputTree, fat_format};
use crate::plan::ALIGN_BYTES;
use std::io::SeekFrom;

/// What goes into the partition.
pub enum Content {
    /// A tree, written onto a new vfat filesystem labelled `CONFIG-2`.
    Tree(InputTree),
    /// A ready ISO 9660 image (Ironic's configdrive), written as is.
    Iso(Vec<u8>),
}

pub const DEFAULT_SIZE: u64 = 64 << 20;

/// The vfat label `build` writes. Upper case: the FAT volume label is traditionally upper case,
/// and discovery accepts both `config-2` and `CONFIG-2`.
pub const VFAT_LABEL: &str = "CONFIG-2";

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Disk(#[from] DiskError),
    #[error("no room for a {size}-byte config partition {place}")]
    NoRoom { size: u64, place: String },
    #[error(
        "the ISO image is {iso} bytes, larger than the {size}-byte partition asked for with --size"
    )]
    IsoTooLarge { iso: u64, size: u64 },
    #[error("the disk already has a config drive (partition {0}); remove it first")]
    AlreadyThere(u32),
    #[error(
        "the ISO image's volume label is {0:?}, not config-2: at the disk's end nothing else marks the partition, so it would never be found (label the ISO config-2, or use --at after-last)"
    )]
    Unmarked(String),
    #[error("formatting the config partition: {0}")]
    Format(#[from] fat_format::FatFormatError),
    #[error("writing the config partition: {0}")]
    Io(#[from] std::io::Error),
}

/// What `build` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Built {
    pub number: u32,
    pub table: TableKind,
    pub start: u64,
    pub size: u64,
    pub fs: &'static str,
    pub relocated_backup_header: bool,
    /// What the table read said that did not stop the build (see `Table::warnings`).
    pub warnings: Vec<String>,
}

/// The table with the new partition in it, made before anything is written.
enum Edit {
    Gpt(Gpt),
    Mbr(Mbr),
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// Adds and fills the config partition. `sector_size` as for `disk::read_table`.
pub fn build<D: Device>(
    dev: &mut D,
    sector_size: Option<u64>,
    content: &Content,
    size: Option<u64>,
    at: At,
) -> Result<Built, BuildError> {
    let table = disk::read_table(dev, sector_size)?;
    let ss = table.sector_size;
    let existing = crate::discover::candidates_in_table(dev, &table)?;
    if let Some(n) = existing.first().and_then(|c| c.number) {
        return Err(BuildError::AlreadyThere(n));
    }
    let size = match (content, size) {
        (Content::Iso(iso), Some(s)) if iso.len() as u64 > s => {
            return Err(BuildError::IsoTooLarge {
                iso: iso.len() as u64,
                size: s,
            });
        }
        (Content::Iso(iso), None) => align_up((iso.len() as u64).max(DEFAULT_SIZE), ALIGN_BYTES),
        (_, s) => s.unwrap_or(DEFAULT_SIZE),
    };
    let sectors = size.div_ceil(ss);
    let align = (ALIGN_BYTES / ss).max(1);
    // The last sector a partition may use once the table is fixed up, and the first free one.
    let limit_end = match table.kind {
        TableKind::Gpt => table.grow_limit + 1,
        TableKind::Mbr => table.disk_sectors.min(1 << 32),
    };
    let used_end = table
        .partitions
        .iter()
        .map(|p| p.end())
        .max()
        .unwrap_or(table.first_usable);
    let (start, place) = match at {
        At::AfterLast => (
            align_up(used_end.max(table.first_usable), align),
            "after the last partition",
        ),
        At::End => {
            // Ironic's layout: the last SIZE of the disk, ending on the last usable sector.
            let end = limit_end;
            (
                end.saturating_sub(sectors) / align * align,
                "at the disk's end",
            )
        }
    };
    let end = match at {
        At::AfterLast => start + sectors,
        At::End => limit_end,
    };
    if start < used_end || start < table.first_usable || end > limit_end || end <= start {
        return Err(BuildError::NoRoom {
            size,
            place: format!("{place} (free space ends at byte {})", limit_end * ss),
        });
    }
    let (start_b, len_b) = (start * ss, (end - start) * ss);
    if let (Content::Iso(iso), At::End) = (content, at) {
        // At the end nothing but the volume label marks the partition (Ironic's layout has no
        // GPT name and a FAT32 type byte): an ISO labelled otherwise would never be found.
        let label = crate::discover::probe_drive(&mut std::io::Cursor::new(&iso[..]))?
            .map(|p| p.label)
            .unwrap_or_default();
        if !crate::discover::is_config_label(&label) {
            return Err(BuildError::Unmarked(label));
        }
    }
    // The table edit is made in memory first, so a refusal (no free entry, an MBR's 5th
    // primary) comes before a single byte is written.
    let relocated;
    let (edit, number) = match table.kind {
        TableKind::Gpt => {
            let mut g = Gpt::read(dev, ss)?;
            relocated = g.backup_misplaced();
            if relocated {
                g.relocate_backup();
            }
            let name = match at {
                At::AfterLast => "config-v2",
                At::End => "",
            };
            let n = g.add(
                start,
                end - 1,
                disk::gpt::LINUX_DATA,
                disk::random_guid()?,
                name,
            )?;
            (Edit::Gpt(g), n)
        }
        TableKind::Mbr => {
            relocated = false;
            let mut m = Mbr::read(dev, ss)?;
            // 0x99 marks the seed's proposal; Ironic's partition at the end is a FAT32-LBA type.
            let sys = match at {
                At::AfterLast => 0x99,
                At::End => 0x0c,
            };
            let n = m.add_primary(start, end - start, sys)?;
            (Edit::Mbr(m), n)
        }
    };
    let fs_name = match content {
        Content::Tree(tree) => {
            fat_format::format_and_fill(
                Window::writable(&mut *dev, start_b, len_b),
                len_b,
                ss as u32,
                VFAT_LABEL,
                tree,
            )?;
            "vfat"
        }
        Content::Iso(iso) => {
            dev.seek(SeekFrom::Start(start_b))?;
            dev.write_all(iso)?;
            "iso9660"
        }
    };
    dev.sync()?;
    match edit {
        Edit::Gpt(mut g) => g.write(dev)?,
        Edit::Mbr(mut m) => m.write_sector0(dev)?,
    }
    Ok(Built {
        warnings: table.warnings,
        number,
        table: table.kind,
        start: start_b,
        size: len_b,
        fs: fs_name,
        relocated_backup_header: relocated,
    })
}
