//! End-to-end tests of `seedpart build` and `inspect` on loop devices with 512- and 4096-byte
//! sectors: the kernel learns of the new partition (BLKPG), `--device` takes a disk, a
//! partition node, `PARTLABEL=`, `PARTUUID=` and `LABEL=`, and `--root` finds the drive from a
//! mounted root filesystem. Needs root and loop devices; says SKIP with the reason otherwise.
//!
//! This kernel does not scan loop devices for partitions: each test runs `partx -a` itself, and
//! its guard removes the partitions (`partx -d`) before detaching (`losetup -d`), since a
//! detached loop device keeps partitions that were added by hand.

mod common;

use common::*;
use serde_json::Value;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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
    let w = |rel: &str, data: &[u8]| write_file(&root.join(rel), data);
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

/// `seedpart build --disk DISK` from a fresh tree (`make_tree`: a random uuid, `hostname`),
/// which must succeed: the tree's uuid, and what build said.
#[track_caller]
fn build_fresh(disk: &str, hostname: &str, ctx: &str) -> (String, Out) {
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    make_tree(t.path(), &uuid, hostname);
    let o = seedpart(&[
        "build",
        "--disk",
        disk,
        "--from",
        t.path().to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{ctx}: {o:?}");
    (uuid, o)
}

/// sysfs `start` and `size` of partition `n` of `l` (always in 512-byte units).
fn sysfs_extent(l: &LoopDev, n: u32) -> Option<(u64, u64)> {
    let name = l.dev.trim_start_matches("/dev/");
    let d = PathBuf::from("/sys/class/block").join(format!("{name}p{n}"));
    let read = |a: &str| -> Option<u64> { fs::read_to_string(d.join(a)).ok()?.trim().parse().ok() };
    Some((read("start")?, read("size")?))
}

/// `sfdisk --json` of a device: its sector size, and the start and size of partition `n` in
/// those sectors.
fn sfdisk_extent(dev: &str, n: u32) -> (u64, u64, u64) {
    let t = sfdisk_json(dev);
    let p = t
        .partitions
        .iter()
        .find(|p| p.number == n)
        .unwrap_or_else(|| panic!("no partition {n} on {dev}"));
    (t.sector_size, p.start, p.size)
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
    let l = LoopDev::new(192 * MIB, sector_size);
    let m = l.mib_sectors();
    if gpt {
        run(
            "sgdisk",
            &["-n", &format!("1:{m}:+32M"), "-c", "1:root", &l.dev],
        );
    } else {
        run_stdin(
            "sfdisk",
            &["-q", &l.dev],
            &format!("start={m}, size={}, type=83\n", 32 * m),
        );
    }
    l.add_partitions();
    assert!(
        wait_for(&l.part(1)),
        "{ctx}: partx -a made no {}",
        l.part(1)
    );
    let (uuid, o) = build_fresh(&l.dev, "loop-host", &ctx);
    assert!(o.stderr.is_empty(), "{ctx}: {o:?}");

    // The table as sfdisk reads it from the device, in the device's sectors.
    let (ss, start, size) = sfdisk_extent(&l.dev, 2);
    assert_eq!(ss, sector_size, "{ctx}");
    assert_eq!(start, 33 * m, "{ctx}: right after root, aligned");
    assert_eq!(size, 64 * m, "{ctx}: 64 MiB");
    if gpt {
        let (clean, v) = sgdisk_verify(&l.dev);
        assert!(clean, "{ctx}: {v}");
    }
    // The kernel knows it, without partx: build told it (BLKPG_ADD_PARTITION).
    assert!(wait_for(&l.part(2)), "{ctx}: no {} node", l.part(2));
    let k = sector_size / 512;
    assert_eq!(sysfs_extent(&l, 2), Some((start * k, size * k)), "{ctx}");
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
    require_loop!("sgdisk", "sfdisk", "fsck.vfat");
    build_on_loop(512, true);
    build_on_loop(512, false);
}

#[test]
fn build_on_4096_byte_sector_loop_devices_tells_the_kernel() {
    require_loop!("sgdisk", "sfdisk", "fsck.vfat");
    build_on_loop(4096, true);
    build_on_loop(4096, false);
}

/// On a 4Kn disk, the drive as made by hand: `mkfs.vfat -S 4096 -n CONFIG-2` at the end, and
/// an ISO 9660 image (2048-byte blocks, independent of the disk's sectors) on another disk.
#[test]
fn inspect_reads_hand_made_vfat_and_iso_drives_on_a_4kn_loop_device() {
    require_loop!(
        "sgdisk",
        "sfdisk",
        "mkfs.vfat",
        "mcopy",
        "genisoimage",
        "fsck.vfat"
    );
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    let tree = t.path().join("tree");
    make_tree(&tree, &uuid, "fourk");

    let l = LoopDev::new(128 * MIB, 4096);
    run("sgdisk", &["-n", "1:256:+32M", "-n", "2:-16M:0", &l.dev]);
    l.add_partitions();
    assert!(wait_for(&l.part(2)));
    run("mkfs.vfat", &["-S", "4096", "-n", "CONFIG-2", &l.part(2)]);
    mcopy_tree(&l.part(2), &tree);
    run("fsck.vfat", &["-n", &l.part(2)]);
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
    genisoimage(&tree, "config-2", &iso);
    let l = LoopDev::new(128 * MIB, 4096);
    run("sgdisk", &["-n", "1:256:+32M", "-n", "2:-8M:0", &l.dev]);
    l.add_partitions();
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
    require_loop!("sgdisk", "sfdisk", "fsck.vfat", "mkfs.ext4");
    for gpt in [true, false] {
        let ctx = format!("gpt={gpt}");
        let img = TempImage::new(128 * MIB);
        let l = LoopDev::attach(&img.path, 4096);
        if gpt {
            run("sgdisk", &["-n", "1:256:+32M", &l.dev]);
        } else {
            run_stdin("sfdisk", &["-q", &l.dev], "start=256, size=8192, type=83\n");
        }
        l.add_partitions();
        assert!(wait_for(&l.part(1)));
        // ext4 in root: for MBR the filesystems are what tells the sector size.
        run("mkfs.ext4", &["-q", "-F", &l.part(1)]);
        drop(l);

        let (uuid, _) = build_fresh(img.path_str(), "fourk-file", &ctx);
        let j = inspect_json(&["--device", img.path_str()]);
        assert_eq!(u(&j["sector_size"]), 4096, "{ctx}: {j:#}");
        assert_eq!(s(&j["filesystem"]), "ext4", "{ctx}");

        let l = LoopDev::attach(&img.path, 4096);
        if gpt {
            let (clean, v) = sgdisk_verify(&l.dev);
            assert!(clean, "{ctx}: {v}");
        }
        let (ss, start, size) = sfdisk_extent(&l.dev, 2);
        assert_eq!(ss, 4096);
        assert_eq!((start, size), (33 * 256, 64 * 256), "{ctx}");
        l.add_partitions();
        assert!(wait_for(&l.part(2)));
        run("fsck.vfat", &["-n", &l.part(2)]);
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
    require_loop!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy");
    let t = tempfile::tempdir().unwrap();
    let uuid = random_uuid();
    let tree = t.path().join("tree");
    make_tree(&tree, &uuid, "by-spec");
    // Names no other disk on the machine has.
    let partlabel = format!("seedpart-test-{}", random_hex(12));
    let label = format!("T{}", random_hex(10).to_uppercase());

    let l = LoopDev::new(96 * MIB, 512);
    run(
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
    l.add_partitions();
    assert!(wait_for(&l.part(2)));
    run("mkfs.vfat", &["-n", &label, &l.part(2)]);
    mcopy_tree(&l.part(2), &tree);
    let partuuid = run("sfdisk", &["--part-uuid", &l.dev, "2"])
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
    require_loop!("sgdisk", "sfdisk");
    let l = LoopDev::new(96 * MIB, 512);
    run("sgdisk", &["-n", "1:2048:+16M", &l.dev]);
    l.add_partitions();
    assert!(wait_for(&l.part(1)));
    let (uuid, _) = build_fresh(&l.dev, "named", "");
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
    let l = LoopDev::new(512 * MIB, 512);
    run("sgdisk", &["-n", "1:2048:+320M", "-c", "1:root", &l.dev]);
    l.add_partitions();
    assert!(wait_for(&l.part(1)));
    let mut args = mkfs[1..].to_vec();
    let p1 = l.part(1);
    args.push(&p1);
    run(mkfs[0], &args);
    let root = Mount::new(&[&l.part(1)]);
    // build while the root is mounted: the kernel is told through BLKPG.
    let (uuid, _) = build_fresh(&l.dev, "rooted", fstype);
    assert!(wait_for(&l.part(2)));

    let j = inspect_json(&["--root", root.path_str()]);
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
    let sub = root.path().join("etc");
    fs::create_dir_all(&sub).unwrap();
    let k = inspect_json(&["--root", sub.to_str().unwrap()]);
    assert_eq!(k, j);
}

#[test]
fn inspect_root_finds_the_drive_on_the_mounted_ext4_roots_disk() {
    require_loop!("sgdisk", "sfdisk", "mkfs.ext4", "mount", "umount");
    inspect_from_mounted_root(&["mkfs.ext4", "-q", "-F"], "ext4");
}

#[test]
fn inspect_root_finds_the_drive_on_the_mounted_xfs_roots_disk() {
    require_loop!("sgdisk", "sfdisk", "mkfs.xfs", "mount", "umount");
    inspect_from_mounted_root(&["mkfs.xfs", "-q", "-f"], "xfs");
}
