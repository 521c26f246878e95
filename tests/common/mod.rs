//! Helpers shared by the integration tests: sparse images, external tools, loop devices.
//!
//! Tests that need a tool or root call `require_tool` / `require_root` first; both print a
//! clear `SKIP` line on stderr and return false when the test cannot run here.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};

pub const MIB: u64 = 1 << 20;

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
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .expect("opening the image read-write")
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
}

/// Whether `name` is an executable on `PATH` (or an absolute path to one).
pub fn have_tool(name: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_exe = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        return is_exe(Path::new(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| is_exe(&d.join(name)))
}

/// True when `name` can be run; otherwise prints why the calling test is skipped.
#[track_caller]
pub fn require_tool(name: &str) -> bool {
    if have_tool(name) {
        return true;
    }
    let at = std::panic::Location::caller();
    eprintln!("SKIP ({at}): the tool `{name}` is not installed");
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
        eprintln!("SKIP ({at}): needs root (loop devices)");
        return false;
    }
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("SKIP ({at}): /dev/loop-control is missing: no loop device support");
        return false;
    }
    if !have_tool("losetup") || !have_tool("partx") {
        eprintln!("SKIP ({at}): losetup/partx (util-linux) are not installed");
        return false;
    }
    true
}

/// Runs a command; the output whatever the exit status.
pub fn run_raw(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"))
}

/// Runs a command that must succeed; returns its stdout.
#[track_caller]
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = run_raw(cmd, args);
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command that must succeed, with `input` on its stdin; returns its stdout.
#[track_caller]
pub fn run_stdin(cmd: &str, args: &[&str], input: &str) -> String {
    use std::process::Stdio;
    let mut child = Command::new(cmd)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "`{cmd} {}` failed ({}):\ninput: {input}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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

static LOOP_LOCK: Mutex<()> = Mutex::new(());

/// Serialises the tests that use loop devices (attach/detach races, udev-less partx).
pub fn loop_lock() -> MutexGuard<'static, ()> {
    LOOP_LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A loop device attached to an image, detached (with its partition nodes) on drop.
pub struct LoopDev {
    pub dev: String,
    partitions: bool,
}

impl LoopDev {
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
        LoopDev {
            dev,
            partitions: false,
        }
    }

    /// Creates the partition nodes (`partx -a`): this kernel does not scan loop partitions.
    /// A failure is reported, not fatal: partx cannot add an MBR extended container on a
    /// 4096-byte-sector device (it asks for a 1-sector node), and the data partitions are
    /// added all the same. Callers check the nodes they need.
    pub fn add_partitions(&mut self) {
        self.partitions = true;
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
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        p
    }

    pub fn open_ro(&self) -> File {
        File::open(&self.dev).expect("opening the loop device")
    }

    pub fn open_rw(&self) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.dev)
            .expect("opening the loop device read-write")
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        if self.partitions {
            let _ = run_raw("partx", &["-d", &self.dev]);
        }
        let _ = run_raw("losetup", &["-d", &self.dev]);
    }
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
