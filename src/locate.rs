//! Resolving `--root` and `--device` to a disk, its table, the config drive on it and the root
//! partition: the edge between the engine (generic over a device) and the machine's devices.

use crate::discover::{self, Candidate};
use crate::disk::{self, DiskError, Table};
use crate::sys;
use crate::sysfs::{self, BlockDev};
use anyhow::{Context, Result, anyhow, bail};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const SYS: &str = "/sys";

/// A disk (block device or image file) opened for reading.
pub struct OpenDisk {
    pub path: PathBuf,
    pub file: File,
    /// The kernel's name for it, when a block device.
    pub block: Option<String>,
    /// The logical sector size when the kernel knows it; `None` for an image file (probed).
    pub sector_size: Option<u64>,
}

impl OpenDisk {
    pub fn open(path: &Path, write: bool) -> Result<OpenDisk> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let is_block = sys::is_block_device(path)?;
        let (block, sector_size) = if is_block {
            let ss = sys::logical_sector_size(&file)
                .with_context(|| format!("{}: cannot read its sector size", path.display()))?;
            let rdev = file.metadata()?.rdev();
            let bd = sysfs::block_dev(Path::new(SYS), major(rdev), minor(rdev)).ok();
            (bd.map(|b| b.name), Some(ss))
        } else {
            (None, None)
        };
        Ok(OpenDisk {
            path: path.to_path_buf(),
            file,
            block,
            sector_size,
        })
    }

    pub fn read_table(&mut self) -> Result<Table, DiskError> {
        disk::read_table(&mut self.file, self.sector_size)
    }

    /// The device node of partition `number` on this disk, when the kernel has one.
    pub fn partition_node(&self, number: u32) -> Option<PathBuf> {
        let disk = self.block.as_ref()?;
        sysfs::partitions_of(Path::new(SYS), disk)
            .ok()?
            .into_iter()
            .find(|(n, _)| *n == number)
            .map(|(_, name)| PathBuf::from("/dev").join(name))
    }
}

fn major(rdev: u64) -> u32 {
    libc::major(rdev)
}

fn minor(rdev: u64) -> u32 {
    libc::minor(rdev)
}

/// The root filesystem as mounted: its block device and type.
#[derive(Clone, Debug)]
pub struct RootMount {
    pub dev: BlockDev,
    pub fstype: String,
    pub read_only: bool,
}

/// Finds the block device that holds `root` (a mounted directory).
pub fn root_mount(root: &Path) -> Result<RootMount> {
    let root = std::fs::canonicalize(root)
        .with_context(|| format!("--root {}: no such directory", root.display()))?;
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    let mounts = sysfs::parse_mountinfo(&text);
    let m = sysfs::mount_of(&mounts, &root)
        .ok_or_else(|| anyhow!("{}: not on any mounted filesystem", root.display()))?;
    // btrfs (and other multi-device filesystems) report an anonymous 0:N device; the source
    // path names the real one.
    let (maj, min) = if m.major == 0 {
        let rdev = std::fs::metadata(&m.source)
            .with_context(|| {
                format!(
                    "{} is mounted from {:?}, which is not a block device seedpart can find",
                    m.mount_point.display(),
                    m.source
                )
            })?
            .rdev();
        (major(rdev), minor(rdev))
    } else {
        (m.major, m.minor)
    };
    let dev = sysfs::block_dev(Path::new(SYS), maj, min).with_context(|| {
        format!(
            "{}: device {maj}:{min} is not in sysfs",
            m.mount_point.display()
        )
    })?;
    Ok(RootMount {
        dev,
        fstype: m.fstype.clone(),
        read_only: m.read_only,
    })
}

/// Where the drive was found and what surrounds it.
pub struct Located {
    pub disk: OpenDisk,
    /// `None` when the drive is a whole device without a table (a CD-ROM).
    pub table: Option<Table>,
    pub candidate: Option<Candidate>,
    /// The drive sits on the root's disk (or the disk named by `--device`), so `run` may delete
    /// it; a fallback drive found on another disk is only read.
    pub deletable: bool,
    /// The root partition's number on this disk, when known.
    pub root_number: Option<u32>,
    /// The root filesystem's type: from the mount when mounted, else probed.
    pub root_fs: Option<String>,
    /// When the drive was found on another disk: the root's own disk and table, whose root
    /// partition still grows into any free space after it (but loses no partition).
    pub root_disk: Option<(OpenDisk, Table)>,
}

/// What `--device` names.
enum DeviceSpec {
    Path(PathBuf),
    PartUuid(String),
    PartLabel(String),
    Label(String),
}

fn parse_device(s: &str) -> DeviceSpec {
    if let Some(v) = s.strip_prefix("PARTUUID=") {
        DeviceSpec::PartUuid(v.to_ascii_lowercase())
    } else if let Some(v) = s.strip_prefix("PARTLABEL=") {
        DeviceSpec::PartLabel(v.to_string())
    } else if let Some(v) = s.strip_prefix("LABEL=") {
        DeviceSpec::Label(v.to_string())
    } else {
        DeviceSpec::Path(PathBuf::from(s))
    }
}

/// Locates the config drive for `--root`/`--device`.
pub fn locate(root: &Path, device: Option<&str>) -> Result<Located> {
    match device.map(parse_device) {
        None => locate_from_root(root),
        Some(DeviceSpec::Path(p)) => locate_path(root, &p),
        Some(spec) => {
            let (disk, number) = find_by_spec(&spec)?;
            locate_partition(root, &disk, number)
        }
    }
}

/// The root's own disk: the drive is searched there, then on other disks as a fallback.
fn locate_from_root(root: &Path) -> Result<Located> {
    let rm = root_mount(root)?;
    let disk_path = PathBuf::from("/dev").join(&rm.dev.disk);
    let mut disk = OpenDisk::open(&disk_path, false)?;
    let root_fs = Some(rm.fstype.clone());
    // A root on a disk without a table (LVM, a whole-disk filesystem) has nothing to grow or
    // delete here; its drive can still be on another disk.
    let table = match disk.read_table() {
        Ok(t) => Some(t),
        Err(DiskError::NoTable) => None,
        Err(e) => {
            return Err(e).with_context(|| {
                format!("{}: cannot read the partition table", disk_path.display())
            });
        }
    };
    if let Some(table) = &table {
        let found = discover::candidates_in_table(&mut disk.file, table)
            .with_context(|| format!("{}: reading partitions", disk_path.display()))?;
        if let Some(candidate) = one_candidate(&disk_path, found)? {
            return Ok(Located {
                disk,
                table: Some(table.clone()),
                candidate: Some(candidate),
                deletable: true,
                root_number: rm.dev.partition,
                root_fs,
                root_disk: None,
            });
        }
    }
    if let Some(mut other) = search_other_disks(&rm.dev.disk)? {
        other.root_fs = root_fs;
        other.root_number = rm.dev.partition;
        other.root_disk = table.map(|t| (disk, t));
        return Ok(other);
    }
    Ok(Located {
        disk,
        table,
        candidate: None,
        deletable: false,
        root_number: rm.dev.partition,
        root_fs,
        root_disk: None,
    })
}

fn one_candidate(disk: &Path, mut found: Vec<Candidate>) -> Result<Option<Candidate>> {
    if found.len() > 1 {
        let list: Vec<String> = found
            .iter()
            .map(|c| {
                format!(
                    "partition {} ({})",
                    c.number.unwrap_or(0),
                    c.reasons.join(", ")
                )
            })
            .collect();
        bail!(
            "{}: {} config-drive candidates: {}; name the right one with --device (or seedpart.device= on the kernel command line)",
            disk.display(),
            found.len(),
            list.join("; ")
        );
    }
    Ok(found.pop())
}

/// A drive on a disk other than the root's (a CD-ROM, a second disk): read, never deleted.
fn search_other_disks(root_disk: &str) -> Result<Option<Located>> {
    let Ok(disks) = sysfs::disks(Path::new(SYS)) else {
        return Ok(None);
    };
    for name in disks.into_iter().filter(|d| d != root_disk) {
        if name.starts_with("ram") || name.starts_with("zram") {
            continue;
        }
        let path = PathBuf::from("/dev").join(&name);
        let Ok(mut disk) = OpenDisk::open(&path, false) else {
            log::debug!("{}: cannot open, skipped", path.display());
            continue;
        };
        let len = match sys::device_size(&disk.file) {
            Ok(0) | Err(_) => continue,
            Ok(l) => l,
        };
        match disk.read_table() {
            Ok(table) => {
                // Away from the root's disk only a filesystem labelled as a config drive
                // counts: a partition merely named `config-v2` there is somebody else's.
                let found = discover::candidates_in_table(&mut disk.file, &table)?
                    .into_iter()
                    .filter(|c| {
                        c.probe
                            .as_ref()
                            .is_some_and(|p| discover::is_config_label(&p.label))
                    })
                    .collect();
                if let Some(c) = one_candidate(&path, found)? {
                    log::info!(
                        "config drive found on {}, not the root's disk: it will be read but not deleted",
                        path.display()
                    );
                    return Ok(Some(Located {
                        disk,
                        table: Some(table),
                        candidate: Some(c),
                        deletable: false,
                        root_number: None,
                        root_fs: None,
                        root_disk: None,
                    }));
                }
            }
            Err(DiskError::NoTable) => {
                if let Some(c) = discover::candidate_whole(&mut disk.file, len)? {
                    return Ok(Some(Located {
                        disk,
                        table: None,
                        candidate: Some(c),
                        deletable: false,
                        root_number: None,
                        root_fs: None,
                        root_disk: None,
                    }));
                }
            }
            Err(e) => log::debug!("{}: {e}; skipped", path.display()),
        }
    }
    Ok(None)
}

/// `--device PATH`: a partition node, a whole block device, or an image file.
fn locate_path(root: &Path, p: &Path) -> Result<Located> {
    let meta =
        std::fs::metadata(p).with_context(|| format!("--device {}: not found", p.display()))?;
    if sys::is_block_device(p)? {
        let rdev = meta.rdev();
        let bd = sysfs::block_dev(Path::new(SYS), major(rdev), minor(rdev))
            .with_context(|| format!("{}: not in sysfs", p.display()))?;
        if let Some(n) = bd.partition {
            return locate_partition(root, &PathBuf::from("/dev").join(&bd.disk), n);
        }
    } else if !meta.is_file() {
        bail!(
            "--device {}: neither a block device nor a disk image file",
            p.display()
        );
    }
    locate_on_disk(root, p)
}

/// A whole disk or image named by `--device`: its candidates, and the root partition (the
/// mounted root when this is the root's disk, else the partition ending nearest before the drive).
fn locate_on_disk(root: &Path, path: &Path) -> Result<Located> {
    let mut disk = OpenDisk::open(path, false)?;
    let len = disk
        .file
        .metadata()?
        .len()
        .max(sys::device_size(&disk.file).unwrap_or(0));
    let table = match disk.read_table() {
        Ok(t) => t,
        Err(DiskError::NoTable) => {
            let c = discover::candidate_whole(&mut disk.file, len)?;
            return Ok(Located {
                disk,
                table: None,
                candidate: c,
                deletable: false,
                root_number: None,
                root_fs: None,
                root_disk: None,
            });
        }
        Err(e) => {
            return Err(e)
                .with_context(|| format!("{}: cannot read the partition table", path.display()));
        }
    };
    let found = discover::candidates_in_table(&mut disk.file, &table)?;
    let candidate = one_candidate(path, found)?;
    finish(root, disk, table, candidate)
}

fn locate_partition(root: &Path, disk_path: &Path, number: u32) -> Result<Located> {
    let mut disk = OpenDisk::open(disk_path, false)?;
    let table = disk
        .read_table()
        .with_context(|| format!("{}: cannot read the partition table", disk_path.display()))?;
    let p = table.get(number).ok_or_else(|| {
        anyhow!(
            "{}: no partition {number} in its table",
            disk_path.display()
        )
    })?;
    let (start, size) = (table.bytes(p.start), table.bytes(p.sectors));
    let probe = discover::probe_drive(&mut disk::Window::read_only(&mut disk.file, start, size))?;
    let c = Candidate {
        number: Some(number),
        table: Some(table.kind),
        start,
        size,
        name: p.name().map(str::to_string),
        probe,
        reasons: vec!["named by --device".to_string()],
    };
    finish(root, disk, table, Some(c))
}

fn finish(
    root: &Path,
    mut disk: OpenDisk,
    table: Table,
    candidate: Option<Candidate>,
) -> Result<Located> {
    // Is this the disk the root is mounted from?
    let rm = root_mount(root).ok();
    let on_root_disk = match (&rm, &disk.block) {
        (Some(rm), Some(name)) => rm.dev.disk == *name,
        _ => false,
    };
    let (root_number, root_fs) = if on_root_disk {
        let rm = rm.expect("checked above");
        (rm.dev.partition, Some(rm.fstype))
    } else {
        // No mounted root here: the root is the partition ending nearest before the drive.
        let before = candidate
            .as_ref()
            .map_or(u64::MAX, |c| c.start / table.sector_size);
        let r = table
            .data_partitions()
            .filter(|p| {
                p.end() <= before && Some(p.number) != candidate.as_ref().and_then(|c| c.number)
            })
            .max_by_key(|p| p.end());
        let fs = r.and_then(|r| {
            crate::fs::probe::detect(&mut disk.file, table.bytes(r.start))
                .map(|t| t.name().to_string())
        });
        (r.map(|r| r.number), fs)
    };
    Ok(Located {
        disk,
        table: Some(table),
        candidate,
        deletable: true,
        root_number,
        root_fs,
        root_disk: None,
    })
}

/// Finds the partition a PARTUUID=, PARTLABEL= or LABEL= names, by reading every disk's table
/// (udev's /dev/disk/by-* links may not exist yet this early in boot).
fn find_by_spec(spec: &DeviceSpec) -> Result<(PathBuf, u32)> {
    let (what, value) = match spec {
        DeviceSpec::PartUuid(v) => ("PARTUUID", v),
        DeviceSpec::PartLabel(v) => ("PARTLABEL", v),
        DeviceSpec::Label(v) => ("LABEL", v),
        DeviceSpec::Path(_) => unreachable!("paths are resolved directly"),
    };
    let mut hits = Vec::new();
    for name in sysfs::disks(Path::new(SYS)).context("cannot list block devices in /sys")? {
        let path = PathBuf::from("/dev").join(&name);
        let Ok(mut disk) = OpenDisk::open(&path, false) else {
            continue;
        };
        let Ok(table) = disk.read_table() else {
            continue;
        };
        for p in table.data_partitions() {
            let hit = match spec {
                DeviceSpec::PartUuid(v) => p.uuid == *v,
                DeviceSpec::PartLabel(v) => p.name() == Some(v.as_str()),
                DeviceSpec::Label(v) => {
                    let mut w = disk::Window::read_only(
                        &mut disk.file,
                        table.bytes(p.start),
                        table.bytes(p.sectors),
                    );
                    matches!(discover::probe_drive(&mut w), Ok(Some(pr)) if pr.label == *v)
                }
                DeviceSpec::Path(_) => false,
            };
            if hit {
                hits.push((path.clone(), p.number));
            }
        }
    }
    match hits.len() {
        0 => bail!("--device {what}={value}: no partition has it"),
        1 => Ok(hits.remove(0)),
        n => bail!(
            "--device {what}={value}: {n} partitions have it ({}); name one by path",
            hits.iter()
                .map(|(d, n)| format!("{} partition {n}", d.display()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
