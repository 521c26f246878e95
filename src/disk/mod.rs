//! Partition tables (GPT and MBR/DOS) read and edited through any `Read + Write + Seek` device,
//! so one code path serves a disk image and a block device, and the byte windows onto partitions.

pub mod device;
pub mod gpt;
pub mod mbr;
pub mod window;

pub use device::Device;
pub use window::{NoWrite, Window};

use std::io::{self, Read, Seek, SeekFrom};

/// Which kind of partition table a disk carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    Gpt,
    Mbr,
}

impl TableKind {
    pub fn name(self) -> &'static str {
        match self {
            TableKind::Gpt => "gpt",
            TableKind::Mbr => "mbr",
        }
    }
}

/// What a partition is, in its table's own terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartKind {
    Gpt {
        type_guid: [u8; 16],
        name: String,
        attributes: u64,
    },
    MbrPrimary {
        sys: u8,
    },
    /// The extended container (type 0x05, 0x0f or 0x85): never a filesystem.
    MbrExtended {
        sys: u8,
    },
    MbrLogical {
        sys: u8,
    },
}

/// One partition, numbered as the kernel numbers it (GPT: entry slot + 1; MBR: 1-4 primary,
/// 5 and up logical in chain order), with its extent in sectors of the table's sector size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub number: u32,
    pub start: u64,
    pub sectors: u64,
    pub kind: PartKind,
    /// PARTUUID as the kernel and blkid spell it: the GPT unique GUID, or for MBR
    /// `SSSSSSSS-NN` (disk signature, partition number).
    pub uuid: String,
    /// For a logical partition, the LBA of the EBR that describes it: the first sector its
    /// bookkeeping occupies, which a neighbour growing towards it must stop short of.
    pub ebr: Option<u64>,
}

impl Partition {
    /// One past the last sector.
    pub fn end(&self) -> u64 {
        self.start + self.sectors
    }

    /// The GPT partition name, if any.
    pub fn name(&self) -> Option<&str> {
        match &self.kind {
            PartKind::Gpt { name, .. } if !name.is_empty() => Some(name),
            _ => None,
        }
    }

    /// The MBR type byte, if an MBR partition.
    pub fn mbr_type(&self) -> Option<u8> {
        match self.kind {
            PartKind::MbrPrimary { sys }
            | PartKind::MbrExtended { sys }
            | PartKind::MbrLogical { sys } => Some(sys),
            PartKind::Gpt { .. } => None,
        }
    }

    pub fn is_extended(&self) -> bool {
        matches!(self.kind, PartKind::MbrExtended { .. })
    }

    pub fn is_logical(&self) -> bool {
        matches!(self.kind, PartKind::MbrLogical { .. })
    }
}

/// A partition table as read, in one model for GPT and MBR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub kind: TableKind,
    pub sector_size: u64,
    /// The device's length in sectors.
    pub disk_sectors: u64,
    /// First and last sector (inclusive) partitions may occupy.
    pub first_usable: u64,
    pub last_usable: u64,
    /// The last sector a partition could reach once the table is fixed up: for GPT, the last
    /// usable LBA with the backup header at the disk's real end; for MBR, the last sector of the
    /// disk or of the 2^32 sectors an MBR can address.
    pub grow_limit: u64,
    /// Sorted by number; MBR extended containers included.
    pub partitions: Vec<Partition>,
    /// Things an operator should know that did not stop the read (a corrupt primary GPT header
    /// replaced by its backup, a backup header short of the disk's end).
    pub warnings: Vec<String>,
}

impl Table {
    pub fn get(&self, number: u32) -> Option<&Partition> {
        self.partitions.iter().find(|p| p.number == number)
    }

    /// Partitions that can hold a filesystem (everything but extended containers).
    pub fn data_partitions(&self) -> impl Iterator<Item = &Partition> {
        self.partitions.iter().filter(|p| !p.is_extended())
    }

    pub fn bytes(&self, sectors: u64) -> u64 {
        sectors * self.sector_size
    }
}

/// Errors of the partition-table layer. The disk's name is added by the caller.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("I/O error while {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("no partition table: neither a GPT nor an MBR signature was found")]
    NoTable,
    #[error("corrupt GPT: {0}")]
    CorruptGpt(String),
    #[error("corrupt MBR partition table: {0}")]
    CorruptMbr(String),
    #[error("{0}")]
    Refused(String),
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DiskError {
    let what = what.into();
    move |source| DiskError::Io { what, source }
}

/// The device's length in bytes.
pub fn device_len<D: Seek + ?Sized>(dev: &mut D) -> Result<u64, DiskError> {
    dev.seek(SeekFrom::End(0))
        .map_err(io_err("finding the device's size"))
}

/// Reads `buf.len()` bytes at `offset`; a short device reads as an error.
pub fn read_at<D: Read + Seek + ?Sized>(
    dev: &mut D,
    offset: u64,
    buf: &mut [u8],
) -> io::Result<()> {
    dev.seek(SeekFrom::Start(offset))?;
    dev.read_exact(buf)
}

/// Reads the partition table. `sector_size` is the logical sector size when known (BLKSSZGET on
/// a block device); `None` for an image file, where it is probed: a GPT header is looked for at
/// 512 and 4096, and an MBR's sector size is inferred from where its partitions' filesystems are.
/// A GPT header under an MBR with no 0xEE entry is a leftover and ignored, as the kernel does.
pub fn read_table<D: Read + Seek + ?Sized>(
    dev: &mut D,
    sector_size: Option<u64>,
) -> Result<Table, DiskError> {
    let sizes: &[u64] = match sector_size {
        Some(512) => &[512],
        Some(4096) => &[4096],
        Some(other) => {
            return Err(DiskError::Refused(format!(
                "logical sector size {other} is not supported (512 and 4096 are)"
            )));
        }
        None => &[512, 4096],
    };
    let len = device_len(dev)?;
    // A GPT counts only under a protective (or hybrid) MBR, as for the kernel, libblkid and
    // sfdisk: a real MBR in sector 0 with an old "EFI PART" left at LBA 1 is an MBR disk.
    let mut sector0 = [0u8; 512];
    let dos_mbr = len >= 512 && read_at(dev, 0, &mut sector0).is_ok() && mbr::is_dos_mbr(&sector0);
    for &ss in sizes {
        if !dos_mbr && gpt::has_signature(dev, ss, len)? {
            return gpt::Gpt::read(dev, ss).map(|g| g.table);
        }
    }
    if has_protective_mbr(dev) {
        // The primary header is gone (no signature at LBA 1) but the protective MBR says this
        // is a GPT disk: the backup at the last LBA may still be good, and the kernel and
        // sgdisk use it then. `Gpt::read` falls back to it and says so in the warnings.
        let mut first_err = None;
        for &ss in sizes {
            match gpt::Gpt::read(dev, ss) {
                Ok(g) => return Ok(g.table),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
    }
    let mbr_ss = match sector_size {
        Some(ss) => ss,
        None => mbr::probe_sector_size(dev)?,
    };
    mbr::Mbr::read(dev, mbr_ss).map(|m| m.table)
}

/// Whether sector 0 is an MBR with a GPT protective (0xEE) entry.
fn has_protective_mbr<D: Read + Seek + ?Sized>(dev: &mut D) -> bool {
    let mut s0 = [0u8; 512];
    read_at(dev, 0, &mut s0).is_ok()
        && s0[510..512] == [0x55, 0xaa]
        && (0..4).any(|i| s0[446 + 16 * i + 4] == 0xee)
}

/// Formats a GPT GUID (mixed-endian on disk) the way blkid and the kernel print it.
pub fn guid_to_string(g: &[u8; 16]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        g[3],
        g[2],
        g[1],
        g[0],
        g[5],
        g[4],
        g[7],
        g[6],
        g[8],
        g[9],
        g[10],
        g[11],
        g[12],
        g[13],
        g[14],
        g[15]
    )
}

/// Parses a GUID string (any case) into its on-disk mixed-endian bytes.
pub fn guid_from_str(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || s.len() != 36 {
        return None;
    }
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut g = b;
    g[..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    g[4..6].copy_from_slice(&[b[5], b[4]]);
    g[6..8].copy_from_slice(&[b[7], b[6]]);
    Some(g)
}

/// A random 16-byte GUID (version 4), from the kernel's pool.
pub fn random_guid() -> io::Result<[u8; 16]> {
    let mut g = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut g)?;
    // Version 4 and RFC 4122 variant, in the mixed-endian layout.
    g[7] = (g[7] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip_matches_the_linux_filesystem_type() {
        let s = "0fc63daf-8483-4772-8e79-3d69d8477de4";
        let g = guid_from_str(s).unwrap();
        assert_eq!(&g[..4], &[0xaf, 0x3d, 0xc6, 0x0f]);
        assert_eq!(guid_to_string(&g), s);
        assert!(guid_from_str("0fc63daf84834772-8e79-3d69d8477de4xx").is_none());
    }
}
