//! The copy of the drive (`copy`), the state file (`state`) and `seedpart status` (`status`).

mod common;

use common::fixtures;
use seedpart::copy::{self, CopyError, Manifest, SUMS};
use seedpart::fs::dir::DirFs;
use seedpart::fs::{DriveFs, DriveFsKind, Entry, EntryKind, FsError, RelPath};
use seedpart::state::{self, CopyRecord, DriveRecord, FsGrowRecord, GrowRecord, State};
use seedpart::status;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A drive tree with nested and empty directories, an empty file, a file larger than the 64 KiB
/// streaming buffer, binary content and awkward (but valid) names.
fn drive_tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    fs::create_dir_all(p.join("openstack/latest")).unwrap();
    fs::create_dir_all(p.join("openstack/content")).unwrap();
    fs::create_dir_all(p.join("ec2/latest")).unwrap();
    fs::create_dir_all(p.join("empty/dir")).unwrap();
    fs::write(
        p.join("openstack/latest/meta_data.json"),
        br#"{"uuid":"83679162-1378-4288-a2d4-70e13ec132aa","admin_pass":"s3cret"}"#,
    )
    .unwrap();
    fs::write(p.join("openstack/latest/user_data"), b"").unwrap();
    let big: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
    fs::write(p.join("openstack/content/0000"), &big).unwrap();
    fs::write(p.join("openstack/content/with space"), [0u8, 1, 2, 255]).unwrap();
    fs::write(p.join("ec2/latest/meta-data.json"), b"{}").unwrap();
    fs::write(p.join("odd\nname"), b"newline in the name").unwrap();
    t
}

fn open(dir: &Path) -> (DirFs, Vec<Entry>) {
    let mut d = DirFs::open(dir).unwrap();
    let e = d.entries().unwrap();
    (d, e)
}

fn copy_dir(dir: &Path, dest: &Path) -> Result<Manifest, CopyError> {
    let (mut d, e) = open(dir);
    copy::copy_drive(&mut d, &e, dest)
}

/// Every file (relative path -> bytes) and directory under `dir`, read independently.
fn snapshot(dir: &Path) -> (Vec<String>, BTreeMap<String, Vec<u8>>) {
    fn walk(base: &Path, d: &Path, dirs: &mut Vec<String>, files: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(base)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let ft = fs::symlink_metadata(e.path()).unwrap().file_type();
            if ft.is_dir() {
                dirs.push(rel);
                walk(base, &e.path(), dirs, files);
            } else {
                assert!(ft.is_file(), "{rel}");
                files.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    let (mut dirs, mut files) = (Vec::new(), BTreeMap::new());
    walk(dir, dir, &mut dirs, &mut files);
    dirs.sort();
    (dirs, files)
}

fn sha_hex(b: &[u8]) -> String {
    copy::hex(&Sha256::digest(b))
}

/// Checks a copy against the drive directory it came from, independently of `copy`'s code.
fn check_copy(drive: &Path, dest: &Path, m: &Manifest) {
    let (drive_dirs, drive_files) = snapshot(drive);
    let (copy_dirs, mut copy_files) = snapshot(dest);
    let sums = copy_files.remove(SUMS).expect("SHA256SUMS in the copy");
    assert_eq!(copy_dirs, drive_dirs);
    assert_eq!(copy_files, drive_files, "byte-identical");

    // Modes: 0700 directories (the copy's top included), 0600 files, owned by us (root in CI).
    let uid = fs::metadata(tempfile::NamedTempFile::new().unwrap().path())
        .unwrap()
        .uid();
    let mode = |p: &Path| fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(dest), 0o700);
    for d in &copy_dirs {
        assert_eq!(mode(&dest.join(d)), 0o700, "{d}");
    }
    for f in copy_files.keys().map(String::as_str).chain([SUMS]) {
        let meta = fs::symlink_metadata(dest.join(f)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{f}");
        assert_eq!(meta.uid(), uid, "{f}");
        if uid == 0 {
            assert_eq!(meta.gid(), 0, "{f}");
        }
    }

    // The manifest: every file, sorted, with size and hash; the dirs; SHA256SUMS is its text.
    let want: Vec<(String, u64, String)> = drive_files
        .iter()
        .map(|(p, b)| (p.clone(), b.len() as u64, sha_hex(b)))
        .collect();
    let got: Vec<(String, u64, String)> = m
        .files
        .iter()
        .map(|f| (f.path.as_str().to_string(), f.size, copy::hex(&f.sha256)))
        .collect();
    assert_eq!(got, want);
    let dirs: Vec<&str> = m.dirs.iter().map(RelPath::as_str).collect();
    assert_eq!(dirs, drive_dirs);
    assert_eq!(String::from_utf8(sums.clone()).unwrap(), m.sums());
    for (line, (p, _, h)) in String::from_utf8(sums).unwrap().lines().zip(&want) {
        if !p.contains('\n') {
            assert_eq!(line, format!("{h}  {p}"));
        }
    }
    assert_eq!(copy::verify_copy(dest).unwrap(), *m);

    // coreutils as an independent checker.
    match Command::new("sha256sum")
        .args(["--check", "--strict", "--quiet", SUMS])
        .current_dir(dest)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "sha256sum -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("SKIP sha256sum -c: {e}"),
    }
}

#[test]
fn copies_a_tree_byte_identical_private_and_with_a_manifest() {
    let drive = drive_tree();
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    let m = copy_dir(drive.path(), &dest).unwrap();
    check_copy(drive.path(), &dest, &m);
    assert_eq!(m.file_count(), 6);
    let (_, files) = snapshot(drive.path());
    assert_eq!(
        m.total_bytes(),
        files.values().map(|b| b.len() as u64).sum::<u64>()
    );
    // The parent was created root-only.
    let parent = fs::metadata(dest.parent().unwrap()).unwrap();
    assert_eq!(parent.permissions().mode() & 0o777, 0o700);

    // Hashing the drive without copying gives the same manifest; so does the copy's own check.
    let (mut d, e) = open(drive.path());
    let hashed = copy::hash_drive(&mut d, &e).unwrap();
    assert!(copy::same_as(&hashed, &m));
    assert!(copy::same_as(&copy::verify_copy(&dest).unwrap(), &hashed));

    // A second destination (cloud-init's seed) works the same way.
    let seed = copy::cloud_init_seed_dest(root.path());
    let m2 = copy_dir(drive.path(), &seed).unwrap();
    assert_eq!(m2, m);
    check_copy(drive.path(), &seed, &m2);
}

#[test]
fn copies_the_vexxhost_fixture() {
    let Some(dir) = fixtures()
        .map(|f| f.join("glean/vexxhost"))
        .filter(|d| d.is_dir())
    else {
        eprintln!("SKIP: the glean/vexxhost fixture is not in shared/fixtures");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    let m = copy_dir(&dir, &dest).unwrap();
    check_copy(&dir, &dest, &m);
    assert!(
        m.files
            .iter()
            .any(|f| f.path.as_str() == "openstack/latest/meta_data.json")
    );
}

/// A drive that fails after `ok` files, as a dying USB stick or a crash would.
struct FailAfter<'a> {
    inner: &'a mut dyn DriveFs,
    ok: usize,
}

impl DriveFs for FailAfter<'_> {
    fn kind(&self) -> DriveFsKind {
        self.inner.kind()
    }
    fn label(&self) -> &str {
        self.inner.label()
    }
    fn entries(&mut self) -> Result<Vec<Entry>, FsError> {
        self.inner.entries()
    }
    fn copy_file(&mut self, path: &RelPath, out: &mut dyn Write) -> Result<u64, FsError> {
        if self.ok == 0 {
            // Part of the file first, as a read error in the middle would.
            out.write_all(b"partial").unwrap();
            return Err(FsError::Io {
                fs: "test",
                what: path.to_string(),
                source: std::io::Error::other("injected read error"),
            });
        }
        self.ok -= 1;
        self.inner.copy_file(path, out)
    }
}

#[test]
fn a_failed_copy_leaves_no_dest_and_an_older_copy_intact() {
    let drive = drive_tree();
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("var/lib/seedpart/config-drive");
    let tmp = root.path().join("var/lib/seedpart/config-drive.tmp");
    for ok in [0, 1, 3, 5] {
        let (mut d, e) = open(drive.path());
        let err = copy::copy_drive(&mut FailAfter { inner: &mut d, ok }, &e, &dest).unwrap_err();
        assert!(matches!(err, CopyError::Drive { .. }), "{err}");
        assert!(err.to_string().contains("injected read error"), "{err}");
        assert!(!dest.exists(), "after {ok} files");
        assert!(!tmp.exists(), "the failed temporary copy is cleaned up");
    }

    // With an older copy in place, it survives any failure unchanged.
    let older = tempfile::tempdir().unwrap();
    fs::write(older.path().join("old"), b"older copy").unwrap();
    let old_m = copy_dir(older.path(), &dest).unwrap();
    for ok in [0, 2, 5] {
        let (mut d, e) = open(drive.path());
        copy::copy_drive(&mut FailAfter { inner: &mut d, ok }, &e, &dest).unwrap_err();
        assert_eq!(copy::verify_copy(&dest).unwrap(), old_m);
        assert_eq!(fs::read(dest.join("old")).unwrap(), b"older copy");
    }

    // What a real crash leaves (a half-written tmp, here with junk, a read-only directory and a
    // symlink out of it) is removed by the next copy, without following the symlink.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("precious"), b"keep").unwrap();
    fs::create_dir_all(tmp.join("openstack/ro")).unwrap();
    fs::write(tmp.join("openstack/partial"), b"par").unwrap();
    symlink(outside.path(), tmp.join("escape")).unwrap();
    fs::set_permissions(tmp.join("openstack/ro"), fs::Permissions::from_mode(0o500)).unwrap();
    let m = copy_dir(drive.path(), &dest).unwrap();
    check_copy(drive.path(), &dest, &m);
    assert!(!tmp.exists());
    assert_eq!(fs::read(outside.path().join("precious")).unwrap(), b"keep");
    let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["config-drive"]);
}

#[test]
fn replacing_an_older_copy_leaves_only_the_new_one() {
    let a = tempfile::tempdir().unwrap();
    fs::create_dir_all(a.path().join("openstack/latest")).unwrap();
    fs::write(
        a.path().join("openstack/latest/meta_data.json"),
        b"{\"uuid\":\"a\"}",
    )
    .unwrap();
    fs::write(a.path().join("gone"), b"only in the old drive").unwrap();
    let b = drive_tree();
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    copy_dir(a.path(), &dest).unwrap();
    let m = copy_dir(b.path(), &dest).unwrap();
    check_copy(b.path(), &dest, &m);
    assert!(!dest.join("gone").exists());
    let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["config-drive"], "no .old or .tmp left");
    // Copying the same drive again is a no-op in content.
    let again = copy_dir(b.path(), &dest).unwrap();
    assert_eq!(again, m);
}

fn fresh_copy() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let drive = drive_tree();
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    copy_dir(drive.path(), &dest).unwrap();
    (drive, root, dest)
}

fn verify_err(dest: &Path) -> String {
    copy::verify_copy(dest).unwrap_err().to_string()
}

#[test]
fn verify_copy_names_what_is_wrong() {
    // A missing file.
    let (_d, _r, dest) = fresh_copy();
    fs::remove_file(dest.join("openstack/latest/user_data")).unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains("openstack/latest/user_data") && e.contains("missing"),
        "{e}"
    );

    // An extra file, at the top and deeper.
    let (_d, _r, dest) = fresh_copy();
    fs::write(dest.join("openstack/latest/vendor_data.json"), b"{}").unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains("openstack/latest/vendor_data.json") && e.contains("not listed"),
        "{e}"
    );

    // A flipped byte.
    let (_d, _r, dest) = fresh_copy();
    let p = dest.join("openstack/content/0000");
    let mut b = fs::read(&p).unwrap();
    b[100_000] ^= 0x10;
    fs::write(&p, &b).unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains("openstack/content/0000") && e.contains("SHA-256"),
        "{e}"
    );

    // A truncated file.
    let (_d, _r, dest) = fresh_copy();
    let f = fs::OpenOptions::new()
        .write(true)
        .open(dest.join("openstack/latest/meta_data.json"))
        .unwrap();
    f.set_len(10).unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains("openstack/latest/meta_data.json")
            && e.contains("10 bytes")
            && e.contains("truncated"),
        "{e}"
    );

    // No SHA256SUMS.
    let (_d, _r, dest) = fresh_copy();
    fs::remove_file(dest.join(SUMS)).unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains(SUMS) && e.contains(dest.to_str().unwrap()),
        "{e}"
    );

    // A SHA256SUMS cut short, or with a bad line.
    let (_d, _r, dest) = fresh_copy();
    let sums = fs::read_to_string(dest.join(SUMS)).unwrap();
    fs::write(dest.join(SUMS), &sums[..sums.len() - 5]).unwrap();
    let e = verify_err(&dest);
    assert!(e.contains("SHA256SUMS:") && e.contains("cut short"), "{e}");
    let lines: Vec<&str> = sums.lines().collect();
    fs::write(dest.join(SUMS), format!("{}\ngarbage\n", lines[0])).unwrap();
    let e = verify_err(&dest);
    assert!(e.contains("SHA256SUMS:2:"), "{e}");

    // A symlink inside the copy.
    let (_d, _r, dest) = fresh_copy();
    symlink("/etc/passwd", dest.join("ec2/latest/passwd")).unwrap();
    let e = verify_err(&dest);
    assert!(
        e.contains("ec2/latest/passwd") && e.contains("symlink"),
        "{e}"
    );

    // No copy at all, or the copy replaced by a symlink.
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    let e = verify_err(&dest);
    assert!(e.contains("no copy") && e.contains("config-drive"), "{e}");
    let (_d, _r, real) = fresh_copy();
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    symlink(&real, &dest).unwrap();
    let e = verify_err(&dest);
    assert!(e.contains("symlink") && e.contains("config-drive"), "{e}");
}

#[test]
fn refuses_to_write_through_symlinks() {
    let drive = drive_tree();

    // <root>/var/lib/seedpart is a symlink to elsewhere.
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("var/lib")).unwrap();
    symlink(elsewhere.path(), root.path().join("var/lib/seedpart")).unwrap();
    let e = copy_dir(drive.path(), &copy::default_dest(root.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("var/lib/seedpart") && e.contains("symlink"),
        "{e}"
    );
    assert_eq!(
        fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "nothing written there"
    );
    let e = state::save(root.path(), &State::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("var/lib/seedpart") && e.contains("symlink"),
        "{e}"
    );
    assert!(state::load(root.path()).is_err());
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    // The copy itself is a symlink.
    let root = tempfile::tempdir().unwrap();
    let dest = copy::default_dest(root.path());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    symlink(elsewhere.path(), &dest).unwrap();
    let e = copy_dir(drive.path(), &dest).unwrap_err().to_string();
    assert!(e.contains("config-drive") && e.contains("symlink"), "{e}");
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    assert!(
        fs::symlink_metadata(&dest)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // state.json a symlink: loading refuses; saving replaces the link, not its target.
    let root = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("victim");
    fs::write(&target, b"untouched").unwrap();
    fs::create_dir_all(state::dir(root.path())).unwrap();
    symlink(&target, state::path(root.path())).unwrap();
    let e = state::load(root.path()).unwrap_err().to_string();
    assert!(e.contains("state.json") && e.contains("symlink"), "{e}");
    state::save(root.path(), &State::new()).unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
    assert_eq!(state::load(root.path()).unwrap(), Some(State::new()));
}

#[test]
fn hostile_or_inconsistent_drives_are_refused() {
    // A file the drive lists at one size but delivers at another.
    let drive = drive_tree();
    let root = tempfile::tempdir().unwrap();
    let dest = root.path().join("copy");
    let (mut d, mut e) = open(drive.path());
    for entry in &mut e {
        if entry.path.as_str() == "ec2/latest/meta-data.json" {
            entry.kind = EntryKind::File { size: 3 };
        }
    }
    let err = copy::copy_drive(&mut d, &e, &dest).unwrap_err().to_string();
    assert!(
        err.contains("ec2/latest/meta-data.json") && err.contains("3 bytes"),
        "{err}"
    );
    assert!(!dest.exists());

    // A drive holding a top-level SHA256SUMS would clash with the manifest.
    fs::write(drive.path().join(SUMS), b"forged").unwrap();
    let err = copy_dir(drive.path(), &dest).unwrap_err().to_string();
    assert!(err.contains(SUMS), "{err}");
    assert!(!dest.exists());

    // Names that try to leave the tree never reach copy_drive: RelPath refuses them.
    for bad in ["../x", "a/../../x", "/etc/passwd", "a//b", "."] {
        assert!(RelPath::parse(bad).is_err(), "{bad}");
    }
}

fn full_state() -> State {
    let mut s = State::new();
    s.instance_uuid = Some("83679162-1378-4288-a2d4-70e13ec132aa".into());
    s.drive = Some(DriveRecord {
        disk: "/dev/vda".into(),
        number: 2,
        start: 10 << 30,
        size: 64 << 20,
        fs: "vfat".into(),
        label: "config-2".into(),
        partuuid: Some("0d2ea5d1-e28b-4a85-9e0e-6b4f5c6d2d6e".into()),
        table: "gpt".into(),
        ..Default::default()
    });
    s.copy = Some(CopyRecord {
        path: "/var/lib/seedpart/config-drive".into(),
        files: 4,
        bytes: 1234,
        manifest_sha256: "00".repeat(32),
        verified: true,
        ..Default::default()
    });
    s.partition_deleted = true;
    s.partition_grown = Some(GrowRecord {
        number: 1,
        from: 10 << 30,
        to: (20 << 30) - (1 << 20),
        ..Default::default()
    });
    s.filesystem_grown = Some(FsGrowRecord::grown(
        "ext4",
        10 << 30,
        (20 << 30) - (1 << 20),
    ));
    s.last_run = Some(state::now());
    s.last_result = Some("done".into());
    s
}

#[test]
fn state_round_trips_atomically_and_privately() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(state::load(root.path()).unwrap(), None);
    let s = full_state();
    state::save(root.path(), &s).unwrap();
    assert_eq!(state::load(root.path()).unwrap(), Some(s.clone()));

    let dir = state::dir(root.path());
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    let meta = fs::metadata(state::path(root.path())).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["state.json"], "no temporary file left");

    // Saving over it (with a stale temp file from a crash around) replaces it whole.
    fs::write(dir.join("state.json.tmp"), b"{half").unwrap();
    let mut s2 = s.clone();
    s2.last_result = Some("nothing to do".into());
    s2.filesystem_grown = Some(FsGrowRecord::skipped("f2fs", "online growth not supported"));
    state::save(root.path(), &s2).unwrap();
    assert_eq!(state::load(root.path()).unwrap(), Some(s2));
    assert!(!dir.join("state.json.tmp").exists());

    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(state::path(root.path())).unwrap()).unwrap();
    assert_eq!(json["format"], 1);
    assert_eq!(json["drive"]["number"], 2);
    assert_eq!(json["copy"]["verified"], true);
    assert_eq!(
        json["filesystem_grown"]["skipped"],
        "online growth not supported"
    );
    let t = json["last_run"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "{t}"
    );
}

#[test]
fn state_keeps_fields_from_newer_versions() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(state::dir(root.path())).unwrap();
    let newer = r#"{
  "format": 2,
  "instance_uuid": "u",
  "drive": {"disk": "/dev/sda", "number": 3, "start": 1, "size": 2, "fs": "iso9660",
            "label": "config-2", "partuuid": null, "table": "mbr", "serial": "XYZ"},
  "partition_deleted": false,
  "future_step": {"done": true, "n": [1, 2]},
  "future_flag": "yes"
}"#;
    fs::write(state::path(root.path()), newer).unwrap();
    let s = state::load(root.path()).unwrap().unwrap();
    assert_eq!(s.format, 2);
    assert_eq!(s.extra["future_flag"], "yes");
    assert_eq!(s.drive.as_ref().unwrap().extra["serial"], "XYZ");
    let mut s2 = s.clone();
    s2.last_result = Some("done".into());
    state::save(root.path(), &s2).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(state::path(root.path())).unwrap()).unwrap();
    assert_eq!(json["future_step"]["n"][1], 2);
    assert_eq!(json["future_flag"], "yes");
    assert_eq!(json["drive"]["serial"], "XYZ");
    assert_eq!(json["last_result"], "done");
    assert_eq!(state::load(root.path()).unwrap(), Some(s2));
}

#[test]
fn corrupt_state_names_file_line_and_column() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(state::dir(root.path())).unwrap();
    fs::write(
        state::path(root.path()),
        "{\n  \"format\": 1,\n  \"partition_deleted\": @\n}\n",
    )
    .unwrap();
    let err = state::load(root.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            state::StateError::Corrupt {
                line: 3,
                column: 24,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("state.json:3:24:"), "{msg}");
    assert!(msg.contains("move it aside"), "{msg}");

    // A wrong type is an error too, not a silent default.
    fs::write(state::path(root.path()), "{\"partition_deleted\": \"yes\"}").unwrap();
    let msg = state::load(root.path()).unwrap_err().to_string();
    assert!(msg.contains("state.json:1:"), "{msg}");
}

#[test]
fn status_without_state() {
    let root = tempfile::tempdir().unwrap();
    let r = status::gather(root.path()).unwrap();
    assert_eq!(r.state, None);
    assert!(!r.copy.verified);
    assert!(r.copy.problem.as_deref().unwrap().contains("no copy"));
    let human = status::render(root.path(), &r);
    assert!(
        human.contains("seedpart has not run on this root"),
        "{human}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["state"], serde_json::Value::Null);
    assert_eq!(json["copy"]["verified"], false);
    assert_eq!(json["copy"]["files"], serde_json::Value::Null);
    assert!(
        json["copy"]["path"]
            .as_str()
            .unwrap()
            .ends_with("var/lib/seedpart/config-drive")
    );
    // The command itself exits 0.
    status::status(&seedpart::cli::StatusArgs {
        root: root.path().to_path_buf(),
        json: true,
    })
    .unwrap();
}

#[test]
fn status_with_state_and_copy() {
    let (_drive, root, dest) = fresh_copy();
    let m = copy::verify_copy(&dest).unwrap();
    let mut s = full_state();
    s.copy = Some(CopyRecord::new(&dest, &m, true));
    state::save(root.path(), &s).unwrap();

    let r = status::gather(root.path()).unwrap();
    assert_eq!(r.state.as_ref(), Some(&s));
    assert!(r.copy.verified, "{:?}", r.copy.problem);
    assert_eq!(r.copy.files, Some(6));
    assert_eq!(r.copy.bytes, Some(m.total_bytes()));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["state"]["instance_uuid"],
        "83679162-1378-4288-a2d4-70e13ec132aa"
    );
    assert_eq!(json["copy"]["verified"], true);
    assert_eq!(json["copy"]["problem"], serde_json::Value::Null);
    assert_eq!(json["copy"]["files"], 6);

    let human = status::render(root.path(), &r);
    for want in [
        "instance:   83679162-1378-4288-a2d4-70e13ec132aa",
        "drive:      /dev/vda partition 2 (gpt), vfat \"config-2\"",
        "partition:  deleted",
        "grow:       partition 1 grown from",
        "filesystem: ext4 grown from",
        "intact",
        ": done",
    ] {
        assert!(human.contains(want), "{want:?} in\n{human}");
    }
    assert_eq!(human.lines().count(), 9, "{human}");

    // A damaged copy is reported (exit status stays 0).
    fs::write(dest.join("openstack/latest/user_data"), b"tampered").unwrap();
    let r = status::gather(root.path()).unwrap();
    assert!(!r.copy.verified);
    let p = r.copy.problem.clone().unwrap();
    assert!(p.contains("openstack/latest/user_data"), "{p}");
    assert!(status::render(root.path(), &r).contains("PROBLEM:"));
    status::status(&seedpart::cli::StatusArgs {
        root: root.path().to_path_buf(),
        json: false,
    })
    .unwrap();

    // A consistent copy that is not the one the state file recorded is reported too.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("x"), b"x").unwrap();
    copy_dir(other.path(), &dest).unwrap();
    let r = status::gather(root.path()).unwrap();
    assert!(!r.copy.verified);
    assert!(
        r.copy
            .problem
            .unwrap()
            .contains("not the one state.json recorded")
    );
}

#[test]
fn status_with_corrupt_state_fails_naming_the_file() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(state::dir(root.path())).unwrap();
    fs::write(state::path(root.path()), "not json").unwrap();
    let e = status::status(&seedpart::cli::StatusArgs {
        root: root.path().to_path_buf(),
        json: false,
    })
    .unwrap_err();
    assert!(e.to_string().contains("state.json:1:"), "{e}");
}
