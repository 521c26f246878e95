//! The kernel's own online-grow ioctls (what systemd-growfs issues), with the structures of the
//! kernel's uapi headers: `EXT4_IOC_RESIZE_FS`, `XFS_IOC_FSGEOMETRY` / `XFS_IOC_FSGROWFSDATA`,
//! `BTRFS_IOC_FS_INFO` / `BTRFS_IOC_DEV_INFO` / `BTRFS_IOC_RESIZE`, and `fstatfs` for the
//! mounted filesystem's magic. Each is issued on a descriptor of the mount point (any file of
//! the filesystem would do). nix defines none of them; the request codes are built here from
//! `_IOR`/`_IOW`/`_IOWR` and checked against the C headers' values by the unit tests below.

use nix::sys::ioctl::ioctl_num_type;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// `struct xfs_fsop_geom` (the v5 layout of `<xfs/xfs_fs.h>`, 256 bytes), output of
/// `XFS_IOC_FSGEOMETRY` (Linux 5.1 and later).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XfsFsopGeom {
    pub blocksize: u32,
    pub rtextsize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub sectsize: u32,
    pub inodesize: u32,
    pub imaxpct: u32,
    pub datablocks: u64,
    pub rtblocks: u64,
    pub rtextents: u64,
    pub logstart: u64,
    pub uuid: [u8; 16],
    pub sunit: u32,
    pub swidth: u32,
    pub version: i32,
    pub flags: u32,
    pub logsectsize: u32,
    pub rtsectsize: u32,
    pub dirblocksize: u32,
    pub logsunit: u32,
    pub sick: u32,
    pub checked: u32,
    pub reserved: [u64; 17],
}

/// `struct xfs_fsop_geom_v1` (112 bytes), output of `XFS_IOC_FSGEOMETRY_V1`, which every kernel
/// has: the fallback for kernels older than 5.1. Its first fields are those of the v5 layout.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct XfsFsopGeomV1 {
    pub blocksize: u32,
    pub rtextsize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub sectsize: u32,
    pub inodesize: u32,
    pub imaxpct: u32,
    pub datablocks: u64,
    pub rtblocks: u64,
    pub rtextents: u64,
    pub logstart: u64,
    pub uuid: [u8; 16],
    pub sunit: u32,
    pub swidth: u32,
    pub version: i32,
    pub flags: u32,
    pub logsectsize: u32,
    pub rtsectsize: u32,
    pub dirblocksize: u32,
}

/// `struct xfs_growfs_data`: the new data-section size in filesystem blocks and the inode-space
/// limit (16 bytes with its tail padding on 64-bit targets).
#[repr(C)]
pub struct XfsGrowfsData {
    pub newblocks: u64,
    pub imaxpct: u32,
}

/// `struct btrfs_ioctl_vol_args` (4096 bytes): `name` is a NUL-terminated string.
#[repr(C)]
pub struct BtrfsIoctlVolArgs {
    pub fd: i64,
    pub name: [u8; 4088],
}

/// `struct btrfs_ioctl_fs_info_args` (1024 bytes).
#[repr(C)]
pub struct BtrfsIoctlFsInfoArgs {
    pub max_id: u64,
    pub num_devices: u64,
    pub fsid: [u8; 16],
    pub nodesize: u32,
    pub sectorsize: u32,
    pub clone_alignment: u32,
    pub csum_type: u16,
    pub csum_size: u16,
    /// In/out: which optional fields to fill. Zero asks for none (and is all old kernels accept).
    pub flags: u64,
    pub generation: u64,
    pub metadata_uuid: [u8; 16],
    pub reserved: [u8; 944],
}

/// `struct btrfs_ioctl_dev_info_args` (4096 bytes): `devid` (and optionally `uuid`) in.
#[repr(C)]
pub struct BtrfsIoctlDevInfoArgs {
    pub devid: u64,
    pub uuid: [u8; 16],
    pub bytes_used: u64,
    pub total_bytes: u64,
    pub unused: [u64; 379],
    pub path: [u8; 1024],
}

/// `_IOW('f', 16, __u64)`: grow a mounted ext4 to the given number of filesystem blocks.
pub const EXT4_IOC_RESIZE_FS: ioctl_num_type = nix::request_code_write!(b'f', 16, size_of::<u64>());
/// `_IOR('X', 126, struct xfs_fsop_geom)`.
pub const XFS_IOC_FSGEOMETRY: ioctl_num_type =
    nix::request_code_read!(b'X', 126, size_of::<XfsFsopGeom>());
/// `_IOR('X', 100, struct xfs_fsop_geom_v1)`.
pub const XFS_IOC_FSGEOMETRY_V1: ioctl_num_type =
    nix::request_code_read!(b'X', 100, size_of::<XfsFsopGeomV1>());
/// `_IOW('X', 110, struct xfs_growfs_data)`.
pub const XFS_IOC_FSGROWFSDATA: ioctl_num_type =
    nix::request_code_write!(b'X', 110, size_of::<XfsGrowfsData>());
const BTRFS_IOCTL_MAGIC: u8 = 0x94;
/// `_IOW(0x94, 3, struct btrfs_ioctl_vol_args)`.
pub const BTRFS_IOC_RESIZE: ioctl_num_type =
    nix::request_code_write!(BTRFS_IOCTL_MAGIC, 3, size_of::<BtrfsIoctlVolArgs>());
/// `_IOWR(0x94, 30, struct btrfs_ioctl_dev_info_args)`.
pub const BTRFS_IOC_DEV_INFO: ioctl_num_type =
    nix::request_code_readwrite!(BTRFS_IOCTL_MAGIC, 30, size_of::<BtrfsIoctlDevInfoArgs>());
/// `_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`.
pub const BTRFS_IOC_FS_INFO: ioctl_num_type =
    nix::request_code_read!(BTRFS_IOCTL_MAGIC, 31, size_of::<BtrfsIoctlFsInfoArgs>());

mod raw {
    use super::*;
    nix::ioctl_write_ptr_bad!(ext4_resize_fs, EXT4_IOC_RESIZE_FS, u64);
    nix::ioctl_read_bad!(xfs_fsgeometry, XFS_IOC_FSGEOMETRY, XfsFsopGeom);
    nix::ioctl_read_bad!(xfs_fsgeometry_v1, XFS_IOC_FSGEOMETRY_V1, XfsFsopGeomV1);
    nix::ioctl_write_ptr_bad!(xfs_growfsdata, XFS_IOC_FSGROWFSDATA, XfsGrowfsData);
    nix::ioctl_write_ptr_bad!(btrfs_resize, BTRFS_IOC_RESIZE, BtrfsIoctlVolArgs);
    nix::ioctl_readwrite_bad!(btrfs_dev_info, BTRFS_IOC_DEV_INFO, BtrfsIoctlDevInfoArgs);
    nix::ioctl_read_bad!(btrfs_fs_info, BTRFS_IOC_FS_INFO, BtrfsIoctlFsInfoArgs);
}

/// `f_type` of `statfs` for the filesystems seedpart grows (`<linux/magic.h>`).
pub const EXT4_SUPER_MAGIC: u32 = 0xEF53;
pub const XFS_SUPER_MAGIC: u32 = 0x5846_5342;
pub const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;

/// The filesystem magic (`statfs.f_type`) of the filesystem holding an open file.
pub fn fs_magic(f: &File) -> io::Result<u32> {
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes one `struct statfs` through the pointer, valid for the call.
    let r = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // f_type is a signed long on glibc and unsigned on musl: the magic is its low 32 bits.
    Ok(st.f_type as u32)
}

/// EXT4_IOC_RESIZE_FS: grows the ext4 holding `dir` to `blocks` filesystem blocks. The kernel
/// trims a last group too small to hold its metadata and returns 0 when nothing is left to do.
pub fn ext4_resize_fs(dir: &File, blocks: u64) -> io::Result<()> {
    // SAFETY: the kernel reads one u64 (copy_from_user of 8 bytes) from a pointer that is valid
    // for the whole call.
    unsafe { raw::ext4_resize_fs(dir.as_raw_fd(), &blocks) }.map_err(io::Error::from)?;
    Ok(())
}

/// What seedpart needs of an XFS geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XfsGeometry {
    pub blocksize: u32,
    pub agblocks: u32,
    pub agcount: u32,
    pub imaxpct: u32,
    pub datablocks: u64,
}

/// XFS_IOC_FSGEOMETRY on the XFS holding `dir`; XFS_IOC_FSGEOMETRY_V1 on a kernel without it.
pub fn xfs_geometry(dir: &File) -> io::Result<XfsGeometry> {
    // SAFETY: all-zero is a valid value of this struct of integers and arrays.
    let mut g: XfsFsopGeom = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel writes exactly size_of::<XfsFsopGeom>() bytes (the size encoded in the
    // request code) into `g`, which is valid and writable for the call.
    match unsafe { raw::xfs_fsgeometry(dir.as_raw_fd(), &mut g) } {
        Ok(_) => Ok(XfsGeometry {
            blocksize: g.blocksize,
            agblocks: g.agblocks,
            agcount: g.agcount,
            imaxpct: g.imaxpct,
            datablocks: g.datablocks,
        }),
        Err(nix::errno::Errno::ENOTTY) => {
            // SAFETY: as above, for the 112-byte v1 layout.
            let mut g: XfsFsopGeomV1 = unsafe { std::mem::zeroed() };
            // SAFETY: the kernel writes one `XfsFsopGeomV1` into `g`, valid for the call.
            unsafe { raw::xfs_fsgeometry_v1(dir.as_raw_fd(), &mut g) }.map_err(io::Error::from)?;
            Ok(XfsGeometry {
                blocksize: g.blocksize,
                agblocks: g.agblocks,
                agcount: g.agcount,
                imaxpct: g.imaxpct,
                datablocks: g.datablocks,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// XFS_IOC_FSGROWFSDATA: grows the data section of the XFS holding `dir` to `newblocks`
/// filesystem blocks, keeping the inode-space limit `imaxpct`. Never pass fewer blocks than
/// the filesystem has: kernels since 5.12 take that as a request to shrink.
pub fn xfs_grow_data(dir: &File, newblocks: u64, imaxpct: u32) -> io::Result<()> {
    let arg = XfsGrowfsData { newblocks, imaxpct };
    // SAFETY: the kernel reads one `XfsGrowfsData` from a pointer valid for the whole call.
    unsafe { raw::xfs_growfsdata(dir.as_raw_fd(), &arg) }.map_err(io::Error::from)?;
    Ok(())
}

/// What seedpart needs of BTRFS_IOC_FS_INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtrfsFsInfo {
    pub max_id: u64,
    pub num_devices: u64,
    pub sectorsize: u32,
}

/// BTRFS_IOC_FS_INFO on the btrfs holding `dir`.
pub fn btrfs_fs_info(dir: &File) -> io::Result<BtrfsFsInfo> {
    // SAFETY: all-zero is a valid value (and `flags` = 0 asks for no optional fields).
    let mut a: BtrfsIoctlFsInfoArgs = unsafe { std::mem::zeroed() };
    // SAFETY: the kernel copies in and out exactly one `BtrfsIoctlFsInfoArgs` (1024 bytes),
    // valid and writable for the call.
    unsafe { raw::btrfs_fs_info(dir.as_raw_fd(), &mut a) }.map_err(io::Error::from)?;
    Ok(BtrfsFsInfo {
        max_id: a.max_id,
        num_devices: a.num_devices,
        sectorsize: a.sectorsize,
    })
}

/// One device of a btrfs, from BTRFS_IOC_DEV_INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtrfsDevInfo {
    pub devid: u64,
    pub total_bytes: u64,
    /// The device node the kernel opened (may be stale, e.g. `/dev/root`).
    pub path: PathBuf,
}

/// BTRFS_IOC_DEV_INFO for `devid`; `None` when the filesystem has no such device (ENODEV:
/// device ids have holes after a device was removed).
pub fn btrfs_dev_info(dir: &File, devid: u64) -> io::Result<Option<BtrfsDevInfo>> {
    // SAFETY: all-zero is a valid value; a zero uuid means "look up by devid only".
    let mut a: BtrfsIoctlDevInfoArgs = unsafe { std::mem::zeroed() };
    a.devid = devid;
    // SAFETY: the kernel copies in and out exactly one `BtrfsIoctlDevInfoArgs` (4096 bytes),
    // valid and writable for the call.
    match unsafe { raw::btrfs_dev_info(dir.as_raw_fd(), &mut a) } {
        Ok(_) => {}
        Err(nix::errno::Errno::ENODEV) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let path = CStr::from_bytes_until_nul(&a.path)
        .map(|c| PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes())))
        .unwrap_or_default();
    Ok(Some(BtrfsDevInfo {
        devid: a.devid,
        total_bytes: a.total_bytes,
        path,
    }))
}

/// BTRFS_IOC_RESIZE with `spec` ("max", "<devid>:max", ...). The kernel reports some refusals
/// as a positive btrfs error code rather than an errno: those become `io::Error::other`.
pub fn btrfs_resize(dir: &File, spec: &str) -> io::Result<()> {
    // SAFETY: all-zero is a valid value.
    let mut a: BtrfsIoctlVolArgs = unsafe { std::mem::zeroed() };
    if spec.len() >= a.name.len() || spec.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad btrfs resize argument",
        ));
    }
    a.name[..spec.len()].copy_from_slice(spec.as_bytes());
    // SAFETY: the kernel copies in one `BtrfsIoctlVolArgs` (4096 bytes, NUL-terminated name)
    // from a pointer valid for the whole call.
    let r = unsafe { raw::btrfs_resize(dir.as_raw_fd(), &a) }.map_err(io::Error::from)?;
    if r > 0 {
        return Err(io::Error::other(btrfs_err_text(r)));
    }
    Ok(())
}

/// `enum btrfs_err_code` of `<linux/btrfs.h>`, the positive returns of device ioctls.
fn btrfs_err_text(code: libc::c_int) -> String {
    let what = match code {
        1 => "unable to go below two devices on raid1",
        2 => "unable to go below four devices on raid10",
        3 => "unable to go below two devices on raid5",
        4 => "unable to go below three devices on raid6",
        5 => "unable to remove the dev_replace target device",
        6 => "no missing devices found to remove",
        7 => "unable to remove the only writeable device",
        8 => "another exclusive operation (balance, device add/remove/replace, resize) is running",
        _ => "unknown btrfs error",
    };
    format!("btrfs error code {code}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sizes from `sizeof` in C with xfslibs-dev 6.1 `<xfs/xfs.h>` and linux-libc-dev 6.1
    /// `<linux/btrfs.h>` on x86_64 (they are the same on every 64-bit Linux target).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn struct_sizes_match_the_c_headers() {
        assert_eq!(size_of::<XfsFsopGeom>(), 256);
        assert_eq!(size_of::<XfsFsopGeomV1>(), 112);
        assert_eq!(size_of::<XfsGrowfsData>(), 16);
        assert_eq!(size_of::<BtrfsIoctlVolArgs>(), 4096);
        assert_eq!(size_of::<BtrfsIoctlFsInfoArgs>(), 1024);
        assert_eq!(size_of::<BtrfsIoctlDevInfoArgs>(), 4096);
        assert_eq!(std::mem::offset_of!(XfsFsopGeom, datablocks), 32);
        assert_eq!(std::mem::offset_of!(XfsFsopGeom, imaxpct), 28);
        assert_eq!(std::mem::offset_of!(BtrfsIoctlDevInfoArgs, total_bytes), 32);
        assert_eq!(std::mem::offset_of!(BtrfsIoctlDevInfoArgs, path), 3072);
        assert_eq!(std::mem::offset_of!(BtrfsIoctlFsInfoArgs, sectorsize), 36);
    }

    /// Request codes printed by a C program including the same headers (x86_64; the generic
    /// `_IOC` encoding of arm64 and riscv64 gives the same numbers).
    #[test]
    #[cfg(all(
        target_pointer_width = "64",
        any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            target_arch = "riscv64"
        )
    ))]
    fn request_codes_match_the_c_headers() {
        assert_eq!(EXT4_IOC_RESIZE_FS as u32, 0x4008_6610);
        assert_eq!(XFS_IOC_FSGEOMETRY as u32, 0x8100_587e);
        assert_eq!(XFS_IOC_FSGEOMETRY_V1 as u32, 0x8070_5864);
        assert_eq!(XFS_IOC_FSGROWFSDATA as u32, 0x4010_586e);
        assert_eq!(BTRFS_IOC_RESIZE as u32, 0x5000_9403);
        assert_eq!(BTRFS_IOC_FS_INFO as u32, 0x8400_941f);
        assert_eq!(BTRFS_IOC_DEV_INFO as u32, 0xd000_941e);
    }

    #[test]
    fn btrfs_error_codes_read_well() {
        assert!(btrfs_err_text(8).contains("exclusive operation"));
        assert!(btrfs_err_text(99).contains("99"));
    }
}
