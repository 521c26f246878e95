//! Writes the man pages from the command-line definition, so they never drift from `--help`:
//! `cargo run --release --example mangen -- OUTDIR` makes OUTDIR/seedpart.8 (with the sections
//! clap does not know: configuration, kernel command line, files, exit status) and one page per
//! subcommand (seedpart-run.8, ...). The Makefile and the packages call this.

use clap::CommandFactory;
use clap_mangen::Man;
use roff::{Roff, bold, roman};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const SECTION: &str = "8";
const MANUAL: &str = "System Administration";

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: mangen OUTDIR");
        return ExitCode::from(2);
    };
    match generate(&out) {
        Ok(pages) => {
            for p in pages {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mangen: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn generate(out: &Path) -> std::io::Result<Vec<PathBuf>> {
    fs::create_dir_all(out)?;
    let mut cmd = seedpart::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("seedpart {}", env!("CARGO_PKG_VERSION"));
    let man = |c: clap::Command| {
        Man::new(c)
            .section(SECTION)
            .source(source.clone())
            .manual(MANUAL)
    };
    let mut pages = Vec::new();

    let main = man(cmd.clone());
    let path = out.join(main.get_filename());
    let mut f = fs::File::create(&path)?;
    main.render_title(&mut f)?;
    main.render_name_section(&mut f)?;
    main.render_synopsis_section(&mut f)?;
    main.render_description_section(&mut f)?;
    main.render_options_section(&mut f)?;
    main.render_subcommands_section(&mut f)?;
    extra_sections(&cmd).to_writer(&mut f)?;
    main.render_version_section(&mut f)?;
    f.flush()?;
    pages.push(path);

    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let page = man(sub.clone());
        let path = out.join(page.get_filename());
        let mut f = fs::File::create(&path)?;
        page.render(&mut f)?;
        let mut see = Roff::new();
        see.control("SH", ["SEE ALSO"]);
        see.text([bold("seedpart"), roman("(8)")]);
        see.to_writer(&mut f)?;
        f.flush()?;
        pages.push(path);
    }
    Ok(pages)
}

/// What an operator needs beyond the options: how the job is configured, started and reported.
fn extra_sections(cmd: &clap::Command) -> Roff {
    let mut r = Roff::new();
    let para = |r: &mut Roff, text: &str| {
        r.control("PP", []);
        r.text([roman(text)]);
    };
    let item = |r: &mut Roff, tag: &str, text: &str| {
        r.control("TP", []);
        r.text([bold(tag)]);
        r.text([roman(text)]);
    };

    r.control("SH", ["FINDING THE CONFIG DRIVE"]);
    para(
        &mut r,
        "A partition on the root filesystem's disk is the config drive when its filesystem (vfat or ISO 9660) is labelled config-2 or CONFIG-2 (what OpenStack Ironic writes, in the last 64 MiB of the disk), when its GPT name is config-v2, or when its MBR type is 0x99. Another disk is searched only when the root disk has none; a drive found there is applied but never deleted. The filesystem is read without mounting it.",
    );

    r.control("SH", ["AT BOOT"]);
    para(
        &mut r,
        "seedpart.service runs seedpart run on every boot, before network-pre.target (so before any network stack, ssh and cloud-init-local.service); with nothing to do it exits in milliseconds. The dracut module 90seedpart runs seedpart run --root /sysroot in the initramfs once the root is mounted, remounting it read-write for the job; seedpart.service then finds nothing to do. seedpart-user-data.service runs a user-data script once, after network-online.target. The package's preset enables both units.",
    );

    r.control("SH", ["CONFIGURATION"]);
    para(
        &mut r,
        "/etc/seedpart/seedpart.conf in the target root, a TOML subset. Command-line flags win over the kernel command line, which wins over the file.",
    );
    item(
        &mut r,
        "user = \"root\"",
        "whose authorized_keys receive the drive's public keys.",
    );
    item(
        &mut r,
        "network = \"auto\"",
        "the stack to configure: auto, networkd, networkmanager, netplan, ifupdown or none.",
    );
    item(
        &mut r,
        "grow = true",
        "grow the root partition and filesystem.",
    );
    item(
        &mut r,
        "delete_partition = true",
        "delete the config partition once its data is copied and verified.",
    );
    item(
        &mut r,
        "cloud_init_seed = \"auto\"",
        "copy the drive to /var/lib/cloud/seed/config_drive when cloud-init is installed (true or false force it).",
    );
    item(
        &mut r,
        "run_user_data = true",
        "run a user-data script (#!) once through seedpart-user-data.service.",
    );

    r.control("SH", ["KERNEL COMMAND LINE"]);
    item(
        &mut r,
        "seedpart.device=",
        "the config drive or the disk to search: a path, PARTUUID=, PARTLABEL= or LABEL=.",
    );
    item(
        &mut r,
        "seedpart.disable",
        "do nothing, in the initramfs and on the live root.",
    );
    item(
        &mut r,
        "seedpart.nogrow",
        "do not grow the root partition or filesystem.",
    );
    item(
        &mut r,
        "rd.seedpart=0",
        "skip the initramfs hook (dracut module 90seedpart); seedpart.service does the job on the live root.",
    );

    r.control("SH", ["FILES"]);
    for (f, what) in [
        ("/etc/seedpart/seedpart.conf", "the configuration file."),
        (
            "/var/lib/seedpart/state.json",
            "progress of the job and its result, written atomically.",
        ),
        (
            "/var/lib/seedpart/config-drive/",
            "the copy of the drive (root only) with its SHA256SUMS.",
        ),
        (
            "/var/lib/seedpart/user-data.status",
            "the user-data script's result.",
        ),
        (
            "/var/lib/cloud/seed/config_drive/",
            "the copy handed to cloud-init when it is installed.",
        ),
    ] {
        item(&mut r, f, what);
    }

    r.control("SH", ["EXIT STATUS"]);
    for (code, what) in [
        ("0", "done, or nothing to do."),
        ("1", "failure; nothing was changed."),
        ("2", "usage error."),
        (
            "3",
            "failure after partial progress; the next run finishes the job.",
        ),
    ] {
        item(&mut r, code, what);
    }

    r.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        refs.push(bold(format!("seedpart-{}", sub.get_name())));
        refs.push(roman("(8), "));
    }
    for (name, sec, last) in [
        ("systemd.unit", "5", false),
        ("dracut", "8", false),
        ("cloud-init", "1", true),
    ] {
        refs.push(bold(name));
        refs.push(roman(if last {
            format!("({sec})")
        } else {
            format!("({sec}), ")
        }));
    }
    r.text(refs);
    r
}
