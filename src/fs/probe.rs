//! Superblock signatures: which filesystem a partition holds, read from a few bytes.

use std::io::{Read, Seek, SeekFrom};

/// Filesystem types seedpart tells apart. Only vfat and ISO 9660 are read; the others are named
/// (the root filesystem's type decides how it is grown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsType {
    Ext4,
    Xfs,
    Btrfs,
    Vfat,
    Iso9660,
    Swap,
}

impl FsType {
    pub fn name(self) -> &'static str {
        match self {
            FsType::Ext4 => "ext4",
            FsType::Xfs => "xfs",
            FsType::Btrfs => "btrfs",
            FsType::Vfat => "vfat",
            FsType::Iso9660 => "iso9660",
            FsType::Swap => "swap",
        }
    }
}

fn bytes_at<D: Read + Seek + ?Sized>(dev: &mut D, off: u64, n: usize) -> Option<Vec<u8>> {
    let mut b = vec![0u8; n];
    dev.seek(SeekFrom::Start(off)).ok()?;
    dev.read_exact(&mut b).ok()?;
    Some(b)
}

/// The filesystem type at byte `off` of `dev`, if one of the known ones.
pub fn detect<D: Read + Seek + ?Sized>(dev: &mut D, off: u64) -> Option<FsType> {
    if bytes_at(dev, off + 1080, 2).as_deref() == Some(&[0x53, 0xef]) {
        return Some(FsType::Ext4); // ext2/3/4 share the magic; seedpart grows them alike.
    }
    if bytes_at(dev, off, 4).as_deref() == Some(b"XFSB") {
        return Some(FsType::Xfs);
    }
    if bytes_at(dev, off + 0x10040, 8).as_deref() == Some(b"_BHRfS_M") {
        return Some(FsType::Btrfs);
    }
    if bytes_at(dev, off + 32769, 5).as_deref() == Some(b"CD001") {
        return Some(FsType::Iso9660);
    }
    if let Some(b) = bytes_at(dev, off, 512)
        && b[510..512] == [0x55, 0xaa]
        && (&b[54..59] == b"FAT12" || &b[54..59] == b"FAT16" || &b[82..87] == b"FAT32")
    {
        return Some(FsType::Vfat);
    }
    for page in [4096u64, 65536] {
        if bytes_at(dev, off + page - 10, 10).as_deref() == Some(b"SWAPSPACE2") {
            return Some(FsType::Swap);
        }
    }
    None
}

/// Whether anything recognisable starts at `off`: a known filesystem, or (for an extended
/// partition) an EBR's boot signature.
pub fn has_known_signature<D: Read + Seek + ?Sized>(dev: &mut D, off: u64, ebr: bool) -> bool {
    if ebr {
        return bytes_at(dev, off + 510, 2).as_deref() == Some(&[0x55, 0xaa]);
    }
    detect(dev, off).is_some()
}
