//! ext2/3/4 online growth: `EXT4_IOC_RESIZE_FS` with the device's size in filesystem blocks.
//!
//! The current size comes from the superblock read through the block device: the mounted
//! filesystem's in-memory superblock is that very buffer of the device's page cache, so the
//! read sees the live values, before and after the resize.
//!
//! The kernel (fs/ext4/resize.c, `ext4_resize_fs`) trims a last group too small to hold its
//! metadata (superblock backup and descriptors, two bitmaps, the inode table, one cluster) and
//! returns 0 when the trimmed size is the current one; [`Superblock::kernel_target`] mirrors
//! that rule (with a lower bound of the overhead, so it can only err towards asking) so that a
//! filesystem already at its full size is not asked again.

use super::{GrowError, Grown, check_magic, check_on_device, common_refusal, device_bytes};
use crate::sys::fsgrow::{self, EXT4_SUPER_MAGIC};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

const SB_OFFSET: u64 = 1024;
const SB_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;

const COMPAT_RESIZE_INODE: u32 = 0x10;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_BIGALLOC: u32 = 0x200;

/// The fields of an ext2/3/4 superblock that growing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// `s_blocks_count_lo` and, with the 64bit feature, `s_blocks_count_hi`.
    pub blocks_count: u64,
    /// `s_log_block_size`: blocks are `1024 << log_block_size` bytes.
    pub log_block_size: u32,
    pub log_cluster_size: u32,
    pub first_data_block: u64,
    pub blocks_per_group: u64,
    pub inodes_per_group: u64,
    pub inode_size: u64,
    pub reserved_gdt_blocks: u64,
    /// Group-descriptor size: 32 without the 64bit feature.
    pub desc_size: u64,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    /// `s_backup_bgs` (sparse_super2).
    pub backup_bgs: [u64; 2],
}

fn le16(b: &[u8], off: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[off], b[off + 1]]))
}

fn le32(b: &[u8], off: usize) -> u64 {
    u64::from(u32::from_le_bytes(b[off..off + 4].try_into().unwrap()))
}

impl Superblock {
    /// Parses the 1024 bytes of a superblock (those at byte 1024 of the device).
    pub fn parse(b: &[u8]) -> Result<Superblock, String> {
        if b.len() < SB_SIZE {
            return Err("short ext4 superblock".into());
        }
        if le16(b, 0x38) != u64::from(MAGIC) {
            return Err("no ext2/3/4 superblock (bad magic)".into());
        }
        let feature_compat = le32(b, 0x5C) as u32;
        let feature_incompat = le32(b, 0x60) as u32;
        let feature_ro_compat = le32(b, 0x64) as u32;
        let is64 = feature_incompat & INCOMPAT_64BIT != 0;
        let mut blocks_count = le32(b, 0x04);
        if is64 {
            blocks_count |= le32(b, 0x150) << 32;
        }
        let log_block_size = le32(b, 0x18) as u32;
        let log_cluster_size = le32(b, 0x1C) as u32;
        // Revision 0 has 128-byte inodes and no s_inode_size.
        let inode_size = if le32(b, 0x4C) == 0 {
            128
        } else {
            le16(b, 0x58)
        };
        let desc_size = if is64 { le16(b, 0xFE).max(32) } else { 32 };
        let sb = Superblock {
            blocks_count,
            log_block_size,
            log_cluster_size,
            first_data_block: le32(b, 0x14),
            blocks_per_group: le32(b, 0x20),
            inodes_per_group: le32(b, 0x28),
            inode_size,
            reserved_gdt_blocks: le16(b, 0xCE),
            desc_size,
            feature_compat,
            feature_incompat,
            feature_ro_compat,
            backup_bgs: [le32(b, 0x24C), le32(b, 0x250)],
        };
        // ext4 blocks are 1 KiB to 64 KiB.
        if sb.log_block_size > 6
            || sb.blocks_per_group == 0
            || sb.inodes_per_group == 0
            || sb.inode_size == 0
            || sb.blocks_count <= sb.first_data_block
            || (sb.bigalloc() && sb.log_cluster_size < sb.log_block_size)
        {
            return Err("corrupt ext4 superblock (impossible geometry)".into());
        }
        Ok(sb)
    }

    /// Reads and parses the superblock of a device (or image).
    pub fn read(dev: &File) -> io::Result<Superblock> {
        let mut b = [0u8; SB_SIZE];
        dev.read_exact_at(&mut b, SB_OFFSET)?;
        Superblock::parse(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn block_size(&self) -> u64 {
        1024 << self.log_block_size
    }

    /// The filesystem's size in bytes.
    pub fn bytes(&self) -> u64 {
        self.blocks_count * self.block_size()
    }

    pub fn is_64bit(&self) -> bool {
        self.feature_incompat & INCOMPAT_64BIT != 0
    }

    pub fn bigalloc(&self) -> bool {
        self.feature_ro_compat & RO_COMPAT_BIGALLOC != 0
    }

    /// Blocks per cluster (1 without bigalloc).
    pub fn cluster_ratio(&self) -> u64 {
        if self.bigalloc() {
            1 << (self.log_cluster_size - self.log_block_size)
        } else {
            1
        }
    }

    /// The largest block count the filesystem can express: 2^32 - 1 without the 64bit feature
    /// (the kernel would store the high half where such a filesystem never reads it).
    pub fn max_blocks(&self) -> u64 {
        if self.is_64bit() {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        }
    }

    fn group_count(&self) -> u64 {
        (self.blocks_count - self.first_data_block).div_ceil(self.blocks_per_group)
    }

    fn inode_table_blocks(&self) -> u64 {
        (self.inodes_per_group * self.inode_size).div_ceil(self.block_size())
    }

    /// Whether group `g` holds a superblock backup (`ext4_bg_has_super`).
    fn has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.feature_compat & COMPAT_SPARSE_SUPER2 != 0 {
            return g == self.backup_bgs[0] || g == self.backup_bgs[1];
        }
        if g <= 1 || self.feature_ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if g.is_multiple_of(2) {
            return false;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut p = base;
            while p < g {
                p *= base;
            }
            p == g
        })
    }

    /// A lower bound of the kernel's `ext4_group_overhead_blocks` for a new group `g`: the
    /// superblock backup, the current descriptor blocks and the reserved GDT blocks, where
    /// the group carries a backup (with meta_bg only the superblock is counted).
    fn overhead_lower_bound(&self, g: u64) -> u64 {
        if !self.has_super(g) {
            return 0;
        }
        if self.feature_incompat & INCOMPAT_META_BG != 0 {
            return 1;
        }
        let per_block = (self.block_size() / self.desc_size).max(1);
        let gdb = self.group_count().div_ceil(per_block);
        let reserved = if self.feature_compat & COMPAT_RESIZE_INODE != 0 {
            self.reserved_gdt_blocks
        } else {
            0
        };
        1 + gdb + reserved
    }

    /// The block count the kernel's online resize reaches when asked for `n` blocks: `n` less a
    /// last group too small for its metadata (repeatedly), never below the current count. It
    /// can only overestimate (the overhead is a lower bound), never claim "full" wrongly.
    pub fn kernel_target(&self, n: u64) -> u64 {
        let cur = self.blocks_count;
        let mut n = n;
        while n > cur {
            let g = (n - 1 - self.first_data_block) / self.blocks_per_group;
            let first = self.first_data_block + g * self.blocks_per_group;
            let need = first
                + self.overhead_lower_bound(g)
                + 2
                + self.inode_table_blocks()
                + self.cluster_ratio();
            if need < n {
                return n;
            }
            n = first;
        }
        cur
    }
}

pub(super) fn grow(mount_point: &Path, fstype: &str, device: &Path) -> Result<Grown, GrowError> {
    let dir = super::open_mount(mount_point)?;
    check_magic(&dir, mount_point, fstype, EXT4_SUPER_MAGIC)?;
    let (dev, rdev) = super::open_device(device)?;
    check_on_device(&dir, mount_point, device, rdev)?;
    let read_sb = || {
        Superblock::read(&dev).map_err(|e| {
            GrowError::io(
                format!("reading the ext4 superblock of {}", device.display()),
                e,
            )
        })
    };
    let sb = read_sb()?;
    let bs = sb.block_size();
    let from = sb.bytes();
    let mut target = device_bytes(&dev, device)? / bs;
    // With bigalloc the kernel (since 4.x) trims to whole clusters itself; do it here too.
    target -= target % sb.cluster_ratio();
    if target > sb.max_blocks() {
        log::warn!(
            "{fstype} on {}: without the 64bit feature it cannot pass {} blocks; growing to that \
             instead of the {} blocks of {}",
            mount_point.display(),
            sb.max_blocks(),
            target,
            device.display()
        );
        target = sb.max_blocks();
    }
    if target < sb.blocks_count {
        return Err(GrowError::Refused(format!(
            "the {fstype} filesystem on {} has {} blocks of {bs} bytes, more than its device {} \
             holds ({target}): not growing it",
            mount_point.display(),
            sb.blocks_count,
            device.display()
        )));
    }
    if sb.kernel_target(target) <= sb.blocks_count {
        return Ok(Grown {
            fstype: fstype.to_string(),
            from,
            to: from,
        });
    }
    fsgrow::ext4_resize_fs(&dir, target).map_err(|e| refusal(e, fstype, mount_point))?;
    let after = read_sb()?;
    Ok(Grown {
        fstype: fstype.to_string(),
        from,
        to: after.bytes(),
    })
}

fn refusal(e: io::Error, fstype: &str, mount_point: &Path) -> GrowError {
    if let Some(r) = common_refusal(&e, fstype, mount_point) {
        return r;
    }
    match e.raw_os_error() {
        Some(libc::EPERM) => GrowError::Refused(format!(
            "the kernel refused the ext4 online resize (EPERM): seedpart needs CAP_SYS_RESOURCE \
             (with it, EPERM means the filesystem has errors, is mounted from a backup \
             superblock or has no room for more group descriptors: see the kernel log; \
             {} was left as it is)",
            mount_point.display()
        )),
        Some(libc::EOPNOTSUPP) => GrowError::Refused(format!(
            "the kernel cannot resize this {fstype} online (EOPNOTSUPP: bigalloc on an old \
             kernel, or sparse_super2); {} was left as it is",
            mount_point.display()
        )),
        Some(libc::ENOTTY) => GrowError::Refused(format!(
            "the kernel has no EXT4_IOC_RESIZE_FS (ENOTTY: Linux before 3.3); {} was left as \
             it is",
            mount_point.display()
        )),
        _ => GrowError::io(
            format!("EXT4_IOC_RESIZE_FS on {}", mount_point.display()),
            e,
        ),
    }
}
