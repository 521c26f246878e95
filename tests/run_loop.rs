//! `seedpart run` on loop devices with a mounted root: the whole job (copy, delete, grow the
//! partition, grow the filesystem online), its safety refusals, and crash convergence at every
//! named fault point. Needs root and loop devices (says SKIP with the reason otherwise). xfs and
//! btrfs grow online here; ext4's online resize needs CAP_SYS_RESOURCE, which this sandbox
//! lacks, so ext4 is proven in the VM tests.
//!
//! The tests run one at a time (a lock): after the drive is gone, `run` looks for one on other
//! disks, and a concurrent test's drive would be found.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MIB: u64 = 1 << 20;
static SERIAL: Mutex<()> = Mutex::new(());

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn unavailable(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("loop-device tests need root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no loop devices in this kernel".into());
    }
    tools
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed"))
}

macro_rules! require {
    ($($tool:expr),*) => {
        if let Some(why) = unavailable(&["losetup", "partx", "sgdisk", "sfdisk", "mount", $($tool),*]) {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sh_in(cmd: &str, args: &[&str], input: &str) {
    use std::io::Write;
    let mut c = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn seedpart(args: &[&str], fault: Option<&str>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .env_remove("SEEDPART_FAULT");
    if let Some(f) = fault {
        c.env("SEEDPART_FAULT", f);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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
    dev: String,
    root_part: String,
    mnt: PathBuf,
    drive_src: PathBuf,
    sc: Scenario,
    mounted: bool,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg(&self.mnt).status();
        }
        let _ = Command::new("partx").args(["-d", &self.dev]).output();
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
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
        // Tables are made by the independent tools, at the image's size.
        let sector = sc.sector.to_string();
        let dev = sh(
            "losetup",
            &[
                "--find",
                "--show",
                "--sector-size",
                &sector,
                img.to_str().unwrap(),
            ],
        )
        .trim()
        .to_string();
        // Tables are made by the independent tools, on the loop device so that they use its
        // sector size.
        match sc.table {
            Table::Gpt => {
                let first = MIB / sc.sector;
                let end = first + root_mib * MIB / sc.sector - 1;
                sh(
                    "sgdisk",
                    &[
                        "-n",
                        &format!("1:{first}:{end}"),
                        "-t",
                        "1:8300",
                        "-c",
                        "1:root",
                        &dev,
                    ],
                );
            }
            Table::Mbr => sh_in(
                "sfdisk",
                &["-q", "--no-reread", &dev],
                &format!("label: dos\nstart=1MiB, size={root_mib}MiB, type=83\n"),
            ),
            Table::MbrLogical => sh_in(
                "sfdisk",
                &["-q", "--no-reread", &dev],
                &format!(
                    "label: dos\nstart=1MiB, size={}MiB, type=5\nstart=2MiB, size={root_mib}MiB, type=83\n",
                    root_mib + 2
                ),
            ),
        }
        let _ = Command::new("partx").args(["-d", &dev]).output();
        sh("partx", &["-a", &dev]);
        let root_part = match sc.table {
            Table::MbrLogical => format!("{dev}p5"),
            _ => format!("{dev}p1"),
        };
        match sc.fs {
            "xfs" => sh("mkfs.xfs", &["-q", "-f", &root_part]),
            "btrfs" => sh("mkfs.btrfs", &["-q", "-f", &root_part]),
            "ext4" => sh("mkfs.ext4", &["-q", "-F", &root_part]),
            other => panic!("no mkfs for {other}"),
        };
        let drive_src = drive_tree(dir.path());
        let mut rig = Rig {
            img: img.clone(),
            dev: dev.clone(),
            root_part,
            mnt: dir.path().join("root"),
            drive_src: drive_src.clone(),
            _dir: dir,
            sc,
            mounted: false,
        };
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
        let o = seedpart(
            &[
                "build",
                "--disk",
                &rig.dev,
                "--from",
                drive_src.to_str().unwrap(),
                "--at",
                at,
                "--size",
                size,
            ],
            None,
        );
        assert!(o.status.success(), "build: {}", text(&o));
        if sc.disk_mib > sc.image_mib {
            // The deployer wrote the image, drive included, onto a bigger disk: its backup GPT
            // header is now short of the end.
            let _ = Command::new("partx").args(["-d", &dev]).output();
            sh("losetup", &["-d", &dev]);
            fs::OpenOptions::new()
                .write(true)
                .open(&img)
                .unwrap()
                .set_len(sc.disk_mib * MIB)
                .unwrap();
            let dev2 = sh(
                "losetup",
                &[
                    "--find",
                    "--show",
                    "--sector-size",
                    &sector,
                    img.to_str().unwrap(),
                ],
            )
            .trim()
            .to_string();
            sh("partx", &["-a", &dev2]);
            rig.root_part = rig.root_part.replacen(&dev, &dev2, 1);
            rig.dev = dev2;
        }
        fs::create_dir_all(&rig.mnt).unwrap();
        sh("mount", &[&rig.root_part, rig.mnt.to_str().unwrap()]);
        rig.mounted = true;
        rig
    }

    fn run(&self, fault: Option<&str>) -> Output {
        seedpart(&["run", "--root", self.mnt.to_str().unwrap()], fault)
    }

    fn sysfs_size(&self, part: &str) -> Option<u64> {
        let name = Path::new(part).file_name().unwrap().to_str().unwrap();
        fs::read_to_string(format!("/sys/class/block/{name}/size"))
            .ok()
            .map(|s| s.trim().parse::<u64>().unwrap() * 512)
    }

    /// The partitions as the independent tool reads them from the disk: (node, start, size).
    fn layout(&self) -> Vec<(String, u64, u64)> {
        let j: serde_json::Value =
            serde_json::from_str(&sh("sfdisk", &["--json", &self.dev])).unwrap();
        j["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["node"].as_str().unwrap().to_string(),
                    p["start"].as_u64().unwrap(),
                    p["size"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn fs_bytes(&self) -> u64 {
        let out = sh("df", &["-B1", "--output=size", self.mnt.to_str().unwrap()]);
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
        let o = seedpart(&["inspect", "--device", &self.dev, "--json"], None);
        let drive_there = o.status.success()
            && serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|j| !j["partition"].is_null());
        let copy_ok = {
            let o = seedpart(
                &["status", "--root", self.mnt.to_str().unwrap(), "--json"],
                None,
            );
            serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|j| j["copy"]["verified"] == true)
        };
        assert!(
            drive_there || copy_ok,
            "the config data is neither on its partition nor verified in root"
        );
    }

    fn check_fs_offline(&mut self) {
        sh("umount", &[self.mnt.to_str().unwrap()]);
        self.mounted = false;
        match self.sc.fs {
            "xfs" => {
                sh("xfs_repair", &["-n", &self.root_part]);
            }
            "btrfs" => {
                sh("btrfs", &["check", &self.root_part]);
            }
            "ext4" => {
                sh("e2fsck", &["-fn", &self.root_part]);
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
        let v = sh("sgdisk", &["-v", &rig.dev]);
        assert!(v.contains("No problems found"), "sgdisk -v: {v}");
    }
}

fn whole_job(sc: Scenario) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::new(sc);
    let before = rig.fs_bytes();
    let o = rig.run(None);
    assert!(o.status.success(), "run: {}", text(&o));
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
    assert!(o.status.success(), "second run: {}", text(&o));
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
    require!("mkfs.xfs", "xfs_repair");
    whole_job(BASE);
}

#[test]
fn gpt_drive_after_root_btrfs() {
    require!("mkfs.btrfs", "btrfs");
    whole_job(Scenario {
        place: Place::AfterRoot,
        fs: "btrfs",
        ..BASE
    });
}

#[test]
fn gpt_disk_larger_than_image_moves_the_backup_header() {
    require!("mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        image_mib: 600,
        disk_mib: 1536,
        ..BASE
    });
}

#[test]
fn gpt_4096_byte_sectors() {
    require!("mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        sector: 4096,
        ..BASE
    });
}

#[test]
fn mbr_primary_at_the_end() {
    require!("mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::Mbr,
        ..BASE
    });
}

#[test]
fn mbr_primary_drive_after_root_4096() {
    require!("mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::Mbr,
        place: Place::AfterRoot,
        sector: 4096,
        ..BASE
    });
}

#[test]
fn mbr_logical_root_grows_its_container() {
    require!("mkfs.xfs", "xfs_repair");
    whole_job(Scenario {
        table: Table::MbrLogical,
        ..BASE
    });
}

/// For every crash point: crash there, check the data is somewhere, run again, and converge to
/// the same final disk as an uninterrupted run. `reached` are the points the scenario passes
/// (a crash there must happen: exit 99); the others must leave the run unharmed.
fn fault_points_converge(sc: Scenario, reached: &[&str]) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reference = {
        let rig = Rig::new(sc);
        let o = rig.run(None);
        assert!(o.status.success(), "{}", text(&o));
        rig.layout()
            .into_iter()
            .map(|p| (p.1, p.2))
            .collect::<Vec<_>>()
    };
    for point in seedpart::fault::POINTS {
        let rig = Rig::new(sc);
        let o = rig.run(Some(point));
        let want = if reached.contains(point) { 99 } else { 0 };
        assert_eq!(
            o.status.code(),
            Some(want),
            "{point}: the crashed run: {}",
            text(&o)
        );
        rig.assert_data_somewhere();
        let o = rig.run(None);
        assert!(
            o.status.success(),
            "{point}: the run after the crash failed: {}",
            text(&o)
        );
        assert_final(&rig);
        rig.assert_copy_matches();
        let layout: Vec<_> = rig.layout().into_iter().map(|p| (p.1, p.2)).collect();
        assert_eq!(layout, reference, "{point}: converged to another layout");
    }
}

const COMMON_POINTS: &[&str] = &[
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
    require!("mkfs.xfs", "xfs_repair");
    let mut reached = COMMON_POINTS.to_vec();
    reached.push("gpt-between-copies");
    fault_points_converge(BASE, &reached);
}

#[test]
fn every_fault_point_converges_gpt_relocating_the_backup() {
    require!("mkfs.xfs", "xfs_repair");
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
    require!("mkfs.xfs", "xfs_repair");
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
        let mut f = fs::File::open(&self.dev).unwrap();
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
        assert_eq!(o.status.code(), Some(1), "{what}: {}", text(&o));
        let msg = String::from_utf8_lossy(&o.stderr);
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
    require!("mkfs.xfs");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());

    let rig = Rig::new(BASE);
    sh("mount", &["-o", "remount,ro", rig.mnt.to_str().unwrap()]);
    rig.refused("read-only root", "read-only");
    sh("mount", &["-o", "remount,rw", rig.mnt.to_str().unwrap()]);

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
    sh(
        "sgdisk",
        &[
            "-d",
            "1",
            "-n",
            &format!("1:{}:{}", p1.1, p1.1 + p1.2 - 2048 - 1),
            "-c",
            "1:root",
            &rig.dev,
        ],
    );
    rig.refused("table differs from the kernel", "kernel");
    drop(rig);

    // Both GPT headers corrupt.
    let rig = Rig::new(BASE);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::OpenOptions::new().write(true).open(&rig.dev).unwrap();
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
    require!("mkfs.xfs");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(BASE);
    let before = rig.fingerprint();
    let o = seedpart(
        &["run", "--dry-run", "--root", rig.mnt.to_str().unwrap()],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
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
    require!("mkfs.xfs");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(BASE);
    let before = rig.layout();
    let o = seedpart(
        &[
            "run",
            "--keep-partition",
            "--root",
            rig.mnt.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
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
    require!("mkfs.xfs");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(BASE);
    // The kernel has no vfat here to mount the drive: hold its partition exclusively instead,
    // as a mount does.
    let node = format!("{}p2", rig.dev);
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&node)
        .unwrap();
    let before = rig.layout();
    let o = rig.run(None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("in use"), "{}", text(&o));
    assert_eq!(rig.layout(), before, "nothing changed");
    // Released, the next run does the job.
    drop(f);
    let o = rig.run(None);
    assert!(o.status.success(), "{}", text(&o));
    assert_final(&rig);
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
fn a_read_only_disk_is_left_alone() {
    require!("mkfs.xfs", "blockdev");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(BASE);
    sh("blockdev", &["--setro", &rig.dev]);
    let before = rig.fingerprint();
    let o = rig.run(None);
    sh("blockdev", &["--setrw", &rig.dev]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("read-only"), "{}", text(&o));
    assert!(rig.fingerprint() == before, "a read-only disk was written");
}

/// growpart's job: no config drive at all, free space after root: root and its filesystem grow.
#[test]
fn root_grows_without_any_config_drive() {
    require!("mkfs.xfs", "xfs_repair");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rig = Rig::new(BASE);
    // Take the drive away by hand (as if an earlier boot had done so), kernel included.
    sh("sgdisk", &["-d", "2", &rig.dev]);
    sh("partx", &["-d", "--nr", "2", &rig.dev]);
    let before = rig.fs_bytes();
    let o = rig.run(None);
    assert!(o.status.success(), "{}", text(&o));
    assert_final(&rig);
    assert!(rig.fs_bytes() > before + 300 * MIB);
    assert!(!rig.copy_dir().exists(), "no drive, no copy");
    // And then nothing more to do.
    let layout = rig.layout();
    let o = rig.run(None);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(rig.layout(), layout);
    rig.check_fs_offline();
}

/// A drive on another disk than the root's is read and copied, never deleted.
#[test]
fn a_drive_on_another_disk_is_read_but_never_deleted() {
    require!("mkfs.xfs", "mkfs.vfat", "mcopy");
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rig = Rig::new(BASE);
    // The root's own drive goes first, so the only drive left is elsewhere.
    sh("sgdisk", &["-d", "2", &rig.dev]);
    sh("partx", &["-d", "--nr", "2", &rig.dev]);
    // A second disk holding only a vfat drive labelled config-2 (no table: like a CD-ROM).
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("other.img");
    fs::File::create(&img).unwrap().set_len(16 * MIB).unwrap();
    sh("mkfs.vfat", &["-n", "config-2", img.to_str().unwrap()]);
    let src = drive_tree(t.path());
    let o = Command::new("mcopy")
        .args([
            "-s",
            "-i",
            img.to_str().unwrap(),
            src.join("openstack").to_str().unwrap(),
            "::",
        ])
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let other = sh("losetup", &["--find", "--show", img.to_str().unwrap()])
        .trim()
        .to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _other = Detach(other.clone());
    let other_bytes = fs::read(&img).unwrap();
    let o = rig.run(None);
    assert!(o.status.success(), "{}", text(&o));
    rig.assert_copy_matches();
    assert!(
        fs::read(&img).unwrap() == other_bytes,
        "the other disk's drive was changed"
    );
    assert_final(&rig);
}
