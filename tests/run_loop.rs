//! `seedpart run` on loop devices with a mounted root: the whole job (copy, delete, grow the
//! partition, grow the filesystem online), its safety refusals, and crash convergence at every
//! named fault point. Needs root and loop devices (says SKIP with the reason otherwise). xfs and
//! btrfs grow online here; ext4's online resize needs CAP_SYS_RESOURCE, which this sandbox
//! lacks, so ext4 is proven in the VM tests.
//!
//! The tests run one at a time (a lock): after the drive is gone, `run` looks for one on other
//! disks, and a concurrent test's drive would be found.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Table {
    Gpt,
    Mbr,
    MbrLogical,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    AfterRoot,
    End,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    table: Table,
    sector: u64,
    place: Place,
    fs: &'static str,
    /// The image's size; the disk is `disk_mib` (larger: the GPT backup header is short).
    image_mib: u64,
    disk_mib: u64,
}

const BASE: Scenario = Scenario {
    table: Table::Gpt,
    sector: 512,
    place: Place::End,
    fs: "xfs",
    image_mib: 1024,
    disk_mib: 1024,
};

/// A loop-backed disk with a mounted root and a config drive, torn down in Drop.
struct Rig {
    _dir: TempDir,
    img: PathBuf,
    lo: LoopDev,
    root_part: String,
    mnt: PathBuf,
    drive_src: PathBuf,
    sc: Scenario,
    mounted: bool,
}

impl Drop for Rig {
    /// Unmounts; then the loop device goes (`LoopDev`'s drop).
    fn drop(&mut self) {
        if self.mounted {
            let _ = run_raw("umount", &[self.mnt.to_str().unwrap()]);
        }
    }
}

fn drive_tree(dir: &Path) -> PathBuf {
    let src = dir.join("drive");
    let latest = src.join("openstack/latest");
    fs::create_dir_all(&latest).unwrap();
    fs::write(
        latest.join("meta_data.json"),
        r#"{"uuid": "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0", "hostname": "rig.example", "admin_pass": "s3cret",
            "public_keys": {"k": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x k"}}"#,
    )
    .unwrap();
    fs::write(latest.join("user_data"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::write(latest.join("vendor_data.json"), b"{}").unwrap();
    src
}

impl Rig {
    fn new(sc: Scenario) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = fs::File::create(&img).unwrap();
        f.set_len(sc.image_mib * MIB).unwrap();
        drop(f);
        let root_mib = 400;
        // Tables are made by the independent tools, at the image's size, on the loop device so
        // that they use its sector size.
        let mut lo = LoopDev::attach(&img, sc.sector);
        let dev = lo.dev.clone();
        match sc.table {
            Table::Gpt => {
                let first = MIB / sc.sector;
                let end = first + root_mib * MIB / sc.sector - 1;
                sgdisk(
                    &dev,
                    &[
                        "-n",
                        &format!("1:{first}:{end}"),
                        "-t",
                        "1:8300",
                        "-c",
                        "1:root",
                    ],
                );
            }
            Table::Mbr => {
                run_stdin(
                    "sfdisk",
                    &["-q", "--no-reread", &dev],
                    &format!("label: dos\nstart=1MiB, size={root_mib}MiB, type=83\n"),
                );
            }
            Table::MbrLogical => {
                run_stdin(
                    "sfdisk",
                    &["-q", "--no-reread", &dev],
                    &format!(
                        "label: dos\nstart=1MiB, size={}MiB, type=5\nstart=2MiB, size={root_mib}MiB, type=83\n",
                        root_mib + 2
                    ),
                );
            }
        }
        let _ = run_raw("partx", &["-d", &dev]);
        run("partx", &["-a", &dev]);
        let mut root_part = match sc.table {
            Table::MbrLogical => format!("{dev}p5"),
            _ => format!("{dev}p1"),
        };
        match sc.fs {
            "xfs" => run("mkfs.xfs", &["-q", "-f", &root_part]),
            "btrfs" => run("mkfs.btrfs", &["-q", "-f", &root_part]),
            "ext4" => run("mkfs.ext4", &["-q", "-F", &root_part]),
            other => panic!("no mkfs for {other}"),
        };
        let drive_src = drive_tree(dir.path());
        // The deployer's half, on the disk, before it is grown: `build` tells the kernel.
        let at = match sc.place {
            Place::AfterRoot => "after-last",
            Place::End => "end",
        };
        let size = if sc.table == Table::MbrLogical {
            "16M"
        } else {
            "64M"
        };
        let o = seedpart(&[
            "build",
            "--disk",
            &dev,
            "--from",
            drive_src.to_str().unwrap(),
            "--at",
            at,
            "--size",
            size,
        ]);
        assert!(o.ok(), "build: {}", o.text());
        if sc.disk_mib > sc.image_mib {
            // The deployer wrote the image, drive included, onto a bigger disk: its backup GPT
            // header is now short of the end.
            drop(lo);
            fs::OpenOptions::new()
                .write(true)
                .open(&img)
                .unwrap()
                .set_len(sc.disk_mib * MIB)
                .unwrap();
            lo = LoopDev::attach(&img, sc.sector);
            run("partx", &["-a", &lo.dev]);
            root_part = root_part.replacen(&dev, &lo.dev, 1);
        }
        let mut rig = Rig {
            img,
            lo,
            root_part,
            mnt: dir.path().join("root"),
            drive_src,
            _dir: dir,
            sc,
            mounted: false,
        };
        fs::create_dir_all(&rig.mnt).unwrap();
        run("mount", &[&rig.root_part, rig.mnt.to_str().unwrap()]);
        rig.mounted = true;
        rig
    }

    fn run(&self, fault: Option<&str>) -> Out {
        seedpart_with_fault(&["run", "--root", self.mnt.to_str().unwrap()], fault)
    }

    fn sysfs_size(&self, part: &str) -> Option<u64> {
        let name = Path::new(part).file_name().unwrap().to_str().unwrap();
        fs::read_to_string(format!("/sys/class/block/{name}/size"))
            .ok()
            .map(|s| s.trim().parse::<u64>().unwrap() * 512)
    }

    /// The partitions as the independent tool reads them from the disk: (node, start, size).
    fn layout(&self) -> Vec<(String, u64, u64)> {
        sfdisk_json(&self.lo.dev)
            .partitions
            .iter()
            .map(|p| (format!("{}p{}", self.lo.dev, p.number), p.start, p.size))
            .collect()
    }

    fn fs_bytes(&self) -> u64 {
        let out = run("df", &["-B1", "--output=size", self.mnt.to_str().unwrap()]);
        out.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    fn copy_dir(&self) -> PathBuf {
        self.mnt.join("var/lib/seedpart/config-drive")
    }

    /// The copy equals the source tree the drive was built from.
    fn assert_copy_matches(&self) {
        for rel in [
            "openstack/latest/meta_data.json",
            "openstack/latest/user_data",
            "openstack/latest/vendor_data.json",
        ] {
            let a = fs::read(self.drive_src.join(rel)).unwrap();
            let b = fs::read(self.copy_dir().join(rel))
                .unwrap_or_else(|e| panic!("copy of {rel}: {e}"));
            assert_eq!(a, b, "{rel} differs in the copy");
        }
        use std::os::unix::fs::PermissionsExt;
        let m = fs::metadata(self.copy_dir().join("openstack/latest/meta_data.json")).unwrap();
        assert_eq!(
            m.permissions().mode() & 0o777,
            0o600,
            "the copy can hold admin_pass: 0600"
        );
        let m = fs::metadata(self.copy_dir()).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
    }

    /// Either the drive's partition is still on disk and readable, or a verified copy exists.
    fn assert_data_somewhere(&self) {
        let o = seedpart(&["inspect", "--device", &self.lo.dev, "--json"]);
        let drive_there = o.ok()
            && serde_json::from_str::<serde_json::Value>(&o.stdout)
                .is_ok_and(|j| !j["partition"].is_null());
        let copy_ok = {
            let o = seedpart(&["status", "--root", self.mnt.to_str().unwrap(), "--json"]);
            serde_json::from_str::<serde_json::Value>(&o.stdout)
                .is_ok_and(|j| j["copy"]["verified"] == true)
        };
        assert!(
            drive_there || copy_ok,
            "the config data is neither on its partition nor verified in root"
        );
    }

    fn check_fs_offline(&mut self) {
        run("umount", &[self.mnt.to_str().unwrap()]);
        self.mounted = false;
        match self.sc.fs {
            "xfs" => {
                run("xfs_repair", &["-n", &self.root_part]);
            }
            "btrfs" => {
                run("btrfs", &["check", &self.root_part]);
            }
            "ext4" => {
                run("e2fsck", &["-fn", &self.root_part]);
            }
            _ => {}
        }
    }
}

/// The final layout every scenario converges to: the drive gone, root grown to the aligned end.
fn assert_final(rig: &Rig) {
    let layout = rig.layout();
    let ss = rig.sc.sector;
    let root = layout
        .iter()
        .find(|p| p.0 == rig.root_part)
        .expect("root partition")
        .clone();
    assert!(
        !layout
            .iter()
            .any(|p| p.0 != rig.root_part
                && !(rig.sc.table == Table::MbrLogical && p.0.ends_with("p1"))),
        "only root (and its extended container) remain: {layout:?}"
    );
    let disk = rig.sc.disk_mib * MIB / ss;
    let end = root.1 + root.2; // in sectors
    let align = MIB / ss;
    let limit = match rig.sc.table {
        Table::Gpt => disk - 33 * 512 / ss.min(512) - 1, // backup array + header
        _ => disk,
    };
    assert_eq!(end % align, 0, "root ends on a MiB boundary");
    assert!(
        limit - end < align + 34,
        "root grew to the aligned end: ends at {end}, limit {limit}"
    );
    assert_eq!(
        rig.sysfs_size(&rig.root_part),
        Some(root.2 * ss),
        "the kernel knows the new size"
    );
    if rig.sc.table == Table::Gpt {
        assert_sgdisk_clean(&rig.lo.dev);
    }
}

fn whole_job(sc: Scenario) {
    let _g = loop_lock();
    let mut rig = Rig::new(sc);
    let before = rig.fs_bytes();
    let o = rig.run(None);
    assert!(o.ok(), "run: {}", o.text());
    assert_final(&rig);
    rig.assert_copy_matches();
    assert!(
        rig.fs_bytes() > before + 300 * MIB,
        "the {} filesystem grew online",
        sc.fs
    );
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(rig.mnt.join("var/lib/seedpart/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["partition_deleted"], true);
    assert_eq!(
        state["instance_uuid"],
        "6f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    );
    // A second run changes nothing.
    let layout = rig.layout();
    let img_state = fs::read(rig.mnt.join("var/lib/seedpart/state.json")).unwrap();
    let o = rig.run(None);
    assert!(o.ok(), "second run: {}", o.text());
    assert_eq!(rig.layout(), layout);
    assert_eq!(
        fs::read(rig.mnt.join("var/lib/seedpart/state.json")).unwrap(),
        img_state,
        "a no-op run writes nothing"
    );
    rig.check_fs_offline();
    let _ = &rig.img;
}

#[test]
fn gpt_ironic_layout_xfs() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(BASE);
}

#[test]
fn gpt_drive_after_root_btrfs() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.btrfs", "btrfs");
    whole_job(Scenario {
        place: Place::AfterRoot,
        fs: "btrfs",
        ..BASE
    });
}

#[test]
fn gpt_disk_larger_than_image_moves_the_backup_header() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        image_mib: 600,
        disk_mib: 1536,
        ..BASE
    });
}

#[test]
fn gpt_4096_byte_sectors() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        sector: 4096,
        ..BASE
    });
}

#[test]
fn mbr_primary_at_the_end() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::Mbr,
        ..BASE
    });
}

#[test]
fn mbr_primary_drive_after_root_4096() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::Mbr,
        place: Place::AfterRoot,
        sector: 4096,
        ..BASE
    });
}

#[test]
fn mbr_logical_root_grows_its_container() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::MbrLogical,
        ..BASE
    });
}

/// For every crash point: crash there, check the data is somewhere, run again, and converge to
/// the same final disk as an uninterrupted run. `reached` are the points the scenario passes
/// (a crash there must happen: exit 99); the others must leave the run unharmed.
fn fault_points_converge(sc: Scenario, reached: &[&str]) {
    let _g = loop_lock();
    let reference = {
        let rig = Rig::new(sc);
        let o = rig.run(None);
        assert!(o.ok(), "{}", o.text());
        rig.layout()
            .into_iter()
            .map(|p| (p.1, p.2))
            .collect::<Vec<_>>()
    };
    for point in seedpart::fault::POINTS {
        let rig = Rig::new(sc);
        let o = rig.run(Some(point));
        let want = if reached.contains(point) { 99 } else { 0 };
        assert_eq!(o.code, want, "{point}: the crashed run: {}", o.text());
        rig.assert_data_somewhere();
        let o = rig.run(None);
        assert!(
            o.ok(),
            "{point}: the run after the crash failed: {}",
            o.text()
        );
        assert_final(&rig);
        rig.assert_copy_matches();
        // A crash with files staged leaves their temporaries; the run after it writes the same
        // files and removes them.
        assert_eq!(
            leftovers(&rig.mnt),
            Vec::<PathBuf>::new(),
            "{point}: temporaries left"
        );
        let layout: Vec<_> = rig.layout().into_iter().map(|p| (p.1, p.2)).collect();
        assert_eq!(layout, reference, "{point}: converged to another layout");
    }
}

/// Every `.NAME.seedpart-new` (a staged file's temporary) below `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.extend(leftovers(&e.path()));
        } else if e.file_name().to_string_lossy().ends_with(".seedpart-new") {
            out.push(e.path());
        }
    }
    out
}

const COMMON_POINTS: &[&str] = &[
    "before-apply-commit",
    "after-copy",
    "after-state-write",
    "after-delete-table",
    "after-delete-kernel",
    "after-grow-table",
    "after-grow-kernel",
    "before-fs-grow",
    "after-fs-grow",
];

#[test]
fn every_fault_point_converges_gpt() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    let mut reached = COMMON_POINTS.to_vec();
    reached.push("gpt-between-copies");
    fault_points_converge(BASE, &reached);
}

#[test]
fn every_fault_point_converges_gpt_relocating_the_backup() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    let mut reached = COMMON_POINTS.to_vec();
    reached.extend(["gpt-between-copies", "after-relocate"]);
    fault_points_converge(
        Scenario {
            image_mib: 600,
            disk_mib: 1536,
            ..BASE
        },
        &reached,
    );
}

#[test]
fn every_fault_point_converges_mbr_logical() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    let mut reached = COMMON_POINTS.to_vec();
    reached.push("mbr-after-extended");
    fault_points_converge(
        Scenario {
            table: Table::MbrLogical,
            ..BASE
        },
        &reached,
    );
}

impl Rig {
    /// The bytes a refused run must not touch: both ends of the disk (the MBR, both GPT
    /// headers and arrays) and every partition but the mounted root (whose filesystem may write
    /// its own log). Compared raw: hashing gigabytes in a debug build is slow.
    fn fingerprint(&self) -> Vec<u8> {
        use std::io::{Read, Seek, SeekFrom};
        let ss = self.sc.sector;
        let mut f = fs::File::open(&self.lo.dev).unwrap();
        let len = f.seek(SeekFrom::End(0)).unwrap();
        let mut ranges = vec![(0, MIB), (len - MIB, len)];
        for p in self.layout() {
            if p.0 != self.root_part {
                ranges.push((p.1 * ss, (p.1 + p.2.min(1 << 20)) * ss));
            }
        }
        let mut out = Vec::new();
        for (a, b) in ranges {
            let mut buf = vec![0u8; (b - a) as usize];
            f.seek(SeekFrom::Start(a)).unwrap();
            f.read_exact(&mut buf).unwrap();
            out.extend_from_slice(&buf);
        }
        out
    }

    fn refused(&self, what: &str, needle: &str) {
        let before = self.fingerprint();
        let o = self.run(None);
        assert_eq!(o.code, 1, "{what}: {}", o.text());
        let msg = &o.stderr;
        assert!(
            msg.contains(needle),
            "{what}: the error should say {needle:?}: {msg}"
        );
        assert_eq!(
            msg.lines().filter(|l| l.contains("error")).count(),
            1,
            "{what}: one error line: {msg}"
        );
        assert!(self.fingerprint() == before, "{what}: the disk changed");
    }
}

#[test]
fn refusals_change_nothing() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs");
    let _g = loop_lock();

    let rig = Rig::new(BASE);
    run("mount", &["-o", "remount,ro", rig.mnt.to_str().unwrap()]);
    rig.refused("read-only root", "read-only");
    run("mount", &["-o", "remount,rw", rig.mnt.to_str().unwrap()]);

    // The copy cannot be written: /var/lib/seedpart is a file.
    fs::create_dir_all(rig.mnt.join("var/lib")).unwrap();
    fs::write(rig.mnt.join("var/lib/seedpart"), b"not a directory").unwrap();
    rig.refused("unwritable copy target", "seedpart");
    fs::remove_file(rig.mnt.join("var/lib/seedpart")).unwrap();

    // The table on disk differs from the kernel's view (root shrunk in the table only).
    let p1 = rig
        .layout()
        .into_iter()
        .find(|p| p.0.ends_with("p1"))
        .unwrap();
    run(
        "sgdisk",
        &[
            "-d",
            "1",
            "-n",
            &format!("1:{}:{}", p1.1, p1.1 + p1.2 - 2048 - 1),
            "-c",
            "1:root",
            &rig.lo.dev,
        ],
    );
    rig.refused("table differs from the kernel", "kernel");
    drop(rig);

    // Both GPT headers corrupt.
    let rig = Rig::new(BASE);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new()
            .write(true)
            .open(&rig.lo.dev)
            .unwrap();
        let len = f.seek(SeekFrom::End(0)).unwrap();
        for off in [512, len - 512] {
            f.seek(SeekFrom::Start(off + 16)).unwrap();
            f.write_all(&[0xde, 0xad]).unwrap(); // the header CRC
        }
        f.sync_all().unwrap();
    }
    rig.refused("corrupt GPT", "corrupt GPT");
}

#[test]
fn dry_run_changes_nothing_and_says_what_it_would_do() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs");
    let _g = loop_lock();
    let rig = Rig::new(BASE);
    let before = rig.fingerprint();
    let o = seedpart(&["run", "--dry-run", "--root", rig.mnt.to_str().unwrap()]);
    assert!(o.ok(), "{}", o.text());
    let out = &o.stdout;
    assert!(
        out.contains("would delete partition 2") && out.contains("would grow partition 1"),
        "{out}"
    );
    assert!(rig.fingerprint() == before, "a dry run changed the disk");
    assert!(
        !rig.mnt.join("var/lib/seedpart").exists(),
        "a dry run writes nothing"
    );
}

#[test]
fn keep_partition_copies_but_keeps_the_drive() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs");
    let _g = loop_lock();
    let rig = Rig::new(BASE);
    let before = rig.layout();
    let o = seedpart(&[
        "run",
        "--keep-partition",
        "--root",
        rig.mnt.to_str().unwrap(),
    ]);
    assert!(o.ok(), "{}", o.text());
    rig.assert_copy_matches();
    let after = rig.layout();
    assert_eq!(after.len(), before.len(), "the drive's partition is kept");
    // Root grew only up to the drive.
    let root = after.iter().find(|p| p.0 == rig.root_part).unwrap();
    let drive = after.iter().find(|p| p.0.ends_with("p2")).unwrap();
    assert!(root.1 + root.2 <= drive.1 && drive.1 - (root.1 + root.2) < MIB / rig.sc.sector);
}

#[test]
fn a_drive_in_use_is_not_deleted() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs");
    let _g = loop_lock();
    let rig = Rig::new(BASE);
    // The kernel has no vfat here to mount the drive: hold its partition exclusively instead,
    // as a mount does.
    let node = format!("{}p2", rig.lo.dev);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&node)
        .unwrap();
    let before = rig.layout();
    let o = rig.run(None);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.text().contains("in use"), "{}", o.text());
    assert_eq!(rig.layout(), before, "nothing changed");
    // Released, the next run does the job.
    drop(f);
    let o = rig.run(None);
    assert!(o.ok(), "{}", o.text());
    assert_final(&rig);
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn a_read_only_disk_is_left_alone() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "blockdev");
    let _g = loop_lock();
    let rig = Rig::new(BASE);
    run("blockdev", &["--setro", &rig.lo.dev]);
    let before = rig.fingerprint();
    let o = rig.run(None);
    run("blockdev", &["--setrw", &rig.lo.dev]);
    assert_eq!(o.code, 1, "{}", o.text());
    assert!(o.text().contains("read-only"), "{}", o.text());
    assert!(rig.fingerprint() == before, "a read-only disk was written");
}

/// growpart's job: no config drive at all, free space after root: root and its filesystem grow.
#[test]
fn root_grows_without_any_config_drive() {
    require_loop!("sgdisk", "sfdisk", "mount", "mkfs.xfs", "xfs_repair");
    let _g = loop_lock();
    let mut rig = Rig::new(BASE);
    // Take the drive away by hand (as if an earlier boot had done so), kernel included.
    run("sgdisk", &["-d", "2", &rig.lo.dev]);
    run("partx", &["-d", "--nr", "2", &rig.lo.dev]);
    let before = rig.fs_bytes();
    let o = rig.run(None);
    assert!(o.ok(), "{}", o.text());
    assert_final(&rig);
    assert!(rig.fs_bytes() > before + 300 * MIB);
    assert!(!rig.copy_dir().exists(), "no drive, no copy");
    // And then nothing more to do.
    let layout = rig.layout();
    let o = rig.run(None);
    assert!(o.ok(), "{}", o.text());
    assert_eq!(rig.layout(), layout);
    rig.check_fs_offline();
}

/// A drive on another disk than the root's is read and copied, never deleted.
#[test]
fn a_drive_on_another_disk_is_read_but_never_deleted() {
    require_loop!(
        "sgdisk",
        "sfdisk",
        "mount",
        "mkfs.xfs",
        "mkfs.vfat",
        "mcopy"
    );
    let _g = loop_lock();
    let rig = Rig::new(BASE);
    // The root's own drive goes first, so the only drive left is elsewhere.
    run("sgdisk", &["-d", "2", &rig.lo.dev]);
    run("partx", &["-d", "--nr", "2", &rig.lo.dev]);
    // A second disk holding only a vfat drive labelled config-2 (no table: like a CD-ROM).
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("other.img");
    fs::File::create(&img).unwrap().set_len(16 * MIB).unwrap();
    run("mkfs.vfat", &["-n", "config-2", img.to_str().unwrap()]);
    let src = drive_tree(t.path());
    run(
        "mcopy",
        &[
            "-s",
            "-i",
            img.to_str().unwrap(),
            src.join("openstack").to_str().unwrap(),
            "::",
        ],
    );
    let _other = LoopDev::attach(&img, 512);
    let other_bytes = fs::read(&img).unwrap();
    let o = rig.run(None);
    assert!(o.ok(), "{}", o.text());
    rig.assert_copy_matches();
    assert!(
        fs::read(&img).unwrap() == other_bytes,
        "the other disk's drive was changed"
    );
    assert_final(&rig);
}
