//! Which block device holds a mounted directory, read from `/proc/self/mountinfo` and sysfs.
//! Plain file parsing, with the roots as parameters so tests can use a fake tree.

use std::io;
use std::path::{Path, PathBuf};

/// A mount as `/proc/self/mountinfo` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub major: u32,
    pub minor: u32,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    pub read_only: bool,
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            let (major, minor) = pre.get(2)?.split_once(':')?;
            Some(Mount {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                read_only: pre.get(5)?.split(',').any(|o| o == "ro"),
                fstype: post.first()?.to_string(),
                source: unescape(post.get(1)?),
            })
        })
        .collect()
}

/// The mount that holds `dir`: the last mount (in mount order, so the one on top) whose mount
/// point is `dir` itself or its nearest ancestor.
pub fn mount_of<'a>(mounts: &'a [Mount], dir: &Path) -> Option<&'a Mount> {
    let best = mounts
        .iter()
        .filter(|m| dir.starts_with(&m.mount_point))
        .map(|m| m.mount_point.components().count())
        .max()?;
    mounts
        .iter()
        .rev()
        .find(|m| dir.starts_with(&m.mount_point) && m.mount_point.components().count() == best)
}

/// A block device as sysfs names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDev {
    /// Kernel name, e.g. `vda2`, `nvme0n1p2`, `loop3p1`.
    pub name: String,
    /// The whole disk's kernel name (`vda`); the device's own name when it is a whole disk.
    pub disk: String,
    /// The partition number, when a partition.
    pub partition: Option<u32>,
}

/// Looks up `MAJ:MIN` under `sys` (normally `/sys`).
pub fn block_dev(sys: &Path, major: u32, minor: u32) -> io::Result<BlockDev> {
    let link = sys.join(format!("dev/block/{major}:{minor}"));
    let real = std::fs::canonicalize(&link)?;
    let name = file_name(&real)?;
    match std::fs::read_to_string(real.join("partition")) {
        Ok(n) => Ok(BlockDev {
            name,
            disk: file_name(real.parent().unwrap_or(&real))?,
            partition: Some(n.trim().parse().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: not a partition number",
                        real.join("partition").display()
                    ),
                )
            })?),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BlockDev {
            disk: name.clone(),
            name,
            partition: None,
        }),
        Err(e) => Err(e),
    }
}

fn file_name(p: &Path) -> io::Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| io::Error::other(format!("{}: no device name", p.display())))
}

/// The partitions sysfs lists for a disk: (number, kernel name), sorted by number.
pub fn partitions_of(sys: &Path, disk: &str) -> io::Result<Vec<(u32, String)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(sys.join("class/block").join(disk))? {
        let e = e?;
        // The kernel names a partition after its disk (`vda1`, `loop0p1`, `nvme0n1p1`): the
        // other entries (`queue`, `size`, ... about 30) need not be probed, each a failed
        // open in sysfs, on every boot.
        if !e.file_name().to_str().is_some_and(|n| n.starts_with(disk)) {
            continue;
        }
        if let Ok(n) = std::fs::read_to_string(e.path().join("partition"))
            && let (Ok(n), Some(name)) = (n.trim().parse(), e.file_name().to_str())
        {
            out.push((n, name.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every whole disk sysfs knows (no partitions), sorted by name.
pub fn disks(sys: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(sys.join("class/block"))? {
        let e = e?;
        if !e.path().join("partition").exists()
            && let Some(name) = e.file_name().to_str()
        {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// A sysfs attribute of a block device as a number (`size` is in 512-byte units, always).
pub fn attr_u64(sys: &Path, name: &str, attr: &str) -> io::Result<u64> {
    let p = sys.join("class/block").join(name).join(attr);
    std::fs::read_to_string(&p)?.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a number", p.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 252:2 / / rw,relatime shared:1 - xfs /dev/vda2 rw,attr2
23 22 0:21 / /proc rw,nosuid - proc proc rw
40 22 252:17 / /mnt/my\\040disk ro,relatime - vfat /dev/vdb1 ro
41 22 0:45 /@ /sysroot rw - btrfs /dev/loop3p1 rw,space_cache=v2
";

    #[test]
    fn parses_mountinfo_and_finds_the_covering_mount() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 4);
        assert_eq!(m[2].mount_point, Path::new("/mnt/my disk"));
        assert!(m[2].read_only);
        let root = mount_of(&m, Path::new("/var/lib")).unwrap();
        assert_eq!(
            (root.major, root.minor, root.fstype.as_str()),
            (252, 2, "xfs")
        );
        let sysroot = mount_of(&m, Path::new("/sysroot")).unwrap();
        assert_eq!(sysroot.source, "/dev/loop3p1");
        assert_eq!(sysroot.major, 0);
    }

    #[test]
    fn reads_a_fake_sysfs_tree() {
        let t = tempfile::tempdir().unwrap();
        let sys = t.path();
        let disk = sys.join("devices/virtual/block/vda");
        std::fs::create_dir_all(disk.join("vda2")).unwrap();
        std::fs::write(disk.join("vda2/partition"), "2\n").unwrap();
        std::fs::write(disk.join("size"), "2097152\n").unwrap();
        std::fs::create_dir_all(sys.join("dev/block")).unwrap();
        std::fs::create_dir_all(sys.join("class/block")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda2"), sys.join("dev/block/252:2")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.join("dev/block/252:0")).unwrap();
        std::os::unix::fs::symlink(&disk, sys.join("class/block/vda")).unwrap();
        std::os::unix::fs::symlink(disk.join("vda2"), sys.join("class/block/vda2")).unwrap();
        let p = block_dev(sys, 252, 2).unwrap();
        assert_eq!(
            (p.name.as_str(), p.disk.as_str(), p.partition),
            ("vda2", "vda", Some(2))
        );
        let d = block_dev(sys, 252, 0).unwrap();
        assert_eq!(d.partition, None);
        assert_eq!(
            partitions_of(sys, "vda").unwrap(),
            vec![(2, "vda2".to_string())]
        );
        assert_eq!(disks(sys).unwrap(), vec!["vda".to_string()]);
        assert_eq!(attr_u64(sys, "vda", "size").unwrap(), 2097152);
    }
}
