//! The command line (SPEC section 6). Also the source of the man page.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "seedpart",
    version,
    about = "First-boot agent: finds the OpenStack config-drive partition on the root disk, reads it without mounting, and hands its space to the root filesystem",
    propagate_version = true
)]
pub struct Cli {
    /// More diagnostics on stderr (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The first-boot job: apply the config drive, copy it to the root filesystem, delete its
    /// partition, grow the root partition and filesystem. A no-op when there is nothing to do.
    Run(RunArgs),
    /// Show what was found and what `run` would do.
    Inspect(InspectArgs),
    /// Add a config partition to a disk image or disk (the deployer's half).
    Build(BuildArgs),
    /// Show the state file and the copy of the drive.
    Status(StatusArgs),
    /// Run the config drive's user-data script, once (seedpart-user-data.service calls this).
    UserData(UserDataArgs),
}

#[derive(Args, Debug)]
pub struct UserDataArgs {
    /// The root whose /var/lib/seedpart holds the script.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub target: Target,

    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Do not grow the root partition or filesystem.
    #[arg(long)]
    pub no_grow: bool,

    /// Copy the drive but leave its partition in place (and so do not grow into it).
    #[arg(long)]
    pub keep_partition: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The root filesystem whose state is shown.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct Target {
    /// The root filesystem whose disk is searched.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The config partition itself, or a whole disk (block device or image file) to search
    /// instead of the root's disk: a path, PARTUUID=, PARTLABEL= or LABEL=.
    #[arg(long, value_name = "DEV")]
    pub device: Option<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub target: Target,

    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum At {
    /// Right after the last partition (the config-v2 proposal).
    AfterLast,
    /// In the last SIZE of the disk, as Ironic does (at the 2 TiB mark on a larger MBR disk).
    End,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from", "configdrive"])))]
pub struct BuildArgs {
    /// The disk image or disk to add the partition to.
    #[arg(long, value_name = "DISK")]
    pub disk: PathBuf,

    /// A config-drive directory (holding openstack/...), written onto a new vfat filesystem.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,

    /// An Ironic configdrive: gzipped, base64 ISO 9660 image (written as is), or the JSON dict
    /// form {meta_data, network_data, user_data, vendor_data} (rendered to vfat).
    #[arg(long, value_name = "FILE")]
    pub configdrive: Option<PathBuf>,

    /// Partition size, e.g. 64M, 1G (K, M, G, T are powers of 1024). Default 64M, or more when
    /// an ISO image needs it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,

    /// Where the partition goes.
    #[arg(long, value_enum, default_value = "after-last")]
    pub at: At,
}

/// Parses `64M`, `1G`, `512K`, `1048576` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mult: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => {
                    return Err(format!(
                        "unknown size unit {:?} (use K, M, G or T)",
                        &s[i..]
                    ));
                }
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 64M"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("{s:?} is not a usable size"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
