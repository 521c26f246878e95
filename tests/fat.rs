//! FAT reader and writer, checked against dosfstools and mtools as independent oracles.

mod common;

use common::*;
use seedpart::disk::window::Window;
use seedpart::fs::fat::{Fat, probe_label};
use seedpart::fs::fat_format::{FatFormatError, format_and_fill};
use seedpart::fs::{DriveFs, DriveFsKind, EntryKind, FileData, FsError, InputTree, RelPath};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bytes that differ file to file and position to position, so misplaced clusters show.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

const LONG_NAME: &str = "Some.Mixed-Case.Long.file.Name.with.several.dots.tar.gz";

/// A config-drive-like tree on the host: (relative path, contents).
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "openstack/latest/meta_data.json",
            br#"{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "test"}"#.to_vec(),
        ),
        (
            "openstack/latest/user_data",
            b"#cloud-config\nhostname: test\n".to_vec(),
        ),
        (
            "openstack/latest/network_data.json",
            br#"{"links": []}"#.to_vec(),
        ),
        ("openstack/content/0000", pattern(1, 5000)),
        (
            "ec2/2009-04-04/meta-data.json",
            br#"{"instance-id": "i-0001"}"#.to_vec(),
        ),
        (
            "ec2/latest/meta-data.json",
            br#"{"instance-id": "i-0001"}"#.to_vec(),
        ),
        (LONG_NAME, b"long name\n".to_vec()),
        ("empty", Vec::new()),
        ("big.bin", pattern(2, 3_000_000)),
    ]
}

fn write_host_tree(root: &Path, files: &[(&str, Vec<u8>)]) {
    for (p, data) in files {
        write_file(&root.join(p), data);
    }
}

/// What `entries()` must return for a host tree: depth first, sorted by name in each directory.
fn expected_entries(root: &Path) -> Vec<(String, Option<u64>)> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, Option<u64>)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let r = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            if p.is_dir() {
                out.push((r.clone(), None));
                walk(&p, &r, out);
            } else {
                out.push((r, Some(fs::metadata(&p).unwrap().len())));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

fn listing(fs: &mut dyn DriveFs) -> Vec<(String, Option<u64>)> {
    fs.entries()
        .unwrap()
        .into_iter()
        .map(|e| {
            let size = match e.kind {
                EntryKind::Dir => None,
                EntryKind::File { size } => Some(size),
            };
            (e.path.as_str().to_string(), size)
        })
        .collect()
}

/// Reads every file through `fs` and compares with the host tree, and the listing too.
fn assert_reads_back(fs: &mut dyn DriveFs, host: &Path) {
    let want = expected_entries(host);
    assert_eq!(listing(fs), want);
    for (p, size) in want {
        let Some(size) = size else { continue };
        let mut got = Vec::new();
        let n = fs
            .copy_file(&RelPath::parse(&p).unwrap(), &mut got)
            .unwrap();
        assert_eq!(n, size, "{p}");
        assert_eq!(
            got,
            fs::read(host.join(&p)).unwrap(),
            "{p}: contents differ"
        );
    }
}

fn open_image(path: &Path) -> Fat<Window<File>> {
    let f = File::open(path).unwrap();
    let len = f.metadata().unwrap().len();
    Fat::open(Window::read_only(f, 0, len)).unwrap()
}

/// An image made by mkfs.vfat and filled by `mcopy -s`.
fn mkfs_image(
    dir: &Path,
    mkfs_args: &[&str],
    size: u64,
    label: Option<&str>,
    host: &Path,
) -> PathBuf {
    let img = dir.join("mkfs.img");
    let _ = fs::remove_file(&img);
    File::create(&img).unwrap().set_len(size).unwrap();
    let mut args = mkfs_args.to_vec();
    if let Some(label) = label {
        args.extend(["-n", label]);
    }
    args.push(img.to_str().unwrap());
    run("mkfs.vfat", &args);
    mcopy_tree(img.to_str().unwrap(), host);
    img
}

#[test]
fn reads_mkfs_and_mcopy_volumes() {
    require_tools!("mkfs.vfat", "mcopy");
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("tree");
    write_host_tree(&host, &sample_files());
    let cases: &[(&[&str], u64, &str)] = &[
        (&["-F", "12"], 8 * MIB, "config-2"),
        (&["-F", "16"], 16 * MIB, "CONFIG-2"),
        (&["-F", "32"], 40 * MIB, "config-2"),
        (&["-F", "12", "-S", "4096"], 8 * MIB, "CONFIG-2"),
        (&["-F", "16", "-S", "4096"], 64 * MIB, "config-2"),
        (&["-F", "32", "-S", "4096"], 300 * MIB, "CONFIG-2"),
    ];
    for (args, size, label) in cases {
        let img = mkfs_image(tmp.path(), args, *size, Some(label), &host);
        let mut fs = open_image(&img);
        assert_eq!(fs.kind(), DriveFsKind::Vfat);
        assert_eq!(fs.label(), *label, "{args:?}");
        assert_reads_back(&mut fs, &host);
        let mut f = File::open(&img).unwrap();
        assert_eq!(probe_label(&mut f).unwrap().as_deref(), Some(*label));
    }
    // No -n: the boot sector says "NO NAME" and the root has no label entry.
    let img = mkfs_image(tmp.path(), &[], 8 * MIB, None, &host);
    assert_eq!(open_image(&img).label(), "");
    let mut f = File::open(&img).unwrap();
    assert_eq!(probe_label(&mut f).unwrap().as_deref(), Some(""));
}

#[test]
fn reads_through_a_window_at_an_offset_and_never_writes() {
    require_tools!("mkfs.vfat", "mcopy");
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("tree");
    write_host_tree(&host, &sample_files());
    let img = mkfs_image(tmp.path(), &["-F", "16"], 16 * MIB, Some("config-2"), &host);
    // A "disk": 1 MiB before the partition and junk after it that must never be read as FAT.
    let mut disk = vec![0xA5u8; MIB as usize];
    let vol = fs::read(&img).unwrap();
    disk.extend_from_slice(&vol);
    disk.extend_from_slice(&pattern(9, 65536));

    /// Passes everything through but counts write attempts.
    struct Counting<D> {
        inner: D,
        writes: std::rc::Rc<std::cell::Cell<usize>>,
    }
    impl<D: Read> Read for Counting<D> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.inner.read(b)
        }
    }
    impl<D: Seek> Seek for Counting<D> {
        fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
            self.inner.seek(p)
        }
    }
    impl<D: Write> Write for Counting<D> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.writes.set(self.writes.get() + 1);
            self.inner.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.inner.flush()
        }
    }
    let writes = std::rc::Rc::new(std::cell::Cell::new(0));
    let window = Window::read_only(Cursor::new(disk.clone()), MIB, vol.len() as u64);
    let mut fs = Fat::open(Counting {
        inner: window,
        writes: writes.clone(),
    })
    .unwrap();
    assert_eq!(fs.label(), "config-2");
    assert_reads_back(&mut fs, &host);
    assert_eq!(writes.get(), 0, "reading must not try to write");

    let mut w = Window::read_only(Cursor::new(disk), MIB, vol.len() as u64);
    assert_eq!(probe_label(&mut w).unwrap().as_deref(), Some("config-2"));
}

#[test]
fn reads_fatfs_oracle_identically_on_our_volumes() {
    // fatfs is a third reader, independent of both ours and mtools.
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("tree");
    write_host_tree(&host, &sample_files());
    let tree = InputTree::from_host_dir(&host).unwrap();
    let mut img = Cursor::new(vec![0u8; 16 * MIB as usize]);
    format_and_fill(&mut img, 16 * MIB, 512, "CONFIG-2", &tree).unwrap();
    img.seek(SeekFrom::Start(0)).unwrap();
    let fs = fatfs::FileSystem::new(
        &mut img,
        fatfs::FsOptions::new().update_accessed_date(false),
    )
    .unwrap();
    assert_eq!(
        fs.read_volume_label_from_root_dir().unwrap().unwrap(),
        "CONFIG-2"
    );
    assert_eq!(fs.volume_label(), "CONFIG-2");
    let mut f = fs
        .root_dir()
        .open_file("openstack/latest/meta_data.json")
        .unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, sample_files()[0].1);
    let names: Vec<String> = fs
        .root_dir()
        .iter()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.contains(&LONG_NAME.to_string()), "{names:?}");
}

/// Names that exercise short-name generation: case, tails, dots, spaces, non-ASCII, clashes.
fn tricky_files() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        "UPPER.TXT",
        "lower.txt",
        "MiXeD.Json",
        "a.b.c.d",
        ".hidden",
        "...dots",
        "with space.txt",
        "café.txt",
        "plus+comma,semi;eq=brackets[].x",
        "README",
        "readme.md",
        "LONGFILENAME.TXT",
        "LONGFILENAME2.TXT",
        "x.tar.gz",
        "ABCDEFGH.IJK",
        "abcdefgh.ijkl",
        "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
        "openstack/latest/vendor_data2.json",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| (n.to_string(), pattern(100 + i as u64, 17 * i)))
    .collect();
    // Many names with the same basis force ~N tails past ~9.
    for i in 0..30 {
        v.push((
            format!("samebasis-{i:03}.json"),
            pattern(200 + i, i as usize),
        ));
    }
    v
}

fn build_tree(host: &Path, with_big: bool) -> InputTree {
    let mut files: Vec<(String, Vec<u8>)> = sample_files()
        .into_iter()
        .filter(|(p, _)| with_big || *p != "big.bin")
        .map(|(p, d)| (p.to_string(), d))
        .collect();
    files.extend(tricky_files());
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    write_host_tree(host, &refs);
    fs::create_dir_all(host.join("openstack/empty-dir")).unwrap();
    InputTree::from_host_dir(host).unwrap()
}

fn sparse_image(path: &Path, len: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    f.set_len(len).unwrap();
    f
}

/// fsck.vfat -n must be silent apart from its banner and the summary line.
fn assert_fsck_clean(img: &Path) {
    let out = run_raw("fsck.vfat", &["-n", img.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fsck.vfat failed:\n{stdout}{stderr}");
    let noise: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.starts_with("fsck.fat ") && !l.contains(" files, "))
        .collect();
    assert!(noise.is_empty(), "fsck.vfat complained:\n{stdout}{stderr}");
}

/// Compares two host trees: same names, same kinds, same bytes.
fn assert_same_tree(a: &Path, b: &Path) {
    assert_eq!(expected_entries(a), expected_entries(b));
    for (p, size) in expected_entries(a) {
        if size.is_some() {
            assert_eq!(
                fs::read(a.join(&p)).unwrap(),
                fs::read(b.join(&p)).unwrap(),
                "{p}"
            );
        }
    }
}

#[test]
fn written_volumes_pass_fsck_mtools_and_our_reader() {
    require_tools!("fsck.vfat", "mcopy", "mlabel", "mdir");
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("tree");
    let tree = build_tree(&host, true);
    let small_host = tmp.path().join("small");
    let small_tree = build_tree(&small_host, false);
    // (size, sector size, expected FAT type string in the boot sector)
    let cases: &[(u64, u32, &str)] = &[
        (MIB, 512, "FAT12"),
        (MIB, 4096, "FAT12"),
        (16 * MIB, 512, "FAT16"),
        (16 * MIB, 4096, "FAT12"),
        (64 * MIB, 512, "FAT16"),
        (64 * MIB, 4096, "FAT16"),
        (600 * MIB, 512, "FAT32"),
        (600 * MIB, 4096, "FAT32"),
    ];
    for &(size, ss, fat) in cases {
        let (tree, host) = if size < 4 * MIB {
            (&small_tree, &small_host)
        } else {
            (&tree, &host)
        };
        let img = tmp.path().join(format!("w{size}-{ss}.img"));
        let mut f = sparse_image(&img, size);
        let w = Window::writable(&mut f, 0, size);
        format_and_fill(w, size, ss, "CONFIG-2", tree).unwrap();
        drop(f);
        let ctx = format!("{size} bytes, {ss}-byte sectors");

        let mut boot = [0u8; 512];
        File::open(&img).unwrap().read_exact(&mut boot).unwrap();
        let fs_type = if fat == "FAT32" {
            &boot[82..87]
        } else {
            &boot[54..59]
        };
        assert_eq!(fs_type, fat.as_bytes(), "{ctx}");
        assert_eq!(u16::from_le_bytes([boot[11], boot[12]]) as u32, ss, "{ctx}");

        assert_fsck_clean(&img);

        let img_s = img.to_str().unwrap();
        let label = run("mlabel", &["-s", "-i", img_s, "::"]);
        assert!(label.contains("CONFIG-2"), "{ctx}: mlabel says {label:?}");
        let listing_out = run("mdir", &["-/", "-i", img_s, "::"]);
        assert!(
            listing_out.contains(LONG_NAME),
            "{ctx}: mdir shows\n{listing_out}"
        );

        let out = tmp.path().join(format!("out{size}-{ss}"));
        fs::create_dir_all(&out).unwrap();
        run(
            "mcopy",
            &["-s", "-n", "-i", img_s, "::*", out.to_str().unwrap()],
        );
        assert_same_tree(host, &out);

        let mut ours = open_image(&img);
        assert_eq!(ours.label(), "CONFIG-2", "{ctx}");
        assert_reads_back(&mut ours, host);
        let mut f = File::open(&img).unwrap();
        assert_eq!(probe_label(&mut f).unwrap().as_deref(), Some("CONFIG-2"));
    }
}

#[test]
fn output_is_deterministic_and_fills_a_64mib_drive_with_1000_files_fast() {
    let mut tree = InputTree::default();
    for i in 0..1000u64 {
        let p = RelPath::parse(&format!(
            "openstack/content/dir{:02}/file-{i:04}.data",
            i % 20
        ))
        .unwrap();
        tree.add_file(p, FileData::Bytes(pattern(i, (i as usize * 37) % 9000)));
    }
    let len = 64 * MIB;
    let mut a = Cursor::new(vec![0u8; len as usize]);
    let t = Instant::now();
    format_and_fill(&mut a, len, 512, "CONFIG-2", &tree).unwrap();
    let took = t.elapsed();
    eprintln!("64 MiB, 1000 files: {took:?}");
    assert!(took.as_secs_f64() < 2.0, "took {took:?}");
    let mut b = Cursor::new(vec![0u8; len as usize]);
    format_and_fill(&mut b, len, 512, "CONFIG-2", &tree).unwrap();
    assert!(a.get_ref() == b.get_ref(), "two builds of one tree differ");

    let mut fs = Fat::open(Window::read_only(Cursor::new(a.into_inner()), 0, len)).unwrap();
    let entries = fs.entries().unwrap();
    assert_eq!(
        entries.iter().filter(|e| e.kind != EntryKind::Dir).count(),
        1000
    );
    let mut got = Vec::new();
    fs.copy_file(
        &RelPath::parse("openstack/content/dir07/file-0987.data").unwrap(),
        &mut got,
    )
    .unwrap();
    assert_eq!(got, pattern(987, (987 * 37) % 9000));
}

#[test]
fn a_tree_too_large_is_refused_before_anything_is_written() {
    let mut tree = InputTree::default();
    tree.add_file(
        RelPath::parse("openstack/latest/user_data").unwrap(),
        FileData::Bytes(vec![7u8; 3 * MIB as usize]),
    );
    let mut dev = Cursor::new(vec![0u8; 2 * MIB as usize]);
    let err = format_and_fill(&mut dev, 2 * MIB, 512, "CONFIG-2", &tree).unwrap_err();
    match &err {
        FatFormatError::TooSmall {
            needed, available, ..
        } => assert!(needed > available, "{err}"),
        other => panic!("expected TooSmall, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("needs") && msg.contains("has"), "{msg}");
    assert!(
        dev.get_ref().iter().all(|&b| b == 0),
        "a refused build wrote to the drive"
    );
    assert_eq!(probe_label(&mut dev).unwrap(), None);

    let small = InputTree::default();
    for bad in ["config-2", "", "TWELVE-CHARS", "A/B", " X"] {
        assert!(
            matches!(
                format_and_fill(Cursor::new(vec![0u8; MIB as usize]), MIB, 512, bad, &small),
                Err(FatFormatError::BadLabel { .. })
            ),
            "label {bad:?} accepted"
        );
    }
    assert!(matches!(
        format_and_fill(Cursor::new(vec![0u8; MIB as usize]), MIB, 520, "X", &small),
        Err(FatFormatError::BadSectorSize(520))
    ));
    let mut clash = InputTree::default();
    clash.add_file(RelPath::parse("a/Name").unwrap(), FileData::Bytes(vec![1]));
    clash.add_file(RelPath::parse("a/NAME").unwrap(), FileData::Bytes(vec![2]));
    let err =
        format_and_fill(Cursor::new(vec![0u8; MIB as usize]), MIB, 512, "X", &clash).unwrap_err();
    assert!(err.to_string().contains("a/N"), "{err}");
    let mut bad_name = InputTree::default();
    bad_name.add_file(RelPath::parse("what?").unwrap(), FileData::Bytes(vec![1]));
    let err = format_and_fill(
        Cursor::new(vec![0u8; MIB as usize]),
        MIB,
        512,
        "X",
        &bad_name,
    )
    .unwrap_err();
    assert!(err.to_string().contains("what?"), "{err}");
}

// ---- hostile and corrupt volumes -------------------------------------------------------------

/// A small FAT16 volume with plain 8.3 names, whose entries the tests patch by hand.
fn hostile_base() -> Vec<u8> {
    let mut tree = InputTree::default();
    tree.add_file(
        RelPath::parse("AAA/BBB/F.TXT").unwrap(),
        FileData::Bytes(pattern(5, 3000)),
    );
    tree.add_file(
        RelPath::parse("AAA/G.TXT").unwrap(),
        FileData::Bytes(pattern(6, 100)),
    );
    tree.add_file(
        RelPath::parse("TOP.TXT").unwrap(),
        FileData::Bytes(pattern(7, 10)),
    );
    let mut img = Cursor::new(vec![0u8; 16 * MIB as usize]);
    format_and_fill(&mut img, 16 * MIB, 512, "CONFIG-2", &tree).unwrap();
    img.into_inner()
}

struct Fat16View {
    root: usize,
    root_len: usize,
    data: usize,
    cluster: usize,
}

fn fat16_view(img: &[u8]) -> Fat16View {
    let le16 = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
    let bps = le16(11);
    let root = (le16(14) + img[16] as usize * le16(22)) * bps;
    let root_len = le16(17) * 32;
    Fat16View {
        root,
        root_len,
        data: root + root_len,
        cluster: bps * img[13] as usize,
    }
}

/// Offset of the 8.3 entry `name` in the directory at `dir` (`None`: the root).
fn find_entry(img: &[u8], dir: Option<u16>, name: &[u8; 11]) -> usize {
    let v = fat16_view(img);
    let (start, len) = match dir {
        None => (v.root, v.root_len),
        Some(c) => (v.data + (c as usize - 2) * v.cluster, v.cluster),
    };
    (start..start + len)
        .step_by(32)
        .find(|&o| &img[o..o + 11] == name)
        .unwrap_or_else(|| panic!("no entry {:?}", String::from_utf8_lossy(name)))
}

fn cluster_of(img: &[u8], entry: usize) -> u16 {
    u16::from_le_bytes([img[entry + 26], img[entry + 27]])
}

fn open_bytes(img: Vec<u8>) -> Result<Fat<Window<Cursor<Vec<u8>>>>, FsError> {
    let len = img.len() as u64;
    Fat::open(Window::read_only(Cursor::new(img), 0, len))
}

fn walk_err(img: Vec<u8>) -> FsError {
    open_bytes(img).unwrap().entries().unwrap_err()
}

#[test]
fn hostile_base_is_clean() {
    let mut fs = open_bytes(hostile_base()).unwrap();
    let names: Vec<String> = fs
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path.as_str().to_string())
        .collect();
    assert_eq!(
        names,
        ["AAA", "AAA/BBB", "AAA/BBB/F.TXT", "AAA/G.TXT", "TOP.TXT"]
    );
}

#[test]
fn truncated_volume_is_refused_clearly() {
    let img = hostile_base();
    let half = img[..8 * MIB as usize].to_vec();
    let err = open_bytes(half.clone())
        .err()
        .expect("truncated volume opened");
    let msg = err.to_string();
    assert!(
        matches!(err, FsError::Corrupt { .. }) && msg.contains("truncated"),
        "{msg}"
    );
    // Discovery still sees the drive (so the error above reaches the user).
    assert_eq!(
        probe_label(&mut Cursor::new(half)).unwrap().as_deref(),
        Some("CONFIG-2")
    );
    // Cut inside the boot sector: not FAT at all.
    assert_eq!(
        probe_label(&mut Cursor::new(img[..300].to_vec())).unwrap(),
        None
    );
    assert!(open_bytes(img[..300].to_vec()).is_err());
}

#[test]
fn absurd_boot_sectors_are_refused() {
    let img = hostile_base();
    let patches: &[(usize, &[u8], &str)] = &[
        (11, &1000u16.to_le_bytes(), "bytes per sector"),
        (11, &8192u16.to_le_bytes(), "bytes per sector"),
        (13, &[3], "sectors per cluster"),
        (14, &[0, 0], "reserved"),
        (16, &[0], "FATs"),
        (16, &[7], "FATs"),
        (17, &[0, 0], "root directory"),
        (19, &[0, 0], "total sector"),
        (19, &32808u16.to_le_bytes(), "truncated"),
        (22, &[1, 0], "FAT"),
        (22, &[0xFF, 0xFF], "room for data"),
        (21, &[0x12], "media"),
        (510, &[0, 0], "signature"),
    ];
    for (at, bytes, what) in patches {
        let mut bad = img.clone();
        bad[*at..*at + bytes.len()].copy_from_slice(bytes);
        let err = open_bytes(bad.clone())
            .err()
            .unwrap_or_else(|| panic!("{what}: opened"));
        assert!(err.to_string().contains(what), "{what}: {err}");
        if *what != "truncated" {
            assert_eq!(probe_label(&mut Cursor::new(bad)).unwrap(), None, "{what}");
        }
    }
}

/// The FAT32 boot-sector values that make fatfs 0.3.6 panic (`boot_sector.rs:311` multiply
/// overflow, `fs.rs:448` subtract overflow) are plain errors here.
#[test]
fn absurd_fat32_boot_sectors_are_refused() {
    let mut tree = InputTree::default();
    tree.add_file(RelPath::parse("a/b").unwrap(), FileData::Bytes(vec![1; 10]));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("fat32.img");
    let len = 520 * MIB;
    let mut f = sparse_image(&path, len);
    format_and_fill(&mut f, len, 512, "CONFIG-2", &tree).unwrap();
    let open = |f: &File| Fat::open(Window::read_only(f, 0, len)).map(|_| ());
    assert!(open(&f).is_ok());
    let patches: &[(u64, u32, &str)] = &[
        (36, 0xFFFF_FFF0, "room for data"),
        (44, 0, "root directory cluster 0"),
        (44, 1, "root directory cluster 1"),
        (44, 0x0FFF_FFF0, "outside the volume"),
    ];
    let mut boot = [0u8; 512];
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_exact(&mut boot).unwrap();
    assert_eq!(&boot[82..87], b"FAT32");
    for &(at, v, what) in patches {
        let mut bad = boot;
        bad[at as usize..at as usize + 4].copy_from_slice(&v.to_le_bytes());
        f.seek(SeekFrom::Start(0)).unwrap();
        f.write_all(&bad).unwrap();
        let err = open(&f).err().unwrap_or_else(|| panic!("{what}: opened"));
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
}

#[test]
fn directory_loops_are_refused_naming_the_directory() {
    let img = hostile_base();
    let aaa = find_entry(&img, None, b"AAA        ");
    let aaa_cluster = cluster_of(&img, aaa);
    let bbb = find_entry(&img, Some(aaa_cluster), b"BBB        ");

    // AAA/BBB points back at AAA.
    let mut bad = img.clone();
    bad[bbb + 26..bbb + 28].copy_from_slice(&aaa_cluster.to_le_bytes());
    let err = walk_err(bad);
    assert!(
        matches!(&err, FsError::Hostile { path, reason, .. } if path == "AAA/BBB" && reason.contains("loop")),
        "{err}"
    );

    // AAA points at the root (cluster 0).
    let mut bad = img.clone();
    bad[aaa + 26..aaa + 28].copy_from_slice(&[0, 0]);
    let err = walk_err(bad);
    assert!(
        matches!(&err, FsError::Hostile { path, .. } if path == "AAA"),
        "{err}"
    );

    // AAA's cluster chain loops onto itself (FAT entry pointing to its own cluster): the
    // directory is read once and the walk ends.
    let mut bad = img.clone();
    let fat = 512 * u16::from_le_bytes([img[14], img[15]]) as usize;
    let e = fat + 2 * aaa_cluster as usize;
    bad[e..e + 2].copy_from_slice(&aaa_cluster.to_le_bytes());
    // Fill the cluster with entries so the end marker does not stop the read first.
    let v = fat16_view(&bad);
    let start = v.data + (aaa_cluster as usize - 2) * v.cluster;
    for o in (start + 96..start + v.cluster).step_by(32) {
        bad[o] = 0xE5;
    }
    let err = walk_err(bad);
    assert!(
        matches!(&err, FsError::Hostile { path, reason, .. } if path == "AAA" && reason.contains("loop")),
        "{err}"
    );
}

#[test]
fn file_size_beyond_its_chain_or_the_volume_is_corrupt() {
    let img = hostile_base();
    let aaa = cluster_of(&img, find_entry(&img, None, b"AAA        "));
    let g = find_entry(&img, Some(aaa), b"G       TXT");
    for size in [10 * MIB as u32, u32::MAX] {
        let mut bad = img.clone();
        bad[g + 28..g + 32].copy_from_slice(&size.to_le_bytes());
        let err = walk_err(bad.clone());
        assert!(
            matches!(&err, FsError::Corrupt { detail, .. } if detail.contains("AAA/G.TXT")),
            "{err}"
        );
        let err = open_bytes(bad)
            .unwrap()
            .copy_file(&RelPath::parse("AAA/G.TXT").unwrap(), &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("AAA/G.TXT"), "{err}");
    }
    // A first cluster of 1 (which makes fatfs 0.3.6 panic) and one past the end.
    for cluster in [1u16, 0xFFF0] {
        let mut bad = img.clone();
        bad[g + 26..g + 28].copy_from_slice(&cluster.to_le_bytes());
        let err = walk_err(bad);
        assert!(err.to_string().contains("AAA/G.TXT"), "{err}");
    }
}

#[test]
fn hostile_names_are_refused_naming_them() {
    let img = hostile_base();
    let top = find_entry(&img, None, b"TOP     TXT");
    for (name, shows) in [
        (b"..         ", ".."),
        (b".          ", "."),
        (b"A/B     TXT", "A/B.TXT"),
        (b"A\\B     TXT", "A\\B.TXT"),
    ] {
        let mut bad = img.clone();
        bad[top..top + 11].copy_from_slice(name);
        let err = walk_err(bad);
        assert!(
            matches!(&err, FsError::Hostile { path, .. } if path == shows),
            "{shows}: {err}"
        );
    }
    // A long name holding `..` and `/`, with a valid checksum, in front of TOP.TXT: rewrite
    // the entry just before it (AAA) as an LFN entry.
    let mut bad = img.clone();
    let lfn = top - 32;
    let mut e = [0u8; 32];
    e[0] = 0x41;
    e[11] = 0x0F;
    let short: [u8; 11] = bad[top..top + 11].try_into().unwrap();
    e[13] = short
        .iter()
        .fold(0u8, |s, &b| s.rotate_right(1).wrapping_add(b));
    let units: Vec<u16> = "../x"
        .encode_utf16()
        .chain([0])
        .chain([0xFFFF; 8])
        .collect();
    for (i, o) in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30]
        .iter()
        .enumerate()
    {
        e[*o..*o + 2].copy_from_slice(&units[i].to_le_bytes());
    }
    bad[lfn..lfn + 32].copy_from_slice(&e);
    let err = walk_err(bad);
    assert!(
        matches!(&err, FsError::Hostile { path, .. } if path == "../x"),
        "{err}"
    );

    let mut fs = open_bytes(img).unwrap();
    assert!(matches!(
        fs.copy_file(&RelPath::parse("AAA/nope").unwrap(), &mut Vec::new()),
        Err(FsError::NotFound { .. })
    ));
    assert!(matches!(
        fs.copy_file(&RelPath::parse("AAA/BBB").unwrap(), &mut Vec::new()),
        Err(FsError::NotFound { .. })
    ));
    // FAT names are case-insensitive.
    let mut got = Vec::new();
    fs.copy_file(&RelPath::parse("aaa/bbb/f.txt").unwrap(), &mut got)
        .unwrap();
    assert_eq!(got, pattern(5, 3000));
}

/// Where the metadata of a FAT volume lies: the boot sector, the start of the first FAT, and
/// the root directory region or start of the data area (the first directories).
fn metadata_spans(img: &[u8]) -> [std::ops::Range<usize>; 3] {
    let le16 = |o: usize| u16::from_le_bytes([img[o], img[o + 1]]) as usize;
    let bps = le16(11);
    let fat_sectors = match le16(22) {
        0 => u32::from_le_bytes(img[36..40].try_into().unwrap()) as usize,
        n => n,
    };
    let fat = le16(14) * bps;
    let root = fat + img[16] as usize * fat_sectors * bps;
    [
        0..512,
        fat..fat + 4096,
        root..root + le16(17) * 32 + 64 * 1024,
    ]
}

/// Mutates metadata bytes of valid volumes at random: every outcome is fine but a panic or a
/// hang (each run is bounded by the caps, so the test finishes quickly).
#[test]
fn mutated_volumes_never_panic() {
    let mut bases = vec![hostile_base()];
    for (len, ss) in [(MIB, 512u32), (MIB, 4096), (20 * MIB, 512)] {
        let mut tree = InputTree::default();
        for i in 0..40u64 {
            tree.add_file(
                RelPath::parse(&format!("d{}/Long Name {i}.json", i % 3)).unwrap(),
                FileData::Bytes(pattern(i, 700 * i as usize)),
            );
        }
        let mut img = Cursor::new(vec![0u8; len as usize]);
        format_and_fill(&mut img, len, ss, "CONFIG-2", &tree).unwrap();
        bases.push(img.into_inner());
    }
    // A FAT32 volume too (ours are FAT32 only from 512 MiB): mkfs.vfat makes a small one.
    if require_tools(&["mkfs.vfat", "mcopy"]) {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("tree");
        let files: Vec<(&str, Vec<u8>)> = sample_files()
            .into_iter()
            .filter(|(p, _)| *p != "big.bin")
            .collect();
        write_host_tree(&host, &files);
        let img = mkfs_image(tmp.path(), &["-F", "32"], 34 * MIB, Some("CONFIG-2"), &host);
        bases.push(fs::read(img).unwrap());
    }
    let mut rng = 0x1234_5678_9ABC_DEF1u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let t = Instant::now();
    let rounds = 4000;
    let (mut opened, mut walked) = (0, 0);
    for round in 0..rounds {
        let n = bases.len();
        let img = &mut bases[round % n];
        let spans = metadata_spans(img);
        // Mutated in place and restored after, so big volumes are not copied every round.
        let mut undo = Vec::new();
        for _ in 0..1 + next() % 8 {
            let span = &spans[if next() % 5 == 0 {
                0
            } else {
                1 + next() as usize % 2
            }];
            let at = span.start + (next() as usize) % span.len();
            undo.push((at, img[at]));
            img[at] = next() as u8;
        }
        let len = img.len() as u64;
        let _ = probe_label(&mut Cursor::new(&mut *img));
        if let Ok(mut fs) = Fat::open(Window::read_only(Cursor::new(&mut *img), 0, len)) {
            opened += 1;
            if let Ok(entries) = fs.entries() {
                walked += 1;
                for e in entries {
                    if let EntryKind::File { .. } = e.kind {
                        let _ = fs.copy_file(&e.path, &mut io::sink());
                    }
                }
            }
        }
        for (at, b) in undo.into_iter().rev() {
            img[at] = b;
        }
    }
    eprintln!(
        "{rounds} mutated volumes in {:?}: {opened} opened, {walked} walked",
        t.elapsed()
    );
    // Most mutations must get past the boot sector, or the walk code goes untested.
    assert!(walked > rounds / 4, "only {walked} of {rounds} walked");
}
