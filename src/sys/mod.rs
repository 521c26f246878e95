//! The one thin module of kernel calls: block-device ioctls and the disk lock. Everything else
//! in seedpart reaches the kernel only through these functions, so it stays testable on image
//! files without root.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

pub mod fsgrow;

mod ioctl {
    nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), libc::c_int);
    nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
}

/// Whether `path` is a block device.
pub fn is_block_device(path: &Path) -> io::Result<bool> {
    Ok(std::fs::metadata(path)?.file_type().is_block_device())
}

/// The logical sector size of an open block device (BLKSSZGET).
pub fn logical_sector_size(dev: &File) -> io::Result<u64> {
    let mut size: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which is valid for the call.
    unsafe { ioctl::blksszget(dev.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    u64::try_from(size).map_err(|_| io::Error::other("negative sector size"))
}

/// The size in bytes of an open block device (BLKGETSIZE64).
pub fn device_size(dev: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which is valid for the call.
    unsafe { ioctl::blkgetsize64(dev.as_raw_fd(), &mut size) }.map_err(io::Error::from)?;
    Ok(size)
}

/// `struct blkpg_partition` from `<linux/blkpg.h>`; offsets and lengths in bytes.
#[repr(C)]
struct BlkpgPartition {
    start: libc::c_longlong,
    length: libc::c_longlong,
    pno: libc::c_int,
    devname: [libc::c_char; 64],
    volname: [libc::c_char; 64],
}

/// `struct blkpg_ioctl_arg`.
#[repr(C)]
struct BlkpgIoctlArg {
    op: libc::c_int,
    flags: libc::c_int,
    datalen: libc::c_int,
    data: *mut libc::c_void,
}

const BLKPG_ADD_PARTITION: libc::c_int = 1;
const BLKPG_DEL_PARTITION: libc::c_int = 2;
const BLKPG_RESIZE_PARTITION: libc::c_int = 3;

nix::ioctl_write_ptr_bad!(blkpg_raw, nix::request_code_none!(0x12, 105), BlkpgIoctlArg);

fn blkpg(disk: &File, op: libc::c_int, pno: u32, start: u64, length: u64) -> io::Result<()> {
    let mut part = BlkpgPartition {
        start: start as libc::c_longlong,
        length: length as libc::c_longlong,
        pno: pno as libc::c_int,
        devname: [0; 64],
        volname: [0; 64],
    };
    let arg = BlkpgIoctlArg {
        op,
        flags: 0,
        datalen: std::mem::size_of::<BlkpgPartition>() as libc::c_int,
        data: (&raw mut part).cast(),
    };
    // SAFETY: `arg` and the `part` it points to live across the call; the kernel reads
    // `datalen` bytes from `data`, which is exactly one `BlkpgPartition`.
    unsafe { blkpg_raw(disk.as_raw_fd(), &arg) }.map_err(io::Error::from)?;
    Ok(())
}

/// Tells the kernel about a new partition (BLKPG_ADD_PARTITION on the whole disk).
pub fn add_partition(disk: &File, number: u32, start: u64, length: u64) -> io::Result<()> {
    blkpg(disk, BLKPG_ADD_PARTITION, number, start, length)
}

/// Tells the kernel a partition is gone (BLKPG_DEL_PARTITION).
pub fn delete_partition(disk: &File, number: u32) -> io::Result<()> {
    blkpg(disk, BLKPG_DEL_PARTITION, number, 0, 0)
}

/// Tells the kernel a partition's length changed; its start never does (BLKPG_RESIZE_PARTITION).
pub fn resize_partition(disk: &File, number: u32, start: u64, length: u64) -> io::Result<()> {
    blkpg(disk, BLKPG_RESIZE_PARTITION, number, start, length)
}

/// An exclusive `flock` on a whole disk, held while its table changes: udev honours it and
/// does not probe the disk half-way through (systemd's "locking block devices" convention).
pub struct DiskLock<'a>(&'a File);

impl<'a> DiskLock<'a> {
    pub fn acquire(disk: &'a File) -> io::Result<DiskLock<'a>> {
        // SAFETY: flock on a valid, open descriptor; no memory is passed.
        let r = unsafe { libc::flock(disk.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DiskLock(disk))
    }
}

impl Drop for DiskLock<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking cannot harm anything if it fails.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
