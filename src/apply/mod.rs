//! Applying the metadata to the target root (SPEC section 4), once per instance uuid.
//!
//! [`plan`] reads and validates everything (host name, keys and the user they go to, every
//! injected file's content) and changes nothing; [`Plan::execute`] then writes, in this order:
//! host name, injected files, SSH keys (after the files, so a file injected at
//! `~/.ssh/authorized_keys` does not drop them), user data, random seed, the cloud-init seed,
//! and last the instance uuid in `/var/lib/seedpart/applied-instance`. [`apply`] does both.
//! Every write goes through [`rootfs::Root`]: nothing lands outside the target root.
//!
//! Network configuration is rendered by the caller (`network`), unless [`Report::render_network`]
//! says cloud-init was given the drive and renders it.

pub mod files;
pub mod hostname;
pub mod keys;
pub mod network;
pub mod rootfs;
pub mod userdata;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::{CloudInitSeed, Config};
use crate::configdrive::ConfigDrive;
use crate::copy::{self, CopyError};
use crate::fs::{DriveFs, FsError};
use rootfs::{FileOpts, Root, RootError, rel};

/// The instance uuid last applied, relative to the target root.
pub const APPLIED: &str = "var/lib/seedpart/applied-instance";
/// cloud-init, when installed in the target.
pub const CLOUD_INIT: &str = "usr/bin/cloud-init";
/// Where cloud-init's ConfigDrive datasource finds a seed, relative to the target root.
pub const CLOUD_INIT_SEED: &str = "var/lib/cloud/seed/config_drive";

/// Why the metadata cannot be applied. The validation errors (host name, key, user, content)
/// come from [`plan`], before anything is written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("meta_data.json: host name {value}: {reason}; nothing was applied")]
    Hostname { value: String, reason: String },
    #[error("meta_data.json: SSH key {key}: {reason}; nothing was applied")]
    Key { key: String, reason: String },
    #[error("the SSH keys' user {user:?}: {reason}; nothing was applied")]
    User { user: String, reason: String },
    #[error(
        "meta_data.json: files[{index}] (path {path:?}): content_path {content_path:?}: {reason}; nothing was applied"
    )]
    Content {
        index: usize,
        path: String,
        content_path: String,
        reason: String,
    },
    #[error("{0}; nothing was applied")]
    Network(#[from] network::RenderError),
    #[error("reading {what} from the config drive: {source}")]
    Drive {
        what: String,
        #[source]
        source: FsError,
    },
    #[error("giving the config drive to cloud-init at {}: {source}", dest.display())]
    CloudInit {
        dest: PathBuf,
        #[source]
        source: CopyError,
    },
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How [`apply`] ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Applied {
    /// This instance uuid was applied by an earlier run: nothing was done.
    AlreadyApplied,
    Done(Report),
}

/// What was applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub uuid: String,
    /// The host name written (`None`: none given, or left to cloud-init).
    pub hostname: Option<String>,
    /// The live host name was set (the target is the running system).
    pub live_hostname: bool,
    /// Whose `authorized_keys` got the keys, and how many were new.
    pub keys_user: Option<String>,
    pub keys_added: usize,
    /// Injected files written (relative to the root).
    pub files: Vec<String>,
    pub user_data: Option<userdata::Kept>,
    pub random_seed_mixed: bool,
    /// Where the drive was copied for cloud-init, when it was.
    pub cloud_init_seed: Option<PathBuf>,
    /// Whether the caller renders the network configuration (false: cloud-init does).
    pub render_network: bool,
}

/// Everything read and validated, nothing written yet.
#[derive(Debug)]
pub struct Plan {
    root: Root,
    uuid: String,
    already: bool,
    hostname: Option<hostname::Hostname>,
    keys: Option<(keys::Account, Vec<String>)>,
    files: Vec<files::Injected>,
    user_data: Option<Vec<u8>>,
    run_scripts: bool,
    random_seed: Option<Vec<u8>>,
    cloud_init: bool,
    /// The network stack rendered for, and its files (rendered while planning, so a
    /// network_data.json that cannot be rendered stops the run before anything is written).
    network: Option<(network::Stack, Vec<network::RenderedFile>)>,
}

/// Whether cloud-init is handed the drive (and so renders network, host name, keys and runs
/// scripts): `cloud_init_seed = true`, or `auto` with `/usr/bin/cloud-init` in the target.
pub fn cloud_init_owns(root: &Root, cfg: &Config) -> Result<bool, ApplyError> {
    Ok(match cfg.cloud_init_seed {
        CloudInitSeed::Always => true,
        CloudInitSeed::Never => false,
        CloudInitSeed::Auto => root.exists(&rel(CLOUD_INIT))?,
    })
}

/// The uuid recorded by the last complete apply, if any.
pub fn applied_uuid(root: &Root) -> Result<Option<String>, ApplyError> {
    Ok(root
        .read(&rel(APPLIED), 4096)?
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Reads and validates everything [`Plan::execute`] will write; changes nothing.
pub fn plan(
    root: &Path,
    cd: &ConfigDrive,
    drive: &mut dyn DriveFs,
    cfg: &Config,
) -> Result<Plan, ApplyError> {
    plan_in(Root::open(root)?, cd, drive, cfg)
}

/// As [`plan`], with the root already opened (tests choose its resolver this way).
pub fn plan_in(
    root: Root,
    cd: &ConfigDrive,
    drive: &mut dyn DriveFs,
    cfg: &Config,
) -> Result<Plan, ApplyError> {
    let uuid = cd.uuid().to_string();
    let already = applied_uuid(&root)?.as_deref() == Some(uuid.as_str());
    let cloud_init = cloud_init_owns(&root, cfg)?;
    let mut p = Plan {
        root,
        uuid,
        already,
        hostname: None,
        keys: None,
        files: Vec::new(),
        user_data: cd.user_data.clone(),
        run_scripts: cfg.run_user_data && !cloud_init,
        random_seed: cd.meta_data.random_seed_bytes(),
        cloud_init,
        network: None,
    };
    if already {
        return Ok(p);
    }
    if !cloud_init {
        p.hostname = plan_hostname(cd)?;
        let key_lines = keys::collect(&cd.meta_data)?;
        if !key_lines.is_empty() {
            let account = keys::lookup(&p.root, &cfg.user)?;
            p.keys = Some((account, key_lines));
        }
    }
    p.files = files::read_all(&cd.meta_data, drive)?;
    if !cloud_init && let Some(net) = cd.network() {
        let stack = match cfg.network {
            crate::config::Network::None => None,
            crate::config::Network::Auto => {
                let found = network::detect(p.root.path());
                if found.is_none() {
                    log::warn!(
                        "no network stack (networkd, NetworkManager, netplan, ifupdown) found in {}: network_data.json is not rendered; set network = in /etc/seedpart/seedpart.conf",
                        p.root.path().display()
                    );
                }
                found
            }
            explicit => network::Stack::from_name(explicit.name()),
        };
        if let Some(stack) = stack {
            p.network = Some((stack, network::render(net, stack)?));
        }
    }
    Ok(p)
}

/// `hostname` is refused when invalid; the `name` fallback (a display name, which may well
/// hold spaces) is skipped with a warning instead.
fn plan_hostname(cd: &ConfigDrive) -> Result<Option<hostname::Hostname>, ApplyError> {
    let md = &cd.meta_data;
    let given = md
        .hostname
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if let Some(h) = given {
        return hostname::validate(h)
            .map(Some)
            .map_err(|reason| ApplyError::Hostname {
                value: hostname::preview(h),
                reason,
            });
    }
    let Some(name) = md.name.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    match hostname::validate(name) {
        Ok(h) => Ok(Some(h)),
        Err(why) => {
            log::warn!(
                "meta_data.json has no hostname and its name {} is no host name ({why}): the host name is left as it is",
                hostname::preview(name)
            );
            Ok(None)
        }
    }
}

impl Plan {
    pub fn already_applied(&self) -> bool {
        self.already
    }

    /// Whether cloud-init is given the drive (see [`cloud_init_owns`]).
    pub fn cloud_init(&self) -> bool {
        self.cloud_init
    }

    /// What [`Plan::execute`] would do, one line each (for `run --dry-run`).
    pub fn describe(&self) -> String {
        if self.already {
            return format!(
                "instance {} is already applied: the metadata would not be applied again\n",
                self.uuid
            );
        }
        let mut s = String::new();
        if let Some(h) = &self.hostname {
            s += &format!("would set the host name to {}\n", h.name);
        }
        if let Some((stack, files)) = &self.network {
            for f in files {
                s += &format!("would write /{} (network, {})\n", f.path, stack.name());
            }
        }
        for f in &self.files {
            s += &format!("would write /{} ({} bytes)\n", f.target, f.data.len());
        }
        if let Some((account, lines)) = &self.keys {
            s += &format!(
                "would add any of {} SSH keys not already in {}/.ssh/authorized_keys ({})\n",
                lines.len(),
                account.home.trim_end_matches('/'),
                account.name
            );
        }
        if let Some(data) = &self.user_data {
            let kind = userdata::classify(data);
            let runs = if kind == userdata::Kind::Script && self.run_scripts {
                ", to run once later in boot"
            } else {
                ""
            };
            s += &format!(
                "would keep the user data ({kind:?}) in /{}{runs}\n",
                userdata::USER_DATA
            );
        }
        if self.cloud_init {
            s += &format!(
                "would copy the drive to /{CLOUD_INIT_SEED} for cloud-init, and leave host name, keys, network and scripts to it\n"
            );
        }
        s += &format!("would record instance {} as applied\n", self.uuid);
        s
    }

    /// Writes everything, then records the uuid. `drive` is read again only to copy it for
    /// cloud-init.
    pub fn execute(&self, drive: &mut dyn DriveFs) -> Result<Applied, ApplyError> {
        if self.already {
            log::info!(
                "instance {} was already applied: the metadata is not applied again",
                self.uuid
            );
            return Ok(Applied::AlreadyApplied);
        }
        let root = &self.root;
        // Everything up to the record that the instance was applied is staged and put in place
        // at once, durably, before that record (see `Root::stage`): a crash before it leaves
        // each file old or new, never torn, and the next boot applies the instance again.
        root.stage();
        let mut r = Report {
            uuid: self.uuid.clone(),
            render_network: !self.cloud_init,
            ..Report::default()
        };
        if let Some(h) = &self.hostname {
            let c = hostname::apply(root, h)?;
            r.hostname = Some(h.name.clone());
            r.live_hostname = c.live;
        }
        r.files = files::write_all(root, &self.files)?
            .iter()
            .map(|p| p.to_string())
            .collect();
        if let Some((account, lines)) = &self.keys {
            r.keys_added = keys::apply(root, account, lines)?;
            r.keys_user = Some(account.name.clone());
        }
        r.user_data = userdata::keep(
            root,
            &self.uuid,
            self.user_data.as_deref(),
            self.run_scripts,
        )?;
        if let Some((stack, files)) = &self.network {
            for f in files {
                root.create_dir_all(&f.path.parent(), 0o755, None)?;
                root.write_file_if_changed(&f.path, f.contents.as_bytes(), FileOpts::mode(f.mode))?;
            }
            log::info!(
                "network configuration written for {} ({} files)",
                stack.name(),
                files.len()
            );
        }
        if let Some(seed) = &self.random_seed
            && root.is_running_system()
        {
            mix_random_seed(seed, Path::new("/dev/urandom"))?;
            r.random_seed_mixed = true;
        }
        if self.cloud_init {
            r.cloud_init_seed = Some(self.seed_cloud_init(drive)?);
        }
        let applied = rel(APPLIED);
        root.create_dir_all(&applied.parent().parent(), 0o755, None)?;
        root.create_dir_all(&applied.parent(), 0o700, None)?;
        crate::fault::point("before-apply-commit");
        root.commit()?;
        root.write_file_if_changed(
            &applied,
            format!("{}\n", self.uuid).as_bytes(),
            FileOpts::mode(0o600),
        )?;
        log::info!("applied the metadata of instance {}", self.uuid);
        Ok(Applied::Done(r))
    }

    /// Copies the drive to `/var/lib/cloud/seed/config_drive/` (its real path inside the root,
    /// so the copy, which takes plain paths, meets no symlink).
    fn seed_cloud_init(&self, drive: &mut dyn DriveFs) -> Result<PathBuf, ApplyError> {
        let root = &self.root;
        let seed = rel(CLOUD_INIT_SEED);
        let host = root.host_path(&seed);
        root.create_dir_all(&seed.parent(), 0o755, None)?;
        let dest = root.path().join(root.canonical(&seed)?.as_str());
        let entries = drive.entries().map_err(|source| ApplyError::Drive {
            what: "the file list".into(),
            source,
        })?;
        copy::copy_drive(drive, &entries, &dest).map_err(|source| ApplyError::CloudInit {
            dest: host.clone(),
            source,
        })?;
        log::info!(
            "cloud-init is installed: the drive is copied to {} for its ConfigDrive datasource, and host name, keys, network and scripts are left to it",
            host.display()
        );
        Ok(host)
    }
}

/// Applies `cd` to `root`, once per instance uuid (see the module documentation).
pub fn apply(
    root: &Path,
    cd: &ConfigDrive,
    drive: &mut dyn DriveFs,
    cfg: &Config,
) -> Result<Applied, ApplyError> {
    plan(root, cd, drive, cfg)?.execute(drive)
}

/// Mixes `seed` into the kernel's pool by writing it to `dev` (`/dev/urandom`: mixed in, not
/// credited as entropy).
fn mix_random_seed(seed: &[u8], dev: &Path) -> Result<(), ApplyError> {
    let io_err = |source| ApplyError::Io {
        action: "writing the random seed to",
        path: dev.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(dev)
        .map_err(io_err)?;
    f.write_all(seed).map_err(io_err)
}
