//! XFS online growth: `XFS_IOC_FSGEOMETRY` for the geometry, then `XFS_IOC_FSGROWFSDATA` with
//! the device's size in filesystem blocks and the current `imaxpct`, as `xfs_growfs -d` does.
//!
//! The kernel (fs/xfs/xfs_fsops.c, `xfs_growfs_data_private`) only adds a last AG of at least
//! `XFS_MIN_AG_BLOCKS` (64) blocks; a smaller remainder is dropped, and the size rounded down to
//! whole AGs. [`plan_growth`] mirrors that rule so seedpart asks only for a growth the kernel
//! will make: a filesystem already at its usable full size is not asked again (kernels before
//! the fix "short circuit xfs_growfs_data_private() if delta is zero" mishandled a zero growth,
//! older ones returned EINVAL), and it never passes fewer blocks than the filesystem has, which
//! kernels since 5.12 would take as a request to shrink.

use super::{GrowError, Grown, XFS_MANY_AGS, check_magic, check_on_device, common_refusal};
use crate::sys::fsgrow::{self, XFS_SUPER_MAGIC};
use std::io;
use std::path::Path;

/// `XFS_MIN_AG_BLOCKS`: the smallest last AG a grow adds.
pub const XFS_MIN_AG_BLOCKS: u64 = 64;
/// `XFS_MAX_AGNUMBER + 1`: the most AGs an XFS can have.
pub const XFS_MAX_AGCOUNT: u64 = 0xFFFF_FFFF;

/// What the kernel makes of a request to grow to `newblocks`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowPlan {
    /// The data-section size in blocks the kernel will reach (`newblocks` less a last AG
    /// remainder under 64 blocks).
    pub newblocks: u64,
    /// The number of allocation groups then.
    pub agcount: u64,
}

/// The kernel's rounding of a grow request (its `nb_div`/`nb_mod` computation).
pub fn plan_growth(agblocks: u32, newblocks: u64) -> GrowPlan {
    let ag = u64::from(agblocks.max(1));
    let mut nb = newblocks;
    let mut count = nb / ag;
    let rem = nb % ag;
    if rem >= XFS_MIN_AG_BLOCKS {
        count += 1;
    } else if rem != 0 {
        nb = count * ag;
    }
    if count > XFS_MAX_AGCOUNT {
        count = XFS_MAX_AGCOUNT;
        nb = count * ag;
    }
    GrowPlan {
        newblocks: nb,
        agcount: count,
    }
}

/// Whether growing from `old_agcount` to `new_agcount` AGs deserves the many-AGs warning.
pub fn too_many_ags(old_agcount: u64, new_agcount: u64) -> bool {
    new_agcount > XFS_MANY_AGS && new_agcount > old_agcount
}

pub(super) fn grow(mount_point: &Path, device: &Path) -> Result<Grown, GrowError> {
    let dir = super::open_mount(mount_point)?;
    check_magic(&dir, mount_point, "xfs", XFS_SUPER_MAGIC)?;
    let (dev, rdev) = super::open_device(device)?;
    check_on_device(&dir, mount_point, device, rdev)?;
    let geometry = || {
        fsgrow::xfs_geometry(&dir).map_err(|e| {
            GrowError::io(
                format!("XFS_IOC_FSGEOMETRY on {}", mount_point.display()),
                e,
            )
        })
    };
    let geo = geometry()?;
    let bs = u64::from(geo.blocksize);
    if bs == 0 || geo.agblocks == 0 {
        return Err(GrowError::Refused(format!(
            "XFS_IOC_FSGEOMETRY on {} gave an impossible geometry",
            mount_point.display()
        )));
    }
    let from = geo.datablocks * bs;
    let device_blocks = super::device_bytes(&dev, device)? / bs;
    if device_blocks < geo.datablocks {
        return Err(GrowError::Refused(format!(
            "the xfs filesystem on {} has {} blocks of {bs} bytes, more than its device {} \
             holds ({device_blocks}): not growing it",
            mount_point.display(),
            geo.datablocks,
            device.display()
        )));
    }
    let plan = plan_growth(geo.agblocks, device_blocks);
    let unchanged = Grown {
        fstype: "xfs".into(),
        from,
        to: from,
    };
    if plan.newblocks <= geo.datablocks {
        return Ok(unchanged);
    }
    if too_many_ags(u64::from(geo.agcount), plan.agcount) {
        log::warn!(
            "xfs on {}: growing from {} to {} allocation groups of {} MiB; this many small \
             groups slow XFS down (make the image with fewer, larger groups: mkfs.xfs -d agcount= \
             or agsize=)",
            mount_point.display(),
            geo.agcount,
            plan.agcount,
            (u64::from(geo.agblocks) * bs) >> 20
        );
    }
    if let Err(e) = fsgrow::xfs_grow_data(&dir, plan.newblocks, geo.imaxpct) {
        // A kernel with a rounding rule seedpart does not know may still refuse a growth that
        // only a tiny last-AG remainder would make: that is "already full size".
        if e.raw_os_error() == Some(libc::EINVAL)
            && device_blocks - geo.datablocks < XFS_MIN_AG_BLOCKS
        {
            return Ok(unchanged);
        }
        return Err(refusal(e, mount_point));
    }
    let after = geometry()?;
    Ok(Grown {
        fstype: "xfs".into(),
        from,
        to: after.datablocks * bs,
    })
}

fn refusal(e: io::Error, mount_point: &Path) -> GrowError {
    if let Some(r) = common_refusal(&e, "xfs", mount_point) {
        return r;
    }
    match e.raw_os_error() {
        Some(libc::EPERM) => GrowError::Refused(format!(
            "the kernel refused the xfs online grow (EPERM): seedpart needs CAP_SYS_ADMIN; {} \
             was left as it is",
            mount_point.display()
        )),
        Some(libc::EWOULDBLOCK) => GrowError::Refused(format!(
            "another grow of the xfs filesystem on {} is running (EWOULDBLOCK): try again later",
            mount_point.display()
        )),
        _ => GrowError::io(
            format!("XFS_IOC_FSGROWFSDATA on {}", mount_point.display()),
            e,
        ),
    }
}
