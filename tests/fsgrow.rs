//! Online growth of a mounted filesystem (SPEC section 5 step 6) through the kernel's ioctls.
//!
//! On loop devices (root only): an xfs (512- and 4096-byte sectors) and a btrfs on a GPT
//! partition of 300 MiB of a 1 GiB disk are mounted, the partition is grown to the end of the
//! disk (sgdisk, then BLKPG through `seedpart::sys::resize_partition`), `grow_mounted` grows
//! the filesystem to the partition, a second call changes nothing, and after unmounting the
//! filesystem checker finds it clean. ext4 is grown where the process has CAP_SYS_RESOURCE;
//! without it (this sandbox) the kernel's EPERM must come back as the clear message, which
//! also proves the request number is right (a wrong one gives ENOTTY or EINVAL).
//!
//! Without root: the ext4 superblock reader against `dumpe2fs` on images made by mkfs.ext4,
//! the XFS AG rounding and many-AG rule, and the unsupported filesystems.
//!
//! Every test that cannot run here prints `SKIP:` with the reason. Mounts and loop devices are
//! released by guards (umount, partx -d, losetup -d) even when a test fails.

mod common;

use common::*;
use seedpart::grow::ext4::Superblock;
use seedpart::grow::xfs::{XFS_MIN_AG_BLOCKS, plan_growth, too_many_ags};
use seedpart::grow::{GrowError, Grown, grow_mounted};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// Whether the kernel knows filesystem type `fs` (built in or as a loadable module).
fn kernel_has_fs(fs: &str) -> bool {
    let listed = fs::read_to_string("/proc/filesystems")
        .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().last() == Some(fs)));
    listed
        || tool_command("modprobe")
            .arg(fs)
            .output()
            .is_ok_and(|o| o.status.success())
}

/// True when the kernel knows filesystem type `fs`; otherwise prints why the test is skipped.
fn require_kernel_fs(fs: &str) -> bool {
    if kernel_has_fs(fs) {
        return true;
    }
    eprintln!("SKIP: this kernel has no {fs}");
    false
}

impl LoopDev {
    /// A GPT with partition 1 of `mib` MiB at 1 MiB, known to the kernel.
    fn partition(&self, mib: u64) -> PathBuf {
        let spec = format!("1:{}:+{mib}M", self.mib_sectors());
        run("sgdisk", &["-o", "-n", &spec, "-t", "1:8300", &self.dev]);
        self.add_partitions();
        let p = self.part(1);
        assert!(wait_for(&p), "{p} did not appear");
        PathBuf::from(p)
    }

    /// Grows partition 1 in the table to the end of the disk (same start), then tells the kernel
    /// with BLKPG_RESIZE_PARTITION. Returns the new size in bytes.
    fn grow_partition(&self) -> u64 {
        let start = self.mib_sectors();
        run(
            "sgdisk",
            &[
                "-d",
                "1",
                "-n",
                &format!("1:{start}:0"),
                "-t",
                "1:8300",
                &self.dev,
            ],
        );
        let info = run("sgdisk", &["-i", "1", &self.dev]);
        let field = |name: &str| -> u64 {
            let line = info
                .lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name:?} in sgdisk -i:\n{info}"));
            line[name.len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(field("First sector:"), start);
        let last = field("Last sector:");
        let length = (last + 1 - start) * self.sector_size;
        let disk = File::open(&self.dev).unwrap();
        seedpart::sys::resize_partition(&disk, 1, start * self.sector_size, length)
            .expect("BLKPG_RESIZE_PARTITION");
        let kernel = seedpart::sys::device_size(&File::open(self.part(1)).unwrap()).unwrap();
        assert_eq!(kernel, length, "the kernel's view of the grown partition");
        length
    }
}

/// Total bytes of the filesystem at `p` as statvfs sees it (f_blocks * f_frsize).
fn statvfs_bytes(p: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(p).unwrap();
    st.blocks() as u64 * st.fragment_size() as u64
}

const PAYLOAD: &[u8] = b"seedpart fsgrow payload\n";

/// Makes `fstype` (with `mkfs`) on a 300 MiB partition of a 1 GiB disk, mounts it, grows the
/// partition, calls `grow_mounted` twice, unmounts and runs `check`.
/// Skips (`SKIP:`) when the kernel has no `fstype`.
fn grow_on_loop(fstype: &str, sector_size: u64, mkfs: &[&str], check: &[&str]) {
    if !require_kernel_fs(fstype) {
        return;
    }
    let _g = loop_lock();
    let lp = LoopDev::new(1024 * MIB, sector_size);
    let part = lp.partition(300);
    let part_s = part.to_str().unwrap();
    let mut mkfs_args = mkfs[1..].to_vec();
    mkfs_args.push(part_s);
    run(mkfs[0], &mkfs_args);
    let mut m = Mount::new(&["-t", fstype, part_s]);
    fs::write(m.path().join("payload"), PAYLOAD).unwrap();
    let before = statvfs_bytes(m.path());
    assert!(before <= 300 * MIB, "{fstype} before: {before}");
    // It fills its partition already: nothing to do.
    let full = grow_mounted(m.path(), fstype, &part).unwrap_or_else(|e| panic!("{fstype}: {e}"));
    assert_eq!(full.from, full.to, "{full:?}");
    assert!(full.from > 200 * MIB && full.from <= 300 * MIB, "{full:?}");

    let part_bytes = lp.grow_partition();
    assert!(part_bytes > 1000 * MIB, "partition grew to {part_bytes}");
    // The whole disk is not the device this filesystem lives on: refused, nothing issued.
    match grow_mounted(m.path(), fstype, Path::new(&lp.dev)) {
        Err(GrowError::Refused(msg)) => assert!(msg.contains(&lp.dev), "{msg}"),
        other => panic!("{fstype} on the whole disk: {other:?}"),
    }
    assert_eq!(statvfs_bytes(m.path()), before);

    let g = grow_mounted(m.path(), fstype, &part).unwrap_or_else(|e| panic!("{fstype}: {e}"));
    eprintln!("{fstype} ({sector_size}-byte sectors): {g:?}");
    assert_eq!(g.fstype, fstype);
    assert!(g.from <= 300 * MIB && g.from > 200 * MIB, "{g:?}");
    assert!(
        g.to <= part_bytes,
        "{g:?} passes the partition's {part_bytes}"
    );
    // Full size, up to the last block (or a last XFS AG under 64 blocks, not the case here).
    assert!(part_bytes - g.to < 64 * 1024, "{g:?} short of {part_bytes}");
    let after = statvfs_bytes(m.path());
    assert!(
        after > before + 600 * MIB,
        "statvfs: {before} -> {after} after {g:?}"
    );

    let again = grow_mounted(m.path(), fstype, &part).unwrap();
    assert_eq!(
        again,
        Grown {
            fstype: fstype.into(),
            from: g.to,
            to: g.to
        },
        "a second grow is a no-op"
    );
    assert_eq!(fs::read(m.path().join("payload")).unwrap(), PAYLOAD);

    m.unmount();
    let mut check_args = check[1..].to_vec();
    check_args.push(part_s);
    run(check[0], &check_args);
}

#[test]
fn xfs_grows_online_512() {
    require_loop!("sgdisk", "mount", "umount", "mkfs.xfs", "xfs_repair");
    grow_on_loop("xfs", 512, &["mkfs.xfs", "-f", "-q"], &["xfs_repair", "-n"]);
}

#[test]
fn xfs_grows_online_4096() {
    require_loop!("sgdisk", "mount", "umount", "mkfs.xfs", "xfs_repair");
    grow_on_loop(
        "xfs",
        4096,
        &["mkfs.xfs", "-f", "-q"],
        &["xfs_repair", "-n"],
    );
}

#[test]
fn btrfs_grows_online() {
    require_loop!("sgdisk", "mount", "umount", "mkfs.btrfs", "btrfs");
    grow_on_loop(
        "btrfs",
        512,
        &["mkfs.btrfs", "-f", "-q"],
        &["btrfs", "check", "--readonly"],
    );
}

/// Whether this process has CAP_SYS_RESOURCE (bit 24 of CapEff).
fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

#[test]
fn ext4_grows_online_or_says_why_not() {
    require_loop!("sgdisk", "mount", "umount", "mkfs.ext4", "e2fsck");
    if !require_kernel_fs("ext4") {
        return;
    }
    let _g = loop_lock();
    let lp = LoopDev::new(1024 * MIB, 512);
    let part = lp.partition(300);
    let part_s = part.to_str().unwrap();
    run("mkfs.ext4", &["-F", "-q", part_s]);
    let mut m = Mount::new(&["-t", "ext4", part_s]);
    // Full size already: answered from the superblock, no ioctl (so no EPERM either).
    let full = grow_mounted(m.path(), "ext4", &part).unwrap();
    assert_eq!((full.from, full.to), (300 * MIB, 300 * MIB));
    let part_bytes = lp.grow_partition();
    match grow_mounted(m.path(), "ext4", &part) {
        Ok(g) => {
            // A machine with CAP_SYS_RESOURCE (a VM): the resize really happened.
            eprintln!("ext4: {g:?}");
            assert!(
                g.from <= 300 * MIB && g.to > 1000 * MIB && g.to <= part_bytes,
                "{g:?}"
            );
            let again = grow_mounted(m.path(), "ext4", &part).unwrap();
            assert_eq!(
                (again.from, again.to),
                (g.to, g.to),
                "a second grow is a no-op"
            );
            m.unmount();
            run("e2fsck", &["-f", "-n", part_s]);
        }
        Err(e) => {
            let msg = e.to_string();
            eprintln!("ext4: {msg}");
            assert!(
                matches!(e, GrowError::Refused(_)),
                "expected a refusal, got {e:?}"
            );
            assert!(
                msg.contains(
                    "the kernel refused the ext4 online resize (EPERM): seedpart needs CAP_SYS_RESOURCE"
                ),
                "{msg}"
            );
            assert!(
                !has_cap_sys_resource(),
                "EPERM although this process has CAP_SYS_RESOURCE: {msg}"
            );
            // Nothing changed: the superblock still says 300 MiB.
            let sb = Superblock::read(&File::open(&part).unwrap()).unwrap();
            assert_eq!(sb.bytes(), 300 * MIB);
        }
    }
}

#[test]
fn unsupported_filesystems_are_reported_as_such() {
    for fstype in ["vfat", "tmpfs", "f2fs", "ext5"] {
        match grow_mounted(Path::new("/"), fstype, Path::new("/dev/null")) {
            Err(GrowError::Unsupported { fstype: f }) => assert_eq!(f, fstype),
            other => panic!("{fstype}: {other:?}"),
        }
    }
}

#[test]
fn a_tmpfs_mount_is_unsupported_and_never_taken_for_xfs() {
    if !is_root() {
        eprintln!("SKIP: mounting a tmpfs needs root");
        return;
    }
    require_tools!("mount", "umount");
    let m = Mount::new(&["-t", "tmpfs", "-o", "size=1m", "seedpart-test"]);
    match grow_mounted(m.path(), "tmpfs", Path::new("/dev/null")) {
        Err(GrowError::Unsupported { fstype }) => assert_eq!(fstype, "tmpfs"),
        other => panic!("{other:?}"),
    }
    // A wrong fstype from a stale mount table: statfs says tmpfs, so nothing is issued.
    for fstype in ["xfs", "ext4", "btrfs"] {
        match grow_mounted(m.path(), fstype, Path::new("/dev/null")) {
            Err(GrowError::Refused(msg)) => {
                assert!(msg.contains("is not a mounted"), "{fstype}: {msg}")
            }
            other => panic!("{fstype}: {other:?}"),
        }
    }
}

/// `dumpe2fs -h` fields by name.
fn dumpe2fs(img: &Path) -> Vec<(String, String)> {
    run("dumpe2fs", &["-h", img.to_str().unwrap()])
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    &fields
        .iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("dumpe2fs has no {name:?}"))
        .1
}

fn num(fields: &[(String, String)], name: &str) -> u64 {
    field(fields, name).parse().unwrap()
}

/// The superblock reader agrees with dumpe2fs on images of several geometries, and the
/// kernel's last-group rule is applied.
#[test]
fn ext4_superblock_matches_dumpe2fs() {
    require_tools!("mkfs.ext4", "dumpe2fs");
    let cases: &[(u64, &[&str])] = &[
        (300, &["-b", "4096"]),
        (256, &["-b", "4096"]),
        (64, &["-b", "1024"]),
        (300, &["-b", "4096", "-O", "^64bit"]),
        (200, &["-b", "2048", "-I", "128"]),
    ];
    for (mib, opts) in cases {
        let img = TempImage::new(mib * MIB);
        let mut args = vec!["-F", "-q"];
        args.extend_from_slice(opts);
        args.push(img.path_str());
        run("mkfs.ext4", &args);
        let d = dumpe2fs(&img.path);
        let sb = Superblock::read(&img.open_ro()).unwrap();
        let what = format!("{mib} MiB {opts:?}");
        assert_eq!(sb.blocks_count, num(&d, "Block count"), "{what}");
        assert_eq!(sb.block_size(), num(&d, "Block size"), "{what}");
        assert_eq!(sb.bytes(), mib * MIB, "{what}");
        assert_eq!(sb.first_data_block, num(&d, "First block"), "{what}");
        assert_eq!(sb.blocks_per_group, num(&d, "Blocks per group"), "{what}");
        assert_eq!(sb.inodes_per_group, num(&d, "Inodes per group"), "{what}");
        assert_eq!(sb.inode_size, num(&d, "Inode size"), "{what}");
        assert_eq!(
            sb.reserved_gdt_blocks,
            num(&d, "Reserved GDT blocks"),
            "{what}"
        );
        let features = field(&d, "Filesystem features");
        let has64 = features.split_whitespace().any(|f| f == "64bit");
        assert_eq!(sb.is_64bit(), has64, "{what}: {features}");
        assert_eq!(sb.max_blocks() == u64::from(u32::MAX), !has64, "{what}");

        // Already full size: nothing to ask for.
        assert_eq!(sb.kernel_target(sb.blocks_count), sb.blocks_count, "{what}");
        assert_eq!(
            sb.kernel_target(sb.blocks_count / 2),
            sb.blocks_count,
            "{what}"
        );
        // A new group of a single block cannot hold its metadata: the kernel drops it.
        let tail = (sb.blocks_count - sb.first_data_block) % sb.blocks_per_group;
        if tail == 0 {
            assert_eq!(
                sb.kernel_target(sb.blocks_count + 1),
                sb.blocks_count,
                "{what}"
            );
            assert_eq!(
                sb.kernel_target(sb.blocks_count + 100),
                sb.blocks_count,
                "{what}"
            );
        } else {
            // A partial last group is extended block by block.
            assert_eq!(
                sb.kernel_target(sb.blocks_count + 1),
                sb.blocks_count + 1,
                "{what}"
            );
        }
        // Whole new groups are always added.
        let big = sb.blocks_count + 4 * sb.blocks_per_group;
        assert_eq!(sb.kernel_target(big), big, "{what}");
    }
}

#[test]
fn ext4_superblock_rejects_garbage() {
    assert!(Superblock::parse(&[0u8; 1024]).is_err());
    assert!(Superblock::parse(&[0u8; 100]).is_err());
}

/// The XFS kernel rounding of a grow request and the many-AG warning rule.
#[test]
fn xfs_ag_count_computation() {
    // mkfs.xfs makes a 300 MiB filesystem with 4 AGs of 19200 4-KiB blocks.
    let ag = 19200u32;
    let agb = u64::from(ag);
    let p = plan_growth(ag, 4 * agb);
    assert_eq!((p.newblocks, p.agcount), (4 * agb, 4));
    // A last AG under 64 blocks is not added: the size drops to whole AGs.
    let p = plan_growth(ag, 4 * agb + XFS_MIN_AG_BLOCKS - 1);
    assert_eq!((p.newblocks, p.agcount), (4 * agb, 4));
    // 64 blocks make a (tiny) last AG.
    let p = plan_growth(ag, 4 * agb + XFS_MIN_AG_BLOCKS);
    assert_eq!((p.newblocks, p.agcount), (4 * agb + 64, 5));
    // The loop test: about 1023 MiB of 4-KiB blocks.
    let p = plan_growth(ag, 1023 * 256);
    assert_eq!((p.newblocks, p.agcount), (1023 * 256, 14));
    // That image on a 2 TiB disk: thousands of 75 MiB AGs, which deserves the warning.
    let p = plan_growth(ag, (2u64 << 40) / 4096);
    assert_eq!(p.agcount, 27963);
    assert!(too_many_ags(4, p.agcount));
    // The same image on a 30 GiB disk stays under the threshold.
    let p = plan_growth(ag, (30u64 << 30) / 4096);
    assert_eq!(p.agcount, 410);
    assert!(too_many_ags(4, p.agcount));
    let p = plan_growth(ag, (29u64 << 30) / 4096);
    assert_eq!(p.agcount, 396);
    assert!(!too_many_ags(4, p.agcount));
    // Already past the threshold and not adding AGs: no new warning.
    assert!(!too_many_ags(500, 500));
    assert!(!too_many_ags(4, 400));
    assert!(too_many_ags(4, 401));
    // The AG count is capped at XFS_MAX_AGNUMBER + 1.
    let p = plan_growth(1, u64::MAX / 2);
    assert_eq!(p.agcount, 0xFFFF_FFFF);
    assert_eq!(p.newblocks, 0xFFFF_FFFF);
}
