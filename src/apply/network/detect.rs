//! Which network stack a target root uses, from what is installed and enabled in it.
//!
//! Precedence, first match wins:
//! 1. **netplan** when its binary or its systemd generator is installed (`usr/sbin/netplan`,
//!    `sbin/netplan`, `usr/lib/systemd/system-generators/netplan`, `lib/...`): netplan
//!    generates the configuration of networkd or NetworkManager at every boot, so a file written
//!    straight for those would compete with it. An `etc/netplan/` directory without netplan
//!    installed (left over after removing the package) is not enough: nothing would read it.
//! 2. **NetworkManager** when `NetworkManager` is installed and enabled
//!    (`etc/systemd/system/multi-user.target.wants/NetworkManager.service`, or its D-Bus alias
//!    `dbus-org.freedesktop.NetworkManager.service`, or `NetworkManager-wait-online.service`
//!    wanted by `network-online.target`).
//! 3. **systemd-networkd** when `systemd-networkd` is installed and enabled (the unit in
//!    `multi-user.target.wants`, its socket in `sockets.target.wants`, or its D-Bus alias
//!    `dbus-org.freedesktop.network1.service`).
//! 4. **ifupdown** when `ifup` is installed and `etc/network/interfaces` exists.
//!
//! Installed-but-disabled NetworkManager or networkd is not chosen: enabling a service is the
//! image builder's decision, not seedpart's. `None` when nothing matches (the caller then writes
//! no network configuration and says so).

use std::path::Path;

use super::Stack;

/// An entry exists at `rel` under `root`, without following a last-component symlink (an
/// enablement symlink points into the target root's `/usr`, which may be absolute and so
/// dangling from here).
fn present(root: &Path, rel: &str) -> bool {
    root.join(rel).symlink_metadata().is_ok()
}

fn any(root: &Path, rels: &[&str]) -> bool {
    rels.iter().any(|r| present(root, r))
}

/// `bin` in one of the usual directories (merged `/usr` or not).
fn installed(root: &Path, dirs: &[&str], bin: &str) -> bool {
    dirs.iter().any(|d| present(root, &format!("{d}/{bin}")))
}

const SBIN: &[&str] = &["usr/sbin", "sbin", "usr/bin", "bin"];
const SYSTEMD_LIB: &[&str] = &["usr/lib/systemd", "lib/systemd"];

pub fn detect(root: &Path) -> Option<Stack> {
    let netplan = installed(root, SBIN, "netplan")
        || any(
            root,
            &[
                "usr/lib/systemd/system-generators/netplan",
                "lib/systemd/system-generators/netplan",
            ],
        );
    if netplan {
        return Some(Stack::Netplan);
    }

    let nm = installed(root, SBIN, "NetworkManager")
        && any(
            root,
            &[
                "etc/systemd/system/multi-user.target.wants/NetworkManager.service",
                "etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
                "etc/systemd/system/network-online.target.wants/NetworkManager-wait-online.service",
            ],
        );
    if nm {
        return Some(Stack::NetworkManager);
    }

    let networkd = installed(root, SYSTEMD_LIB, "systemd-networkd")
        && any(
            root,
            &[
                "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
                "etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
                "etc/systemd/system/dbus-org.freedesktop.network1.service",
            ],
        );
    if networkd {
        return Some(Stack::Networkd);
    }

    if installed(root, SBIN, "ifup") && present(root, "etc/network/interfaces") {
        return Some(Stack::Ifupdown);
    }
    None
}
