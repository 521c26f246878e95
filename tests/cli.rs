//! End-to-end tests of the `seedpart` binary's `inspect` and `build` on disk image files, checked
//! against independent tools: sgdisk, sfdisk, fsck.vfat, mtools, genisoimage, isoinfo, mkfs.*.
//! Drives are also made the way Ironic makes them (without seedpart) and read by `inspect`.
//! Every failure must exit 1 with one error line and leave the image byte for byte as it was.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SECTOR: u64 = 512;
/// 1 MiB in 512-byte sectors.
const ALIGN: u64 = MIB / SECTOR;

// ---------------------------------------------------------------------------------------------
// Running seedpart

fn build_ok(args: &[&str]) -> Out {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let o = seedpart(&all);
    assert_eq!(o.code, 0, "seedpart {all:?}: {o:?}");
    assert!(!o.stderr.contains("panicked"), "{o:?}");
    o
}

/// Exit 1, exactly one line on stderr, an error naming each of `needles`, no panic.
#[track_caller]
fn assert_one_error(o: &Out, needles: &[&str]) {
    assert_eq!(o.code, 1, "{o:?}");
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {o:?}");
    assert!(lines[0].starts_with("seedpart: error: "), "{o:?}");
    assert!(!o.stderr.contains("panicked"), "{o:?}");
    for n in needles {
        assert!(lines[0].contains(n), "error should name {n:?}: {o:?}");
    }
    // No cause said twice ("...: No such file (os error 2): No such file (os error 2)").
    let parts: Vec<&str> = lines[0].split(": ").filter(|p| p.len() > 8).collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(!parts[i + 1..].contains(p), "{p:?} repeated: {o:?}");
    }
}

/// `seedpart build --disk IMG ARGS...` fails with one error naming each of `needles`
/// (`assert_one_error`), and `img` is still byte for byte its `snapshot`.
#[track_caller]
fn assert_build_refused(img: &TempImage, snapshot: &Path, args: &[&str], needles: &[&str]) {
    let mut all = vec!["build", "--disk", img.path_str()];
    all.extend_from_slice(args);
    let o = seedpart(&all);
    assert_one_error(&o, needles);
    img.assert_unchanged(snapshot);
}

// ---------------------------------------------------------------------------------------------
// Images (`TempImage`s of 512-byte sectors)

impl TempImage {
    fn sectors(&self) -> u64 {
        self.len() / SECTOR
    }

    /// Writes `data` into partition `n`.
    fn fill_partition(&self, n: u32, data: &[u8]) {
        let p = sf_part(self, n);
        assert!(data.len() as u64 <= p.size * SECTOR, "does not fit");
        self.write_at(p.start * SECTOR, data);
    }
}

/// What `sfdisk --json` says of an image, which must have 512-byte sectors.
fn sf_table(img: &TempImage) -> SfTable {
    let t = sfdisk_json(img.path_str());
    assert_eq!(t.sector_size, 512);
    t
}

fn sf_part(img: &TempImage, n: u32) -> SfPart {
    sf_table(img)
        .partitions
        .into_iter()
        .find(|p| p.number == n)
        .unwrap_or_else(|| panic!("{}: no partition {n}", img.path_str()))
}

/// A GPT image made by sgdisk with a root partition of `root_mib` at 1 MiB. sgdisk sleeps a
/// second after every write, so each layout is made once and its first and last MiB (all that
/// sgdisk writes) are copied into the later images.
fn gpt_image(size: u64, root_mib: u64) -> TempImage {
    type Cache = BTreeMap<(u64, u64), (Vec<u8>, Vec<u8>)>;
    static MADE: Mutex<Cache> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let img = TempImage::new(size);
    if let Some((head, tail)) = made.get(&(size, root_mib)) {
        img.write_at(0, head);
        img.write_at(size - MIB, tail);
        return img;
    }
    sgdisk(
        img.path_str(),
        &[
            "-n",
            &format!("1:2048:+{root_mib}M"),
            "-t",
            "1:8300",
            "-c",
            "1:root",
        ],
    );
    made.insert(
        (size, root_mib),
        (
            img.read_at(0, MIB as usize),
            img.read_at(size - MIB, MIB as usize),
        ),
    );
    img
}

/// Adds partitions with `sfdisk --append` (no second's sleep as with sgdisk).
fn append(img: &TempImage, script: &str) {
    run_stdin("sfdisk", &["-q", "--append", img.path_str()], script);
}

/// Adds a partition of `mib` MiB at the end of a GPT disk as `sgdisk -n 0:-{mib}M:0` does: its
/// start aligned down to 1 MiB, its end the last usable sector.
fn append_at_end(img: &TempImage, mib: u64, extra: &str) {
    let end = sf_table(img).last_lba.unwrap() + 1;
    let start = (end - mib * ALIGN) / ALIGN * ALIGN;
    append(
        img,
        &format!("start={start}, size={}{extra}\n", end - start),
    );
}

/// An MBR image made by sfdisk with a root partition of `root_mib` at 1 MiB.
fn mbr_image(size: u64, root_mib: u64) -> TempImage {
    let img = TempImage::new(size);
    sfdisk_script(
        img.path_str(),
        &format!("start=2048, size={root_mib}MiB, type=83\n"),
    );
    img
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Gpt,
    Mbr,
}

impl Label {
    /// What `inspect` calls the table.
    fn name(self) -> &'static str {
        match self {
            Label::Gpt => "gpt",
            Label::Mbr => "mbr",
        }
    }
}

/// `gpt_image` or `mbr_image`.
fn image(label: Label, size: u64, root_mib: u64) -> TempImage {
    match label {
        Label::Gpt => gpt_image(size, root_mib),
        Label::Mbr => mbr_image(size, root_mib),
    }
}

/// ext4 inside partition `n`, made by mkfs.ext4 at the partition's offset in the image.
fn mkfs_ext4_in(img: &TempImage, n: u32) {
    let p = sf_part(img, n);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            &format!("offset={}", p.start * SECTOR),
            img.path_str(),
            &format!("{}k", p.size * SECTOR / 1024),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Config-drive trees

/// A file tree: relative path to `None` (a directory) or the file's bytes.
type Tree = BTreeMap<String, Option<Vec<u8>>>;

fn read_tree(root: &Path) -> Tree {
    fn walk(dir: &Path, rel: &str, out: &mut Tree) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.insert(r.clone(), None);
                walk(&e.path(), &r, out);
            } else {
                out.insert(r, Some(fs::read(e.path()).unwrap()));
            }
        }
    }
    let mut t = Tree::new();
    walk(root, "", &mut t);
    t
}

/// A config drive with the usual files, a dated version, content files, ec2, an empty file,
/// a binary user_data and long, mixed-case names.
fn make_tree(root: &Path, uuid: &str, hostname: &str) {
    let w = |rel: &str, data: &[u8]| write_file(&root.join(rel), data);
    let meta = format!(
        r#"{{"uuid": "{uuid}", "hostname": "{hostname}", "name": "cli-test",
  "public_keys": {{"ops": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x ops@example"}},
  "files": [{{"path": "/etc/motd", "content_path": "/content/0000"}}],
  "launch_index": 0, "availability_zone": "nova"}}"#
    );
    w("openstack/latest/meta_data.json", meta.as_bytes());
    w("openstack/2012-08-10/meta_data.json", meta.as_bytes());
    w(
        "openstack/latest/network_data.json",
        br#"{"links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
 "networks": [{"id": "n0", "type": "ipv4_dhcp", "link": "tap0"}], "services": []}"#,
    );
    w("openstack/latest/vendor_data.json", b"{}");
    let user_data: Vec<u8> = (0..150_000u32).map(|i| (i * 7 % 251) as u8).collect();
    w("openstack/latest/user_data", &user_data);
    w("openstack/content/0000", b"welcome to the cli test\n");
    w(
        "openstack/content/A Rather Long File Name, Mixed Case.txt",
        b"long names survive\n",
    );
    w("ec2/latest/meta-data.json", br#"{"instance-id": "i-0001"}"#);
    w("ec2/latest/empty", b"");
    fs::create_dir_all(root.join("ec2/2009-04-04")).unwrap();
}

/// A temporary directory holding `tree/`, a drive made by `make_tree`.
fn temp_tree(uuid: &str, hostname: &str) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, uuid, hostname);
    (t, tree)
}

/// The glean/vexxhost fixture, when the shared fixtures are there.
fn vexxhost() -> Option<PathBuf> {
    let p = fixtures()?.join("glean/vexxhost");
    p.join("openstack/latest/meta_data.json")
        .is_file()
        .then_some(p)
}

fn fixture_uuid(tree: &Path) -> String {
    let v: Value =
        serde_json::from_slice(&fs::read(tree.join("openstack/latest/meta_data.json")).unwrap())
            .unwrap();
    v["uuid"].as_str().unwrap().to_string()
}

/// The files of the vfat filesystem at `off` (`len` bytes) of the image, as mtools copies them
/// out, after `fsck.vfat -n` found it clean.
fn vfat_files(img: &TempImage, off: u64, len: u64) -> tempfile::TempDir {
    let part = img.extract(off, len);
    run("fsck.vfat", &["-n", part.to_str().unwrap()]);
    fs::remove_file(&part).unwrap();
    let out = tempfile::tempdir().unwrap();
    let spec = format!("{}@@{off}", img.path_str());
    run(
        "mcopy",
        &[
            "-s",
            "-n",
            "-i",
            &spec,
            "::/*",
            out.path().to_str().unwrap(),
        ],
    );
    out
}

/// Checks the vfat filesystem at `off` (`len` bytes) of the image: `fsck.vfat -n` clean, and
/// its content as mtools copies it out equal to `want`, byte for byte.
fn assert_vfat_holds(img: &TempImage, off: u64, len: u64, want: &Tree) {
    let got = read_tree(vfat_files(img, off, len).path());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the drive's names"
    );
    for (k, v) in want {
        assert!(got[k] == *v, "{k}: content differs");
    }
    // mdir sees the label build writes.
    let spec = format!("{}@@{off}", img.path_str());
    let dir = run("mdir", &["-i", &spec, "::/"]);
    assert!(dir.contains("CONFIG-2"), "mdir:\n{dir}");
}

/// Ironic's blob: the ISO, gzipped, base64 on one line.
fn ironic_blob(iso: &Path, out: &Path) {
    let gz = run_raw("gzip", &["-c", iso.to_str().unwrap()]);
    assert!(gz.status.success());
    let gzp = out.with_extension("gz");
    fs::write(&gzp, &gz.stdout).unwrap();
    let b64 = run("base64", &["-w0", gzp.to_str().unwrap()]);
    fs::write(out, b64).unwrap();
}

/// Where a partition that root may grow into ends: the last usable sector + 1 (GPT) or the
/// disk's end (MBR), aligned down to 1 MiB.
fn aligned_end(img: &TempImage) -> u64 {
    let t = sf_table(img);
    let end = match t.label.as_str() {
        "gpt" => t.last_lba.unwrap() + 1,
        _ => img.sectors().min(1 << 32),
    };
    end / ALIGN * ALIGN
}

/// `grow`: root (partition `root`) grows from its size to the aligned end.
fn assert_grow(j: &Value, img: &TempImage, root: u32) {
    let r = sf_part(img, root);
    let g = &j["grow"];
    assert_eq!(u(&g["number"]), u64::from(root), "{j:#}");
    assert_eq!(u(&g["from"]), r.size * SECTOR, "{j:#}");
    assert_eq!(u(&g["to"]), (aligned_end(img) - r.start) * SECTOR, "{j:#}");
}

/// What `inspect` must report of a drive in partition 2 of an image.
struct Found<'a> {
    table: Label,
    fs: &'a str,
    label: &'a str,
    /// The partition's offset and length in bytes.
    start: u64,
    size: u64,
    uuid: &'a str,
    hostname: &'a str,
}

impl Found<'_> {
    /// `j`, inspect's report on `img`, names this drive, and root (partition 1) grows to the
    /// aligned end (`assert_grow`).
    #[track_caller]
    fn assert_reported(&self, j: &Value, img: &TempImage, ctx: &str) {
        let p = &j["partition"];
        assert_eq!(s(&p["disk"]), img.path_str(), "{ctx}");
        assert_eq!(u(&p["number"]), 2, "{ctx}");
        assert_eq!(s(&p["table"]), self.table.name(), "{ctx}");
        assert_eq!(s(&p["fs"]), self.fs, "{ctx}");
        assert_eq!(s(&p["label"]), self.label, "{ctx}");
        assert_eq!(u(&p["start"]), self.start, "{ctx}");
        assert_eq!(u(&p["size"]), self.size, "{ctx}");
        assert_eq!(s(&j["metadata"]["uuid"]), self.uuid, "{ctx}");
        assert_eq!(s(&j["metadata"]["hostname"]), self.hostname, "{ctx}");
        assert_grow(j, img, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 1. build --from DIR on GPT and MBR images, both places, default and explicit size

fn check_build_from(tree: &Path, label: Label, at: &str, size: Option<&str>) {
    let ctx = format!(
        "{label:?} --at {at} --size {size:?} from {}",
        tree.display()
    );
    let img = image(label, 256 * MIB, 32);
    let before = sf_table(&img);
    let last_end = before
        .partitions
        .iter()
        .map(|p| p.start + p.size)
        .max()
        .unwrap();
    let mut args = vec![
        "build",
        "--disk",
        img.path_str(),
        "--from",
        tree.to_str().unwrap(),
        "--at",
        at,
    ];
    if let Some(sz) = size {
        args.extend(["--size", sz]);
    }
    let o = seedpart(&args);
    assert_eq!(o.code, 0, "{ctx}: {o:?}");
    assert!(o.stderr.is_empty(), "{ctx}: nothing to warn about: {o:?}");
    let want_bytes = match size {
        Some("16M") => 16 * MIB,
        None => 64 * MIB,
        Some(other) => panic!("{other}"),
    };
    let after = sf_table(&img);
    assert_eq!(after.partitions.len(), before.partitions.len() + 1, "{ctx}");
    let new = after
        .partitions
        .iter()
        .find(|p| p.number == 2)
        .unwrap()
        .clone();
    // The root partition is untouched.
    let root = after.partitions.iter().find(|p| p.number == 1).unwrap();
    assert_eq!((root.start, root.size), (2048, 32 * ALIGN), "{ctx}");
    match at {
        "after-last" => {
            assert_eq!(
                new.start,
                last_end.div_ceil(ALIGN) * ALIGN,
                "{ctx}: {new:?}"
            );
            assert_eq!(new.size * SECTOR, want_bytes, "{ctx}: {new:?}");
        }
        "end" => {
            assert_eq!(new.start % ALIGN, 0, "{ctx}: aligned start {new:?}");
            let end = match label {
                Label::Gpt => after.last_lba.unwrap() + 1,
                Label::Mbr => img.sectors(),
            };
            assert_eq!(new.start + new.size, end, "{ctx}: ends at the end {new:?}");
            assert!(
                new.size * SECTOR >= want_bytes && new.size * SECTOR < want_bytes + MIB,
                "{ctx}: {new:?}"
            );
        }
        _ => unreachable!(),
    }
    match (label, at) {
        (Label::Gpt, "after-last") => {
            assert_eq!(new.name.as_deref(), Some("config-v2"), "{ctx}");
        }
        (Label::Gpt, _) => assert_eq!(new.name, None, "{ctx}: Ironic's has no name"),
        (Label::Mbr, "after-last") => assert_eq!(new.type_, "99", "{ctx}"),
        (Label::Mbr, _) => assert_eq!(new.type_, "c", "{ctx}"),
    }
    if label == Label::Gpt {
        assert_sgdisk_clean(img.path_str());
        // A partition GUID of its own.
        let guid = new.uuid.as_deref().unwrap_or_default();
        assert_eq!(guid.len(), 36, "{ctx}: {new:?}");
        assert_ne!(new.uuid, root.uuid, "{ctx}");
    }
    assert_vfat_holds(
        &img,
        new.start * SECTOR,
        new.size * SECTOR,
        &read_tree(tree),
    );
    // And seedpart reads back what it wrote.
    let j = inspect_json(&["--device", img.path_str()]);
    let p = &j["partition"];
    assert_eq!(u(&p["number"]), 2, "{ctx}");
    assert_eq!(u(&p["start"]), new.start * SECTOR, "{ctx}");
    assert_eq!(u(&p["size"]), new.size * SECTOR, "{ctx}");
    assert_eq!(s(&p["fs"]), "vfat");
    assert_eq!(s(&p["label"]), "CONFIG-2");
    assert_eq!(s(&j["metadata"]["uuid"]), fixture_uuid(tree), "{ctx}");
    assert_grow(&j, &img, 1);
}

#[test]
fn build_from_dir_on_gpt_and_mbr_passes_sgdisk_sfdisk_fsck_and_mtools() {
    require_tools!("sgdisk", "sfdisk", "fsck.vfat", "mcopy", "mdir", "cmp");
    let made = tempfile::tempdir().unwrap();
    make_tree(
        made.path(),
        "9b0e51a3-6f1c-4c4e-a2f4-0c1d2e3f4a5b",
        "made.example.com",
    );
    let mut trees = vec![made.path().to_path_buf()];
    match vexxhost() {
        Some(v) => trees.push(v),
        None => eprintln!("SKIP (part): the glean/vexxhost fixture is not in shared/fixtures"),
    }
    for tree in &trees {
        for label in [Label::Gpt, Label::Mbr] {
            for at in ["after-last", "end"] {
                for size in [None, Some("16M")] {
                    check_build_from(tree, label, at, size);
                }
            }
        }
    }
}

#[test]
fn build_from_the_vexxhost_fixture_reads_back_its_hostname() {
    require_tools!("sgdisk");
    let Some(tree) = vexxhost() else {
        eprintln!("SKIP: the glean/vexxhost fixture is not in shared/fixtures");
        return;
    };
    let img = gpt_image(128 * MIB, 16);
    build_ok(&["--disk", img.path_str(), "--from", tree.to_str().unwrap()]);
    let j = inspect_json(&["--device", img.path_str()]);
    assert_eq!(
        s(&j["metadata"]["uuid"]),
        "63d5b209-be4a-43f3-8ee3-c24c797e9f73"
    );
    assert_eq!(s(&j["metadata"]["hostname"]), "glean-test.novalocal");
}

// ---------------------------------------------------------------------------------------------
// 2. A disk larger than the image: the backup header moves to the real end

#[test]
fn build_on_a_disk_larger_than_its_image_moves_the_backup_gpt_header() {
    require_tools!("sgdisk", "sfdisk", "mcopy", "fsck.vfat", "cmp");
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path(), "0e8f2c41-1111-4222-8333-944455556666", "big");
    for at in ["after-last", "end"] {
        let img = gpt_image(64 * MIB, 16);
        img.set_len(256 * MIB);
        let v = run_raw("sgdisk", &["-v", img.path_str()]);
        assert!(
            !String::from_utf8_lossy(&v.stdout).contains("No problems found"),
            "sgdisk sees the misplaced backup first"
        );
        // inspect plans root's growth to the real end, after moving the backup header.
        let j = inspect_json(&["--device", img.path_str()]);
        assert!(j["partition"].is_null());
        assert_eq!(j["grow"]["relocate_backup_header"], true, "{j:#}");
        let real_end = (256 * MIB / SECTOR - 33) / ALIGN * ALIGN;
        assert_eq!(u(&j["grow"]["to"]), (real_end - ALIGN) * SECTOR, "{j:#}");
        assert!(j["warnings"].to_string().contains("backup"), "{j:#}");
        let o = build_ok(&[
            "--disk",
            img.path_str(),
            "--from",
            tree.path().to_str().unwrap(),
            "--at",
            at,
        ]);
        assert!(
            o.stderr.starts_with("seedpart: warning: ")
                && o.stderr.contains(img.path_str())
                && o.stderr.contains("backup GPT header"),
            "{o:?}"
        );
        assert_sgdisk_clean(img.path_str());
        let t = sf_table(&img);
        assert_eq!(
            t.last_lba,
            Some(256 * MIB / SECTOR - 34),
            "usable to the real end"
        );
        let new = sf_part(&img, 2);
        if at == "end" {
            assert_eq!(new.start + new.size - 1, t.last_lba.unwrap());
        } else {
            assert_eq!(new.start, 17 * ALIGN);
        }
        // The stale backup header at the image's old end is gone (or inside the new drive).
        let old = 64 * MIB - SECTOR;
        if !(new.start * SECTOR..(new.start + new.size) * SECTOR).contains(&old) {
            assert_ne!(&img.read_at(old, 8)[..], b"EFI PART");
        }
        assert_vfat_holds(
            &img,
            new.start * SECTOR,
            new.size * SECTOR,
            &read_tree(tree.path()),
        );
        let j = inspect_json(&["--device", img.path_str()]);
        assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{j:#}");
        assert_grow(&j, &img, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. build --configdrive: Ironic's blob and the JSON dict form

#[test]
fn build_configdrive_ironic_blob_is_written_as_is_and_inspect_finds_it() {
    require_tools!(
        "sgdisk",
        "sfdisk",
        "genisoimage",
        "gzip",
        "base64",
        "isoinfo"
    );
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(
        &tree,
        "5d7c9e0a-aaaa-4bbb-8ccc-ddddeeeeffff",
        "blob.example.org",
    );
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);
    let blob = t.path().join("configdrive");
    ironic_blob(&iso, &blob);
    let iso_bytes = fs::read(&iso).unwrap();
    for (label, at) in [
        (Label::Gpt, "end"),
        (Label::Mbr, "end"),
        (Label::Gpt, "after-last"),
        (Label::Mbr, "after-last"),
    ] {
        let img = image(label, 192 * MIB, 16);
        build_ok(&[
            "--disk",
            img.path_str(),
            "--configdrive",
            blob.to_str().unwrap(),
            "--at",
            at,
        ]);
        if label == Label::Gpt {
            assert_sgdisk_clean(img.path_str());
        }
        let new = sf_part(&img, 2);
        // Ironic's size: 64 MiB, and the ISO written as is at its start.
        assert!(new.size * SECTOR >= 64 * MIB, "{new:?}");
        assert_eq!(img.read_at(new.start * SECTOR, iso_bytes.len()), iso_bytes);
        let part = img.extract(new.start * SECTOR, new.size * SECTOR);
        let info = run("isoinfo", &["-d", "-i", part.to_str().unwrap()]);
        assert!(info.contains("Volume id: config-2"), "{info}");
        let found = Found {
            table: label,
            fs: "iso9660",
            label: "config-2",
            start: new.start * SECTOR,
            size: new.size * SECTOR,
            uuid: "5d7c9e0a-aaaa-4bbb-8ccc-ddddeeeeffff",
            hostname: "blob.example.org",
        };
        let j = inspect_json(&["--device", img.path_str()]);
        found.assert_reported(&j, &img, &format!("{label:?} --at {at}"));
    }
}

#[test]
fn build_configdrive_json_dict_renders_a_vfat_drive() {
    require_tools!("sgdisk", "sfdisk", "mcopy", "fsck.vfat", "cmp");
    let t = tempfile::tempdir().unwrap();
    let dict = t.path().join("configdrive.json");
    fs::write(
        &dict,
        r##"{"meta_data": {"uuid": "77aa88bb-99cc-4dde-8eff-001122334455", "hostname": "dict.example.net",
  "name": "dict", "public_keys": {"k": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x k"}},
 "network_data": {"links": [], "networks": [], "services": []},
 "user_data": "#!/bin/sh\necho from the dict\n",
 "vendor_data": {"cloud": "test"}}"##,
    )
    .unwrap();
    for label in [Label::Gpt, Label::Mbr] {
        let img = image(label, 128 * MIB, 16);
        build_ok(&[
            "--disk",
            img.path_str(),
            "--configdrive",
            dict.to_str().unwrap(),
        ]);
        if label == Label::Gpt {
            assert_sgdisk_clean(img.path_str());
        }
        let new = sf_part(&img, 2);
        let j = inspect_json(&["--device", img.path_str()]);
        assert_eq!(s(&j["partition"]["fs"]), "vfat");
        assert_eq!(s(&j["partition"]["label"]), "CONFIG-2");
        assert_eq!(
            s(&j["metadata"]["uuid"]),
            "77aa88bb-99cc-4dde-8eff-001122334455"
        );
        assert_eq!(s(&j["metadata"]["hostname"]), "dict.example.net");
        // What mtools sees: the files Ironic would write, in both versions.
        let out = vfat_files(&img, new.start * SECTOR, new.size * SECTOR);
        for v in ["latest", "2012-08-10"] {
            let d = out.path().join("openstack").join(v);
            let m: Value =
                serde_json::from_slice(&fs::read(d.join("meta_data.json")).unwrap()).unwrap();
            assert_eq!(m["uuid"], "77aa88bb-99cc-4dde-8eff-001122334455");
            assert_eq!(
                fs::read_to_string(d.join("user_data")).unwrap(),
                "#!/bin/sh\necho from the dict\n"
            );
            let vd: Value =
                serde_json::from_slice(&fs::read(d.join("vendor_data2.json")).unwrap()).unwrap();
            assert_eq!(vd["cloud"], "test");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Drives made without seedpart, the way Ironic (and others) make them

/// Ironic on GPT: a 200 MiB root with ext4 written to a larger disk, `sgdisk -e`, then
/// `sgdisk -n 0:-64M:0` and the ISO dd'ed in.
#[test]
fn inspect_reads_ironics_gpt_iso_at_the_end_with_every_field() {
    require_tools!("sgdisk", "sfdisk", "genisoimage", "mkfs.ext4");
    let (t, tree) = temp_tree("c0ffee00-1234-4567-89ab-cdef01234567", "ironic-gpt");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);

    let img = TempImage::new(256 * MIB);
    sgdisk(img.path_str(), &["-n", "1:2048:+200M"]);
    mkfs_ext4_in(&img, 1);
    img.set_len(512 * MIB);
    sgdisk(img.path_str(), &["-e"]);
    sgdisk(img.path_str(), &["-n", "0:-64M:0"]);
    img.fill_partition(2, &fs::read(&iso).unwrap());
    let cd = sf_part(&img, 2);

    let j = inspect_json(&["--device", img.path_str()]);
    let found = Found {
        table: Label::Gpt,
        fs: "iso9660",
        label: "config-2",
        start: cd.start * SECTOR,
        size: cd.size * SECTOR,
        uuid: "c0ffee00-1234-4567-89ab-cdef01234567",
        hostname: "ironic-gpt",
    };
    found.assert_reported(&j, &img, "");
    assert!(j["partition"]["name"].is_null(), "{j:#}");
    assert_eq!(u(&j["grow"]["from"]), 200 * MIB);
    assert_eq!(s(&j["filesystem"]), "ext4");
    assert_eq!(s(&j["table"]), "gpt");
}

/// How a vfat drive is made by hand: mkfs.vfat at the partition's offset, then mcopy.
fn mkfs_vfat_in(img: &TempImage, n: u32, fat: &str, label: &str, tree: &Path) {
    let p = sf_part(img, n);
    run(
        "mkfs.vfat",
        &[
            "-F",
            fat,
            "-n",
            label,
            "--offset",
            &p.start.to_string(),
            img.path_str(),
            &(p.size * SECTOR / 1024).to_string(),
        ],
    );
    mcopy_tree(&format!("{}@@{}", img.path_str(), p.start * SECTOR), tree);
    // The FAT type is what was asked for.
    let boot = img.read_at(p.start * SECTOR, 512);
    let want = format!("FAT{fat}");
    let at = if fat == "32" { 82 } else { 54 };
    assert_eq!(&boot[at..at + 5], want.as_bytes());
}

/// A whole-device FAT`fat` volume of `size` bytes labelled CONFIG-2 holding `tree`, made by
/// mkfs.vfat and mcopy.
fn vfat_volume(size: u64, fat: &str, tree: &Path) -> TempImage {
    let vol = TempImage::new(size);
    run("mkfs.vfat", &["-F", fat, "-n", "CONFIG-2", vol.path_str()]);
    mcopy_tree(&format!("{}@@0", vol.path_str()), tree);
    vol
}

#[test]
fn inspect_reads_hand_made_vfat_drives_fat12_fat16_fat32_both_label_cases() {
    require_tools!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4");
    let (_t, tree) = temp_tree("fa7fa7fa-0000-4000-8000-000000000012", "vfat-host");
    // (table, FAT type, drive size in MiB, label, at the end of the disk or right after root)
    let cases = [
        (Label::Gpt, "12", 4, "config-2", true),
        (Label::Gpt, "16", 24, "CONFIG-2", true),
        (Label::Gpt, "32", 40, "config-2", true),
        (Label::Gpt, "12", 4, "CONFIG-2", false),
        (Label::Gpt, "16", 24, "config-2", false),
        (Label::Gpt, "32", 40, "CONFIG-2", false),
        (Label::Mbr, "32", 40, "CONFIG-2", true),
        (Label::Mbr, "12", 4, "config-2", true),
        (Label::Mbr, "16", 24, "CONFIG-2", false),
    ];
    for (table, fat, size, label, at_end) in cases {
        let ctx = format!("{table:?} FAT{fat} {size} MiB {label} at_end={at_end}");
        let img = image(table, 256 * MIB, 32);
        mkfs_ext4_in(&img, 1);
        match (table, at_end) {
            (Label::Gpt, true) => append_at_end(&img, size, ""),
            (Label::Gpt, false) => append(&img, &format!("size={size}MiB\n")),
            (Label::Mbr, true) => append(
                &img,
                &format!(
                    "start={}, size={size}MiB, type=c\n",
                    img.sectors() - size * ALIGN
                ),
            ),
            (Label::Mbr, false) => append(&img, &format!("size={size}MiB, type=c\n")),
        }
        mkfs_vfat_in(&img, 2, fat, label, &tree);
        let cd = sf_part(&img, 2);
        if at_end {
            let end = match table {
                Label::Gpt => sf_table(&img).last_lba.unwrap() + 1,
                Label::Mbr => img.sectors(),
            };
            assert_eq!(cd.start + cd.size, end, "{ctx}: made at the end");
        }
        let j = inspect_json(&["--device", img.path_str()]);
        let found = Found {
            table,
            fs: "vfat",
            label,
            start: cd.start * SECTOR,
            size: cd.size * SECTOR,
            uuid: "fa7fa7fa-0000-4000-8000-000000000012",
            hostname: "vfat-host",
        };
        found.assert_reported(&j, &img, &ctx);
        assert!(j["partition"]["name"].is_null(), "{ctx}: {j:#}");
        assert_eq!(s(&j["filesystem"]), "ext4", "{ctx}");
    }
}

/// The ISO as the tools that make config drives make it: genisoimage with openstacksdk's flags
/// (what Ironic runs), with Joliet or Rock Ridge alone, xorriso; label in either case.
#[test]
fn inspect_reads_isos_from_every_producer() {
    require_tools!("sgdisk", "genisoimage", "xorriso");
    let (t, tree) = temp_tree("15015015-0000-4000-8000-000000000150", "iso-host");
    let img = gpt_image(128 * MIB, 16);
    append_at_end(&img, 64, "");
    let producers: [(&str, &[&str], &str); 6] = [
        ("genisoimage", NOVA_ISO_FLAGS, "config-2"),
        ("genisoimage", &["-quiet", "-J"], "config-2"),
        ("genisoimage", &["-quiet", "-r"], "CONFIG-2"),
        ("genisoimage", &["-quiet", "-J", "-r"], "CONFIG-2"),
        ("xorrisofs", &["-quiet", "-J", "-r"], "config-2"),
        ("xorrisofs", &["-quiet", "-r"], "config-2"),
    ];
    for (prog, flags, label) in producers {
        let ctx = format!("{prog} {flags:?} -V {label}");
        let iso = t.path().join("cd.iso");
        let _ = fs::remove_file(&iso);
        let mut args: Vec<&str> = Vec::new();
        let (prog, first) = match prog {
            "xorrisofs" => ("xorriso", Some(["-as", "mkisofs"])),
            p => (p, None),
        };
        if let Some(f) = &first {
            args.extend(f);
        }
        args.extend(flags);
        args.extend([
            "-V",
            label,
            "-o",
            iso.to_str().unwrap(),
            tree.to_str().unwrap(),
        ]);
        run(prog, &args);
        // Clear the partition of the last image first.
        img.fill_partition(2, &vec![0; 2 * MIB as usize]);
        img.fill_partition(2, &fs::read(&iso).unwrap());
        let j = inspect_json(&["--device", img.path_str()]);
        assert_eq!(s(&j["partition"]["fs"]), "iso9660", "{ctx}");
        assert_eq!(s(&j["partition"]["label"]), label, "{ctx}");
        assert_eq!(s(&j["metadata"]["hostname"]), "iso-host", "{ctx}");
        assert_eq!(
            s(&j["metadata"]["uuid"]),
            "15015015-0000-4000-8000-000000000150",
            "{ctx}"
        );
    }
}

/// A config drive that is a whole device (virtual media, a CD-ROM): a bare ISO or vfat image.
#[test]
fn inspect_reads_a_whole_device_drive_without_a_table() {
    require_tools!("genisoimage", "mkfs.vfat", "mcopy");
    let (t, tree) = temp_tree("0d0d0d0d-0000-4000-8000-00000000cdcd", "cdrom");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);
    let vfat = vfat_volume(40 * MIB, "32", &tree);
    for (dev, fs_, label) in [
        (iso.to_str().unwrap(), "iso9660", "config-2"),
        (vfat.path_str(), "vfat", "CONFIG-2"),
    ] {
        let j = inspect_json(&["--device", dev]);
        let p = &j["partition"];
        assert!(j["table"].is_null(), "{j:#}");
        assert!(p["number"].is_null() && p["table"].is_null(), "{j:#}");
        assert_eq!(s(&p["disk"]), dev);
        assert_eq!(s(&p["fs"]), fs_);
        assert_eq!(s(&p["label"]), label);
        assert_eq!(u(&p["start"]), 0);
        assert_eq!(u(&p["size"]), fs::metadata(dev).unwrap().len());
        assert_eq!(p["deletable"], false, "a whole device is never deleted");
        assert_eq!(s(&j["metadata"]["hostname"]), "cdrom");
        assert!(j["grow"].is_null());
    }
    // build needs a partition table to add to.
    let snap = vfat.snapshot();
    assert_build_refused(
        &vfat,
        &snap,
        &["--from", tree.to_str().unwrap()],
        &[vfat.path_str(), "partition table"],
    );
}

/// MBR stops at 2^32 sectors: on a 3 TiB disk Ironic's drive ends at the 2 TiB mark, and root
/// grows up to there.
#[test]
fn build_at_end_on_a_3_tib_mbr_disk_stops_at_the_2_tib_mark() {
    require_tools!("sfdisk", "fsck.vfat");
    let (_t, tree) = temp_tree("2a2a2a2a-0000-4000-8000-0000000002ff", "huge");
    let img = TempImage::new(3 << 40);
    run_stdin(
        "sfdisk",
        &["-q", img.path_str()],
        "start=2048, size=100MiB, type=83\n",
    );
    build_ok(&[
        "--disk",
        img.path_str(),
        "--from",
        tree.to_str().unwrap(),
        "--at",
        "end",
    ]);
    let cd = sf_part(&img, 2);
    assert_eq!(cd.start + cd.size, 1 << 32, "{cd:?}");
    assert_eq!(cd.size * SECTOR, 64 * MIB);
    assert_eq!(cd.type_, "c");
    let part = img.extract(cd.start * SECTOR, cd.size * SECTOR);
    run("fsck.vfat", &["-n", part.to_str().unwrap()]);
    let j = inspect_json(&["--device", img.path_str()]);
    assert_eq!(u(&j["partition"]["start"]), cd.start * SECTOR);
    assert_eq!(u(&j["grow"]["to"]), ((1u64 << 32) - 2048) * SECTOR);
}

/// The seed's proposal made by hand: right after root, marked by GPT name `config-v2` or MBR
/// type 0x99 only (the filesystem's label is something else).
#[test]
fn inspect_finds_a_drive_right_after_root_by_gpt_name_or_mbr_type() {
    require_tools!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4");
    let (_t, tree) = temp_tree("ab12ab12-0000-4000-8000-00000000a99a", "marker-host");
    for label in [Label::Gpt, Label::Mbr] {
        let img = match label {
            Label::Gpt => {
                let img = gpt_image(128 * MIB, 32);
                append(&img, "size=16MiB, name=config-v2\n");
                img
            }
            Label::Mbr => {
                let img = TempImage::new(128 * MIB);
                sfdisk_script(
                    img.path_str(),
                    "start=2048, size=32MiB, type=83\nstart=67584, size=16MiB, type=99\n",
                );
                img
            }
        };
        mkfs_ext4_in(&img, 1);
        mkfs_vfat_in(&img, 2, "16", "SEED", &tree);
        let j = inspect_json(&["--device", img.path_str()]);
        let p = &j["partition"];
        assert_eq!(u(&p["number"]), 2, "{label:?} {j:#}");
        assert_eq!(u(&p["start"]), 33 * MIB);
        assert_eq!(u(&p["size"]), 16 * MIB);
        assert_eq!(s(&p["label"]), "SEED");
        let reasons: Vec<&str> = p["found_by"].as_array().unwrap().iter().map(s).collect();
        match label {
            Label::Gpt => {
                assert_eq!(s(&p["name"]), "config-v2");
                assert_eq!(s(&p["table"]), "gpt");
                assert_eq!(reasons, ["GPT name config-v2"]);
            }
            Label::Mbr => {
                assert!(p["name"].is_null());
                assert_eq!(s(&p["table"]), "mbr");
                assert_eq!(reasons, ["MBR type 0x99"]);
            }
        }
        assert_eq!(s(&j["metadata"]["hostname"]), "marker-host");
        // Root grows over the deleted drive to the aligned end.
        assert_grow(&j, &img, 1);
        assert_eq!(s(&j["filesystem"]), "ext4");
    }
}

/// Ironic on MBR: a primary partition at the disk's end holding the ISO.
#[test]
fn inspect_reads_an_mbr_primary_at_the_end() {
    require_tools!("sfdisk", "genisoimage", "mkfs.ext4");
    let (t, tree) = temp_tree("3b3b3b3b-1111-4222-8333-444444444444", "ironic-mbr");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);
    let img = mbr_image(256 * MIB, 64);
    mkfs_ext4_in(&img, 1);
    let start = img.sectors() - 64 * ALIGN;
    sfdisk_script(
        img.path_str(),
        &format!("start=2048, size=64MiB, type=83\nstart={start}, size=64MiB, type=c\n"),
    );
    img.fill_partition(2, &fs::read(&iso).unwrap());
    let j = inspect_json(&["--device", img.path_str()]);
    let found = Found {
        table: Label::Mbr,
        fs: "iso9660",
        label: "config-2",
        start: start * SECTOR,
        size: 64 * MIB,
        uuid: "3b3b3b3b-1111-4222-8333-444444444444",
        hostname: "ironic-mbr",
    };
    found.assert_reported(&j, &img, "");
    assert!(j["partition"]["name"].is_null());
    assert_eq!(
        u(&j["grow"]["to"]),
        256 * MIB - MIB,
        "MBR: to the disk's end"
    );
    assert_eq!(s(&j["filesystem"]), "ext4");
}

// ---------------------------------------------------------------------------------------------
// 5. Several candidates, and none

#[test]
fn several_candidates_is_an_error_naming_both_and_none_is_null() {
    require_tools!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy");
    let (_t, tree) = temp_tree("d0d0d0d0-1111-4222-8333-444444444444", "two");
    // GPT: one by name, one by label.
    let img = gpt_image(128 * MIB, 16);
    append(&img, "size=8MiB, name=config-v2\nsize=8MiB\n");
    mkfs_vfat_in(&img, 3, "12", "config-2", &tree);
    let snap = img.snapshot();
    let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
    assert_one_error(
        &o,
        &[img.path_str(), "partition 2", "partition 3", "--device"],
    );
    assert!(o.stdout.is_empty(), "{o:?}");
    let o = seedpart(&["inspect", "--device", img.path_str()]);
    assert_one_error(&o, &[img.path_str(), "partition 2", "partition 3"]);
    // build refuses too, and changes nothing.
    assert_build_refused(
        &img,
        &snap,
        &["--from", tree.to_str().unwrap()],
        &[img.path_str(), "already has a config drive"],
    );

    // MBR: two 0x99 partitions.
    let img = TempImage::new(128 * MIB);
    sfdisk_script(
        img.path_str(),
        "start=2048, size=16MiB, type=83\nsize=8MiB, type=99\nsize=8MiB, type=99\n",
    );
    let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
    assert_one_error(&o, &[img.path_str(), "partition 2", "partition 3"]);

    // None: exit 0, partition and metadata null, growth still planned.
    for img in [gpt_image(128 * MIB, 16), mbr_image(128 * MIB, 16)] {
        let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stderr.is_empty(), "{o:?}");
        let j: Value = serde_json::from_str(&o.stdout).unwrap();
        assert!(j["partition"].is_null(), "{j:#}");
        assert!(j["metadata"].is_null(), "{j:#}");
        assert_grow(&j, &img, 1);
        let o = seedpart(&["inspect", "--device", img.path_str()]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.contains("none found"), "{o:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input: exit 1, one error line naming what and where, the image unchanged

fn corrupt_header_crc(img: &TempImage, lba: u64) {
    let off = lba * SECTOR;
    let mut h = img.read_at(off, 92);
    assert_eq!(&h[..8], b"EFI PART");
    h[16] ^= 0xff; // the header CRC
    img.write_at(off, &h);
}

#[test]
fn corrupt_gpt_headers() {
    require_tools!("sgdisk", "cmp");
    let (_t, tree) = temp_tree("bad0bad0-1111-4222-8333-444444444444", "bad");
    let tree = tree.to_str().unwrap();

    // Both headers broken, by CRC or wiped: build and inspect fail naming the disk.
    for wipe in [false, true] {
        let img = gpt_image(64 * MIB, 16);
        let last = img.sectors() - 1;
        for lba in [1, last] {
            if wipe {
                img.write_at(lba * SECTOR, &[0; 512]);
            } else {
                corrupt_header_crc(&img, lba);
            }
        }
        let snap = img.snapshot();
        assert_build_refused(&img, &snap, &["--from", tree], &[img.path_str(), "GPT"]);
        let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
        assert_one_error(&o, &[img.path_str(), "GPT"]);
        assert!(o.stdout.is_empty());
    }

    // A disk smaller than the image written to it: the primary's usable range runs past the
    // end and there is no backup at the end.
    let img = gpt_image(128 * MIB, 16);
    img.set_len(96 * MIB);
    let snap = img.snapshot();
    assert_build_refused(
        &img,
        &snap,
        &["--from", tree],
        &[img.path_str(), "corrupt GPT", "does not fit"],
    );

    // Primary broken only (CRC, or the header sector wiped): the backup is used, with a
    // warning, and build rewrites a clean table.
    for wipe in [false, true] {
        let ctx = format!("primary wiped={wipe}");
        let img = gpt_image(128 * MIB, 16);
        if wipe {
            img.write_at(SECTOR, &[0; 512]);
        } else {
            corrupt_header_crc(&img, 1);
        }
        let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
        assert_eq!(o.code, 0, "{ctx}: {o:?}");
        assert!(
            o.stderr.contains("warning") && o.stderr.contains("backup"),
            "{ctx}: {o:?}"
        );
        let j: Value = serde_json::from_str(&o.stdout).unwrap();
        let w = j["warnings"].to_string();
        assert!(
            w.contains("primary") && w.contains("backup"),
            "{ctx}: {j:#}"
        );
        let o = build_ok(&["--disk", img.path_str(), "--from", tree]);
        assert!(
            o.stderr.contains("warning") && o.stderr.contains("backup"),
            "{ctx}: {o:?}"
        );
        assert_sgdisk_clean(img.path_str());
        let j = inspect_json(&["--device", img.path_str()]);
        assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{ctx}: {j:#}");
        assert_eq!(s(&j["partition"]["name"]), "config-v2");
    }
}

#[test]
fn truncated_fat_drive_is_refused_with_a_clear_error() {
    require_tools!("sgdisk", "mkfs.vfat", "mcopy");
    let (_t, tree) = temp_tree("7777aaaa-1111-4222-8333-444444444444", "trunc");
    // A 32 MiB FAT16 volume put into an 8 MiB partition: cut short.
    let vol = vfat_volume(32 * MIB, "16", &tree);
    let img = gpt_image(128 * MIB, 16);
    append_at_end(&img, 8, "");
    img.fill_partition(2, &vol.read_at(0, 8 * MIB as usize));
    let o = seedpart(&["inspect", "--device", img.path_str(), "--json"]);
    assert_one_error(&o, &[img.path_str(), "partition 2", "vfat", "truncated"]);
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_from_trees_are_refused_before_anything_is_written() {
    require_tools!("sgdisk", "cmp");
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(128 * MIB, 16);
    let snap = img.snapshot();

    // Malformed meta_data.json: the file, its line and column.
    let bad = t.path().join("malformed");
    make_tree(&bad, "00000000-1111-4222-8333-444444444444", "x");
    fs::write(
        bad.join("openstack/latest/meta_data.json"),
        "{\n  \"uuid\": \"00000000-1111-4222-8333-444444444444\",\n  oops\n}\n",
    )
    .unwrap();
    assert_build_refused(
        &img,
        &snap,
        &["--from", bad.to_str().unwrap()],
        &[
            bad.to_str().unwrap(),
            "openstack/latest/meta_data.json",
            "line 3",
            "column",
        ],
    );

    // Missing meta_data.json.
    let missing = t.path().join("missing");
    make_tree(&missing, "00000000-1111-4222-8333-444444444444", "x");
    fs::remove_file(missing.join("openstack/latest/meta_data.json")).unwrap();
    assert_build_refused(
        &img,
        &snap,
        &["--from", missing.to_str().unwrap()],
        &[missing.to_str().unwrap(), "meta_data.json"],
    );

    // A symlink in the tree (to a file that exists: it is the link itself that is refused).
    let sym = t.path().join("symlink");
    make_tree(&sym, "00000000-1111-4222-8333-444444444444", "x");
    std::os::unix::fs::symlink(
        "/etc/hostname",
        sym.join("openstack/latest/vendor_data2.json"),
    )
    .unwrap();
    assert_build_refused(
        &img,
        &snap,
        &["--from", sym.to_str().unwrap()],
        &["vendor_data2.json", "symlink"],
    );

    // Not a directory at all.
    assert_build_refused(
        &img,
        &snap,
        &["--from", t.path().join("nope").to_str().unwrap()],
        &["--from", "nope"],
    );
}

#[test]
fn build_refusals_leave_the_image_byte_identical() {
    require_tools!("sgdisk", "sfdisk", "cmp", "genisoimage", "gzip", "base64");
    let (t, tree) = temp_tree("12121212-1111-4222-8333-444444444444", "refusals");
    let tree = tree.to_str().unwrap();
    let big = t.path().join("big");
    make_tree(&big, "12121212-1111-4222-8333-444444444444", "big");
    fs::write(big.join("openstack/latest/user_data"), vec![7u8; 2 << 20]).unwrap();
    let big = big.to_str().unwrap().to_string();

    // An MBR with four primaries: no 5th.
    let img = TempImage::new(128 * MIB);
    sfdisk_script(
        img.path_str(),
        "start=2048, size=16MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\n",
    );
    let snap = img.snapshot();
    for at in ["after-last", "end"] {
        assert_build_refused(
            &img,
            &snap,
            &["--from", tree, "--at", at],
            &[img.path_str(), "5th primary"],
        );
    }

    // A GPT whose 128 entries are all taken.
    let img = TempImage::new(256 * MIB);
    let mut script = String::from("label: gpt\n");
    for _ in 0..128 {
        script += "size=1MiB\n";
    }
    sfdisk_script(img.path_str(), &script);
    let snap = img.snapshot();
    assert_build_refused(
        &img,
        &snap,
        &["--from", tree],
        &[img.path_str(), "all 128 GPT partition entries are in use"],
    );

    // Not enough room, in either place, on either table.
    for img in [gpt_image(64 * MIB, 16), mbr_image(64 * MIB, 16)] {
        let snap = img.snapshot();
        for at in ["after-last", "end"] {
            assert_build_refused(
                &img,
                &snap,
                &["--from", tree, "--at", at, "--size", "64M"],
                &[img.path_str(), "no room"],
            );
        }
        // A tree that does not fit the size asked for.
        assert_build_refused(
            &img,
            &snap,
            &["--from", &big, "--size", "1M"],
            &[img.path_str(), "does not fit"],
        );
    }

    let img = gpt_image(128 * MIB, 16);
    let snap = img.snapshot();
    // --configdrive with garbage, with base64 of something that is no ISO, with a missing file.
    let garbage = t.path().join("garbage");
    fs::write(&garbage, "this is not a configdrive!\n").unwrap();
    let b64 = t.path().join("b64");
    fs::write(&b64, "aGVsbG8gd29ybGQK\n").unwrap();
    let absent = t.path().join("absent");
    let cases: [(&Path, &[&str]); 3] = [
        (&garbage, &["--configdrive", "garbage", "not a configdrive"]),
        (&b64, &["--configdrive", "b64", "ISO"]),
        (&absent, &["--configdrive", "absent"]),
    ];
    for (file, needles) in cases {
        let args = ["--configdrive", file.to_str().unwrap()];
        assert_build_refused(&img, &snap, &args, needles);
    }

    // An ISO not labelled config-2 at the end would never be found: refused.
    let iso = t.path().join("cidata.iso");
    genisoimage(Path::new(tree), "cidata", &iso);
    let blob = t.path().join("cidata.b64");
    ironic_blob(&iso, &blob);
    assert_build_refused(
        &img,
        &snap,
        &["--configdrive", blob.to_str().unwrap(), "--at", "end"],
        &[img.path_str(), "cidata", "config-2"],
    );

    // A drive already present.
    build_ok(&["--disk", img.path_str(), "--from", tree]);
    let snap = img.snapshot();
    for at in ["after-last", "end"] {
        assert_build_refused(
            &img,
            &snap,
            &["--from", tree, "--at", at],
            &[img.path_str(), "already has a config drive (partition 2)"],
        );
    }

    // The disk itself missing.
    let o = seedpart(&[
        "build",
        "--disk",
        t.path().join("no-disk.img").to_str().unwrap(),
        "--from",
        tree,
    ]);
    assert_one_error(&o, &["no-disk.img"]);
}

#[test]
fn usage_errors_exit_2_and_change_nothing() {
    require_tools!("sgdisk", "cmp");
    let (_t, tree) = temp_tree("12121212-1111-4222-8333-444444444444", "usage");
    let tree = tree.to_str().unwrap();
    let img = gpt_image(64 * MIB, 16);
    let snap = img.snapshot();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "build",
            "--disk",
            img.path_str(),
            "--from",
            tree,
            "--configdrive",
            tree,
        ],
        vec!["build", "--disk", img.path_str()],
        vec!["build", "--from", tree],
        vec![
            "build",
            "--disk",
            img.path_str(),
            "--from",
            tree,
            "--size",
            "12Q",
        ],
        vec![
            "build",
            "--disk",
            img.path_str(),
            "--from",
            tree,
            "--size",
            "0",
        ],
        vec![
            "build",
            "--disk",
            img.path_str(),
            "--from",
            tree,
            "--size",
            "-5M",
        ],
        vec![
            "build",
            "--disk",
            img.path_str(),
            "--from",
            tree,
            "--at",
            "middle",
        ],
        vec!["inspect", "--bogus"],
        vec!["frobnicate"],
    ];
    for args in cases {
        let o = seedpart(&args);
        assert_eq!(o.code, 2, "{args:?}: {o:?}");
        assert!(o.stderr.contains("error"), "{args:?}: {o:?}");
        assert!(!o.stderr.contains("panicked"), "{args:?}: {o:?}");
        img.assert_unchanged(&snap);
    }
}
