//! `seedpart run` configuring a real systemd Debian in a VM: a root made with mmdebstrap
//! (tests/vm/debian/rootfs.sh, cached under target/vm/debian/), booted with the harness's cloud
//! kernel whose busybox initramfs switch_roots into it (`vmtest.switchroot=1`). The fixture
//! `seedpart.service` runs before systemd-networkd; `vmtest-report.service` prints what came
//! of it after network-online.target, in the harness's section markers, and powers off.
//! SKIP without qemu, mmdebstrap, root or the Debian mirror.

#[macro_use]
#[path = "vm/harness.rs"]
mod harness;

use harness::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const MAC: &str = "52:54:00:12:34:56";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv1XQyTZ3n7f5oC9q0cM2jYQ3bYk1h0Gm8e3yV0pXvS seedpart-vm-test";
const UUID: &str = "0c5e2a7f-3b1d-4e8a-9f60-7d2b4c8e1a93";

/// The cached Debian root (tests/vm/debian/rootfs.sh), or the reason it cannot be made here.
fn debian_root() -> Result<PathBuf, String> {
    // tests/vm/deps.sh (run by harness::vm) installs mmdebstrap when root.
    cached_dir(
        &mut Command::new(Path::new(MANIFEST).join("tests/vm/debian/rootfs.sh")),
        "Debian root",
    )
}

/// A copy of the cached root (hard links: mkfs.ext4 -d only reads it) with this build of
/// seedpart, stripped, at /usr/bin/seedpart. Its libraries must be in the root already.
fn stage_root(base: &Path) -> PathBuf {
    let stage = base
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join(format!("stage-{}", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    sh(Command::new("cp").arg("-al").arg(base).arg(&stage));
    let dst = stage.join("usr/bin/seedpart");
    let _ = fs::remove_file(&dst);
    sh(Command::new("strip").arg("-o").arg(&dst).arg(BIN));
    sh(Command::new("chmod").arg("0755").arg(&dst));
    for line in sh(Command::new("ldd").arg(BIN)).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .unwrap_or("");
        if lib.is_empty() {
            continue;
        }
        let name = Path::new(lib).file_name().unwrap();
        let found = [
            "usr/lib/x86_64-linux-gnu",
            "lib/x86_64-linux-gnu",
            "lib64",
            "usr/lib64",
        ]
        .iter()
        .any(|d| stage.join(d).join(name).exists());
        assert!(found, "seedpart needs {lib}, which the Debian root lacks");
    }
    stage
}

fn config_tree(dir: &Path) {
    let p = dir.join("openstack/latest");
    fs::create_dir_all(&p).unwrap();
    let meta = serde_json::json!({
        "uuid": UUID,
        "hostname": "seedpart-vm",
        "name": "seedpart-vm",
        "public_keys": { "vmtest": KEY },
    });
    let net = serde_json::json!({
        "links": [{
            "id": "nic0", "type": "phy", "ethernet_mac_address": MAC, "mtu": 1500,
            "vif_id": "0d7b5b3c-1a9e-4d3f-8d52-3f4f0a6b7c21"
        }],
        "networks": [{
            "id": "net0", "type": "ipv4", "link": "nic0",
            "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
            "network_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "routes": [{ "network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2" }]
        }],
        "services": [{ "type": "dns", "address": "10.0.2.3" }]
    });
    fs::write(p.join("meta_data.json"), meta.to_string()).unwrap();
    fs::write(p.join("network_data.json"), net.to_string()).unwrap();
}

#[test]
fn seedpart_configures_systemd_debian_in_vm() {
    let vm = require_vm!();
    let base = match debian_root() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIP: {why}");
            return;
        }
    };
    let t = Instant::now();
    let stage = stage_root(&base);
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskSpec::gpt(1024 * MIB)
        .part(
            PartSpec::new(640 * MIB, Fs::Ext4)
                .root()
                .name("root")
                .populate(&stage),
        )
        .build(&dir.path().join("debian.img"))
        .unwrap();
    let _ = fs::remove_dir_all(&stage);
    let tree = dir.path().join("drive");
    config_tree(&tree);
    sh(Command::new(BIN)
        .args(["build", "--disk", disk.path_str(), "--from"])
        .arg(&tree)
        .args(["--at", "end"]));
    let before = disk.read_table().unwrap();
    assert_eq!(before.len(), 2, "{before:#?}");
    eprintln!(
        "vm_debian: disk ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let log = vm
        .boot(&disk, "")
        .append("vmtest.switchroot=1 systemd.show_status=error systemd.log_level=warning")
        .qemu_arg("-nic")
        .qemu_arg(&format!("user,mac={MAC},model=virtio-net-pci"))
        .timeout(Duration::from_secs(400))
        .name("seedpart_configures_systemd_debian")
        .go()
        .unwrap();
    log.assert_passed();
    let ctx = log.excerpt();

    // seedpart.service ran and exited 0.
    let exec = log.stdout("exec_status");
    assert!(exec.contains("ExecMainStatus=0"), "{exec}\n{ctx}");
    assert!(exec.contains("Result=success"), "{exec}\n{ctx}");

    // seedpart finished before systemd-networkd started (monotonic microseconds).
    let order = log.stdout("order");
    let mono = |key: &str| -> u64 {
        order
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {order}"))
    };
    let (done, networkd) = (
        mono("ExecMainExitTimestampMonotonic"),
        mono("ExecMainStartTimestampMonotonic"),
    );
    assert!(
        done > 0 && done < networkd,
        "seedpart ended at {done}, networkd started at {networkd}"
    );

    // The NIC with the MAC: 10.0.2.15/24, static (networkd, not a DHCP lease).
    let addrs = log.json("addr");
    let nic = addrs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"].as_str() == Some(MAC))
        .unwrap_or_else(|| panic!("no link with {MAC}: {addrs:#}\n{ctx}"));
    let ifname = nic["ifname"].as_str().unwrap().to_string();
    let ifindex = nic["ifindex"].as_u64().unwrap();
    let v4 = nic["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["family"] == "inet" && a["local"] == "10.0.2.15")
        .unwrap_or_else(|| panic!("{ifname} has no 10.0.2.15: {nic:#}\n{ctx}"));
    assert_eq!(v4["prefixlen"].as_u64(), Some(24), "{nic:#}");
    assert_ne!(v4["dynamic"], Value::Bool(true), "a DHCP address: {nic:#}");

    // The default route via 10.0.2.2 on that NIC.
    let routes = log.json("route");
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default"
                && r["gateway"] == "10.0.2.2"
                && r["dev"].as_str() == Some(ifname.as_str())),
        "no default route via 10.0.2.2 on {ifname}: {routes:#}\n{ctx}"
    );

    // DNS 10.0.2.3 in networkd's view: its state file for the link, and resolved's.
    let links = log.stdout("links");
    let link_state = links
        .split("## ")
        .find(|s| s.starts_with(&format!("/run/systemd/netif/links/{ifindex}\n")))
        .unwrap_or_else(|| panic!("no networkd state for link {ifindex}:\n{links}\n{ctx}"));
    assert!(
        link_state.contains("ADMIN_STATE=configured"),
        "{link_state}"
    );
    assert!(
        link_state
            .lines()
            .any(|l| l.starts_with("DNS=") && l.split_whitespace().any(|w| w.ends_with("10.0.2.3"))),
        "networkd has no DNS 10.0.2.3 for {ifname}:\n{link_state}\n{ctx}"
    );
    assert!(
        log.stdout("resolvectl").contains("10.0.2.3"),
        "resolved: {}",
        log.stdout("resolvectl")
    );
    let files = log.stdout("network_files");
    assert!(files.contains(MAC), "{files}");

    // Hostname and key.
    assert_eq!(log.stdout("hostname").trim(), "seedpart-vm", "{ctx}");
    assert_eq!(log.stdout("etc_hostname").trim(), "seedpart-vm", "{ctx}");
    assert!(
        log.stdout("keys").lines().any(|l| l.trim() == KEY),
        "{}",
        log.stdout("keys")
    );

    // seedpart status: the copy of the drive is there and verified.
    let status = log.json("status");
    assert_eq!(status["copy"]["verified"], Value::Bool(true), "{status:#}");

    // From the host: the config partition is gone, the table is clean, the root fsck-clean.
    let after = disk.read_table().unwrap();
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0].start, before[0].start);
    assert!(after[0].size > before[0].size, "{after:#?}");
    disk.sgdisk_verify().unwrap();
    disk.fsck(1, Fs::Ext4).unwrap();
    eprintln!(
        "vm_debian: boot to poweroff {:.1} s, report at {}",
        log.wall.as_secs_f64(),
        log.text
            .lines()
            .find(|l| l.starts_with("vmtest: report at"))
            .unwrap_or("?")
    );
}
