//! The subcommands at the edge: open devices, call the engine, print, map errors to exit codes.

use crate::build::{self, Content};
use crate::cli::{BuildArgs, InspectArgs};
use crate::configdrive::{self, ConfigDrive};
use crate::fs::{InputTree, dir::DirFs};
use crate::inspect;
use crate::locate::{self, OpenDisk};
use anyhow::{Context, Result, bail};
use std::io::Write;

/// Exit codes of SPEC section 6: 1 for a failure that changed nothing. (3, partial progress,
/// belongs to `run`.)
pub fn exit_code(_e: &anyhow::Error) -> u8 {
    1
}

pub fn inspect(a: &InspectArgs) -> Result<()> {
    // `--device` wins over `seedpart.device=` on the kernel command line.
    let device = a
        .target
        .device
        .clone()
        .or_else(|| crate::cmdline::read().device);
    let mut loc = locate::locate(&a.target.root, device.as_deref())?;
    let report = inspect::report(&mut loc)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        // The JSON carries them too, but an operator reading the journal must see them.
        for w in &report.warnings {
            log::warn!("{}: {w}", report.disk);
        }
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        out.write_all(inspect::render(&report).as_bytes())?;
    }
    Ok(())
}

pub fn build(a: &BuildArgs) -> Result<()> {
    let content = if let Some(dir) = &a.from {
        // Validate the drive as `run` will read it before anything is written.
        let mut fs = DirFs::open(dir).with_context(|| format!("--from {}", dir.display()))?;
        ConfigDrive::load(&mut fs).with_context(|| format!("--from {}", dir.display()))?;
        Content::Tree(
            InputTree::from_host_dir(dir).with_context(|| format!("--from {}", dir.display()))?,
        )
    } else if let Some(file) = &a.configdrive {
        let raw =
            std::fs::read(file).with_context(|| format!("--configdrive {}", file.display()))?;
        match configdrive::Blob::parse(&raw)
            .with_context(|| format!("--configdrive {}", file.display()))?
        {
            configdrive::Blob::Iso(iso) => {
                let mut fs = crate::fs::iso9660::Iso9660::open(std::io::Cursor::new(&iso[..]))
                    .with_context(|| format!("--configdrive {}: the ISO image", file.display()))?;
                ConfigDrive::load(&mut fs)
                    .with_context(|| format!("--configdrive {}", file.display()))?;
                Content::Iso(iso)
            }
            configdrive::Blob::Tree(tree) => Content::Tree(tree),
        }
    } else {
        bail!("one of --from or --configdrive is required");
    };
    let mut disk = OpenDisk::open(&a.disk, true)?;
    let lock_fd = disk.file.try_clone()?;
    let _lock = crate::sys::DiskLock::acquire(&lock_fd)
        .with_context(|| format!("{}: cannot lock the disk", a.disk.display()))?;
    let built = build::build(&mut disk.file, disk.sector_size, &content, a.size, a.at)
        .with_context(|| format!("{}", a.disk.display()))?;
    for w in &built.warnings {
        log::warn!("{}: {w}", a.disk.display());
    }
    if disk.block.is_some() {
        crate::sys::add_partition(&disk.file, built.number, built.start, built.size).with_context(|| {
            format!(
                "{}: partition {} is on disk, but the kernel was not told (BLKPG): run `partx -a {}` or reboot",
                a.disk.display(),
                built.number,
                a.disk.display()
            )
        })?;
    }
    log::info!(
        "{}: added partition {} ({} bytes at byte {}, {}){}",
        a.disk.display(),
        built.number,
        built.size,
        built.start,
        built.fs,
        if built.relocated_backup_header {
            ", after moving the backup GPT header to the disk's end"
        } else {
            ""
        }
    );
    println!(
        "{}: config drive written to partition {} ({}, {} MiB at {} MiB)",
        a.disk.display(),
        built.number,
        built.fs,
        built.size >> 20,
        built.start >> 20
    );
    Ok(())
}

/// `seedpart run`. Exit 0 done or nothing to do, 1 failure with nothing changed, 3 failure
/// after partial progress that the next run finishes.
pub fn run(a: &crate::cli::RunArgs) -> std::process::ExitCode {
    use std::process::ExitCode;
    let flags = crate::config::Flags {
        device: a.target.device.clone(),
        no_grow: a.no_grow,
        keep_partition: a.keep_partition,
    };
    // Flags win over the kernel command line, which wins over /etc/seedpart/seedpart.conf.
    let cfg = match crate::config::Config::resolve(&a.target.root, &crate::cmdline::read(), &flags)
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("{}", one_line(&anyhow::Error::from(e)));
            return ExitCode::from(1);
        }
    };
    if cfg.disable {
        log::info!("seedpart.disable is on the kernel command line: nothing done");
        return ExitCode::SUCCESS;
    }
    let opts = crate::run::Options {
        root: a.target.root.clone(),
        device: cfg.device.clone(),
        dry_run: a.dry_run,
        no_grow: !cfg.grow,
        keep_partition: !cfg.delete_partition,
        config: cfg,
    };
    match crate::run::run(&opts) {
        Ok(crate::run::Outcome::DryRun(plan)) => {
            print!("{plan}");
            ExitCode::SUCCESS
        }
        Ok(_) => ExitCode::SUCCESS,
        Err(f) => {
            log::error!("{}", one_line(&f.error));
            if f.partial {
                log::error!("the next run finishes the job (exit 3)");
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `seedpart user-data`: runs a pending user-data script once; fails (so the unit shows
/// failed) when the script did.
pub fn user_data(a: &crate::cli::UserDataArgs) -> Result<()> {
    match crate::apply::userdata::run_pending(&a.root)? {
        None => {
            log::info!("no user-data script is pending");
            Ok(())
        }
        Some(st) if st.result == "success" => Ok(()),
        Some(st) => bail!(
            "the user-data script of instance {} {}",
            st.instance_uuid,
            match (st.exit_code, st.signal, &st.error) {
                (Some(c), _, _) => format!("exited with status {c}"),
                (_, Some(sig), _) => format!("was killed by signal {sig}"),
                (_, _, Some(e)) => format!("could not run: {e}"),
                _ => format!("ended as {}", st.result),
            }
        ),
    }
}

/// The error and its causes on one line. A cause whose text its wrapper already quotes (an
/// error type that prints `{source}` and also returns it as its source) is not repeated.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || msg.contains(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg.replace('\n', "; ")
}
