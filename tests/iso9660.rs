//! The ISO 9660 reader against real images made at test time by genisoimage and xorriso, the
//! tools Ironic and Nova use to write config drives.

mod common;

use common::*;
use std::fs::File;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use seedpart::disk::Window;
use seedpart::fs::iso9660::{Iso9660, probe_label};
use seedpart::fs::{DriveFs, DriveFsKind, Entry, EntryKind, FsError, RelPath, read_small_file};

const LONG_NAME_LEN: usize = 90;

fn long_name() -> String {
    let stem = "a_long_file_name_that_overflows_joliet_".to_string();
    let mut s = stem.clone();
    while s.len() < LONG_NAME_LEN - 4 {
        s.push('x');
    }
    s.push_str(".txt");
    s
}

fn big_file() -> Vec<u8> {
    // Pseudo-random so that a misplaced chunk cannot compare equal by accident.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..3_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes the config-drive tree the images are made from.
fn make_tree(root: &Path) {
    let files: Vec<(String, Vec<u8>)> =
        vec![
        (
            "openstack/latest/meta_data.json".into(),
            br#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "test.novalocal"}"#
                .to_vec(),
        ),
        (
            "openstack/latest/user_data".into(),
            b"#!/bin/sh\necho hello\n".to_vec(),
        ),
        ("openstack/latest/network_data.json".into(), b"{}".to_vec()),
        ("openstack/latest/empty".into(), Vec::new()),
        (
            "openstack/latest/Mixed.Case.multi.dot.json".into(),
            b"dots".to_vec(),
        ),
        ("openstack/content/0000".into(), b"content zero\n".to_vec()),
        ("openstack/content/0001".into(), big_file()),
        (format!("openstack/content/{}", long_name()), b"long".to_vec()),
        (
            "ec2/2009-04-04/meta-data.json".into(),
            br#"{"instance-id": "i-0001"}"#.to_vec(),
        ),
    ];
    for (p, data) in files {
        write_file(&root.join(p), data);
    }
}

struct Made {
    _dir: tempfile::TempDir,
    tree: PathBuf,
    iso: PathBuf,
}

/// The flags Ironic makes config drives with: Rock Ridge and Joliet, labelled config-2.
const IRONIC_FLAGS: &[&str] = &["-quiet", "-J", "-r", "-V", "config-2"];

/// Makes `tree/` and an image of it with `tool args... -o iso tree`; `None` (after a `SKIP:`
/// line) when the tool is not installed.
#[track_caller]
fn make_iso(tool: &str, args: &[&str]) -> Option<Made> {
    if !require_tool(tool) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    make_tree(&tree);
    let iso = dir.path().join("drive.iso");
    let mut all = args.to_vec();
    all.extend(["-o", iso.to_str().unwrap(), tree.to_str().unwrap()]);
    run(tool, &all);
    Some(Made {
        _dir: dir,
        tree,
        iso,
    })
}

/// What the reader must list for a host tree, with `rename` applied to every name: depth first,
/// each directory before its contents, sorted by (translated) name.
fn expected(root: &Path, rename: &dyn Fn(&str) -> String) -> Vec<(Entry, PathBuf)> {
    fn walk(
        dir: &Path,
        rel: &RelPath,
        rename: &dyn Fn(&str) -> String,
        out: &mut Vec<(Entry, PathBuf)>,
    ) {
        let mut kids: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (rename(e.file_name().to_str().unwrap()), e.path())
            })
            .collect();
        kids.sort();
        for (name, host) in kids {
            let path = rel.join(&name).unwrap();
            if host.is_dir() {
                out.push((
                    Entry {
                        path: path.clone(),
                        kind: EntryKind::Dir,
                    },
                    host.clone(),
                ));
                walk(&host, &path, rename, out);
            } else {
                let size = std::fs::metadata(&host).unwrap().len();
                out.push((
                    Entry {
                        path,
                        kind: EntryKind::File { size },
                    },
                    host,
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &RelPath::root(), rename, &mut out);
    out
}

/// Lists the drive, compares with the host tree, and compares every file byte for byte.
fn assert_same_tree<F: DriveFs>(fs: &mut F, tree: &Path, rename: &dyn Fn(&str) -> String) {
    let want = expected(tree, rename);
    let got = fs.entries().unwrap();
    let want_entries: Vec<Entry> = want.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(got, want_entries);
    for (entry, host) in &want {
        if let EntryKind::File { size } = entry.kind {
            let mut out = Vec::new();
            let n = fs.copy_file(&entry.path, &mut out).unwrap();
            assert_eq!(n, size, "{}", entry.path);
            assert!(
                out == std::fs::read(host).unwrap(),
                "{}: contents differ",
                entry.path
            );
        }
    }
}

fn same(name: &str) -> String {
    name.to_string()
}

fn open_file(iso: &Path) -> Iso9660<File> {
    Iso9660::open(File::open(iso).unwrap()).unwrap()
}

/// An image made with `tool args...` (`make_iso`) reads as config-2 holding the whole tree
/// under its own names.
#[track_caller]
fn assert_reads_the_whole_tree(tool: &str, args: &[&str]) {
    let Some(m) = make_iso(tool, args) else {
        return;
    };
    let mut fs = open_file(&m.iso);
    assert_eq!(fs.label(), "config-2");
    assert_same_tree(&mut fs, &m.tree, &same);
}

#[test]
fn genisoimage_rock_ridge_and_joliet() {
    let Some(m) = make_iso("genisoimage", IRONIC_FLAGS) else {
        return;
    };
    let mut fs = open_file(&m.iso);
    assert_eq!(fs.kind(), DriveFsKind::Iso9660);
    assert_eq!(fs.label(), "config-2");
    assert_same_tree(&mut fs, &m.tree, &same);
    // The listing is cached; a second call gives the same answer.
    assert_eq!(fs.entries().unwrap().len(), expected(&m.tree, &same).len());
    assert_eq!(
        probe_label(&mut File::open(&m.iso).unwrap()).unwrap(),
        Some("config-2".into())
    );
}

#[test]
fn genisoimage_nova_options() {
    let flags = [NOVA_ISO_FLAGS, &["-V", "config-2"]].concat();
    assert_reads_the_whole_tree("genisoimage", &flags);
}

#[test]
fn xorriso_rock_ridge_and_joliet() {
    assert_reads_the_whole_tree(
        "xorriso",
        &["-as", "mkisofs", "-quiet", "-r", "-J", "-V", "config-2"],
    );
}

#[test]
fn genisoimage_joliet_only() {
    let Some(m) = make_iso("genisoimage", &["-quiet", "-J", "-V", "config-2"]) else {
        return;
    };
    let mut fs = open_file(&m.iso);
    assert_eq!(fs.label(), "config-2");
    // Joliet keeps case and dots but genisoimage cuts names at 64 UCS-2 characters.
    let joliet = |n: &str| n.chars().take(64).collect::<String>();
    assert_same_tree(&mut fs, &m.tree, &joliet);
    let cut: String = long_name().chars().take(64).collect();
    assert!(
        fs.entries()
            .unwrap()
            .iter()
            .any(|e| e.path.as_str() == format!("openstack/content/{cut}"))
    );
}

#[test]
fn genisoimage_plain_iso_names() {
    let Some(m) = make_iso("genisoimage", &["-quiet", "-V", "config-2"]) else {
        return;
    };
    let mut fs = open_file(&m.iso);
    assert_eq!(fs.label(), "config-2");
    let got = fs.entries().unwrap();
    let paths: Vec<&str> = got.iter().map(|e| e.path.as_str()).collect();
    // Level 1 names as recorded: upper case, 8.3, ";1" and the empty extension's dot removed.
    for p in [
        "EC2",
        "OPENSTAC",
        "OPENSTAC/LATEST",
        "OPENSTAC/LATEST/META_DAT.JSO",
        "OPENSTAC/LATEST/USER_DAT",
        "OPENSTAC/LATEST/EMPTY",
        "OPENSTAC/CONTENT/0001",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    let want = expected(&m.tree, &same);
    assert_eq!(got.len(), want.len());
    let read = |fs: &mut Iso9660<File>, p: &str| {
        let mut out = Vec::new();
        fs.copy_file(&RelPath::parse(p).unwrap(), &mut out).unwrap();
        out
    };
    assert_eq!(
        read(&mut fs, "OPENSTAC/LATEST/META_DAT.JSO"),
        std::fs::read(m.tree.join("openstack/latest/meta_data.json")).unwrap()
    );
    assert_eq!(read(&mut fs, "OPENSTAC/CONTENT/0001"), big_file());
    assert!(read(&mut fs, "OPENSTAC/LATEST/EMPTY").is_empty());
}

#[test]
fn listing_matches_isoinfo() {
    let Some(m) = make_iso("genisoimage", IRONIC_FLAGS) else {
        return;
    };
    if !require_tool("isoinfo") {
        return;
    }
    let mut theirs: Vec<String> = run("isoinfo", &["-R", "-f", "-i", m.iso.to_str().unwrap()])
        .lines()
        .map(|l| l.trim_start_matches('/').to_string())
        .collect();
    theirs.sort();
    let mut ours: Vec<String> = open_file(&m.iso)
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path.as_str().to_string())
        .collect();
    ours.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn missing_file_and_directory_paths() {
    let Some(m) = make_iso("genisoimage", IRONIC_FLAGS) else {
        return;
    };
    let mut fs = open_file(&m.iso);
    let missing = RelPath::parse("openstack/latest/vendor_data.json").unwrap();
    assert!(matches!(
        fs.copy_file(&missing, &mut Vec::new()),
        Err(FsError::NotFound { .. })
    ));
    assert_eq!(read_small_file(&mut fs, &missing, 1 << 20).unwrap(), None);
    let dir = RelPath::parse("openstack/latest").unwrap();
    match fs.copy_file(&dir, &mut Vec::new()) {
        Err(FsError::Hostile { path, reason, .. }) => {
            assert_eq!(path, "openstack/latest");
            assert!(reason.contains("directory"), "{reason}");
        }
        other => panic!("copying a directory gave {other:?}"),
    }
    let ud = RelPath::parse("openstack/latest/user_data").unwrap();
    assert_eq!(
        read_small_file(&mut fs, &ud, 1 << 20).unwrap().unwrap(),
        b"#!/bin/sh\necho hello\n"
    );
    let big = RelPath::parse("openstack/content/0001").unwrap();
    assert!(matches!(
        read_small_file(&mut fs, &big, 1 << 20),
        Err(FsError::TooLarge { .. })
    ));
}

/// A disk image with the ISO at 1 MiB, between runs of garbage that must never be read.
fn disk_with_iso_at(iso: &Path, offset: u64) -> (tempfile::NamedTempFile, u64) {
    let bytes = std::fs::read(iso).unwrap();
    let mut disk = tempfile::NamedTempFile::new().unwrap();
    disk.write_all(&vec![0xA5; offset as usize]).unwrap();
    disk.write_all(&bytes).unwrap();
    disk.write_all(&vec![0x5A; 1 << 20]).unwrap();
    disk.flush().unwrap();
    (disk, bytes.len() as u64)
}

#[test]
fn image_inside_a_partition_window() {
    let Some(m) = make_iso("genisoimage", IRONIC_FLAGS) else {
        return;
    };
    let offset = 1 << 20;
    let (disk, iso_len) = disk_with_iso_at(&m.iso, offset);
    // The partition is larger than the image, as when Ironic writes a drive into 64 MiB.
    let mut win = Window::read_only(File::open(disk.path()).unwrap(), offset, iso_len + 65536);
    assert_eq!(probe_label(&mut win).unwrap(), Some("config-2".into()));
    let mut fs = Iso9660::open(win).unwrap();
    assert_same_tree(&mut fs, &m.tree, &same);
}

#[test]
fn window_shorter_than_the_image_errors_naming_the_extent() {
    let Some(m) = make_iso("genisoimage", IRONIC_FLAGS) else {
        return;
    };
    let offset = 1 << 20;
    let (disk, iso_len) = disk_with_iso_at(&m.iso, offset);
    // Cut the partition inside the 3 MB file, the bulk of the image.
    let short = iso_len - (1 << 20) - 300_000;
    let win = Window::read_only(File::open(disk.path()).unwrap(), offset, short);
    let mut fs = Iso9660::open(win).unwrap();
    match fs.entries() {
        Err(e @ FsError::Hostile { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("extent at block"), "{msg}");
            assert!(msg.contains("beyond"), "{msg}");
            assert!(msg.contains("openstack/content/0001"), "{msg}");
        }
        other => panic!("a truncated image gave {other:?}"),
    }
    // Far too short for even the volume descriptors: a clean error, no panic.
    let win = Window::read_only(File::open(disk.path()).unwrap(), offset, 30_000);
    assert!(matches!(Iso9660::open(win), Err(FsError::Corrupt { .. })));
}

#[test]
fn probe_says_none_for_other_bytes() {
    assert_eq!(
        probe_label(&mut Cursor::new(vec![0u8; 1 << 16])).unwrap(),
        None
    );
    assert_eq!(probe_label(&mut Cursor::new(vec![0u8; 100])).unwrap(), None);
    assert!(matches!(
        Iso9660::open(Cursor::new(vec![0u8; 1 << 16])),
        Err(FsError::Corrupt { .. })
    ));
}
