//! `seedpart run --device IMAGE --root DIR` on a disk image file: the table half of the job
//! (copy, delete, grow the partition) without root or loop devices. There is no kernel to tell
//! and no mounted filesystem to grow: those steps are skipped for an image.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MIB: u64 = 1 << 20;

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn seedpart(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("SEEDPART_FAULT")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn drive(dir: &Path) -> std::path::PathBuf {
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

fn layout(img: &Path) -> Vec<(u64, u64, u64)> {
    let j: serde_json::Value =
        serde_json::from_str(&sh("sfdisk", &["--json", img.to_str().unwrap()])).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let n: u64 = node
                .trim_start_matches(img.to_str().unwrap())
                .parse()
                .unwrap();
            (n, p["start"].as_u64().unwrap(), p["size"].as_u64().unwrap())
        })
        .collect()
}

#[test]
fn run_on_an_image_copies_deletes_and_grows_then_is_a_no_op() {
    if !have("sgdisk") || !have("sfdisk") {
        eprintln!("SKIP: sgdisk and sfdisk are needed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("disk.img");
    fs::File::create(&img).unwrap().set_len(512 * MIB).unwrap();
    sh(
        "sgdisk",
        &["-n", "1:2048:+200M", "-c", "1:root", img.to_str().unwrap()],
    );
    let src = drive(t.path());
    let o = seedpart(&[
        "build",
        "--disk",
        img.to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
        "--at",
        "end",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Written onto a bigger disk: the backup GPT header moves too.
    fs::OpenOptions::new()
        .write(true)
        .open(&img)
        .unwrap()
        .set_len(1024 * MIB)
        .unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let o = seedpart(&[
        "run",
        "--device",
        img.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
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
    assert!(sh("sgdisk", &["-v", img.to_str().unwrap()]).contains("No problems found"));
    let state: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("var/lib/seedpart/state.json")).unwrap())
            .unwrap();
    assert_eq!(state["partition_deleted"], true);
    assert_eq!(state["partition_grown"]["number"], 1);

    // Again: nothing to do, nothing written.
    let before = fs::read(&img).unwrap();
    let st = fs::read(root.join("var/lib/seedpart/state.json")).unwrap();
    let o = seedpart(&[
        "run",
        "--device",
        img.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        fs::read(&img).unwrap() == before,
        "a second run changed the image"
    );
    assert_eq!(
        fs::read(root.join("var/lib/seedpart/state.json")).unwrap(),
        st
    );

    // status reads what run recorded.
    let o = seedpart(&["status", "--root", root.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["copy"]["verified"], true, "{j}");
    assert_eq!(
        j["state"]["instance_uuid"],
        "11111111-2222-4333-8444-555555555555"
    );
}

#[test]
fn no_grow_and_keep_partition_leave_the_table_alone() {
    if !have("sgdisk") || !have("sfdisk") {
        eprintln!("SKIP: sgdisk and sfdisk are needed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("disk.img");
    fs::File::create(&img).unwrap().set_len(512 * MIB).unwrap();
    sh("sgdisk", &["-n", "1:2048:+200M", img.to_str().unwrap()]);
    let src = drive(t.path());
    let o = seedpart(&[
        "build",
        "--disk",
        img.to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let before = layout(&img);
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let o = seedpart(&[
        "run",
        "--keep-partition",
        "--no-grow",
        "--device",
        img.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(layout(&img), before);
    assert!(
        root.join("var/lib/seedpart/config-drive/SHA256SUMS")
            .exists()
    );
    // --no-grow alone: the drive goes, root stays.
    let o = seedpart(&[
        "run",
        "--no-grow",
        "--device",
        img.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let after = layout(&img);
    assert_eq!(after, vec![before[0]]);
}

/// A `#!` user-data script is scheduled by `run`, run once by `seedpart user-data`, and its exit
/// status shows in `seedpart status`.
#[test]
fn user_data_script_runs_once_and_status_shows_its_exit() {
    if !have("sgdisk") || !have("sfdisk") {
        eprintln!("SKIP: sgdisk and sfdisk are needed");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let img = t.path().join("disk.img");
    fs::File::create(&img).unwrap().set_len(256 * MIB).unwrap();
    sh("sgdisk", &["-n", "1:2048:+100M", img.to_str().unwrap()]);
    let src = drive(t.path());
    fs::write(
        src.join("openstack/latest/user_data"),
        b"#!/bin/sh\nexit 3\n",
    )
    .unwrap();
    let o = seedpart(&[
        "build",
        "--disk",
        img.to_str().unwrap(),
        "--from",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let r = root.to_str().unwrap();
    let o = seedpart(&["run", "--device", img.to_str().unwrap(), "--root", r]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(root.join("var/lib/seedpart/user-data.pending").exists());
    let o = seedpart(&["user-data", "--root", r]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed script fails the unit: {}",
        text(&o)
    );
    assert!(text(&o).contains("exited with status 3"), "{}", text(&o));
    // Once only.
    let o = seedpart(&["user-data", "--root", r]);
    assert!(o.status.success(), "{}", text(&o));
    let o = seedpart(&["status", "--root", r, "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["user_data"]["result"], "failed", "{j}");
    assert_eq!(j["user_data"]["exit_code"], 3, "{j}");
    let o = seedpart(&["status", "--root", r]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("failed (exit status 3)"),
        "{}",
        text(&o)
    );
}
