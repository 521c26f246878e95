//! btrfs online growth: `BTRFS_IOC_RESIZE` of the one device of the filesystem that is the
//! root partition.
//!
//! The device id comes from `BTRFS_IOC_FS_INFO` (highest id) and `BTRFS_IOC_DEV_INFO` for each
//! id, matching the device node the kernel reports to `device` by its device number, so a
//! filesystem spanning several devices grows on the right one. A single-device filesystem whose
//! node the kernel names in a way that no longer resolves (`/dev/root`) is taken as on `device`;
//! one whose node is another block device is refused.
//!
//! The request is `"<devid>:<bytes>"` with the device's size rounded down to the sector size,
//! which is what `"<devid>:max"` computes in the kernel, but sent only when it is larger than
//! the device's size in the filesystem: a "max" on a device the kernel sees smaller would
//! shrink the filesystem, an explicit larger size is refused (EFBIG) instead.

use super::{GrowError, Grown, check_magic, common_refusal};
use crate::sys::fsgrow::{self, BTRFS_SUPER_MAGIC, BtrfsDevInfo};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

pub(super) fn grow(mount_point: &Path, device: &Path) -> Result<Grown, GrowError> {
    let dir = super::open_mount(mount_point)?;
    check_magic(&dir, mount_point, "btrfs", BTRFS_SUPER_MAGIC)?;
    let (dev, rdev) = super::open_device(device)?;
    let info = fsgrow::btrfs_fs_info(&dir)
        .map_err(|e| GrowError::io(format!("BTRFS_IOC_FS_INFO on {}", mount_point.display()), e))?;
    let dev_info = |id: u64| {
        fsgrow::btrfs_dev_info(&dir, id).map_err(|e| {
            GrowError::io(
                format!("BTRFS_IOC_DEV_INFO {id} on {}", mount_point.display()),
                e,
            )
        })
    };
    let mut devices: Vec<BtrfsDevInfo> = Vec::new();
    for id in 1..=info.max_id {
        if let Some(d) = dev_info(id)? {
            devices.push(d);
        }
    }
    let is_ours = |d: &BtrfsDevInfo| {
        std::fs::metadata(&d.path)
            .is_ok_and(|m| m.file_type().is_block_device() && m.rdev() == rdev)
    };
    // The kernel's name for a device can be one that no longer resolves (`/dev/root`): a
    // single device named so is taken as `device`; one named as another block device is not.
    let stale = |d: &BtrfsDevInfo| {
        std::fs::metadata(&d.path).map_or(true, |m| !m.file_type().is_block_device())
    };
    let target = match devices.iter().find(|d| is_ours(d)) {
        Some(d) => d.clone(),
        None if devices.len() == 1 && info.num_devices == 1 && stale(&devices[0]) => {
            devices[0].clone()
        }
        None => {
            let names: Vec<String> = devices
                .iter()
                .map(|d| format!("{}={}", d.devid, d.path.display()))
                .collect();
            return Err(GrowError::Refused(format!(
                "the btrfs on {} has {} device(s) ({}) and none of them is {}: not growing it",
                mount_point.display(),
                info.num_devices,
                names.join(", "),
                device.display()
            )));
        }
    };
    let from = target.total_bytes;
    let sector = u64::from(info.sectorsize.max(512));
    let size = super::device_bytes(&dev, device)?;
    let new_size = size - size % sector;
    if new_size <= from {
        if from - new_size >= sector {
            return Err(GrowError::Refused(format!(
                "btrfs device {} of {} is {from} bytes, more than {} holds ({size}): not growing it",
                target.devid,
                mount_point.display(),
                device.display()
            )));
        }
        return Ok(Grown {
            fstype: "btrfs".into(),
            from,
            to: from,
        });
    }
    let spec = format!("{}:{new_size}", target.devid);
    fsgrow::btrfs_resize(&dir, &spec).map_err(|e| refusal(e, mount_point, &spec))?;
    let to = dev_info(target.devid)?
        .map(|d| d.total_bytes)
        .ok_or_else(|| {
            GrowError::Refused(format!(
                "btrfs device {} of {} vanished during the resize",
                target.devid,
                mount_point.display()
            ))
        })?;
    Ok(Grown {
        fstype: "btrfs".into(),
        from,
        to,
    })
}

fn refusal(e: io::Error, mount_point: &Path, spec: &str) -> GrowError {
    if let Some(r) = common_refusal(&e, "btrfs", mount_point) {
        return r;
    }
    match e.raw_os_error() {
        Some(libc::EPERM) => GrowError::Refused(format!(
            "the kernel refused the btrfs online resize {spec:?} (EPERM): seedpart needs \
             CAP_SYS_ADMIN, and the device must be writable; {} was left as it is",
            mount_point.display()
        )),
        Some(libc::EFBIG) => GrowError::Refused(format!(
            "the kernel sees the btrfs device smaller than the resize {spec:?} asks (EFBIG); {} \
             was left as it is",
            mount_point.display()
        )),
        _ => GrowError::io(
            format!("BTRFS_IOC_RESIZE {spec:?} on {}", mount_point.display()),
            e,
        ),
    }
}
