//! The VM test harness (see tests/vm/README.md): disk images built on the host, booted under
//! qemu (TCG) with Debian's cloud kernel and a busybox initramfs carrying seedpart; a shell
//! script runs inside with the root mounted at /sysroot, and its results come back through
//! markers in the serial log.
//!
//! ```ignore
//! let vm = require_vm!();                                   // or SKIP
//! let disk = DiskSpec::gpt(512 * MIB).root(200 * MIB, Fs::Ext4).build(&dir.join("d.img"))?;
//! let log = vm.boot(&disk, "vmtest_section plan seedpart inspect --root /sysroot --json").go()?;
//! log.assert_passed();
//! let plan = log.json("plan");
//! ```
//! Scripts run under busybox `sh -e` with the helpers of tests/vm/lib.sh (`vmtest_section`,
//! `vmtest_partitions`, `vmtest_fs_size`, `vmtest_powercut`, `vmtest_oracle`).
#![allow(dead_code)]

use anyhow::{Context, Result, anyhow, bail, ensure};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const MIB: u64 = 1 << 20;
const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Returns the shared [`Vm`], or prints `SKIP: <reason>` and returns from the test. (The
/// including file declares `#[macro_use] mod harness;`.)
macro_rules! require_vm {
    () => {
        match $crate::harness::vm() {
            Ok(vm) => vm,
            Err(why) => {
                eprintln!("SKIP: {why}");
                return;
            }
        }
    };
}

fn scripts_dir() -> PathBuf {
    Path::new(MANIFEST).join("tests/vm")
}

/// `target/vm` (or `$VMTEST_TARGET`), where the scripts cache the kernel and initramfs.
pub fn target_dir() -> PathBuf {
    std::env::var_os("VMTEST_TARGET")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(MANIFEST).join("target/vm"))
}

pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// What every boot shares: the kernel and an initramfs with this build of seedpart.
#[derive(Debug)]
pub struct Vm {
    pub kernel_dir: PathBuf,
    /// What qemu boots: the uncompressed vmlinux (PVH entry) when kernel.sh could extract it.
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// Time spent making them (kernel fetch or cache check, initramfs).
    pub setup: Duration,
}

static VM: OnceLock<Result<Vm, String>> = OnceLock::new();

/// The shared VM setup, made once per test process. `Err` is the reason the VM tests cannot run
/// here (no qemu, no kernel): the caller prints it as SKIP. A broken harness panics instead.
pub fn vm() -> Result<&'static Vm, String> {
    VM.get_or_init(setup).as_ref().map_err(Clone::clone)
}

fn setup() -> Result<Vm, String> {
    let t = Instant::now();
    let dir = scripts_dir();
    if std::env::var_os("VMTEST_NO_INSTALL").is_none() {
        // Installs qemu and friends when root and missing (a no-op otherwise), like scripts/deps.sh.
        let _ = Command::new(dir.join("deps.sh"))
            .stdin(Stdio::null())
            .status();
    }
    for tool in [
        "qemu-system-x86_64",
        "busybox",
        "cpio",
        "depmod",
        "modprobe",
        "fdisk",
        "mkfs.ext4",
        "timeout",
    ] {
        if !have(tool) {
            return Err(format!(
                "VM tests need {tool}, which is not installed (tests/vm/deps.sh installs it as root)"
            ));
        }
    }
    let k = Command::new(dir.join("kernel.sh"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tests/vm/kernel.sh: {e}"))?;
    if !k.status.success() {
        return Err(format!(
            "cannot fetch the VM kernel (tests/vm/kernel.sh): {}",
            String::from_utf8_lossy(&k.stderr).trim()
        ));
    }
    let kernel_dir = PathBuf::from(String::from_utf8_lossy(&k.stdout).trim());
    let kernel = [kernel_dir.join("vmlinux"), kernel_dir.join("vmlinuz")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| format!("no kernel image in {}", kernel_dir.display()))?;
    // The logs of this run only (each boot keeps one: target/vm/logs/TEST-N.log).
    let logs = target_dir().join("logs");
    let _ = fs::remove_dir_all(&logs);
    let _ = fs::create_dir_all(&logs);
    // One per test process: another process (another build of seedpart) may be booting too.
    // Those of processes long gone are removed.
    for e in fs::read_dir(target_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(6 * 3600));
        if name.starts_with("initrd-seedpart.") && old {
            let _ = fs::remove_file(e.path());
        }
    }
    let initrd = target_dir().join(format!("initrd-seedpart.{}.img", std::process::id()));
    let o = Command::new(dir.join("initramfs.sh"))
        .arg(BIN)
        .arg(&initrd)
        .stdin(Stdio::null())
        .output()
        .expect("running tests/vm/initramfs.sh");
    assert!(
        o.status.success(),
        "tests/vm/initramfs.sh failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let setup = t.elapsed();
    eprintln!(
        "vm: kernel {} and initramfs ready in {:.1} s",
        kernel_dir.display(),
        setup.as_secs_f64()
    );
    Ok(Vm {
        kernel_dir,
        kernel,
        initrd,
        setup,
    })
}

// ---------------------------------------------------------------------------------------------
// Disk images

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Gpt,
    Mbr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fs {
    Ext4,
    /// At least 300 MiB (mkfs.xfs refuses smaller).
    Xfs,
    /// At least 109 MiB (mkfs.btrfs refuses smaller).
    Btrfs,
    Vfat,
    /// Left zeroed.
    None,
}

impl Fs {
    /// The name `mount -t` takes.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Fs::Ext4 => Some("ext4"),
            Fs::Xfs => Some("xfs"),
            Fs::Btrfs => Some("btrfs"),
            Fs::Vfat => Some("vfat"),
            Fs::None => None,
        }
    }
}

/// One partition of a [`DiskSpec`].
#[derive(Clone, Debug)]
pub struct PartSpec {
    pub size: u64,
    /// Byte offset; default: 1 MiB after the disk's start or right after the previous one
    /// (rounded up to 1 MiB).
    pub start: Option<u64>,
    pub fs: Fs,
    /// GPT partition name.
    pub name: Option<String>,
    /// sfdisk type: a GPT type GUID or alias (`linux`, `swap`, `uefi`), an MBR hex code
    /// (`83`, `99`). Default `linux` / `83`.
    pub type_code: Option<String>,
    pub label: Option<String>,
    /// A directory copied into the new filesystem (ext4 `mkfs -d`, btrfs `--rootdir`).
    pub populate: Option<PathBuf>,
    /// Whether it is the root the VM mounts at /sysroot.
    pub root: bool,
}

impl PartSpec {
    pub fn new(size: u64, fs: Fs) -> PartSpec {
        PartSpec {
            size,
            start: None,
            fs,
            name: None,
            type_code: None,
            label: None,
            populate: None,
            root: false,
        }
    }
    pub fn start(mut self, bytes: u64) -> Self {
        self.start = Some(bytes);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }
    pub fn type_code(mut self, code: &str) -> Self {
        self.type_code = Some(code.into());
        self
    }
    pub fn label(mut self, label: &str) -> Self {
        self.label = Some(label.into());
        self
    }
    pub fn populate(mut self, dir: &Path) -> Self {
        self.populate = Some(dir.into());
        self
    }
    pub fn root(mut self) -> Self {
        self.root = true;
        self
    }
}

/// A disk image to build: `DiskSpec::gpt(1024 * MIB).sector_size(4096).root(300 * MIB, Fs::Xfs)`.
#[derive(Clone, Debug)]
pub struct DiskSpec {
    pub table: Table,
    pub sector_size: u32,
    pub size: u64,
    pub parts: Vec<PartSpec>,
}

impl DiskSpec {
    pub fn gpt(size: u64) -> DiskSpec {
        DiskSpec {
            table: Table::Gpt,
            sector_size: 512,
            size,
            parts: Vec::new(),
        }
    }
    pub fn mbr(size: u64) -> DiskSpec {
        DiskSpec {
            table: Table::Mbr,
            ..DiskSpec::gpt(size)
        }
    }
    pub fn sector_size(mut self, n: u32) -> Self {
        self.sector_size = n;
        self
    }
    pub fn part(mut self, p: PartSpec) -> Self {
        self.parts.push(p);
        self
    }
    /// Adds the root partition (GPT name `root`).
    pub fn root(self, size: u64, fs: Fs) -> Self {
        let p = PartSpec::new(size, fs).root();
        let p = if self.table == Table::Gpt {
            p.name("root")
        } else {
            p
        };
        self.part(p)
    }

    /// Writes the image at `path` (a new sparse file): the table through `fdisk -b SECTOR`
    /// (sfdisk cannot set the sector size of an image file), each filesystem made in a file of
    /// its own and copied in at the partition's offset (zero blocks skipped).
    pub fn build(&self, path: &Path) -> Result<Disk> {
        let ss = u64::from(self.sector_size);
        ensure!(ss == 512 || ss == 4096, "sector size {ss}");
        File::create(path)
            .and_then(|f| f.set_len(self.size))
            .with_context(|| format!("creating {}", path.display()))?;
        let mut script = format!(
            "label: {}\nsector-size: {ss}\n",
            match self.table {
                Table::Gpt => "gpt",
                Table::Mbr => "dos",
            }
        );
        let mut next = MIB;
        let mut parts = Vec::new();
        for (i, p) in self.parts.iter().enumerate() {
            let start = p.start.unwrap_or(next.div_ceil(MIB) * MIB);
            ensure!(
                start.is_multiple_of(ss) && p.size.is_multiple_of(ss) && p.size > 0,
                "partition {}: start {start} and size {} must be whole sectors",
                i + 1,
                p.size
            );
            let mut line = format!("start={}, size={}", start / ss, p.size / ss);
            let ty = p.type_code.clone().unwrap_or_else(|| {
                match self.table {
                    Table::Gpt => "linux",
                    Table::Mbr => "83",
                }
                .into()
            });
            line += &format!(", type={ty}");
            if let Some(n) = &p.name {
                ensure!(self.table == Table::Gpt, "MBR partitions have no names");
                line += &format!(", name=\"{n}\"");
            }
            script += &line;
            script.push('\n');
            parts.push(Part {
                number: i as u32 + 1,
                start,
                size: p.size,
                fs: p.fs,
                name: p.name.clone(),
            });
            next = start + p.size;
        }
        let disk = Disk {
            path: path.to_path_buf(),
            table: self.table,
            sector_size: self.sector_size,
            parts,
            root: self.parts.iter().position(|p| p.root).map(|i| i as u32 + 1),
        };
        disk.apply_table_script(&script)?;
        // fdisk says "done" even when it refused the script: compare with what is on disk now.
        let got = disk.read_table()?;
        for p in &disk.parts {
            let e = got
                .iter()
                .find(|e| e.number == p.number)
                .ok_or_else(|| anyhow!("fdisk did not create partition {}:\n{got:#?}", p.number))?;
            ensure!(
                (e.start, e.size) == (p.start, p.size),
                "fdisk made partition {} at {}+{}, not {}+{}",
                p.number,
                e.start,
                e.size,
                p.start,
                p.size
            );
        }
        for (spec, p) in self.parts.iter().zip(&disk.parts) {
            disk.make_fs(p, spec)?;
        }
        Ok(disk)
    }
}

/// A partition as built.
#[derive(Clone, Debug)]
pub struct Part {
    pub number: u32,
    /// Bytes.
    pub start: u64,
    pub size: u64,
    pub fs: Fs,
    pub name: Option<String>,
}

/// A partition as the table on the image says now (read with fdisk).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableEntry {
    pub number: u32,
    /// Bytes.
    pub start: u64,
    pub size: u64,
    pub type_code: String,
    pub name: Option<String>,
}

/// A disk image made by [`DiskSpec::build`] (or adopted with [`Disk::open`]).
#[derive(Clone, Debug)]
pub struct Disk {
    pub path: PathBuf,
    pub table: Table,
    pub sector_size: u32,
    pub parts: Vec<Part>,
    /// The partition number the VM mounts at /sysroot.
    pub root: Option<u32>,
}

/// The partition number at the end of a device name in an sfdisk dump (`/tmp/x/disk.img2`).
fn dev_number(dev: &str) -> Option<u32> {
    dev.trim()
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Runs `cmd` (stdin closed) and returns its stdout; a test step that fails panics with the
/// command's output.
pub fn sh(cmd: &mut Command) -> String {
    run(cmd).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Runs a script that makes (or finds cached) a directory the tests boot from and prints its
/// path; its stderr passes through. Exit status 3 means it cannot run on this machine (the
/// reason on stderr): `Err` for the test to SKIP with. Any other failure panics.
pub fn cached_dir(cmd: &mut Command, what: &str) -> Result<PathBuf, String> {
    let t = Instant::now();
    let o = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    match o.status.code() {
        Some(0) => {}
        Some(3) => return Err(format!("no {what}: {cmd:?} cannot run here (see above)")),
        _ => panic!("{cmd:?} failed ({})", o.status),
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    eprintln!(
        "{what} {} ready in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(dir)
}

fn run(cmd: &mut Command) -> Result<String> {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        o.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A block of zeros to compare with (memcmp: fast even in a debug build).
static ZEROS: [u8; MIB as usize] = [0; MIB as usize];

/// Copies `src` into `dst` at byte `offset`, skipping all-zero blocks (the target is sparse).
fn copy_into(src: &Path, dst: &Path, offset: u64) -> Result<()> {
    let mut r = File::open(src)?;
    let mut w = OpenOptions::new().write(true).open(dst)?;
    let mut buf = vec![0u8; MIB as usize];
    let mut at = offset;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if buf[..n] != ZEROS[..n] {
            w.seek(SeekFrom::Start(at))?;
            w.write_all(&buf[..n])?;
        }
        at += n as u64;
    }
    w.sync_all()?;
    Ok(())
}

impl Disk {
    /// An existing image, e.g. one `seedpart` changed; `root` is the partition to mount.
    pub fn open(path: &Path, table: Table, sector_size: u32, root: Option<u32>) -> Disk {
        Disk {
            path: path.into(),
            table,
            sector_size,
            parts: Vec::new(),
            root,
        }
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("UTF-8 image path")
    }

    pub fn part(&self, number: u32) -> &Part {
        self.parts
            .iter()
            .find(|p| p.number == number)
            .unwrap_or_else(|| panic!("no partition {number} in {self:?}"))
    }

    /// The root partition's filesystem type as `mount -t` names it.
    pub fn root_fs(&self) -> Option<&'static str> {
        let n = self.root?;
        self.parts
            .iter()
            .find(|p| p.number == n)
            .and_then(|p| p.fs.name())
    }

    pub fn len(&self) -> u64 {
        fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Makes the image file bigger (as after `dd` onto a larger disk: a GPT's backup header is
    /// then short of the end).
    pub fn grow_file(&self, new_size: u64) -> Result<()> {
        let f = OpenOptions::new().write(true).open(&self.path)?;
        ensure!(new_size >= f.metadata()?.len(), "grow_file only grows");
        f.set_len(new_size)?;
        Ok(())
    }

    fn fdisk(&self, commands: &str) -> Result<String> {
        let mut child = Command::new("fdisk")
            .arg("-b")
            .arg(self.sector_size.to_string())
            .arg(&self.path)
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running fdisk")?;
        child.stdin.take().unwrap().write_all(commands.as_bytes())?;
        let o = child.wait_with_output()?;
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        ensure!(
            o.status.success() && !err.contains("Failed") && !err.contains("Cannot"),
            "fdisk on {} failed: {err}",
            self.path.display()
        );
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// The table as an sfdisk script (`label:`, `sector-size:`, one line per partition), for
    /// either sector size (fdisk's `O` command).
    pub fn table_script(&self) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("table.sfdisk");
        self.fdisk(&format!("O\n{}\nq\n", f.display()))?;
        fs::read_to_string(&f)
            .with_context(|| format!("fdisk wrote no dump of {}", self.path.display()))
    }

    /// Replaces the table with an sfdisk script (fdisk's `I` command, then `w`). Keep the
    /// `label-id`/`uuid` lines of [`Disk::table_script`] to keep identities; drop `last-lba` to
    /// put a GPT's backup header at the end of the (grown) image.
    pub fn apply_table_script(&self, script: &str) -> Result<()> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("table.sfdisk");
        fs::write(&f, script)?;
        self.fdisk(&format!("I\n{}\nw\n", f.display()))?;
        Ok(())
    }

    /// The partitions as the table says now (bytes), read with fdisk: an independent reader.
    pub fn read_table(&self) -> Result<Vec<TableEntry>> {
        let script = self.table_script()?;
        let ss = script
            .lines()
            .find_map(|l| l.strip_prefix("sector-size:"))
            .map(|v| v.trim().parse::<u64>())
            .transpose()?
            .unwrap_or(u64::from(self.sector_size));
        let mut out = Vec::new();
        for line in script.lines() {
            // "/path/disk.img2 : start=        8448, size=        1024, type=99"
            let Some((dev, rest)) = line.split_once(" : ") else {
                continue;
            };
            let number =
                dev_number(dev).ok_or_else(|| anyhow!("no partition number in {line:?}"))?;
            let field = |k: &str| -> Option<String> {
                rest.split(", ").find_map(|kv| {
                    kv.trim()
                        .strip_prefix(k)
                        .and_then(|v| v.strip_prefix('='))
                        .map(|v| v.trim().trim_matches('"').to_string())
                })
            };
            let num = |k: &str| -> Result<u64> {
                Ok(field(k)
                    .ok_or_else(|| anyhow!("no {k} in {line:?}"))?
                    .parse::<u64>()?)
            };
            out.push(TableEntry {
                number,
                start: num("start")? * ss,
                size: num("size")? * ss,
                type_code: field("type").unwrap_or_default(),
                name: field("name"),
            });
        }
        Ok(out)
    }

    /// Moves partition `number`'s end so that it is `new_size` bytes long (start and identity
    /// kept), as a deployer's or growpart's table edit would.
    pub fn resize_partition(&self, number: u32, new_size: u64) -> Result<()> {
        let ss = u64::from(self.sector_size);
        ensure!(
            new_size.is_multiple_of(ss),
            "{new_size} is not whole sectors"
        );
        let script = self.table_script()?;
        let mut found = false;
        let edited: Vec<String> = script
            .lines()
            .map(|l| match l.split_once(" : ") {
                Some((dev, rest)) if dev_number(dev) == Some(number) => {
                    found = true;
                    let fields: Vec<String> = rest
                        .split(", ")
                        .map(|kv| {
                            if kv.trim_start().starts_with("size=") {
                                format!("size={}", new_size / ss)
                            } else {
                                kv.to_string()
                            }
                        })
                        .collect();
                    format!("{dev} : {}", fields.join(", "))
                }
                _ => l.to_string(),
            })
            .collect();
        ensure!(found, "no partition {number} in:\n{script}");
        self.apply_table_script(&(edited.join("\n") + "\n"))?;
        let now = self.read_table()?;
        ensure!(
            now.iter().any(|e| e.number == number && e.size == new_size),
            "partition {number} is not {new_size} bytes after the edit:\n{now:#?}"
        );
        Ok(())
    }

    /// `sgdisk -v` (GPT, 512-byte sectors only: sgdisk cannot be told otherwise on a file).
    pub fn sgdisk_verify(&self) -> Result<String> {
        ensure!(self.table == Table::Gpt && self.sector_size == 512);
        let out = run(Command::new("sgdisk").arg("-v").arg(&self.path))?;
        ensure!(out.contains("No problems found"), "sgdisk -v: {out}");
        Ok(out)
    }

    /// Copies the bytes of a partition (as the table says now) to a sparse file `to`.
    pub fn extract_partition(&self, number: u32, to: &Path) -> Result<()> {
        let e = self
            .read_table()?
            .into_iter()
            .find(|e| e.number == number)
            .ok_or_else(|| anyhow!("no partition {number}"))?;
        let mut r = File::open(&self.path)?;
        r.seek(SeekFrom::Start(e.start))?;
        let mut w = File::create(to)?;
        w.set_len(e.size)?;
        let mut left = e.size;
        let mut buf = vec![0u8; MIB as usize];
        let mut at = 0u64;
        while left > 0 {
            let n = buf.len().min(left as usize);
            r.read_exact(&mut buf[..n])?;
            if buf[..n] != ZEROS[..n] {
                w.seek(SeekFrom::Start(at))?;
                w.write_all(&buf[..n])?;
            }
            at += n as u64;
            left -= n as u64;
        }
        Ok(())
    }

    /// Checks partition `number`'s filesystem on the host, read-only (e2fsck -fn, xfs_repair
    /// -n, btrfs check, fsck.vfat -n) on a copy; returns the checker's output.
    pub fn fsck(&self, number: u32, fs: Fs) -> Result<String> {
        let dir = tempfile::tempdir()?;
        let copy = dir.path().join("part.img");
        self.extract_partition(number, &copy)?;
        let mut cmd = match fs {
            Fs::Ext4 => {
                let mut c = Command::new("e2fsck");
                c.arg("-fn");
                c
            }
            Fs::Xfs => {
                let mut c = Command::new("xfs_repair");
                c.args(["-n", "-f"]);
                c
            }
            Fs::Btrfs => {
                let mut c = Command::new("btrfs");
                c.args(["check", "--readonly"]);
                c
            }
            Fs::Vfat => {
                let mut c = Command::new("fsck.vfat");
                c.arg("-n");
                c
            }
            Fs::None => bail!("no filesystem to check"),
        };
        let o = cmd.arg(&copy).stdin(Stdio::null()).output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        ensure!(
            o.status.success(),
            "{fs:?} check of partition {number} failed:\n{text}"
        );
        Ok(text)
    }

    /// The filesystem's own idea of its size in bytes, read on the host from a copy
    /// (dumpe2fs, xfs_db, btrfs inspect-internal dump-super).
    pub fn fs_size(&self, number: u32, fs: Fs) -> Result<u64> {
        let dir = tempfile::tempdir()?;
        let copy = dir.path().join("part.img");
        self.extract_partition(number, &copy)?;
        let field = |text: &str, key: &str| -> Result<u64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().trim_start_matches('=').trim().to_string())
                .ok_or_else(|| anyhow!("no {key:?} in:\n{text}"))?
                .parse::<u64>()
                .map_err(Into::into)
        };
        match fs {
            Fs::Ext4 => {
                let t = run(Command::new("dumpe2fs").arg("-h").arg(&copy))?;
                Ok(field(&t, "Block count:")? * field(&t, "Block size:")?)
            }
            Fs::Xfs => {
                let t = run(Command::new("xfs_db")
                    .args(["-r", "-c", "sb 0", "-c", "p dblocks blocksize"])
                    .arg(&copy))?;
                Ok(field(&t, "dblocks")? * field(&t, "blocksize")?)
            }
            Fs::Btrfs => {
                let t = run(Command::new("btrfs")
                    .args(["inspect-internal", "dump-super"])
                    .arg(&copy))?;
                field(&t, "total_bytes")
            }
            _ => bail!("fs_size: {fs:?} not supported"),
        }
    }

    fn make_fs(&self, p: &Part, spec: &PartSpec) -> Result<()> {
        if p.fs == Fs::None {
            return Ok(());
        }
        let dir = tempfile::tempdir()?;
        let img = dir.path().join("fs.img");
        File::create(&img)?.set_len(p.size)?;
        let mut cmd;
        match p.fs {
            Fs::Ext4 => {
                // 4 KiB blocks always: mke2fs picks 1 KiB for small filesystems, which a 4Kn
                // disk cannot mount.
                cmd = Command::new("mkfs.ext4");
                cmd.args(["-q", "-F", "-b", "4096"]);
                if let Some(l) = &spec.label {
                    cmd.args(["-L", l]);
                }
                if let Some(d) = &spec.populate {
                    cmd.arg("-d").arg(d);
                }
            }
            Fs::Xfs => {
                ensure!(p.size >= 300 * MIB, "xfs needs at least 300 MiB (mkfs.xfs)");
                ensure!(
                    spec.populate.is_none(),
                    "mkfs.xfs cannot populate: write the files from the VM script"
                );
                cmd = Command::new("mkfs.xfs");
                cmd.args(["-q", "-f", "-s"])
                    .arg(format!("size={}", self.sector_size));
                if let Some(l) = &spec.label {
                    cmd.args(["-L", l]);
                }
            }
            Fs::Btrfs => {
                ensure!(
                    p.size >= 109 * MIB,
                    "btrfs needs at least 109 MiB (mkfs.btrfs)"
                );
                cmd = Command::new("mkfs.btrfs");
                cmd.args(["-q", "-f"]);
                if let Some(l) = &spec.label {
                    cmd.args(["-L", l]);
                }
                if let Some(d) = &spec.populate {
                    cmd.arg("--rootdir").arg(d);
                }
            }
            Fs::Vfat => {
                ensure!(
                    spec.populate.is_none(),
                    "vfat: use seedpart build for config drives"
                );
                cmd = Command::new("mkfs.vfat");
                cmd.arg("-S").arg(self.sector_size.to_string());
                if let Some(l) = &spec.label {
                    cmd.args(["-n", l]);
                }
            }
            Fs::None => unreachable!(),
        }
        run(cmd.arg(&img))?;
        copy_into(&img, &self.path, p.start)
    }
}

// ---------------------------------------------------------------------------------------------
// Booting

/// One boot, configured with builder methods, started with [`Boot::go`].
#[derive(Clone, Debug)]
pub struct Boot<'a> {
    vm: &'a Vm,
    disk: PathBuf,
    script: String,
    sector_size: u32,
    root: Option<String>,
    fstype: Option<String>,
    append: Vec<String>,
    modules: Vec<String>,
    files: Vec<(String, Vec<u8>)>,
    qemu_args: Vec<String>,
    extra_disks: usize,
    oracle: bool,
    timeout: Duration,
    name: Option<String>,
    /// A kernel and initramfs of the disk's own instead of the harness's (see [`Boot::own_boot`]).
    own: Option<(PathBuf, PathBuf)>,
}

impl Vm {
    /// A boot of `disk` (as /dev/vda, its sector size) with its root partition mounted at
    /// /sysroot, running `script`.
    pub fn boot<'a>(&'a self, disk: &Disk, script: &str) -> Boot<'a> {
        let mut b = self.boot_image(&disk.path, script);
        b.sector_size = disk.sector_size;
        b.root = disk.root.map(|n| format!("/dev/vda{n}"));
        b.fstype = disk.root_fs().map(str::to_string);
        b
    }

    /// A boot of any image file; nothing mounted unless [`Boot::root`] says so.
    pub fn boot_image<'a>(&'a self, disk: &Path, script: &str) -> Boot<'a> {
        Boot {
            vm: self,
            disk: disk.into(),
            script: script.into(),
            sector_size: 512,
            root: None,
            fstype: None,
            append: Vec::new(),
            modules: Vec::new(),
            files: Vec::new(),
            qemu_args: Vec::new(),
            extra_disks: 0,
            oracle: false,
            timeout: Duration::from_secs(
                std::env::var("VMTEST_TIMEOUT")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(240),
            ),
            name: None,
            own: None,
        }
    }

    /// The power-cut cycle: boots `disk` with `cut_script` (which is expected to end in
    /// `vmtest_powercut`), then boots it again with `finish_script`. Returns both logs; the
    /// first one's outcome says whether the cut happened or the script ended first.
    pub fn power_cut_cycle(
        &self,
        disk: &Disk,
        cut_script: &str,
        finish_script: &str,
    ) -> Result<(SerialLog, SerialLog)> {
        let first = self.boot(disk, cut_script).go()?;
        let second = self.boot(disk, finish_script).go()?;
        Ok((first, second))
    }
}

impl<'a> Boot<'a> {
    /// Logical and physical sector size of /dev/vda (512 or 4096).
    pub fn sector_size(mut self, n: u32) -> Self {
        self.sector_size = n;
        self
    }
    /// The device mounted at /sysroot (`/dev/vda1`), or `none`.
    pub fn root(mut self, dev: &str) -> Self {
        self.root = Some(dev.into());
        self
    }
    pub fn fstype(mut self, t: &str) -> Self {
        self.fstype = Some(t.into());
        self
    }
    /// More kernel command line, e.g. `seedpart.nogrow`.
    pub fn append(mut self, args: &str) -> Self {
        self.append.push(args.into());
        self
    }
    /// Modules to load at boot besides the disk's and the root's (`loop`, `vfat`, `all`).
    pub fn modules(mut self, m: &str) -> Self {
        self.modules.push(m.into());
        self
    }
    /// A file put into the initramfs at /vmtest/files/REL (copy it where it belongs from the
    /// script, e.g. `cp -a /vmtest/files/. /sysroot/`).
    pub fn file(mut self, rel: &str, contents: &[u8]) -> Self {
        self.files.push((rel.into(), contents.into()));
        self
    }
    /// One more disk: /dev/vdb, /dev/vdc, ... in the order added.
    pub fn extra_disk(mut self, path: &Path, sector_size: u32) -> Self {
        self.extra_disks += 1;
        let id = format!("x{}", self.extra_disks);
        self.qemu_args.push("-drive".into());
        self.qemu_args.push(format!(
            "file={},format=raw,if=none,id={id},cache=unsafe",
            path.display()
        ));
        self.qemu_args.push("-device".into());
        self.qemu_args.push(format!(
            "virtio-blk-pci,drive={id},logical_block_size={sector_size},physical_block_size={sector_size}"
        ));
        self
    }
    pub fn qemu_arg(mut self, arg: &str) -> Self {
        self.qemu_args.push(arg.into());
        self
    }
    /// Packs the host's sfdisk, resizepart, resize2fs, xfs_growfs, btrfs, ... (see
    /// `vmtest_oracle` in lib.sh). About 0.5 s more boot.
    pub fn oracle(mut self) -> Self {
        self.oracle = true;
        self
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Boots `kernel` with `initrd` as they are (a distribution's own, e.g. a golden image's
    /// `/boot/vmlinuz-*` and dracut initramfs): no script, no files, no oracles; the system
    /// must print the markers and power off by itself. Give it `root=` with [`Boot::append`].
    pub fn own_boot(mut self, kernel: &Path, initrd: &Path) -> Self {
        self.own = Some((kernel.into(), initrd.into()));
        self
    }
    /// Names the log kept in target/vm/logs/NAME.log (default: the test's name and a count).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Boots, waits for the VM to stop, and returns the serial log. `Err` only when the VM
    /// could not be run at all; a failed script, a power cut, a panic or a timeout are
    /// [`Outcome`]s of the log.
    pub fn go(self) -> Result<SerialLog> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let tmp = tempfile::tempdir()?;
        let script = tmp.path().join("script.sh");
        fs::write(&script, &self.script)?;
        let name = self.name.clone().unwrap_or_else(|| {
            let t = std::thread::current();
            let test = t.name().unwrap_or("vm").rsplit("::").next().unwrap_or("vm");
            format!("{test}-{}", COUNT.fetch_add(1, Ordering::Relaxed))
        });
        let logs = target_dir().join("logs");
        fs::create_dir_all(&logs)?;
        let log_path = logs.join(format!("{name}.log"));
        let (kernel, initrd, script) = match &self.own {
            Some((k, i)) => {
                ensure!(
                    self.script.is_empty() && self.files.is_empty() && !self.oracle,
                    "own_boot: a script, files or oracles need the harness's initramfs"
                );
                (k.as_path(), i.as_path(), PathBuf::from("none"))
            }
            None => (self.vm.kernel.as_path(), self.vm.initrd.as_path(), script),
        };
        let mut cmd = Command::new(scripts_dir().join("run.sh"));
        cmd.arg(&self.disk)
            .arg(&script)
            .args(&self.qemu_args)
            .env("VMTEST_KERNEL", kernel)
            .env("VMTEST_INITRD", initrd)
            .env("VMTEST_SECTOR", self.sector_size.to_string())
            .env("VMTEST_ROOT", self.root.as_deref().unwrap_or("none"))
            .env("VMTEST_FSTYPE", self.fstype.as_deref().unwrap_or(""))
            .env("VMTEST_TIMEOUT", self.timeout.as_secs().max(1).to_string())
            .env("VMTEST_LOG", &log_path)
            .env("VMTEST_QUIET", "1")
            .env("VMTEST_ORACLE", if self.oracle { "1" } else { "" })
            .stdin(Stdio::null());
        let mut append = self.append.join(" ");
        if !self.modules.is_empty() {
            append += &format!(" vmtest.modules={}", self.modules.join(","));
        }
        cmd.env("VMTEST_APPEND", append);
        if !self.files.is_empty() {
            let files = tmp.path().join("files");
            for (rel, data) in &self.files {
                let p = files.join(rel.trim_start_matches('/'));
                fs::create_dir_all(p.parent().unwrap())?;
                fs::write(p, data)?;
            }
            cmd.env("VMTEST_FILES", &files);
        }
        let t = Instant::now();
        let o = cmd.output().context("running tests/vm/run.sh")?;
        let wall = t.elapsed();
        let code = o.status.code().unwrap_or(-1);
        let summary = String::from_utf8_lossy(&o.stderr).trim().to_string();
        if code == 2 {
            bail!(
                "tests/vm/run.sh could not boot {}: {summary}",
                self.disk.display()
            );
        }
        let text = fs::read_to_string(&log_path).unwrap_or_default();
        let log = SerialLog::parse(&text, code == 124, wall, log_path);
        eprintln!(
            "vm: {name}: {:?} in {:.1} s (kernel at /init {:.2} s, script at {:.2} s) — {}",
            log.outcome,
            wall.as_secs_f64(),
            log.init_at.unwrap_or(f64::NAN),
            log.script_at.unwrap_or(f64::NAN),
            log.path.display()
        );
        Ok(log)
    }
}

/// Runs `script` on `disk` in the shared VM (the lead's entry point for `seedpart run`
/// scenarios): the root partition mounted at /sysroot, the disk's sector size.
pub fn run_scenario(disk: &Disk, script: &str) -> Result<SerialLog> {
    let vm = vm().map_err(|e| anyhow!("no VM: {e}"))?;
    vm.boot(disk, script).go()
}

// ---------------------------------------------------------------------------------------------
// The serial log

/// How the VM ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The script exited 0 and the root was unmounted.
    Passed,
    /// The script exited non-zero (125: no disk or root, 126: root would not unmount).
    Failed {
        rc: i32,
    },
    /// `vmtest_powercut` reset the VM; `command_running`: the command had not finished.
    PowerCut {
        after_ms: u64,
        command_running: bool,
    },
    /// Neither marker: a kernel panic, an unexpected reset.
    Crashed,
    TimedOut,
}

/// A `vmtest_section` of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub output: String,
    pub rc: i32,
}

#[derive(Clone, Debug)]
pub struct SerialLog {
    /// The whole log, carriage returns removed.
    pub text: String,
    pub outcome: Outcome,
    pub sections: Vec<Section>,
    /// Host wall clock from qemu start to exit.
    pub wall: Duration,
    /// Guest uptime when /init started and when the script started.
    pub init_at: Option<f64>,
    pub script_at: Option<f64>,
    pub path: PathBuf,
}

fn marker<'t>(line: &'t str, prefix: &str) -> Option<&'t str> {
    line.strip_prefix(prefix)?.strip_suffix("===")
}

fn kv<'t>(s: &'t str, key: &str) -> Option<&'t str> {
    s.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

impl SerialLog {
    pub fn parse(raw: &str, timed_out: bool, wall: Duration, path: PathBuf) -> SerialLog {
        let text = raw.replace('\r', "");
        let mut sections = Vec::new();
        let mut open: Option<(String, String)> = None;
        let mut end_rc = None;
        let mut cut = None;
        let (mut init_at, mut script_at) = (None, None);
        for line in text.lines() {
            if let Some((name, buf)) = &mut open {
                if let Some(rest) = marker(line, "===VMTEST-SECTION-END ") {
                    let (n, rc) = rest.rsplit_once(' ').unwrap_or((rest, ""));
                    if n == name {
                        sections.push(Section {
                            name: name.clone(),
                            output: std::mem::take(buf),
                            rc: kv(rc, "rc").and_then(|v| v.parse().ok()).unwrap_or(-1),
                        });
                        open = None;
                        continue;
                    }
                }
                buf.push_str(line);
                buf.push('\n');
                continue;
            }
            if let Some(name) = marker(line, "===VMTEST-SECTION ") {
                open = Some((name.to_string(), String::new()));
            } else if let Some(rest) = marker(line, "===VMTEST-END ") {
                end_rc = kv(rest, "rc").and_then(|v| v.parse::<i32>().ok());
            } else if let Some(rest) = marker(line, "===VMTEST-POWERCUT ") {
                cut = Some(Outcome::PowerCut {
                    after_ms: kv(rest, "after_ms")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0),
                    command_running: kv(rest, "command") == Some("running"),
                });
            } else if let Some(rest) = line.strip_prefix("vmtest: kernel up at ") {
                // "vmtest: kernel up at 2.73 s, script starts at 3.42 s (uptime)"
                let nums: Vec<f64> = rest
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                init_at = nums.first().copied();
                script_at = nums.get(1).copied();
            }
        }
        let outcome = match (end_rc, cut) {
            (Some(0), _) => Outcome::Passed,
            (Some(rc), _) => Outcome::Failed { rc },
            (None, Some(c)) => c,
            (None, None) if timed_out => Outcome::TimedOut,
            (None, None) => Outcome::Crashed,
        };
        SerialLog {
            text,
            outcome,
            sections,
            wall,
            init_at,
            script_at,
            path,
        }
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }

    /// Every section of that name, in order (a name used in a loop).
    pub fn sections_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Section> + 's {
        self.sections.iter().filter(move |s| s.name == name)
    }

    /// The stdout of section `name`; panics (with the log) when it is missing.
    pub fn stdout(&self, name: &str) -> &str {
        match self.section(name) {
            Some(s) => &s.output,
            None => panic!("no section {name:?} in the serial log\n{}", self.excerpt()),
        }
    }

    /// Section `name` parsed as JSON; panics (with the log) when it is not.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let out = self.stdout(name);
        serde_json::from_str(out).unwrap_or_else(|e| {
            panic!(
                "section {name:?} is not JSON ({e}):\n{out}\n{}",
                self.excerpt()
            )
        })
    }

    /// What the script printed, markers included (between BEGIN and the result).
    pub fn script_output(&self) -> &str {
        let from = self
            .text
            .find("===VMTEST-BEGIN===\n")
            .map_or(0, |i| i + "===VMTEST-BEGIN===\n".len());
        let to = self.text[from..]
            .find("===VMTEST-RESULT ")
            .map_or(self.text.len(), |i| from + i);
        &self.text[from..to]
    }

    /// The kernel log printed after the script.
    pub fn dmesg(&self) -> &str {
        let Some(from) = self.text.find("===VMTEST-DMESG===\n") else {
            return "";
        };
        let from = from + "===VMTEST-DMESG===\n".len();
        let to = self.text[from..]
            .find("===VMTEST-DMESG-END===")
            .map_or(self.text.len(), |i| from + i);
        &self.text[from..to]
    }

    /// The script's output and the end of the kernel log: what a failure message needs.
    pub fn excerpt(&self) -> String {
        let tail: Vec<&str> = {
            let d = if self.dmesg().is_empty() {
                self.text.as_str()
            } else {
                self.dmesg()
            };
            let lines: Vec<&str> = d.lines().collect();
            lines[lines.len().saturating_sub(40)..].to_vec()
        };
        format!(
            "--- {} ({:?}) ---\n{}\n--- last kernel lines ---\n{}\n---",
            self.path.display(),
            self.outcome,
            self.script_output(),
            tail.join("\n")
        )
    }

    pub fn assert_passed(&self) -> &Self {
        assert_eq!(
            self.outcome,
            Outcome::Passed,
            "the VM script did not pass\n{}",
            self.excerpt()
        );
        self
    }

    pub fn assert_power_cut(&self) -> &Self {
        assert!(
            matches!(self.outcome, Outcome::PowerCut { .. }),
            "expected a power cut\n{}",
            self.excerpt()
        );
        self
    }
}

impl fmt::Display for SerialLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
