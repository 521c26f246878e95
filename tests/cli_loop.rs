//! End-to-end tests of `seedpart build` and `inspect` on loop devices with 512- and 4096-byte
//! sectors: the kernel learns of the new partition (BLKPG), `--device` takes a disk, a
//! partition node, `PARTLABEL=`, `PARTUUID=` and `LABEL=`, and `--root` finds the drive from a
//! mounted root filesystem. Needs root and loop devices; says SKIP with the reason otherwise.
//!
//! This kernel does not scan loop devices for partitions: each test runs `partx -a` itself, and
//! its guard removes the partitions (`partx -d`) before detaching (`losetup -d`), since a
//! detached loop device keeps partitions that were added by hand.

use serde_json::Value;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MIB: u64 = 1 << 20;

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Returns early, with a printed SKIP reason, unless root, loop devices and the tools are here.
macro_rules! require_loop {
    ($($tool:expr),* $(,)?) => {
        if let Some(why) = loop_unavailable(&["losetup", "partx", "sgdisk", "sfdisk", $($tool),*]) {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

fn loop_unavailable(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("loop-device tests need root".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control: this kernel has no loop devices".into());
    }
    tools
        .iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed"))
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tool_stdin(name: &str, args: &[&str], input: &str) {
    let mut child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} <<< {input:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn seedpart(args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run seedpart");
    Out {
        code: out.status.code().expect("seedpart killed by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn inspect_json(args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let o = seedpart(&all);
    assert_eq!(o.code, 0, "seedpart {all:?}: {o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("inspect JSON: {e}: {o:?}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n.div_ceil(2)];
    File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect::<String>()[..n].to_string()
}

/// A fresh uuid for a drive's `meta_data.json`, so a drive found by a machine-wide search is
/// known to be this test's.
fn random_uuid() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn make_tree(root: &Path, uuid: &str, hostname: &str) {
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
    w(
        "openstack/latest/meta_data.json",
        format!(r#"{{"uuid": "{uuid}", "hostname": "{hostname}", "name": "loop"}}"#).as_bytes(),
    );
    w(
        "openstack/latest/network_data.json",
        br#"{"links": [], "networks": [], "services": []}"#,
    );
    w("openstack/latest/user_data", b"#!/bin/sh\necho loop\n");
    w("ec2/latest/meta-data.json", br#"{"instance-id": "i-loop"}"#);
}

/// A sparse image attached to a loop device; detached (partitions first) on drop.
struct Loop {
    /// The image's directory, when this loop device made it.
    _dir: Option<TempDir>,
    dev: String,
    sector_size: u64,
}

impl Loop {
    fn new(size: u64, sector_size: u64) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        File::create(&img).unwrap().set_len(size).unwrap();
        let mut l = Loop::attach(&img, sector_size);
        l._dir = Some(dir);
        l
    }

    /// Attaches an existing image.
    fn attach(img: &Path, sector_size: u64) -> Loop {
        let ss = sector_size.to_string();
        let dev = tool(
            "losetup",
            &[
                "--find",
                "--show",
                "--sector-size",
                &ss,
                img.to_str().unwrap(),
            ],
        )
        .trim()
        .to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup said {dev:?}");
        let l = Loop {
            _dir: None,
            dev,
            sector_size,
        };
        // A loop device detached elsewhere may keep stale partitions: start clean.
        l.partx_delete();
        l
    }

    fn name(&self) -> &str {
        self.dev.trim_start_matches("/dev/")
    }

    fn part(&self, n: u32) -> String {
        format!("{}p{n}", self.dev)
    }

    /// Tells the kernel about the partitions in the table (it does not scan loop devices).
    fn partx_add(&self) {
        tool("partx", &["-a", &self.dev]);
    }

    fn partx_delete(&self) {
        let _ = Command::new("partx")
            .args(["-d", &self.dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// One MiB in this device's sectors.
    fn mib_sectors(&self) -> u64 {
        MIB / self.sector_size
    }

    /// sysfs `start` and `size` of partition `n` (always in 512-byte units).
    fn sysfs_extent(&self, n: u32) -> Option<(u64, u64)> {
        let d = PathBuf::from("/sys/class/block").join(format!("{}p{n}", self.name()));
        let read =
            |a: &str| -> Option<u64> { fs::read_to_string(d.join(a)).ok()?.trim().parse().ok() };
        Some((read("start")?, read("size")?))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        self.partx_delete();
        let _ = Command::new("losetup")
            .args(["-d", &self.dev])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Waits for a device node to appear (devtmpfs makes it as the kernel adds the partition).
fn wait_for(path: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if Path::new(path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A mounted filesystem, unmounted on drop.
struct Mounted {
    dir: TempDir,
}

impl Mounted {
    fn new(dev: &str) -> Mounted {
        let dir = tempfile::tempdir().unwrap();
        tool("mount", &[dev, dir.path().to_str().unwrap()]);
        Mounted { dir }
    }

    fn path(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

/// `sfdisk --json` partitions of a device: (number, start, size) in its own sectors.
fn sf_parts(dev: &str) -> (u64, Vec<(u32, u64, u64)>) {
    let v: Value = serde_json::from_str(&tool("sfdisk", &["--json", dev])).unwrap();
    let t = &v["partitiontable"];
    let parts = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                s(&p["node"])[dev.len() + 1..].parse().unwrap(),
                u(&p["start"]),
                u(&p["size"]),
            )
        })
        .collect();
    (u(&t["sectorsize"]), parts)
}

/// The two reports of the same drive, through the disk and through its partition node, agree
/// (only why it was picked differs: found, or named).
fn assert_same_report(a: &Value, b: &Value) {
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["partition"]["found_by"] = Value::Null;
        v
    };
    assert_eq!(
        strip(a),
        strip(b),
        "through the disk:\n{a:#}\nthrough the partition:\n{b:#}"
    );
    assert_eq!(s(&b["partition"]["found_by"][0]), "named by --device");
}

// ---------------------------------------------------------------------------------------------
// 7. build on 512- and 4096-byte-sector loop devices; the kernel learns of the partition

fn build_on_loop(sector_size: u64, gpt: bool) {
    let ctx = format!("{sector_size}-byte sectors, gpt={gpt}");
    let l = Loop::new(192 * MIB, sector_size);
    let m = l.mib_sectors();
    if gpt {
        tool(
            "sgdisk",
            &["-n", &format!("1:{m}:+32M"), "-c", "1:root", &l.dev],
        );
    } else {
        tool_stdin(
            "sfdisk",
            &["-q", &l.dev],
            &format!("start={m}, size={}, type=83\n", 32 * m),
        );
    }
    l.partx_add();
    assert!(
        wait_for(&l.part(1)),
        "{ctx}: partx -a made no {}",
        l.part(1)
    );
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    make_tree(t.path(), &uuid, "loop-host");
    let o = seedpart(&[
        "build",
        "--disk",
        &l.dev,
        "--from",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{ctx}: {o:?}");
    assert!(o.stderr.is_empty(), "{ctx}: {o:?}");

    // The table as sfdisk reads it from the device, in the device's sectors.
    let (ss, parts) = sf_parts(&l.dev);
    assert_eq!(ss, sector_size, "{ctx}");
    let &(_, start, size) = parts.iter().find(|p| p.0 == 2).expect("partition 2");
    assert_eq!(start, 33 * m, "{ctx}: right after root, aligned");
    assert_eq!(size, 64 * m, "{ctx}: 64 MiB");
    if gpt {
        let v = tool("sgdisk", &["-v", &l.dev]);
        assert!(v.contains("No problems found"), "{ctx}: {v}");
    }
    // The kernel knows it, without partx: build told it (BLKPG_ADD_PARTITION).
    assert!(wait_for(&l.part(2)), "{ctx}: no {} node", l.part(2));
    let k = sector_size / 512;
    assert_eq!(l.sysfs_extent(2), Some((start * k, size * k)), "{ctx}");
    // The partition node reads the filesystem build wrote there.
    let mut boot = [0u8; 512];
    File::open(l.part(2))
        .unwrap()
        .read_exact(&mut boot)
        .unwrap();
    assert_eq!(
        u64::from(u16::from_le_bytes([boot[11], boot[12]])),
        sector_size,
        "{ctx}: FAT bytes per sector = the disk's"
    );
    assert_eq!(&boot[510..], &[0x55, 0xaa]);

    let a = inspect_json(&["--device", &l.dev]);
    let b = inspect_json(&["--device", &l.part(2)]);
    assert_same_report(&a, &b);
    assert_eq!(u(&a["sector_size"]), sector_size, "{ctx}");
    let p = &a["partition"];
    assert_eq!(s(&p["device"]), l.part(2));
    assert_eq!(s(&p["disk"]), l.dev);
    assert_eq!(u(&p["number"]), 2);
    assert_eq!(s(&p["table"]), if gpt { "gpt" } else { "mbr" });
    assert_eq!(s(&p["fs"]), "vfat");
    assert_eq!(s(&p["label"]), "CONFIG-2");
    assert_eq!(u(&p["start"]), start * sector_size);
    assert_eq!(u(&p["size"]), size * sector_size);
    assert_eq!(s(&a["metadata"]["uuid"]), uuid);
    let g = &a["grow"];
    assert_eq!(s(&g["partition"]), l.part(1));
    assert_eq!(u(&g["from"]), 32 * MIB);
    assert!(u(&g["to"]) > 150 * MIB, "{ctx}: {a:#}");
}

#[test]
fn build_on_512_byte_sector_loop_devices_tells_the_kernel() {
    require_loop!("fsck.vfat");
    build_on_loop(512, true);
    build_on_loop(512, false);
}

#[test]
fn build_on_4096_byte_sector_loop_devices_tells_the_kernel() {
    require_loop!("fsck.vfat");
    build_on_loop(4096, true);
    build_on_loop(4096, false);
}

/// On a 4Kn disk, the drive as made by hand: `mkfs.vfat -S 4096 -n CONFIG-2` at the end, and
/// an ISO 9660 image (2048-byte blocks, independent of the disk's sectors) on another disk.
#[test]
fn inspect_reads_hand_made_vfat_and_iso_drives_on_a_4kn_loop_device() {
    require_loop!("mkfs.vfat", "mcopy", "genisoimage", "fsck.vfat");
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    let tree = t.path().join("tree");
    make_tree(&tree, &uuid, "fourk");

    let l = Loop::new(128 * MIB, 4096);
    tool("sgdisk", &["-n", "1:256:+32M", "-n", "2:-16M:0", &l.dev]);
    l.partx_add();
    assert!(wait_for(&l.part(2)));
    tool("mkfs.vfat", &["-S", "4096", "-n", "CONFIG-2", &l.part(2)]);
    for e in fs::read_dir(&tree).unwrap() {
        tool(
            "mcopy",
            &[
                "-s",
                "-i",
                &l.part(2),
                e.unwrap().path().to_str().unwrap(),
                "::/",
            ],
        );
    }
    tool("fsck.vfat", &["-n", &l.part(2)]);
    let a = inspect_json(&["--device", &l.dev]);
    let b = inspect_json(&["--device", &l.part(2)]);
    assert_same_report(&a, &b);
    assert_eq!(u(&a["sector_size"]), 4096);
    assert_eq!(s(&a["partition"]["fs"]), "vfat");
    assert_eq!(s(&a["partition"]["label"]), "CONFIG-2");
    assert_eq!(s(&a["metadata"]["uuid"]), uuid);
    assert_eq!(s(&a["metadata"]["hostname"]), "fourk");
    assert_eq!(s(&a["grow"]["partition"]), l.part(1));
    drop(l);

    let iso = t.path().join("cd.iso");
    tool(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-r",
            "-V",
            "config-2",
            "-o",
            iso.to_str().unwrap(),
            tree.to_str().unwrap(),
        ],
    );
    let l = Loop::new(128 * MIB, 4096);
    tool("sgdisk", &["-n", "1:256:+32M", "-n", "2:-8M:0", &l.dev]);
    l.partx_add();
    assert!(wait_for(&l.part(2)));
    let mut p = fs::OpenOptions::new().write(true).open(l.part(2)).unwrap();
    p.write_all(&fs::read(&iso).unwrap()).unwrap();
    p.sync_all().unwrap();
    drop(p);
    let a = inspect_json(&["--device", &l.dev]);
    let b = inspect_json(&["--device", &l.part(2)]);
    assert_same_report(&a, &b);
    assert_eq!(s(&a["partition"]["fs"]), "iso9660");
    assert_eq!(s(&a["partition"]["label"]), "config-2");
    assert_eq!(s(&a["metadata"]["uuid"]), uuid);
}

/// A 4Kn image file (made on a 4096-byte-sector loop device, then detached): build probes the
/// sector size from the image, and the result is right when the image is attached again.
#[test]
fn build_on_a_4kn_image_file_probes_its_sector_size() {
    require_loop!("fsck.vfat", "mkfs.ext4");
    for gpt in [true, false] {
        let ctx = format!("gpt={gpt}");
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        File::create(&img).unwrap().set_len(128 * MIB).unwrap();
        let l = Loop::attach(&img, 4096);
        if gpt {
            tool("sgdisk", &["-n", "1:256:+32M", &l.dev]);
        } else {
            tool_stdin("sfdisk", &["-q", &l.dev], "start=256, size=8192, type=83\n");
        }
        l.partx_add();
        assert!(wait_for(&l.part(1)));
        // ext4 in root: for MBR the filesystems are what tells the sector size.
        tool("mkfs.ext4", &["-q", "-F", &l.part(1)]);
        drop(l);

        let t = tempfile::tempdir().unwrap();
        let uuid = random_uuid();
        make_tree(t.path(), &uuid, "fourk-file");
        let o = seedpart(&[
            "build",
            "--disk",
            img.to_str().unwrap(),
            "--from",
            t.path().to_str().unwrap(),
        ]);
        assert_eq!(o.code, 0, "{ctx}: {o:?}");
        let j = inspect_json(&["--device", img.to_str().unwrap()]);
        assert_eq!(u(&j["sector_size"]), 4096, "{ctx}: {j:#}");
        assert_eq!(s(&j["filesystem"]), "ext4", "{ctx}");

        let l = Loop::attach(&img, 4096);
        if gpt {
            let v = tool("sgdisk", &["-v", &l.dev]);
            assert!(v.contains("No problems found"), "{ctx}: {v}");
        }
        let (ss, parts) = sf_parts(&l.dev);
        assert_eq!(ss, 4096);
        let &(_, start, size) = parts.iter().find(|p| p.0 == 2).expect("partition 2");
        assert_eq!((start, size), (33 * 256, 64 * 256), "{ctx}");
        l.partx_add();
        assert!(wait_for(&l.part(2)));
        tool("fsck.vfat", &["-n", &l.part(2)]);
        let k = inspect_json(&["--device", &l.dev]);
        assert_eq!(u(&k["partition"]["start"]), u(&j["partition"]["start"]));
        assert_eq!(u(&k["partition"]["size"]), 64 * MIB);
        assert_eq!(s(&k["metadata"]["uuid"]), uuid);
    }
}

// ---------------------------------------------------------------------------------------------
// 8. --device PARTLABEL= / PARTUUID= / LABEL=, resolved by reading every disk's table

#[test]
fn device_by_partlabel_partuuid_and_label() {
    require_loop!("mkfs.vfat", "mcopy");
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    let tree = t.path().join("tree");
    make_tree(&tree, &uuid, "by-spec");
    // Names no other disk on the machine has.
    let partlabel = format!("seedpart-test-{}", random_hex(12));
    let label = format!("T{}", random_hex(10).to_uppercase());

    let l = Loop::new(96 * MIB, 512);
    tool(
        "sgdisk",
        &[
            "-n",
            "1:2048:+16M",
            "-n",
            "2:0:+16M",
            "-c",
            &format!("2:{partlabel}"),
            &l.dev,
        ],
    );
    l.partx_add();
    assert!(wait_for(&l.part(2)));
    tool("mkfs.vfat", &["-n", &label, &l.part(2)]);
    for e in fs::read_dir(&tree).unwrap() {
        tool(
            "mcopy",
            &[
                "-s",
                "-i",
                &l.part(2),
                e.unwrap().path().to_str().unwrap(),
                "::/",
            ],
        );
    }
    let partuuid = tool("sfdisk", &["--part-uuid", &l.dev, "2"])
        .trim()
        .to_string();
    assert_eq!(partuuid.len(), 36);

    let by_path = inspect_json(&["--device", &l.part(2)]);
    for spec in [
        format!("PARTLABEL={partlabel}"),
        format!("PARTUUID={partuuid}"),
        format!("PARTUUID={}", partuuid.to_lowercase()),
        format!("LABEL={label}"),
    ] {
        let j = inspect_json(&["--device", &spec]);
        assert_eq!(j, by_path, "--device {spec}");
        assert_eq!(s(&j["partition"]["device"]), l.part(2), "--device {spec}");
        assert_eq!(s(&j["metadata"]["uuid"]), uuid, "--device {spec}");
        assert_eq!(s(&j["partition"]["label"]), label);
        assert_eq!(s(&j["partition"]["name"]), partlabel);
    }

    // Nothing has it: one clear error.
    let missing = format!("PARTLABEL=seedpart-none-{}", random_hex(8));
    let o = seedpart(&["inspect", "--device", &missing]);
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
    assert!(
        o.stderr.contains(&missing) && o.stderr.contains("no partition"),
        "{o:?}"
    );
}

/// The names a config drive really carries: `PARTLABEL=config-v2` and `LABEL=CONFIG-2` (what
/// build writes). Other tests on this machine may have such drives attached at the same time,
/// so an ambiguity is accepted if it is reported as one and names this disk.
#[test]
fn device_by_the_config_drive_names() {
    require_loop!();
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    make_tree(t.path(), &uuid, "named");
    let l = Loop::new(96 * MIB, 512);
    tool("sgdisk", &["-n", "1:2048:+16M", &l.dev]);
    l.partx_add();
    let o = seedpart(&[
        "build",
        "--disk",
        &l.dev,
        "--from",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    for spec in ["PARTLABEL=config-v2", "LABEL=CONFIG-2"] {
        let o = seedpart(&["inspect", "--json", "--device", spec]);
        if o.code == 0 {
            let j: Value = serde_json::from_str(&o.stdout).unwrap();
            if s(&j["partition"]["disk"]) == l.dev {
                assert_eq!(s(&j["metadata"]["uuid"]), uuid);
                assert_eq!(s(&j["partition"]["device"]), l.part(2));
            } else {
                panic!(
                    "--device {spec} found another disk's drive, not {}: {o:?}",
                    l.dev
                );
            }
        } else {
            assert_eq!(o.code, 1, "{o:?}");
            assert!(
                o.stderr.contains("partitions have it")
                    && o.stderr.contains(&format!("{} partition 2", l.dev)),
                "--device {spec}: {o:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 9. --root: the drive on the disk of a mounted root filesystem

fn inspect_from_mounted_root(mkfs: &[&str], fstype: &str) {
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    make_tree(t.path(), &uuid, "rooted");
    let l = Loop::new(512 * MIB, 512);
    tool("sgdisk", &["-n", "1:2048:+320M", "-c", "1:root", &l.dev]);
    l.partx_add();
    assert!(wait_for(&l.part(1)));
    let mut args = mkfs[1..].to_vec();
    let p1 = l.part(1);
    args.push(&p1);
    tool(mkfs[0], &args);
    let root = Mounted::new(&l.part(1));
    // build while the root is mounted: the kernel is told through BLKPG.
    let o = seedpart(&[
        "build",
        "--disk",
        &l.dev,
        "--from",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    assert!(wait_for(&l.part(2)));

    let j = inspect_json(&["--root", root.path()]);
    let p = &j["partition"];
    assert_eq!(s(&j["disk"]), l.dev, "{j:#}");
    assert_eq!(s(&p["device"]), l.part(2));
    assert_eq!(u(&p["number"]), 2);
    assert_eq!(s(&p["name"]), "config-v2");
    assert_eq!(p["deletable"], true, "{j:#}");
    assert_eq!(s(&j["metadata"]["uuid"]), uuid);
    assert_eq!(s(&j["filesystem"]), fstype, "from the mount");
    let g = &j["grow"];
    assert_eq!(s(&g["partition"]), l.part(1));
    assert_eq!(u(&g["number"]), 1);
    assert_eq!(u(&g["from"]), 320 * MIB);
    // 512 MiB disk, backup GPT in the last 33 sectors: root may end at 511 MiB.
    assert_eq!(u(&g["to"]), 510 * MIB, "{j:#}");
    // A path inside the root names the same disk.
    let sub = Path::new(root.path()).join("etc");
    fs::create_dir_all(&sub).unwrap();
    let k = inspect_json(&["--root", sub.to_str().unwrap()]);
    assert_eq!(k, j);
}

#[test]
fn inspect_root_finds_the_drive_on_the_mounted_ext4_roots_disk() {
    require_loop!("mkfs.ext4", "mount", "umount");
    inspect_from_mounted_root(&["mkfs.ext4", "-q", "-F"], "ext4");
}

#[test]
fn inspect_root_finds_the_drive_on_the_mounted_xfs_roots_disk() {
    require_loop!("mkfs.xfs", "mount", "umount");
    inspect_from_mounted_root(&["mkfs.xfs", "-q", "-f"], "xfs");
}
