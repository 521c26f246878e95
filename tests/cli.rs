//! End-to-end tests of the `seedpart` binary's `inspect` and `build` on disk image files, checked
//! against independent tools: sgdisk, sfdisk, fsck.vfat, mtools, genisoimage, isoinfo, mkfs.*.
//! Drives are also made the way Ironic makes them (without seedpart) and read by `inspect`.
//! Every failure must exit 1 with one error line and leave the image byte for byte as it was.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");
const MIB: u64 = 1 << 20;
const SECTOR: u64 = 512;
/// 1 MiB in 512-byte sectors.
const ALIGN: u64 = MIB / SECTOR;

// ---------------------------------------------------------------------------------------------
// Running things

fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Returns early (with a printed SKIP reason) when a tool is missing.
macro_rules! require {
    ($($tool:expr),+ $(,)?) => {
        for t in [$($tool),+] {
            if !have(t) {
                eprintln!("SKIP: {t} is not installed");
                return;
            }
        }
    };
}

/// Runs a tool that must succeed; returns its stdout.
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

/// Runs a tool with `input` on its stdin; it must succeed.
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

fn build_ok(args: &[&str]) -> Out {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let o = seedpart(&all);
    assert_eq!(o.code, 0, "seedpart {all:?}: {o:?}");
    assert!(!o.stderr.contains("panicked"), "{o:?}");
    o
}

fn inspect_json(dev: &str) -> Value {
    let o = seedpart(&["inspect", "--device", dev, "--json"]);
    assert_eq!(o.code, 0, "inspect --device {dev}: {o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("inspect JSON: {e}: {o:?}"))
}

/// Exit 1, exactly one line on stderr, an error naming each of `needles`, no panic.
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

// ---------------------------------------------------------------------------------------------
// Images

/// A sparse disk image in its own temporary directory.
struct Img {
    dir: TempDir,
    path: PathBuf,
}

impl Img {
    fn new(size: u64) -> Img {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        File::create(&path).unwrap().set_len(size).unwrap();
        Img { dir, path }
    }

    fn p(&self) -> &str {
        self.path.to_str().unwrap()
    }

    fn len(&self) -> u64 {
        fs::metadata(&self.path).unwrap().len()
    }

    fn set_len(&self, size: u64) {
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap()
            .set_len(size)
            .unwrap();
    }

    fn sectors(&self) -> u64 {
        self.len() / SECTOR
    }

    fn write_at(&self, off: u64, bytes: &[u8]) {
        let mut f = OpenOptions::new().write(true).open(&self.path).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(bytes).unwrap();
    }

    fn read_at(&self, off: u64, len: u64) -> Vec<u8> {
        let mut f = File::open(&self.path).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut b = vec![0; len as usize];
        f.read_exact(&mut b).unwrap();
        b
    }

    /// Copies `len` bytes at `off` into a file of their own (a partition, dd'ed out).
    fn extract(&self, off: u64, len: u64) -> PathBuf {
        let out = self.dir.path().join(format!("part-{off}.img"));
        let mut f = File::open(&self.path).unwrap();
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut o = File::create(&out).unwrap();
        let n = std::io::copy(&mut f.take(len), &mut o).unwrap();
        assert_eq!(n, len, "partition runs past the image's end");
        out
    }

    /// A byte-for-byte copy, to compare with after a failure.
    fn snapshot(&self) -> PathBuf {
        let out = self.dir.path().join("snapshot.img");
        tool("cp", &["--sparse=always", self.p(), out.to_str().unwrap()]);
        out
    }

    fn assert_unchanged(&self, snap: &Path) {
        let st = Command::new("cmp")
            .args(["-s", self.p(), snap.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success(), "{}: the image changed", self.p());
    }

    /// Writes `data` into partition `n`.
    fn fill_partition(&self, n: u32, data: &[u8]) {
        let p = sf_part(self, n);
        assert!(data.len() as u64 <= p.size * SECTOR, "does not fit");
        self.write_at(p.start * SECTOR, data);
    }
}

fn sgdisk(img: &Img, args: &[&str]) {
    let mut a: Vec<&str> = args.to_vec();
    a.push(img.p());
    tool("sgdisk", &a);
}

fn sfdisk(img: &Img, script: &str) {
    tool_stdin("sfdisk", &["-q", img.p()], script);
}

/// `sgdisk -v` finds nothing wrong.
fn assert_sgdisk_clean(img: &Img) {
    let out = tool("sgdisk", &["-v", img.p()]);
    assert!(out.contains("No problems found"), "sgdisk -v:\n{out}");
}

/// A partition as `sfdisk --json` reports it (sectors of 512 bytes).
#[derive(Debug, Clone)]
struct SfPart {
    number: u32,
    start: u64,
    size: u64,
    kind: String,
    name: Option<String>,
    uuid: Option<String>,
}

struct SfTable {
    label: String,
    last_lba: Option<u64>,
    parts: Vec<SfPart>,
}

fn sf_table(img: &Img) -> SfTable {
    let v: Value = serde_json::from_str(&tool("sfdisk", &["--json", img.p()])).unwrap();
    let t = &v["partitiontable"];
    assert_eq!(t["sectorsize"].as_u64().unwrap_or(512), 512);
    let parts = t["partitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| SfPart {
            number: p["node"].as_str().unwrap()[img.p().len()..]
                .parse()
                .unwrap(),
            start: p["start"].as_u64().unwrap(),
            size: p["size"].as_u64().unwrap(),
            kind: p["type"].as_str().unwrap().to_string(),
            name: p["name"].as_str().map(str::to_string),
            uuid: p["uuid"].as_str().map(str::to_string),
        })
        .collect();
    SfTable {
        label: t["label"].as_str().unwrap().to_string(),
        last_lba: t["lastlba"].as_u64(),
        parts,
    }
}

fn sf_part(img: &Img, n: u32) -> SfPart {
    sf_table(img)
        .parts
        .into_iter()
        .find(|p| p.number == n)
        .unwrap_or_else(|| panic!("{}: no partition {n}", img.p()))
}

/// A GPT image made by sgdisk with a root partition of `root_mib` at 1 MiB. sgdisk sleeps a
/// second after every write, so each layout is made once and its first and last MiB (all that
/// sgdisk writes) are copied into the later images.
fn gpt_image(size: u64, root_mib: u64) -> Img {
    type Cache = BTreeMap<(u64, u64), (Vec<u8>, Vec<u8>)>;
    static MADE: Mutex<Cache> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(|e| e.into_inner());
    let img = Img::new(size);
    if let Some((head, tail)) = made.get(&(size, root_mib)) {
        img.write_at(0, head);
        img.write_at(size - MIB, tail);
        return img;
    }
    sgdisk(
        &img,
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
        (img.read_at(0, MIB), img.read_at(size - MIB, MIB)),
    );
    img
}

/// Adds partitions with `sfdisk --append` (no second's sleep as with sgdisk).
fn append(img: &Img, script: &str) {
    tool_stdin("sfdisk", &["-q", "--append", img.p()], script);
}

/// Adds a partition of `mib` MiB at the end of a GPT disk as `sgdisk -n 0:-{mib}M:0` does: its
/// start aligned down to 1 MiB, its end the last usable sector.
fn append_at_end(img: &Img, mib: u64, extra: &str) {
    let end = sf_table(img).last_lba.unwrap() + 1;
    let start = (end - mib * ALIGN) / ALIGN * ALIGN;
    append(
        img,
        &format!("start={start}, size={}{extra}\n", end - start),
    );
}

/// An MBR image made by sfdisk with a root partition of `root_mib` at 1 MiB.
fn mbr_image(size: u64, root_mib: u64) -> Img {
    let img = Img::new(size);
    sfdisk(&img, &format!("start=2048, size={root_mib}MiB, type=83\n"));
    img
}

/// ext4 inside partition `n`, made by mkfs.ext4 at the partition's offset in the image.
fn mkfs_ext4_in(img: &Img, n: u32) {
    let p = sf_part(img, n);
    tool(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-E",
            &format!("offset={}", p.start * SECTOR),
            img.p(),
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
    let w = |rel: &str, data: &[u8]| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    };
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

fn vexxhost() -> Option<PathBuf> {
    let p = PathBuf::from(FIXTURES).join("glean/vexxhost");
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

/// Checks the vfat filesystem at `off` (`len` bytes) of the image: `fsck.vfat -n` clean, and
/// its content as mtools copies it out equal to `want`, byte for byte.
fn assert_vfat_holds(img: &Img, off: u64, len: u64, want: &Tree) {
    let part = img.extract(off, len);
    let fsck = Command::new("fsck.vfat")
        .args(["-n", part.to_str().unwrap()])
        .output()
        .unwrap();
    let fsck_out =
        String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "fsck.vfat -n:\n{fsck_out}");
    fs::remove_file(&part).unwrap();
    let out = tempfile::tempdir().unwrap();
    let spec = format!("{}@@{off}", img.p());
    tool(
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
    let got = read_tree(out.path());
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the drive's names"
    );
    for (k, v) in want {
        assert!(got[k] == *v, "{k}: content differs");
    }
    // mdir sees the label build writes.
    let dir = tool("mdir", &["-i", &spec, "::/"]);
    assert!(dir.contains("CONFIG-2"), "mdir:\n{dir}");
}

fn genisoimage(src: &Path, label: &str, out: &Path) {
    tool(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-r",
            "-V",
            label,
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ],
    );
}

/// Ironic's blob: the ISO, gzipped, base64 on one line.
fn ironic_blob(iso: &Path, out: &Path) {
    let gz = Command::new("gzip")
        .args(["-c", iso.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(gz.status.success());
    let gzp = out.with_extension("gz");
    fs::write(&gzp, &gz.stdout).unwrap();
    let b64 = tool("base64", &["-w0", gzp.to_str().unwrap()]);
    fs::write(out, b64).unwrap();
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Where a partition that root may grow into ends: the last usable sector + 1 (GPT) or the
/// disk's end (MBR), aligned down to 1 MiB.
fn aligned_end(img: &Img) -> u64 {
    let t = sf_table(img);
    let end = match t.label.as_str() {
        "gpt" => t.last_lba.unwrap() + 1,
        _ => img.sectors().min(1 << 32),
    };
    end / ALIGN * ALIGN
}

/// `grow`: root (partition `root`) grows from its size to the aligned end.
fn assert_grow(j: &Value, img: &Img, root: u32) {
    let r = sf_part(img, root);
    let g = &j["grow"];
    assert_eq!(u(&g["number"]), u64::from(root), "{j:#}");
    assert_eq!(u(&g["from"]), r.size * SECTOR, "{j:#}");
    assert_eq!(u(&g["to"]), (aligned_end(img) - r.start) * SECTOR, "{j:#}");
}

// ---------------------------------------------------------------------------------------------
// 1. build --from DIR on GPT and MBR images, both places, default and explicit size

#[derive(Clone, Copy, Debug, PartialEq)]
enum Label {
    Gpt,
    Mbr,
}

fn check_build_from(tree: &Path, label: Label, at: &str, size: Option<&str>) {
    let ctx = format!(
        "{label:?} --at {at} --size {size:?} from {}",
        tree.display()
    );
    let img = match label {
        Label::Gpt => gpt_image(256 * MIB, 32),
        Label::Mbr => mbr_image(256 * MIB, 32),
    };
    let before = sf_table(&img);
    let last_end = before.parts.iter().map(|p| p.start + p.size).max().unwrap();
    let mut args = vec![
        "build",
        "--disk",
        img.p(),
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
    assert_eq!(after.parts.len(), before.parts.len() + 1, "{ctx}");
    let new = after.parts.iter().find(|p| p.number == 2).unwrap().clone();
    // The root partition is untouched.
    let root = after.parts.iter().find(|p| p.number == 1).unwrap();
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
        (Label::Mbr, "after-last") => assert_eq!(new.kind, "99", "{ctx}"),
        (Label::Mbr, _) => assert_eq!(new.kind, "c", "{ctx}"),
    }
    if label == Label::Gpt {
        assert_sgdisk_clean(&img);
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
    let j = inspect_json(img.p());
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
    require!("sgdisk", "sfdisk", "fsck.vfat", "mcopy", "mdir", "cmp");
    let made = tempfile::tempdir().unwrap();
    make_tree(
        made.path(),
        "9b0e51a3-6f1c-4c4e-a2f4-0c1d2e3f4a5b",
        "made.example.com",
    );
    let mut trees = vec![made.path().to_path_buf()];
    match vexxhost() {
        Some(v) => trees.push(v),
        None => eprintln!("SKIP (part): the glean/vexxhost fixture is not in {FIXTURES}"),
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
    require!("sgdisk");
    let Some(tree) = vexxhost() else {
        eprintln!("SKIP: the glean/vexxhost fixture is not in {FIXTURES}");
        return;
    };
    let img = gpt_image(128 * MIB, 16);
    build_ok(&["--disk", img.p(), "--from", tree.to_str().unwrap()]);
    let j = inspect_json(img.p());
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
    require!("sgdisk", "sfdisk", "mcopy", "fsck.vfat", "cmp");
    let tree = tempfile::tempdir().unwrap();
    make_tree(tree.path(), "0e8f2c41-1111-4222-8333-944455556666", "big");
    for at in ["after-last", "end"] {
        let img = gpt_image(64 * MIB, 16);
        img.set_len(256 * MIB);
        let v = Command::new("sgdisk")
            .args(["-v", img.p()])
            .output()
            .unwrap();
        assert!(
            !String::from_utf8_lossy(&v.stdout).contains("No problems found"),
            "sgdisk sees the misplaced backup first"
        );
        // inspect plans root's growth to the real end, after moving the backup header.
        let j = inspect_json(img.p());
        assert!(j["partition"].is_null());
        assert_eq!(j["grow"]["relocate_backup_header"], true, "{j:#}");
        let real_end = (256 * MIB / SECTOR - 33) / ALIGN * ALIGN;
        assert_eq!(u(&j["grow"]["to"]), (real_end - ALIGN) * SECTOR, "{j:#}");
        assert!(j["warnings"].to_string().contains("backup"), "{j:#}");
        let o = build_ok(&[
            "--disk",
            img.p(),
            "--from",
            tree.path().to_str().unwrap(),
            "--at",
            at,
        ]);
        assert!(
            o.stderr.starts_with("seedpart: warning: ")
                && o.stderr.contains(img.p())
                && o.stderr.contains("backup GPT header"),
            "{o:?}"
        );
        assert_sgdisk_clean(&img);
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
        let j = inspect_json(img.p());
        assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{j:#}");
        assert_grow(&j, &img, 1);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. build --configdrive: Ironic's blob and the JSON dict form

#[test]
fn build_configdrive_ironic_blob_is_written_as_is_and_inspect_finds_it() {
    require!(
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
        let img = match label {
            Label::Gpt => gpt_image(192 * MIB, 16),
            Label::Mbr => mbr_image(192 * MIB, 16),
        };
        build_ok(&[
            "--disk",
            img.p(),
            "--configdrive",
            blob.to_str().unwrap(),
            "--at",
            at,
        ]);
        if label == Label::Gpt {
            assert_sgdisk_clean(&img);
        }
        let new = sf_part(&img, 2);
        // Ironic's size: 64 MiB, and the ISO written as is at its start.
        assert!(new.size * SECTOR >= 64 * MIB, "{new:?}");
        assert_eq!(
            img.read_at(new.start * SECTOR, iso_bytes.len() as u64),
            iso_bytes
        );
        let part = img.extract(new.start * SECTOR, new.size * SECTOR);
        let info = tool("isoinfo", &["-d", "-i", part.to_str().unwrap()]);
        assert!(info.contains("Volume id: config-2"), "{info}");
        let j = inspect_json(img.p());
        let p = &j["partition"];
        assert_eq!(u(&p["number"]), 2);
        assert_eq!(
            s(&p["table"]),
            if label == Label::Gpt { "gpt" } else { "mbr" }
        );
        assert_eq!(s(&p["fs"]), "iso9660");
        assert_eq!(s(&p["label"]), "config-2");
        assert_eq!(u(&p["start"]), new.start * SECTOR);
        assert_eq!(u(&p["size"]), new.size * SECTOR);
        assert_eq!(
            s(&j["metadata"]["uuid"]),
            "5d7c9e0a-aaaa-4bbb-8ccc-ddddeeeeffff"
        );
        assert_eq!(s(&j["metadata"]["hostname"]), "blob.example.org");
        assert_grow(&j, &img, 1);
    }
}

#[test]
fn build_configdrive_json_dict_renders_a_vfat_drive() {
    require!("sgdisk", "sfdisk", "mcopy", "fsck.vfat", "cmp");
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
        let img = match label {
            Label::Gpt => gpt_image(128 * MIB, 16),
            Label::Mbr => mbr_image(128 * MIB, 16),
        };
        build_ok(&["--disk", img.p(), "--configdrive", dict.to_str().unwrap()]);
        if label == Label::Gpt {
            assert_sgdisk_clean(&img);
        }
        let new = sf_part(&img, 2);
        let j = inspect_json(img.p());
        assert_eq!(s(&j["partition"]["fs"]), "vfat");
        assert_eq!(s(&j["partition"]["label"]), "CONFIG-2");
        assert_eq!(
            s(&j["metadata"]["uuid"]),
            "77aa88bb-99cc-4dde-8eff-001122334455"
        );
        assert_eq!(s(&j["metadata"]["hostname"]), "dict.example.net");
        // What mtools sees: the files Ironic would write, in both versions.
        let part = img.extract(new.start * SECTOR, new.size * SECTOR);
        let fsck = Command::new("fsck.vfat")
            .args(["-n", part.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(fsck.success());
        let out = tempfile::tempdir().unwrap();
        let spec = format!("{}@@{}", img.p(), new.start * SECTOR);
        tool(
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
    require!("sgdisk", "sfdisk", "genisoimage", "mkfs.ext4");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "c0ffee00-1234-4567-89ab-cdef01234567", "ironic-gpt");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);

    let img = Img::new(256 * MIB);
    sgdisk(&img, &["-n", "1:2048:+200M"]);
    mkfs_ext4_in(&img, 1);
    img.set_len(512 * MIB);
    sgdisk(&img, &["-e"]);
    sgdisk(&img, &["-n", "0:-64M:0"]);
    img.fill_partition(2, &fs::read(&iso).unwrap());
    let cd = sf_part(&img, 2);

    let j = inspect_json(img.p());
    let p = &j["partition"];
    assert_eq!(s(&p["disk"]), img.p());
    assert_eq!(u(&p["number"]), 2);
    assert_eq!(s(&p["table"]), "gpt");
    assert!(p["name"].is_null(), "{j:#}");
    assert_eq!(s(&p["fs"]), "iso9660");
    assert_eq!(s(&p["label"]), "config-2");
    assert_eq!(u(&p["start"]), cd.start * SECTOR);
    assert_eq!(u(&p["size"]), cd.size * SECTOR);
    assert_eq!(
        s(&j["metadata"]["uuid"]),
        "c0ffee00-1234-4567-89ab-cdef01234567"
    );
    assert_eq!(s(&j["metadata"]["hostname"]), "ironic-gpt");
    assert_grow(&j, &img, 1);
    assert_eq!(u(&j["grow"]["from"]), 200 * MIB);
    assert_eq!(s(&j["filesystem"]), "ext4");
    assert_eq!(s(&j["table"]), "gpt");
}

/// How a vfat drive is made by hand: mkfs.vfat at the partition's offset, then mcopy.
fn mkfs_vfat_in(img: &Img, n: u32, fat: &str, label: &str, tree: &Path) {
    let p = sf_part(img, n);
    let out = Command::new("mkfs.vfat")
        .args([
            "-F",
            fat,
            "-n",
            label,
            "--offset",
            &p.start.to_string(),
            img.p(),
            &(p.size * SECTOR / 1024).to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.vfat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec = format!("{}@@{}", img.p(), p.start * SECTOR);
    for e in fs::read_dir(tree).unwrap() {
        tool(
            "mcopy",
            &[
                "-s",
                "-i",
                &spec,
                e.unwrap().path().to_str().unwrap(),
                "::/",
            ],
        );
    }
    // The FAT type is what was asked for.
    let boot = img.read_at(p.start * SECTOR, 512);
    let want = format!("FAT{fat}");
    let at = if fat == "32" { 82 } else { 54 };
    assert_eq!(&boot[at..at + 5], want.as_bytes());
}

#[test]
fn inspect_reads_hand_made_vfat_drives_fat12_fat16_fat32_both_label_cases() {
    require!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "fa7fa7fa-0000-4000-8000-000000000012", "vfat-host");
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
        let img = match table {
            Label::Gpt => gpt_image(256 * MIB, 32),
            Label::Mbr => mbr_image(256 * MIB, 32),
        };
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
        let j = inspect_json(img.p());
        let p = &j["partition"];
        assert_eq!(s(&p["disk"]), img.p(), "{ctx}");
        assert_eq!(u(&p["number"]), 2, "{ctx}");
        let t = if table == Label::Gpt { "gpt" } else { "mbr" };
        assert_eq!(s(&p["table"]), t, "{ctx}");
        assert!(p["name"].is_null(), "{ctx}: {j:#}");
        assert_eq!(s(&p["fs"]), "vfat", "{ctx}");
        assert_eq!(s(&p["label"]), label, "{ctx}");
        assert_eq!(u(&p["start"]), cd.start * SECTOR, "{ctx}");
        assert_eq!(u(&p["size"]), cd.size * SECTOR, "{ctx}");
        assert_eq!(s(&j["metadata"]["hostname"]), "vfat-host", "{ctx}");
        assert_eq!(
            s(&j["metadata"]["uuid"]),
            "fa7fa7fa-0000-4000-8000-000000000012",
            "{ctx}"
        );
        assert_grow(&j, &img, 1);
        assert_eq!(s(&j["filesystem"]), "ext4", "{ctx}");
    }
}

/// The ISO as the tools that make config drives make it: genisoimage with openstacksdk's flags
/// (what Ironic runs), with Joliet or Rock Ridge alone, xorriso; label in either case.
#[test]
fn inspect_reads_isos_from_every_producer() {
    require!("sgdisk", "genisoimage", "xorriso");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "15015015-0000-4000-8000-000000000150", "iso-host");
    let img = gpt_image(128 * MIB, 16);
    append_at_end(&img, 64, "");
    let producers: [(&str, &[&str], &str); 6] = [
        (
            "genisoimage",
            &[
                "-ldots",
                "-allow-lowercase",
                "-allow-multidot",
                "-l",
                "-publisher",
                "seedpart test",
                "-quiet",
                "-J",
                "-r",
            ],
            "config-2",
        ),
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
        tool(prog, &args);
        // Clear the partition of the last image first.
        img.fill_partition(2, &vec![0; 2 * MIB as usize]);
        img.fill_partition(2, &fs::read(&iso).unwrap());
        let j = inspect_json(img.p());
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
    require!("genisoimage", "mkfs.vfat", "mcopy");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "0d0d0d0d-0000-4000-8000-00000000cdcd", "cdrom");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);
    let vfat = Img::new(40 * MIB);
    tool("mkfs.vfat", &["-F", "32", "-n", "CONFIG-2", vfat.p()]);
    for e in fs::read_dir(&tree).unwrap() {
        let spec = format!("{}@@0", vfat.p());
        tool(
            "mcopy",
            &[
                "-s",
                "-i",
                &spec,
                e.unwrap().path().to_str().unwrap(),
                "::/",
            ],
        );
    }
    for (dev, fs_, label) in [
        (iso.to_str().unwrap(), "iso9660", "config-2"),
        (vfat.p(), "vfat", "CONFIG-2"),
    ] {
        let j = inspect_json(dev);
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
    let o = seedpart(&[
        "build",
        "--disk",
        vfat.p(),
        "--from",
        tree.to_str().unwrap(),
    ]);
    assert_one_error(&o, &[vfat.p(), "partition table"]);
    vfat.assert_unchanged(&snap);
}

/// MBR stops at 2^32 sectors: on a 3 TiB disk Ironic's drive ends at the 2 TiB mark, and root
/// grows up to there.
#[test]
fn build_at_end_on_a_3_tib_mbr_disk_stops_at_the_2_tib_mark() {
    require!("sfdisk", "fsck.vfat");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "2a2a2a2a-0000-4000-8000-0000000002ff", "huge");
    let img = Img::new(3 << 40);
    tool_stdin(
        "sfdisk",
        &["-q", img.p()],
        "start=2048, size=100MiB, type=83\n",
    );
    build_ok(&[
        "--disk",
        img.p(),
        "--from",
        tree.to_str().unwrap(),
        "--at",
        "end",
    ]);
    let cd = sf_part(&img, 2);
    assert_eq!(cd.start + cd.size, 1 << 32, "{cd:?}");
    assert_eq!(cd.size * SECTOR, 64 * MIB);
    assert_eq!(cd.kind, "c");
    let part = img.extract(cd.start * SECTOR, cd.size * SECTOR);
    tool("fsck.vfat", &["-n", part.to_str().unwrap()]);
    let j = inspect_json(img.p());
    assert_eq!(u(&j["partition"]["start"]), cd.start * SECTOR);
    assert_eq!(u(&j["grow"]["to"]), ((1u64 << 32) - 2048) * SECTOR);
}

/// The seed's proposal made by hand: right after root, marked by GPT name `config-v2` or MBR
/// type 0x99 only (the filesystem's label is something else).
#[test]
fn inspect_finds_a_drive_right_after_root_by_gpt_name_or_mbr_type() {
    require!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy", "mkfs.ext4");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "ab12ab12-0000-4000-8000-00000000a99a", "marker-host");
    for label in [Label::Gpt, Label::Mbr] {
        let img = match label {
            Label::Gpt => {
                let img = gpt_image(128 * MIB, 32);
                append(&img, "size=16MiB, name=config-v2\n");
                img
            }
            Label::Mbr => {
                let img = Img::new(128 * MIB);
                sfdisk(
                    &img,
                    "start=2048, size=32MiB, type=83\nstart=67584, size=16MiB, type=99\n",
                );
                img
            }
        };
        mkfs_ext4_in(&img, 1);
        mkfs_vfat_in(&img, 2, "16", "SEED", &tree);
        let j = inspect_json(img.p());
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
    require!("sfdisk", "genisoimage", "mkfs.ext4");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "3b3b3b3b-1111-4222-8333-444444444444", "ironic-mbr");
    let iso = t.path().join("cd.iso");
    genisoimage(&tree, "config-2", &iso);
    let img = mbr_image(256 * MIB, 64);
    mkfs_ext4_in(&img, 1);
    let start = img.sectors() - 64 * ALIGN;
    sfdisk(
        &img,
        &format!("start=2048, size=64MiB, type=83\nstart={start}, size=64MiB, type=c\n"),
    );
    img.fill_partition(2, &fs::read(&iso).unwrap());
    let j = inspect_json(img.p());
    let p = &j["partition"];
    assert_eq!(s(&p["disk"]), img.p());
    assert_eq!(u(&p["number"]), 2);
    assert_eq!(s(&p["table"]), "mbr");
    assert!(p["name"].is_null());
    assert_eq!(s(&p["fs"]), "iso9660");
    assert_eq!(s(&p["label"]), "config-2");
    assert_eq!(u(&p["start"]), start * SECTOR);
    assert_eq!(u(&p["size"]), 64 * MIB);
    assert_eq!(s(&j["metadata"]["hostname"]), "ironic-mbr");
    assert_eq!(
        s(&j["metadata"]["uuid"]),
        "3b3b3b3b-1111-4222-8333-444444444444"
    );
    assert_grow(&j, &img, 1);
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
    require!("sgdisk", "sfdisk", "mkfs.vfat", "mcopy");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "d0d0d0d0-1111-4222-8333-444444444444", "two");
    // GPT: one by name, one by label.
    let img = gpt_image(128 * MIB, 16);
    append(&img, "size=8MiB, name=config-v2\nsize=8MiB\n");
    mkfs_vfat_in(&img, 3, "12", "config-2", &tree);
    let snap = img.snapshot();
    let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
    assert_one_error(&o, &[img.p(), "partition 2", "partition 3", "--device"]);
    assert!(o.stdout.is_empty(), "{o:?}");
    let o = seedpart(&["inspect", "--device", img.p()]);
    assert_one_error(&o, &[img.p(), "partition 2", "partition 3"]);
    // build refuses too, and changes nothing.
    let o = seedpart(&["build", "--disk", img.p(), "--from", tree.to_str().unwrap()]);
    assert_one_error(&o, &[img.p(), "already has a config drive"]);
    img.assert_unchanged(&snap);

    // MBR: two 0x99 partitions.
    let img = Img::new(128 * MIB);
    sfdisk(
        &img,
        "start=2048, size=16MiB, type=83\nsize=8MiB, type=99\nsize=8MiB, type=99\n",
    );
    let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
    assert_one_error(&o, &[img.p(), "partition 2", "partition 3"]);

    // None: exit 0, partition and metadata null, growth still planned.
    for img in [gpt_image(128 * MIB, 16), mbr_image(128 * MIB, 16)] {
        let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stderr.is_empty(), "{o:?}");
        let j: Value = serde_json::from_str(&o.stdout).unwrap();
        assert!(j["partition"].is_null(), "{j:#}");
        assert!(j["metadata"].is_null(), "{j:#}");
        assert_grow(&j, &img, 1);
        let o = seedpart(&["inspect", "--device", img.p()]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.contains("none found"), "{o:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input: exit 1, one error line naming what and where, the image unchanged

fn corrupt_header_crc(img: &Img, lba: u64) {
    let off = lba * SECTOR;
    let mut h = img.read_at(off, 92);
    assert_eq!(&h[..8], b"EFI PART");
    h[16] ^= 0xff; // the header CRC
    img.write_at(off, &h);
}

#[test]
fn corrupt_gpt_headers() {
    require!("sgdisk", "cmp");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "bad0bad0-1111-4222-8333-444444444444", "bad");
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
        let o = seedpart(&["build", "--disk", img.p(), "--from", tree]);
        assert_one_error(&o, &[img.p(), "GPT"]);
        img.assert_unchanged(&snap);
        let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
        assert_one_error(&o, &[img.p(), "GPT"]);
        assert!(o.stdout.is_empty());
    }

    // A disk smaller than the image written to it: the primary's usable range runs past the
    // end and there is no backup at the end.
    let img = gpt_image(128 * MIB, 16);
    img.set_len(96 * MIB);
    let snap = img.snapshot();
    let o = seedpart(&["build", "--disk", img.p(), "--from", tree]);
    assert_one_error(&o, &[img.p(), "corrupt GPT", "does not fit"]);
    img.assert_unchanged(&snap);

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
        let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
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
        let o = build_ok(&["--disk", img.p(), "--from", tree]);
        assert!(
            o.stderr.contains("warning") && o.stderr.contains("backup"),
            "{ctx}: {o:?}"
        );
        assert_sgdisk_clean(&img);
        let j = inspect_json(img.p());
        assert_eq!(j["warnings"].as_array().unwrap().len(), 0, "{ctx}: {j:#}");
        assert_eq!(s(&j["partition"]["name"]), "config-v2");
    }
}

#[test]
fn truncated_fat_drive_is_refused_with_a_clear_error() {
    require!("sgdisk", "mkfs.vfat", "mcopy");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "7777aaaa-1111-4222-8333-444444444444", "trunc");
    // A 32 MiB FAT16 volume put into an 8 MiB partition: cut short.
    let vol = Img::new(32 * MIB);
    tool("mkfs.vfat", &["-F", "16", "-n", "CONFIG-2", vol.p()]);
    let spec = format!("{}@@0", vol.p());
    for e in fs::read_dir(&tree).unwrap() {
        tool(
            "mcopy",
            &[
                "-s",
                "-i",
                &spec,
                e.unwrap().path().to_str().unwrap(),
                "::/",
            ],
        );
    }
    let img = gpt_image(128 * MIB, 16);
    append_at_end(&img, 8, "");
    img.fill_partition(2, &vol.read_at(0, 8 * MIB));
    let o = seedpart(&["inspect", "--device", img.p(), "--json"]);
    assert_one_error(&o, &[img.p(), "partition 2", "vfat", "truncated"]);
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_from_trees_are_refused_before_anything_is_written() {
    require!("sgdisk", "cmp");
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
    let o = seedpart(&["build", "--disk", img.p(), "--from", bad.to_str().unwrap()]);
    assert_one_error(
        &o,
        &[
            bad.to_str().unwrap(),
            "openstack/latest/meta_data.json",
            "line 3",
            "column",
        ],
    );
    img.assert_unchanged(&snap);

    // Missing meta_data.json.
    let missing = t.path().join("missing");
    make_tree(&missing, "00000000-1111-4222-8333-444444444444", "x");
    fs::remove_file(missing.join("openstack/latest/meta_data.json")).unwrap();
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--from",
        missing.to_str().unwrap(),
    ]);
    assert_one_error(&o, &[missing.to_str().unwrap(), "meta_data.json"]);
    img.assert_unchanged(&snap);

    // A symlink in the tree (to a file that exists: it is the link itself that is refused).
    let sym = t.path().join("symlink");
    make_tree(&sym, "00000000-1111-4222-8333-444444444444", "x");
    std::os::unix::fs::symlink(
        "/etc/hostname",
        sym.join("openstack/latest/vendor_data2.json"),
    )
    .unwrap();
    let o = seedpart(&["build", "--disk", img.p(), "--from", sym.to_str().unwrap()]);
    assert_one_error(&o, &["vendor_data2.json", "symlink"]);
    img.assert_unchanged(&snap);

    // Not a directory at all.
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--from",
        t.path().join("nope").to_str().unwrap(),
    ]);
    assert_one_error(&o, &["--from", "nope"]);
    img.assert_unchanged(&snap);
}

#[test]
fn build_refusals_leave_the_image_byte_identical() {
    require!("sgdisk", "sfdisk", "cmp", "genisoimage", "gzip", "base64");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "12121212-1111-4222-8333-444444444444", "refusals");
    let tree = tree.to_str().unwrap();
    let big = t.path().join("big");
    make_tree(&big, "12121212-1111-4222-8333-444444444444", "big");
    fs::write(big.join("openstack/latest/user_data"), vec![7u8; 2 << 20]).unwrap();
    let big = big.to_str().unwrap().to_string();

    // An MBR with four primaries: no 5th.
    let img = Img::new(128 * MIB);
    sfdisk(
        &img,
        "start=2048, size=16MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\nsize=8MiB, type=83\n",
    );
    let snap = img.snapshot();
    for at in ["after-last", "end"] {
        let o = seedpart(&["build", "--disk", img.p(), "--from", tree, "--at", at]);
        assert_one_error(&o, &[img.p(), "5th primary"]);
        img.assert_unchanged(&snap);
    }

    // A GPT whose 128 entries are all taken.
    let img = Img::new(256 * MIB);
    let mut script = String::from("label: gpt\n");
    for _ in 0..128 {
        script += "size=1MiB\n";
    }
    sfdisk(&img, &script);
    let snap = img.snapshot();
    let o = seedpart(&["build", "--disk", img.p(), "--from", tree]);
    assert_one_error(&o, &[img.p(), "all 128 GPT partition entries are in use"]);
    img.assert_unchanged(&snap);

    // Not enough room, in either place, on either table.
    for img in [gpt_image(64 * MIB, 16), mbr_image(64 * MIB, 16)] {
        let snap = img.snapshot();
        for at in ["after-last", "end"] {
            let o = seedpart(&[
                "build",
                "--disk",
                img.p(),
                "--from",
                tree,
                "--at",
                at,
                "--size",
                "64M",
            ]);
            assert_one_error(&o, &[img.p(), "no room"]);
            img.assert_unchanged(&snap);
        }
        // A tree that does not fit the size asked for.
        let o = seedpart(&["build", "--disk", img.p(), "--from", &big, "--size", "1M"]);
        assert_one_error(&o, &[img.p(), "does not fit"]);
        img.assert_unchanged(&snap);
    }

    let img = gpt_image(128 * MIB, 16);
    let snap = img.snapshot();
    // --configdrive with garbage, with base64 of something that is no ISO, with a missing file.
    let garbage = t.path().join("garbage");
    fs::write(&garbage, "this is not a configdrive!\n").unwrap();
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--configdrive",
        garbage.to_str().unwrap(),
    ]);
    assert_one_error(&o, &["--configdrive", "garbage", "not a configdrive"]);
    img.assert_unchanged(&snap);
    let b64 = t.path().join("b64");
    fs::write(&b64, "aGVsbG8gd29ybGQK\n").unwrap();
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--configdrive",
        b64.to_str().unwrap(),
    ]);
    assert_one_error(&o, &["--configdrive", "b64", "ISO"]);
    img.assert_unchanged(&snap);
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--configdrive",
        t.path().join("absent").to_str().unwrap(),
    ]);
    assert_one_error(&o, &["--configdrive", "absent"]);
    img.assert_unchanged(&snap);

    // An ISO not labelled config-2 at the end would never be found: refused.
    let iso = t.path().join("cidata.iso");
    genisoimage(Path::new(tree), "cidata", &iso);
    let blob = t.path().join("cidata.b64");
    ironic_blob(&iso, &blob);
    let o = seedpart(&[
        "build",
        "--disk",
        img.p(),
        "--configdrive",
        blob.to_str().unwrap(),
        "--at",
        "end",
    ]);
    assert_one_error(&o, &[img.p(), "cidata", "config-2"]);
    img.assert_unchanged(&snap);

    // A drive already present.
    build_ok(&["--disk", img.p(), "--from", tree]);
    let snap = img.snapshot();
    for at in ["after-last", "end"] {
        let o = seedpart(&["build", "--disk", img.p(), "--from", tree, "--at", at]);
        assert_one_error(&o, &[img.p(), "already has a config drive (partition 2)"]);
        img.assert_unchanged(&snap);
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
    require!("sgdisk", "cmp");
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree, "12121212-1111-4222-8333-444444444444", "usage");
    let tree = tree.to_str().unwrap();
    let img = gpt_image(64 * MIB, 16);
    let snap = img.snapshot();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "build",
            "--disk",
            img.p(),
            "--from",
            tree,
            "--configdrive",
            tree,
        ],
        vec!["build", "--disk", img.p()],
        vec!["build", "--from", tree],
        vec!["build", "--disk", img.p(), "--from", tree, "--size", "12Q"],
        vec!["build", "--disk", img.p(), "--from", tree, "--size", "0"],
        vec!["build", "--disk", img.p(), "--from", tree, "--size", "-5M"],
        vec!["build", "--disk", img.p(), "--from", tree, "--at", "middle"],
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
