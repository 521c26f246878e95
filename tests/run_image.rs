//! `seedpart run --device IMAGE --root DIR` on a disk image file: the table half of the job
//! (copy, delete, grow the partition) without root or loop devices. There is no kernel to tell
//! and no mounted filesystem to grow: those steps are skipped for an image.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn drive(dir: &Path) -> PathBuf {
    let d = dir.join("drive/openstack/latest");
    fs::create_dir_all(&d).unwrap();
    fs::write(
        d.join("meta_data.json"),
        br#"{"uuid": "11111111-2222-4333-8444-555555555555", "hostname": "img"}"#,
    )
    .unwrap();
    fs::write(d.join("user_data"), b"#cloud-config\n").unwrap();
    dir.join("drive")
}

/// A GPT image of `size` bytes made by sgdisk with `sgdisk_args`, and beside it the drive tree
/// (`drive`) and an empty directory for the root: (image, drive tree, root).
fn disk(size: u64, sgdisk_args: &[&str]) -> (TempImage, PathBuf, PathBuf) {
    let img = sgdisk_image(size, sgdisk_args);
    let src = drive(img.dir());
    let root = img.dir().join("root");
    fs::create_dir(&root).unwrap();
    (img, src, root)
}

/// `seedpart build --disk IMG --from SRC EXTRA...`, which must succeed.
fn build(img: &TempImage, src: &Path, extra: &[&str]) {
    let mut args = vec![
        "build",
        "--disk",
        img.path_str(),
        "--from",
        src.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = seedpart(&args);
    assert!(o.ok(), "{}", o.text());
}

/// `seedpart run FLAGS... --device IMG --root ROOT`, which must succeed.
fn run_job(img: &TempImage, root: &Path, flags: &[&str]) {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend(["--device", img.path_str(), "--root", root.to_str().unwrap()]);
    let o = seedpart(&args);
    assert!(o.ok(), "{}", o.text());
}

/// The partitions as sfdisk reads them: (number, start, size).
fn layout(img: &TempImage) -> Vec<(u32, u64, u64)> {
    sfdisk_json(img.path_str())
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.size))
        .collect()
}

#[test]
fn run_on_an_image_copies_deletes_and_grows_then_is_a_no_op() {
    require_tools!("sgdisk", "sfdisk");
    let (img, src, root) = disk(512 * MIB, &["-n", "1:2048:+200M", "-c", "1:root"]);
    build(&img, &src, &["--at", "end"]);
    // Written onto a bigger disk: the backup GPT header moves too.
    img.set_len(1024 * MIB);
    run_job(&img, &root, &[]);
    assert_eq!(
        fs::read(root.join("var/lib/seedpart/config-drive/openstack/latest/meta_data.json"))
            .unwrap(),
        fs::read(src.join("openstack/latest/meta_data.json")).unwrap()
    );
    let l = layout(&img);
    assert_eq!(l.len(), 1, "the drive is gone: {l:?}");
    let disk = 1024 * MIB / 512;
    assert_eq!(
        (l[0].0, l[0].1),
        (1, 2048),
        "root keeps its number and start"
    );
    assert_eq!(
        l[0].1 + l[0].2,
        disk - 2048,
        "root ends at the last aligned MiB below the backup GPT"
    );
    assert_sgdisk_clean(img.path_str());
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("var/lib/seedpart/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["partition_deleted"], true);
    assert_eq!(state["partition_grown"]["number"], 1);

    // Again: nothing to do, nothing written.
    let before = img.bytes();
    let st = fs::read(root.join("var/lib/seedpart/state.json")).unwrap();
    run_job(&img, &root, &[]);
    assert!(img.bytes() == before, "a second run changed the image");
    assert_eq!(
        fs::read(root.join("var/lib/seedpart/state.json")).unwrap(),
        st
    );

    // status reads what run recorded.
    let o = seedpart(&["status", "--root", root.to_str().unwrap(), "--json"]);
    assert!(o.ok(), "{}", o.text());
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(j["copy"]["verified"], true, "{j}");
    // The path recorded is the booted system's, not the --root it was written through.
    assert_eq!(
        j["state"]["copy"]["path"], "/var/lib/seedpart/config-drive",
        "{j}"
    );
    assert_eq!(
        j["state"]["instance_uuid"],
        "11111111-2222-4333-8444-555555555555"
    );
}

#[test]
fn no_grow_and_keep_partition_leave_the_table_alone() {
    require_tools!("sgdisk", "sfdisk");
    let (img, src, root) = disk(512 * MIB, &["-n", "1:2048:+200M"]);
    build(&img, &src, &[]);
    let before = layout(&img);
    run_job(&img, &root, &["--keep-partition", "--no-grow"]);
    assert_eq!(layout(&img), before);
    assert!(
        root.join("var/lib/seedpart/config-drive/SHA256SUMS")
            .exists()
    );
    // --no-grow alone: the drive goes, root stays.
    run_job(&img, &root, &["--no-grow"]);
    let after = layout(&img);
    assert_eq!(after, vec![before[0]]);
}

/// A `#!` user-data script is scheduled by `run`, run once by `seedpart user-data`, and its exit
/// status shows in `seedpart status`.
#[test]
fn user_data_script_runs_once_and_status_shows_its_exit() {
    require_tools!("sgdisk", "sfdisk");
    let (img, src, root) = disk(256 * MIB, &["-n", "1:2048:+100M"]);
    fs::write(
        src.join("openstack/latest/user_data"),
        b"#!/bin/sh\nexit 3\n",
    )
    .unwrap();
    build(&img, &src, &[]);
    let r = root.to_str().unwrap();
    run_job(&img, &root, &[]);
    assert!(root.join("var/lib/seedpart/user-data.pending").exists());
    let o = seedpart(&["user-data", "--root", r]);
    assert_eq!(o.code, 1, "a failed script fails the unit: {}", o.text());
    assert!(o.text().contains("exited with status 3"), "{}", o.text());
    // Once only.
    let o = seedpart(&["user-data", "--root", r]);
    assert!(o.ok(), "{}", o.text());
    let o = seedpart(&["status", "--root", r, "--json"]);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(j["user_data"]["result"], "failed", "{j}");
    assert_eq!(j["user_data"]["exit_code"], 3, "{j}");
    let o = seedpart(&["status", "--root", r]);
    assert!(o.stdout.contains("failed (exit status 3)"), "{}", o.text());
}
