//! Helpers shared by the integration tests: sparse images, external tools, the `seedpart`
//! binary, loop devices and mounts, the pieces of crash replay.
//!
//! A test that needs a tool or root starts with `require_tools!(...)` or `require_loop!(...)`
//! (or calls `require_tool(s)` / `require_root`): when the test cannot run here they print
//! `SKIP: <reason> (<where>)` on stderr and the test returns without checking anything.
#![allow(dead_code)]

use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;

/// Opens a file or device for reading and writing.
#[track_caller]
fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening {} read-write: {e}", path.display()))
}

/// The `seedpart` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_seedpart");

/// The fixtures shared with the other implementations (`shared/fixtures`, beside the
/// repository), when they are there.
pub fn fixtures() -> Option<PathBuf> {
    [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
        PathBuf::from("/work/shared/fixtures"),
    ]
    .into_iter()
    .find(|p| p.join("README.md").is_file())
}

/// A sparse image file of `size` bytes in its own temporary directory (removed on drop).
pub struct TempImage {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TempImage {
    pub fn new(size: u64) -> TempImage {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("disk.img");
        let f = File::create(&path).expect("creating the image");
        f.set_len(size).expect("sizing the image");
        TempImage { _dir: dir, path }
    }

    /// An image holding exactly `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> TempImage {
        let img = TempImage::new(0);
        std::fs::write(&img.path, bytes).expect("writing the image");
        img
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("temporary paths are UTF-8")
    }

    pub fn open_ro(&self) -> File {
        File::open(&self.path).expect("opening the image")
    }

    pub fn open_rw(&self) -> File {
        open_rw(&self.path)
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("reading the image")
    }

    pub fn len(&self) -> u64 {
        std::fs::metadata(&self.path).expect("image metadata").len()
    }

    pub fn set_len(&self, size: u64) {
        self.open_rw().set_len(size).expect("resizing the image");
    }

    pub fn read_at(&self, off: u64, n: usize) -> Vec<u8> {
        let mut f = self.open_ro();
        let mut b = vec![0u8; n];
        f.seek(SeekFrom::Start(off)).unwrap();
        f.read_exact(&mut b).unwrap();
        b
    }

    pub fn write_at(&self, off: u64, bytes: &[u8]) {
        let mut f = self.open_rw();
        f.seek(SeekFrom::Start(off)).unwrap();
        f.write_all(bytes).unwrap();
    }

    /// The image's own temporary directory, for files made from it.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// Copies `len` bytes at `off` into a file of their own (a partition, dd'ed out).
    #[track_caller]
    pub fn extract(&self, off: u64, len: u64) -> PathBuf {
        let out = self.dir().join(format!("part-{off}.img"));
        let mut f = self.open_ro();
        f.seek(SeekFrom::Start(off)).unwrap();
        let mut o = File::create(&out).unwrap();
        let n = std::io::copy(&mut f.take(len), &mut o).unwrap();
        assert_eq!(n, len, "partition runs past the image's end");
        out
    }

    /// A byte-for-byte copy, to compare with after a failure (`assert_unchanged`).
    pub fn snapshot(&self) -> PathBuf {
        let out = self.dir().join("snapshot.img");
        run(
            "cp",
            &["--sparse=always", self.path_str(), out.to_str().unwrap()],
        );
        out
    }

    /// The image is byte for byte the `snapshot` taken earlier (`cmp`).
    #[track_caller]
    pub fn assert_unchanged(&self, snapshot: &Path) {
        let out = run_raw("cmp", &["-s", self.path_str(), snapshot.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: the image changed",
            self.path_str()
        );
    }
}

/// Where `name` is found: an executable on `PATH` or in the usual bin and sbin directories
/// (which a root shell has on its `PATH` but a test runner may not), or an absolute path.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        return is_exe(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_exe(p))
}

/// Whether `name` can be run (see `find_tool`).
pub fn have_tool(name: &str) -> bool {
    find_tool(name).is_some()
}

/// True when `name` can be run; otherwise prints why the calling test is skipped.
#[track_caller]
pub fn require_tool(name: &str) -> bool {
    if have_tool(name) {
        return true;
    }
    let at = std::panic::Location::caller();
    eprintln!("SKIP: the tool `{name}` is not installed ({at})");
    false
}

/// True for every tool in `names` (each missing one is reported).
#[track_caller]
pub fn require_tools(names: &[&str]) -> bool {
    let mut all = true;
    for n in names {
        all &= require_tool(n);
    }
    all
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True when running as root with loop devices available; otherwise prints why not.
#[track_caller]
pub fn require_root() -> bool {
    let at = std::panic::Location::caller();
    if !is_root() {
        eprintln!("SKIP: needs root (loop devices) ({at})");
        return false;
    }
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIP: /dev/loop-control is missing: no loop device support ({at})");
        return false;
    }
    if !have_tool("losetup") || !have_tool("partx") {
        eprintln!("SKIP: losetup/partx (util-linux) are not installed ({at})");
        return false;
    }
    true
}

/// Returns from the calling test, after a `SKIP:` line, unless every tool named is installed.
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        if !$crate::common::require_tools(&[$($tool),+]) {
            return;
        }
    };
}

/// Returns from the calling test, after a `SKIP:` line, unless it runs as root with loop
/// devices (`require_root`) and every tool named is installed.
#[macro_export]
macro_rules! require_loop {
    ($($tool:expr),* $(,)?) => {
        if !$crate::common::require_root() || !$crate::common::require_tools(&[$($tool),*]) {
            return;
        }
    };
}

/// A command for the tool `name` (found as `find_tool` finds it), in the C locale with UTF-8
/// (English messages, UTF-8 file names) and without mtools' drive geometry check.
pub fn tool_command(name: &str) -> Command {
    let mut c = Command::new(find_tool(name).unwrap_or_else(|| PathBuf::from(name)));
    c.env("LC_ALL", "C.UTF-8").env("MTOOLS_SKIP_CHECK", "1");
    c
}

/// Runs a command (stdin empty); the output whatever the exit status.
pub fn run_raw(cmd: &str, args: &[&str]) -> Output {
    tool_command(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

#[track_caller]
fn assert_ran(cmd: &str, args: &[&str], input: Option<&str>, out: &Output) {
    let input = input.map(|i| format!("input: {i}\n")).unwrap_or_default();
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}):\n{input}stdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = run_raw(cmd, args);
    assert_ran(cmd, args, None, &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command with `input` on its stdin; the output whatever the exit status, or the
/// error when it cannot be started.
pub fn run_stdin_raw(cmd: &str, args: &[&str], input: &str) -> std::io::Result<Output> {
    let mut child = tool_command(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("writing to {cmd}'s stdin: {e}"));
    Ok(child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd}: {e}")))
}

/// Runs a command that must succeed, with `input` on its stdin; returns its stdout.
#[track_caller]
pub fn run_stdin(cmd: &str, args: &[&str], input: &str) -> String {
    let out = run_stdin_raw(cmd, args, input).unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert_ran(cmd, args, Some(input), &out);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// The seedpart binary

/// What a run of `seedpart` did.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == 0
    }

    /// stdout and stderr together.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
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

/// Runs `seedpart ARGS` (stdin empty, no fault injected).
pub fn seedpart(args: &[&str]) -> Out {
    seedpart_with_fault(args, None)
}

/// Runs `seedpart ARGS` with `SEEDPART_FAULT` set to `fault` (unset when `None`).
pub fn seedpart_with_fault(args: &[&str], fault: Option<&str>) -> Out {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .env_remove("SEEDPART_FAULT");
    if let Some(f) = fault {
        c.env("SEEDPART_FAULT", f);
    }
    let out = c.output().expect("running seedpart");
    Out {
        code: out
            .status
            .code()
            .unwrap_or_else(|| panic!("seedpart {args:?} was killed by a signal ({})", out.status)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `seedpart inspect --json ARGS`, which must succeed; its report.
#[track_caller]
pub fn inspect_json(args: &[&str]) -> Value {
    let mut all = vec!["inspect", "--json"];
    all.extend_from_slice(args);
    let o = seedpart(&all);
    assert_eq!(o.code, 0, "seedpart {all:?}: {o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("inspect JSON: {e}: {o:?}"))
}

/// A JSON string, which it must be.
#[track_caller]
pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A JSON unsigned number, which it must be.
#[track_caller]
pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

// ---------------------------------------------------------------------------------------------
// Partition tables and filesystems made by the independent tools

/// `sgdisk ARGS DEV`, which must succeed.
#[track_caller]
pub fn sgdisk(dev: &str, args: &[&str]) {
    let mut a = args.to_vec();
    a.push(dev);
    run("sgdisk", &a);
}

/// A 512-byte-sector GPT image of `size` bytes made by sgdisk with `args`.
#[track_caller]
pub fn sgdisk_image(size: u64, args: &[&str]) -> TempImage {
    let img = TempImage::new(size);
    sgdisk(img.path_str(), args);
    img
}

/// `sfdisk` with `script` on stdin, on an image file (the kernel is not told), which must
/// succeed.
#[track_caller]
pub fn sfdisk_script(dev: &str, script: &str) {
    run_stdin(
        "sfdisk",
        &["-q", "--no-reread", "--no-tell-kernel", dev],
        script,
    );
}

/// `sgdisk -v` output (stdout and stderr together), and whether it found no problems.
pub fn sgdisk_verify(dev: &str) -> (bool, String) {
    let out = run_raw("sgdisk", &["-v", dev]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = out.status.success()
        && text.contains("No problems found")
        && !text.contains("Creating new GPT")
        && !text.contains("Problem:")
        && !text.contains("Warning");
    (clean, text)
}

/// `sgdisk -v` finds nothing wrong (see `sgdisk_verify`).
#[track_caller]
pub fn assert_sgdisk_clean(dev: &str) {
    let (clean, text) = sgdisk_verify(dev);
    assert!(clean, "sgdisk -v {dev}:\n{text}");
}

/// The partitions `sgdisk -p` lists: (number, first LBA, last LBA).
pub fn sgdisk_rows(path: &str) -> Result<Vec<(u32, u64, u64)>, String> {
    let out = run_raw("sgdisk", &["-p", path]);
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Creating new GPT") {
        return Err(format!(
            "sgdisk found no GPT ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows = text
        .lines()
        .skip_while(|l| !l.starts_with("Number"))
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.get(2)?.parse().ok()?,
            ))
        })
        .collect();
    Ok(rows)
}

/// One partition as `sfdisk --json` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SfPart {
    pub number: u32,
    pub start: u64,
    pub size: u64,
    /// Lowercased: a GUID for GPT, the hex type byte (`83`, `5`) for MBR.
    pub type_: String,
    pub uuid: Option<String>,
    pub name: Option<String>,
}

/// What `sfdisk --json` says of a disk or image.
#[derive(Clone, Debug)]
pub struct SfTable {
    pub label: String,
    pub id: String,
    pub sector_size: u64,
    pub first_lba: Option<u64>,
    pub last_lba: Option<u64>,
    pub partitions: Vec<SfPart>,
}

pub fn sfdisk_json(dev: &str) -> SfTable {
    let out = run("sfdisk", &["--json", dev]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("sfdisk --json output");
    let t = &v["partitiontable"];
    let num = |k: &str| t.get(k).and_then(|x| x.as_u64());
    let partitions = t["partitions"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            let digits: String = node
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_digit())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            SfPart {
                number: digits.parse().unwrap(),
                start: p["start"].as_u64().unwrap(),
                size: p["size"].as_u64().unwrap(),
                type_: p["type"].as_str().unwrap().to_lowercase(),
                uuid: p
                    .get("uuid")
                    .and_then(|u| u.as_str())
                    .map(str::to_lowercase),
                name: p.get("name").and_then(|u| u.as_str()).map(str::to_string),
            }
        })
        .collect();
    SfTable {
        label: t["label"].as_str().unwrap().to_string(),
        id: t["id"].as_str().unwrap().to_lowercase(),
        sector_size: num("sectorsize").unwrap_or(512),
        first_lba: num("firstlba"),
        last_lba: num("lastlba"),
        partitions,
    }
}

/// `partx` (libblkid's partition prober) rows: number, start, sectors, PARTUUID (lowercase).
pub fn partx_list(dev: &str) -> Vec<(u32, u64, u64, String)> {
    run("partx", &["-g", "-o", "NR,START,SECTORS,UUID", dev])
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 4 {
                return None;
            }
            Some((
                f[0].parse().ok()?,
                f[1].parse().ok()?,
                f[2].parse().ok()?,
                f[3].to_lowercase(),
            ))
        })
        .collect()
}

/// Writes a file, making its directory first.
#[track_caller]
pub fn write_file(path: &Path, data: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Copies every top-level entry of `tree` into the root of the FAT volume `image` (what
/// mtools' `-i` takes: an image file, a device, or `FILE@@OFFSET`) with `mcopy -s`.
#[track_caller]
pub fn mcopy_tree(image: &str, tree: &Path) {
    for e in std::fs::read_dir(tree).unwrap() {
        let e = e.unwrap().path();
        run("mcopy", &["-s", "-i", image, e.to_str().unwrap(), "::/"]);
    }
}

/// genisoimage's flags as Nova (and openstacksdk) make a config drive, but the label (`-V`).
pub const NOVA_ISO_FLAGS: &[&str] = &[
    "-ldots",
    "-allow-lowercase",
    "-allow-multidot",
    "-l",
    "-publisher",
    "OpenStack Compute",
    "-quiet",
    "-J",
    "-r",
];

/// An ISO of `tree` as Ironic makes a config drive (Rock Ridge and Joliet), labelled `label`.
#[track_caller]
pub fn genisoimage(tree: &Path, label: &str, out: &Path) {
    run(
        "genisoimage",
        &[
            "-quiet",
            "-J",
            "-r",
            "-V",
            label,
            "-o",
            out.to_str().unwrap(),
            tree.to_str().unwrap(),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Loop devices and mounts (root only)

static LOOP_LOCK: Mutex<()> = Mutex::new(());

/// Serialises the tests of one binary that use loop devices (attach/detach races, udev-less
/// partx, a drive of one test found by another's machine-wide search).
pub fn loop_lock() -> MutexGuard<'static, ()> {
    LOOP_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loop device attached to an image; on drop its partitions are removed (`partx -d`: a
/// detached loop device keeps partitions added by hand or by BLKPG) and it is detached.
pub struct LoopDev {
    pub dev: String,
    pub sector_size: u64,
    /// The image, when this loop device made it (removed after the detach).
    _img: Option<TempImage>,
}

impl LoopDev {
    /// A new sparse image of `size` bytes, attached with `sector_size`-byte sectors.
    #[track_caller]
    pub fn new(size: u64, sector_size: u64) -> LoopDev {
        let img = TempImage::new(size);
        let mut l = LoopDev::attach(&img.path, sector_size);
        l._img = Some(img);
        l
    }

    /// `losetup --find --show [--sector-size N] IMG`.
    #[track_caller]
    pub fn attach(img: &Path, sector_size: u64) -> LoopDev {
        let img = img.to_str().unwrap();
        let ss = sector_size.to_string();
        let mut args = vec!["--find", "--show"];
        if sector_size != 512 {
            args.extend(["--sector-size", &ss]);
        }
        args.push(img);
        let dev = run("losetup", &args).trim().to_string();
        assert!(dev.starts_with("/dev/loop"), "losetup printed {dev:?}");
        // A loop device detached elsewhere may keep stale partitions: start clean.
        let _ = run_raw("partx", &["-d", &dev]);
        LoopDev {
            dev,
            sector_size,
            _img: None,
        }
    }

    /// Creates the partition nodes (`partx -a`): this kernel does not scan loop partitions.
    /// A failure is reported, not fatal: partx cannot add an MBR extended container on a
    /// 4096-byte-sector device (it asks for a 1-sector node), and the data partitions are
    /// added all the same. Callers check the nodes they need (`wait_for`).
    pub fn add_partitions(&self) {
        let out = run_raw("partx", &["-a", &self.dev]);
        if !out.status.success() {
            eprintln!(
                "note: partx -a {}: {}",
                self.dev,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    /// The node of partition `n` (`/dev/loopXpN`), waiting briefly for it to appear.
    pub fn part(&self, n: u32) -> String {
        let p = format!("{}p{n}", self.dev);
        for _ in 0..100 {
            if Path::new(&p).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        p
    }

    /// One MiB in this device's sectors.
    pub fn mib_sectors(&self) -> u64 {
        MIB / self.sector_size
    }

    pub fn open_ro(&self) -> File {
        File::open(&self.dev).expect("opening the loop device")
    }

    pub fn open_rw(&self) -> File {
        open_rw(Path::new(&self.dev))
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let _ = run_raw("partx", &["-d", &self.dev]);
        let _ = run_raw("losetup", &["-d", &self.dev]);
    }
}

/// Waits (up to 5 s) for a device node to appear: devtmpfs makes it as the kernel adds the
/// partition.
pub fn wait_for(path: &str) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        if Path::new(path).exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A mount on a fresh temporary directory, unmounted on drop (lazily if it is busy).
pub struct Mount {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl Mount {
    /// `mount ARGS... DIR`, which must succeed.
    #[track_caller]
    pub fn new(args: &[&str]) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let mut all = args.to_vec();
        all.push(dir.path().to_str().unwrap());
        run("mount", &all);
        Mount { dir, mounted: true }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    /// `umount`, which must succeed.
    #[track_caller]
    pub fn unmount(&mut self) {
        if self.mounted {
            run("umount", &[self.path_str()]);
            self.mounted = false;
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.mounted && !run_raw("umount", &[self.path_str()]).status.success() {
            let _ = run_raw("umount", &["-l", self.path_str()]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Crash replay

/// What a recording device saw, in order.
#[derive(Clone, Debug)]
pub enum Op {
    Write(u64, Vec<u8>),
    Sync,
}

/// A piece of a write that may have reached the disk: (offset, bytes).
pub type Piece<'a> = (u64, &'a [u8]);

/// Every way one write can be torn at sector granularity (a sector lands whole or not at all),
/// plus literally the first half of its bytes. Neither "none of it" nor "all of it" is listed.
pub fn torn_writes(off: u64, data: &[u8], ss: usize) -> Vec<(String, Vec<Piece<'_>>)> {
    let n = data.len().div_ceil(ss);
    let mut v: Vec<(String, Vec<Piece<'_>>)> = vec![(
        "first half of its bytes".into(),
        vec![(off, &data[..data.len() / 2])],
    )];
    for j in 1..n {
        let cut = j * ss;
        v.push((format!("first {j} sectors"), vec![(off, &data[..cut])]));
        v.push((
            format!("all but the first {j} sectors"),
            vec![(off + cut as u64, &data[cut..])],
        ));
    }
    if n > 2 {
        for j in 0..n {
            let a = j * ss;
            let b = (a + ss).min(data.len());
            v.push((
                format!("only sector {j}"),
                vec![(off + a as u64, &data[a..b])],
            ));
            v.push((
                format!("all but sector {j}"),
                vec![(off, &data[..a]), (off + b as u64, &data[b..])],
            ));
        }
    }
    v
}

/// CRC-32 (IEEE, as GPT uses), for building corrupt-but-consistent fixtures.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A small deterministic PRNG (xorshift64*), so random mutations are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
