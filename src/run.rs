//! `seedpart run`: the first-boot job, in the order of SPEC section 5.
//!
//! 1. Read and validate everything; plan every change; any error here changes nothing (exit 1).
//! 2. Copy the drive to `<root>/var/lib/seedpart/config-drive`, fsync, re-read and verify.
//! 3. Record progress in the state file (atomic).
//! 4. Delete the config partition from the table on disk, then from the kernel (BLKPG).
//! 5. Grow the root partition into the space after it (GPT backup header first), then tell
//!    the kernel (BLKPG), all under `flock` on the whole disk; check sysfs afterwards.
//! 6. Grow the mounted filesystem online.
//!
//! Every step looks at the real state of the disk, the kernel and the copy rather than trusting
//! the state file, so a run cut off anywhere (a power cut) converges on the next one. The state
//! file only records what happened, for `status` and for operators.

use crate::configdrive::ConfigDrive;
use crate::copy;
use crate::discover;
use crate::disk::Table;
use crate::fault;
use crate::grow;
use crate::locate::{self, Located, OpenDisk};
use crate::plan::{GrowPlan, plan_growth};
use crate::reclaim;
use crate::state::{self, CopyRecord, DriveRecord, FsGrowRecord, GrowRecord, State};
use crate::sys;
use crate::sysfs;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};

/// Options of one run (flags already merged with the kernel command line).
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub root: PathBuf,
    pub device: Option<String>,
    pub dry_run: bool,
    pub no_grow: bool,
    pub keep_partition: bool,
    /// The merged configuration (file, kernel command line, flags).
    pub config: crate::config::Config,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    NothingToDo,
    Done,
    DryRun(String),
}

/// A failed run: `partial` when something on disk had already changed (exit 3: the next run
/// finishes it), else nothing changed (exit 1).
#[derive(Debug)]
pub struct Failure {
    pub partial: bool,
    pub error: anyhow::Error,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

const SYS: &str = "/sys";

struct Progress {
    partial: bool,
}

impl Progress {
    fn fail(&self, error: anyhow::Error) -> Failure {
        Failure {
            partial: self.partial,
            error,
        }
    }
}

pub fn run(opts: &Options) -> Result<Outcome, Failure> {
    let mut p = Progress { partial: false };
    match run_inner(opts, &mut p) {
        Ok(o) => Ok(o),
        Err(e) => Err(p.fail(e)),
    }
}

fn run_inner(opts: &Options, progress: &mut Progress) -> Result<Outcome> {
    let mut loc = locate::locate(&opts.root, opts.device.as_deref())?;
    let mut st = state::load(&opts.root)?.unwrap_or_else(State::new);

    // 1. Read and validate the drive, if there is one, and plan.
    let drive = match loc.candidate.clone() {
        None => None,
        Some(c) => {
            let where_ = format!(
                "{}{}",
                loc.disk.path.display(),
                c.number
                    .map(|n| format!(" partition {n}"))
                    .unwrap_or_default()
            );
            let mut fs = discover::open_drive(&mut loc.disk.file, &c)
                .with_context(|| format!("config drive on {where_}"))?;
            let entries = fs
                .entries()
                .with_context(|| format!("config drive on {where_}"))?;
            let cd = ConfigDrive::load_with(fs.as_mut(), &entries)
                .with_context(|| format!("config drive on {where_}"))?;
            // Everything the metadata will change is read and checked now, before any write.
            let applying = crate::apply::plan(&opts.root, &cd, fs.as_mut(), &opts.config)
                .with_context(|| format!("config drive on {where_}"))?;
            drop(fs);
            Some((c, entries, cd, applying))
        }
    };
    let delete = drive
        .as_ref()
        .filter(|_| loc.deletable && !opts.keep_partition)
        .and_then(|(c, _, _, _)| c.number);
    let (grow_table, grow_disk_is_drive_disk) = match &loc.root_disk {
        Some((_, t)) => (Some(t.clone()), false),
        None => (loc.table.clone(), true),
    };
    let plan = match (&grow_table, loc.root_number, opts.no_grow) {
        (Some(t), Some(root), false) => plan_growth(
            t,
            root,
            if grow_disk_is_drive_disk {
                delete
            } else {
                None
            },
        ),
        _ => None,
    };

    if opts.dry_run {
        let mut s = String::new();
        if let Some((_, _, _, applying)) = &drive {
            s += &applying.describe();
        }
        s += &describe(
            &loc,
            drive.as_ref().map(|d| &d.0),
            delete,
            plan.as_ref(),
            grow_table.as_ref(),
        );
        return Ok(Outcome::DryRun(s));
    }
    let rm = locate::root_mount(&opts.root).ok();
    let mut drive_file = loc.disk.file.try_clone()?;
    // The disk the root partition is on, and whether the mounted root really is that partition
    // (with `--device IMAGE`, the mounted root is the host's, never to be grown).
    let root_disk: &OpenDisk = match &loc.root_disk {
        Some((d, _)) => d,
        None => &loc.disk,
    };
    let root_is_mounted_here = match (&rm, &root_disk.block, loc.root_number) {
        (Some(rm), Some(disk), Some(n)) => rm.dev.disk == *disk && rm.dev.partition == Some(n),
        _ => false,
    };
    let lagging = match &grow_table {
        Some(t) => kernel_lags(root_disk, t, &st)?,
        None => false,
    };
    let mut changed = false;
    if (drive.is_some() || plan.is_some() || lagging)
        && let Some(rm) = rm.as_ref().filter(|m| m.read_only && root_is_mounted_here)
    {
        bail!(
            "the root filesystem at {} is mounted read-only ({}); remount it read-write first",
            opts.root.display(),
            rm.dev.name
        );
    }

    // 2-3. Apply the metadata (once per instance uuid), copy and verify the drive (also when
    // the partition is kept: the copy is what the system uses), then record it.
    if let Some((c, entries, cd, applying)) = &drive {
        let dest = copy::default_dest(&opts.root);
        let mut fs = discover::open_drive(&mut drive_file, c)?;
        if let crate::apply::Applied::Done(r) = applying
            .execute(fs.as_mut())
            .context("applying the metadata")?
        {
            log::info!("applied instance {}", r.uuid);
            changed = true;
        }
        // A crash in the middle of replacing an older copy is finished first.
        copy::recover(&dest).with_context(|| format!("recovering {}", dest.display()))?;
        // The drive is hashed only to compare it with a copy that verifies; on a first boot
        // there is none, and copying reads the drive once instead of twice.
        let existing = match copy::verify_copy(&dest) {
            Ok(m) => Some((
                copy::hash_drive(fs.as_mut(), entries).context("hashing the config drive")?,
                m,
            )),
            Err(_) => None,
        };
        let manifest = match existing {
            Some((fresh, m)) if copy::same_as(&m, &fresh) => {
                log::info!(
                    "{} already holds a verified copy of the drive",
                    dest.display()
                );
                m
            }
            _ => {
                let m = copy::copy_drive(fs.as_mut(), entries, &dest)
                    .with_context(|| format!("copying the config drive to {}", dest.display()))?;
                log::info!(
                    "copied the config drive to {} ({} files, verified)",
                    dest.display(),
                    m.files.len()
                );
                changed = true;
                m
            }
        };
        drop(fs);
        fault::point("after-copy");
        st.instance_uuid = Some(cd.uuid().to_string());
        st.drive = Some(DriveRecord {
            disk: loc.disk.path.display().to_string(),
            // 0 for a whole device (a CD-ROM): never deleted, never matched to a partition.
            number: c.number.unwrap_or(0),
            start: c.start,
            size: c.size,
            fs: c
                .probe
                .as_ref()
                .map(|p| p.fs.name().to_string())
                .unwrap_or_default(),
            label: c
                .probe
                .as_ref()
                .map(|p| p.label.clone())
                .unwrap_or_default(),
            partuuid: c
                .number
                .and_then(|n| loc.table.as_ref()?.get(n).map(|p| p.uuid.clone())),
            table: c.table.map(|t| t.name().to_string()).unwrap_or_default(),
            ..DriveRecord::default()
        });
        // As the booted system sees it: the state file lives in that root, and a run from the
        // initramfs writes it through /sysroot.
        st.copy = Some(CopyRecord::new(
            &copy::default_dest(Path::new("/")),
            &manifest,
            true,
        ));
        save(&opts.root, &mut st, "copied")?;
        fault::point("after-state-write");
    }

    // 4-5. Table surgery, under the disk lock, after checking the kernel agrees with the table.
    if delete.is_some() || plan.is_some() || lagging {
        let table = grow_table.clone().expect("planned on a table");
        let mut disk = open_for_write(root_disk)?;
        let lock_fd = disk.file.try_clone()?;
        let _lock = sys::DiskLock::acquire(&lock_fd)
            .with_context(|| format!("{}: cannot lock the disk", disk.path.display()))?;
        sync_kernel_view(&disk, &table, &st, progress)?;
        let ss = table.sector_size;
        if let (Some(number), Some((c, _, _, _))) = (delete, &drive) {
            let dest = copy::default_dest(&opts.root);
            copy::recover(&dest).with_context(|| format!("recovering {}", dest.display()))?;
            copy::verify_copy(&dest).with_context(|| {
                format!(
                    "the copy at {} does not verify; the config partition is left alone",
                    dest.display()
                )
            })?;
            check_not_mounted(&disk, number)?;
            let removed = reclaim::delete_partition(
                &mut disk.file,
                Some(ss),
                number,
                (c.start / ss, c.size / ss),
            )
            .with_context(|| format!("{}: deleting partition {number}", disk.path.display()))?;
            if removed {
                progress.partial = true;
                log::info!("{}: deleted partition {number}", disk.path.display());
            }
            fault::point("after-delete-table");
            kernel_delete(&disk, number)?;
            fault::point("after-delete-kernel");
            st.partition_deleted = true;
            save(&opts.root, &mut st, "partition deleted")?;
            changed = true;
        }
        if let Some(plan) = &plan {
            grow_partition(&mut disk, ss, plan, &mut st, &opts.root, progress)?;
            changed = true;
        }
        changed |= lagging;
    }

    // 6. Grow the mounted filesystem: a cheap, idempotent check every time, so a run cut off
    // after the partition grew still finishes the filesystem.
    if !opts.no_grow
        && root_is_mounted_here
        && let (Some(rm), Some(number)) = (&rm, loc.root_number)
        && let Some(node) = root_disk.partition_node(number)
    {
        fault::point("before-fs-grow");
        let mount_point = std::fs::canonicalize(&opts.root)?;
        let began = std::time::Instant::now();
        match grow::grow_mounted(&mount_point, &rm.fstype, &node) {
            Ok(g) if g.to > g.from => {
                progress.partial = true;
                // The time is the kernel's (seconds for a big xfs): worth telling, and the
                // benchmark takes it out of seedpart's own.
                log::info!(
                    "grew the {} filesystem on {} from {} to {} bytes in {:.1} ms",
                    g.fstype,
                    node.display(),
                    g.from,
                    g.to,
                    began.elapsed().as_secs_f64() * 1e3
                );
                st.filesystem_grown = Some(FsGrowRecord::grown(&g.fstype, g.from, g.to));
                changed = true;
            }
            Ok(_) => {}
            Err(grow::GrowError::Unsupported { fstype }) => {
                // Said once, when the partition grew under it; later boots stay quiet.
                if changed {
                    log::warn!(
                        "{fstype} filesystems are not grown by seedpart: the partition was grown, the filesystem left as it is"
                    );
                    st.filesystem_grown =
                        Some(FsGrowRecord::skipped(&fstype, "not supported by seedpart"));
                }
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("growing the filesystem on {}", node.display()));
            }
        }
        fault::point("after-fs-grow");
    }
    if !changed {
        log::debug!("nothing to do");
        return Ok(Outcome::NothingToDo);
    }
    save(&opts.root, &mut st, "done")?;
    Ok(Outcome::Done)
}

fn save(root: &Path, st: &mut State, result: &str) -> Result<()> {
    st.last_run = Some(state::now());
    st.last_result = Some(result.to_string());
    state::save(root, st).with_context(|| format!("writing {}", state::path(root).display()))
}

/// Reopens a disk for writing, refusing a read-only one with a clear message.
fn open_for_write(d: &OpenDisk) -> Result<OpenDisk> {
    if let Some(name) = &d.block
        && sysfs::attr_u64(Path::new(SYS), name, "ro").unwrap_or(0) == 1
    {
        bail!("{} is read-only; nothing was changed", d.path.display());
    }
    OpenDisk::open(&d.path, true).with_context(|| {
        format!(
            "{} cannot be opened for writing; nothing was changed",
            d.path.display()
        )
    })
}

/// How the kernel's partition `n` differs from the table on disk.
enum KernelDiff {
    Same,
    /// Gone from the table, still known to the kernel, and it is the drive an earlier run was
    /// deleting: BLKPG_DEL_PARTITION finishes it.
    DriveLeft,
    /// Grown in the table, not yet in the kernel (same start): BLKPG_RESIZE_PARTITION finishes it.
    GrowLeft(u64, u64),
    /// Anything else: somebody else's change; seedpart touches nothing.
    Foreign(String),
}

fn kernel_diffs(disk: &OpenDisk, table: &Table, st: &State) -> Result<Vec<(u32, KernelDiff)>> {
    let Some(name) = &disk.block else {
        return Ok(Vec::new()); // An image file: no kernel view.
    };
    let sys = Path::new(SYS);
    let kernel = sysfs::partitions_of(sys, name)?;
    let ss = table.sector_size;
    let d = disk.path.display();
    let mut out = Vec::new();
    for (n, pname) in &kernel {
        let start = sysfs::attr_u64(sys, pname, "start")? * 512;
        let size = sysfs::attr_u64(sys, pname, "size")? * 512;
        let diff = match table.get(*n) {
            // The kernel shows an extended container as a 1 KiB stub: only its start counts.
            Some(p) if p.is_extended() => {
                if start == p.start * ss {
                    KernelDiff::Same
                } else {
                    KernelDiff::Foreign(format!(
                        "{d}: the kernel's partition {n} starts at byte {start}, the table's at byte {}",
                        p.start * ss
                    ))
                }
            }
            Some(p) => {
                let (ts, tl) = (p.start * ss, p.sectors * ss);
                if (start, size) == (ts, tl) {
                    KernelDiff::Same
                } else if start == ts
                    && size < tl
                    && st.partition_grown.as_ref().is_none_or(|g| g.number == *n)
                {
                    KernelDiff::GrowLeft(ts, tl)
                } else {
                    KernelDiff::Foreign(format!(
                        "{d}: partition {n} is bytes {start}+{size} to the kernel but {ts}+{tl} in the table on disk"
                    ))
                }
            }
            None => {
                let was_drive = st.drive.as_ref().is_some_and(|r| {
                    r.number == *n && r.start == start && r.size == size && r.disk == d.to_string()
                });
                if was_drive {
                    KernelDiff::DriveLeft
                } else {
                    KernelDiff::Foreign(format!(
                        "{d}: the kernel knows a partition {n} that the table on disk does not have"
                    ))
                }
            }
        };
        out.push((*n, diff));
    }
    for p in table.data_partitions() {
        if !kernel.iter().any(|(n, _)| *n == p.number) {
            out.push((
                p.number,
                KernelDiff::Foreign(format!(
                    "{d}: partition {} is in the table on disk but unknown to the kernel",
                    p.number
                )),
            ));
        }
    }
    Ok(out)
}

/// Whether the kernel lags behind the table in a way an interrupted run left it.
fn kernel_lags(disk: &OpenDisk, table: &Table, st: &State) -> Result<bool> {
    Ok(kernel_diffs(disk, table, st)?
        .iter()
        .any(|(_, k)| matches!(k, KernelDiff::DriveLeft | KernelDiff::GrowLeft(..))))
}

/// Brings the kernel up to the table where an interrupted run left it behind, and refuses to go
/// on if the two differ in any other way: the table on disk and the kernel must agree before
/// seedpart edits either.
fn sync_kernel_view(
    disk: &OpenDisk,
    table: &Table,
    st: &State,
    progress: &mut Progress,
) -> Result<()> {
    let diffs = kernel_diffs(disk, table, st)?;
    if let Some((_, KernelDiff::Foreign(why))) = diffs
        .iter()
        .find(|(_, k)| matches!(k, KernelDiff::Foreign(_)))
    {
        bail!("{why}; nothing was changed (reboot, then run again)");
    }
    for (n, k) in diffs {
        match k {
            KernelDiff::DriveLeft => {
                log::info!(
                    "{}: finishing an interrupted run: the kernel forgets partition {n}",
                    disk.path.display()
                );
                kernel_delete(disk, n)?;
                progress.partial = true;
            }
            KernelDiff::GrowLeft(start, len) => {
                log::info!(
                    "{}: finishing an interrupted run: the kernel learns partition {n}'s new size",
                    disk.path.display()
                );
                sys::resize_partition(&disk.file, n, start, len).with_context(|| {
                    format!("{}: the kernel refused the new size of partition {n} (BLKPG); reboot to finish", disk.path.display())
                })?;
                progress.partial = true;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuses to delete a partition that is mounted or otherwise held (a mount, a device-mapper
/// table, a RAID member all hold it exclusively, and then O_EXCL fails with EBUSY).
fn check_not_mounted(disk: &OpenDisk, number: u32) -> Result<()> {
    let Some(node) = disk.partition_node(number) else {
        return Ok(());
    };
    let rdev = std::os::unix::fs::MetadataExt::rdev(&std::fs::metadata(&node)?);
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    if let Some(m) = sysfs::parse_mountinfo(&text)
        .into_iter()
        .find(|m| m.major == libc::major(rdev) && m.minor == libc::minor(rdev))
    {
        bail!(
            "{} (the config partition) is mounted on {}; unmount it first, nothing was changed",
            node.display(),
            m.mount_point.display()
        );
    }
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&node)
    {
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => bail!(
            "{} (the config partition) is in use; release it first, nothing was changed",
            node.display()
        ),
        _ => Ok(()),
    }
}

/// Removes the partition from the kernel's view, if it is still there.
fn kernel_delete(disk: &OpenDisk, number: u32) -> Result<()> {
    if disk.block.is_none() || disk.partition_node(number).is_none() {
        return Ok(());
    }
    sys::delete_partition(&disk.file, number).with_context(|| {
        format!(
            "{}: partition {number} is gone from the table but the kernel refused to forget it (BLKPG); it is in use, or reboot to finish",
            disk.path.display()
        )
    })
}

fn grow_partition(
    disk: &mut OpenDisk,
    ss: u64,
    plan: &GrowPlan,
    st: &mut State,
    root: &Path,
    progress: &mut Progress,
) -> Result<()> {
    let grown = reclaim::grow_partition(&mut disk.file, Some(ss), plan)
        .with_context(|| format!("{}: growing partition {}", disk.path.display(), plan.number))?;
    if grown {
        progress.partial = true;
        log::info!(
            "{}: grew partition {} from {} to {} bytes",
            disk.path.display(),
            plan.number,
            plan.old_sectors * ss,
            plan.new_sectors * ss
        );
    }
    fault::point("after-grow-table");
    if let Some(name) = &disk.block {
        let (start, len) = (plan.start * ss, plan.new_sectors * ss);
        sys::resize_partition(&disk.file, plan.number, start, len).with_context(|| {
            format!(
                "{}: the kernel refused the new size of partition {} (BLKPG); reboot to finish",
                disk.path.display(),
                plan.number
            )
        })?;
        fault::point("after-grow-kernel");
        let node = disk.partition_node(plan.number).ok_or_else(|| {
            anyhow!(
                "{name}: partition {} has no device node after the resize",
                plan.number
            )
        })?;
        let pname = node
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let size = sysfs::attr_u64(Path::new(SYS), &pname, "size")? * 512;
        if size != len {
            bail!(
                "{}: after the resize the kernel says partition {} is {size} bytes, not {len}",
                disk.path.display(),
                plan.number
            );
        }
    }
    st.partition_grown = Some(GrowRecord {
        number: plan.number,
        from: plan.old_sectors * ss,
        to: plan.new_sectors * ss,
        ..GrowRecord::default()
    });
    save(root, st, "partition grown")
}

fn describe(
    loc: &Located,
    drive: Option<&discover::Candidate>,
    delete: Option<u32>,
    plan: Option<&GrowPlan>,
    table: Option<&Table>,
) -> String {
    let mut s = String::new();
    match drive {
        Some(c) => {
            s += &format!(
                "would copy the config drive on {}{} to the root filesystem\n",
                loc.disk.path.display(),
                c.number
                    .map(|n| format!(" partition {n}"))
                    .unwrap_or_default()
            );
            match delete {
                Some(n) => s += &format!("would delete partition {n}\n"),
                None => s += "would keep the drive's partition\n",
            }
        }
        None => s += "no config drive found\n",
    }
    match (plan, table) {
        (Some(p), Some(t)) => {
            if p.relocate_backup {
                s += "would move the backup GPT header to the disk's end\n";
            }
            s += &format!(
                "would grow partition {} from {} to {} bytes, then its filesystem\n",
                p.number,
                t.bytes(p.old_sectors),
                t.bytes(p.new_sectors)
            );
        }
        _ => s += "nothing to grow\n",
    }
    s
}
