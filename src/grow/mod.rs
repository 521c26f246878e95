//! Step 6 of SPEC section 5: grow the mounted root filesystem online to fill its (already grown)
//! partition, through the kernel's own ioctls as systemd-growfs does: no resize2fs or
//! xfs_growfs at run time. ext2/3/4 `EXT4_IOC_RESIZE_FS`, xfs `XFS_IOC_FSGROWFSDATA`, btrfs
//! `BTRFS_IOC_RESIZE`; any other filesystem is `Unsupported` (the caller warns and goes on).
//!
//! Every call looks at the filesystem as it is: one that already fills its device is left alone
//! and reported with `from == to`, so a second run (or the next boot) is a no-op.

pub mod btrfs;
pub mod ext4;
pub mod xfs;

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The outcome of a grow: the filesystem's size in bytes before and after (equal when it
/// already filled its device). For btrfs these are the sizes of the grown device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grown {
    pub fstype: String,
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GrowError {
    /// A filesystem seedpart does not grow: the caller warns and leaves it as it is.
    #[error("{fstype} filesystems cannot be grown online by seedpart")]
    Unsupported { fstype: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The kernel (or a check before asking it) said no; the text says why and what to do.
    #[error("{0}")]
    Refused(String),
}

impl GrowError {
    fn io(what: impl Into<String>, source: io::Error) -> GrowError {
        GrowError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Filesystems with more allocation groups than this after a grow get a warning: a small image
/// grown onto a big disk ends up with many tiny AGs, which slows XFS down.
pub const XFS_MANY_AGS: u64 = 400;

/// Grows the filesystem mounted at `mount_point` (on block device `device`, the root partition
/// node, already grown by the caller and known to the kernel) to fill the device.
///
/// Idempotent: `Ok(Grown { from == to })` when it already has its full size (within one block,
/// the XFS rule that a last AG under 64 blocks is not added, or ext4's rule that a last group
/// too small for its metadata is not added). An fstype other than ext2/3/4, xfs and btrfs gives
/// `GrowError::Unsupported`. Warns (`log::warn!`) when an XFS would pass [`XFS_MANY_AGS`]
/// allocation groups.
pub fn grow_mounted(mount_point: &Path, fstype: &str, device: &Path) -> Result<Grown, GrowError> {
    match fstype {
        "ext4" | "ext3" | "ext2" => ext4::grow(mount_point, fstype, device),
        "xfs" => xfs::grow(mount_point, device),
        "btrfs" => btrfs::grow(mount_point, device),
        other => Err(GrowError::Unsupported {
            fstype: other.to_string(),
        }),
    }
}

/// The mount point, opened read-only as a directory: the ioctls go to this descriptor.
fn open_mount(mount_point: &Path) -> Result<File, GrowError> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(mount_point)
        .map_err(|e| GrowError::io(format!("cannot open {}", mount_point.display()), e))
}

/// Refuses unless the filesystem at `dir` really is of type `magic` (the caller's fstype comes
/// from the mount table, which could be stale or wrong).
fn check_magic(dir: &File, mount_point: &Path, fstype: &str, magic: u32) -> Result<(), GrowError> {
    let found = crate::sys::fsgrow::fs_magic(dir)
        .map_err(|e| GrowError::io(format!("statfs {}", mount_point.display()), e))?;
    if found != magic {
        return Err(GrowError::Refused(format!(
            "{} is not a mounted {fstype} filesystem (statfs type {found:#x}, expected {magic:#x})",
            mount_point.display()
        )));
    }
    Ok(())
}

/// Opens the block device read-only and returns it with its rdev.
fn open_device(device: &Path) -> Result<(File, u64), GrowError> {
    let meta = std::fs::metadata(device)
        .map_err(|e| GrowError::io(format!("cannot stat {}", device.display()), e))?;
    if !meta.file_type().is_block_device() {
        return Err(GrowError::Refused(format!(
            "{} is not a block device",
            device.display()
        )));
    }
    let f = File::open(device)
        .map_err(|e| GrowError::io(format!("cannot open {}", device.display()), e))?;
    Ok((f, meta.rdev()))
}

/// The device's size in bytes as the kernel knows it (BLKGETSIZE64).
fn device_bytes(dev: &File, device: &Path) -> Result<u64, GrowError> {
    crate::sys::device_size(dev)
        .map_err(|e| GrowError::io(format!("BLKGETSIZE64 on {}", device.display()), e))
}

/// For single-device filesystems (ext4, xfs): refuses unless the filesystem at `dir` lives on
/// `device`, so it is never grown to the size of some other device.
fn check_on_device(
    dir: &File,
    mount_point: &Path,
    device: &Path,
    rdev: u64,
) -> Result<(), GrowError> {
    let dev = dir
        .metadata()
        .map_err(|e| GrowError::io(format!("cannot stat {}", mount_point.display()), e))?
        .dev();
    if dev != rdev {
        return Err(GrowError::Refused(format!(
            "{} is mounted from device {}:{}, not from {} ({}:{})",
            mount_point.display(),
            libc::major(dev),
            libc::minor(dev),
            device.display(),
            libc::major(rdev),
            libc::minor(rdev)
        )));
    }
    Ok(())
}

/// The errno of an I/O error from an ioctl, if it has one.
fn errno(e: &io::Error) -> Option<i32> {
    e.raw_os_error()
}

/// Refusals shared by the three filesystems; `None` leaves the error to the caller.
fn common_refusal(e: &io::Error, fstype: &str, mount_point: &Path) -> Option<GrowError> {
    match errno(e)? {
        libc::EROFS => Some(GrowError::Refused(format!(
            "{} is mounted read-only: the kernel cannot grow the {fstype} filesystem (EROFS)",
            mount_point.display()
        ))),
        libc::EBUSY => Some(GrowError::Refused(format!(
            "another resize of the {fstype} filesystem on {} is running (EBUSY): try again later",
            mount_point.display()
        ))),
        _ => None,
    }
}
