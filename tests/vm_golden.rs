//! seedpart as shipped, proven by booting a real golden image: a Debian made with mmdebstrap
//! (tests/vm/golden/image.sh: systemd, linux-image-cloud-amd64, dracut, and the seedpart .deb
//! installed with dpkg -i, the initramfs rebuilt with its dracut module), written as a disk
//! image (tests/vm/golden/disk.sh) onto a larger "disk", given a config drive the way a deployer
//! does, and booted under qemu TCG with the image's own kernel and initramfs. A fixture unit
//! (tests/vm/golden/report) prints the system's view on the serial console and powers off; the
//! host then checks the disk with sgdisk/sfdisk and e2fsck/xfs_repair.
//!
//! The scenarios: the systemd path on GPT/ext4 with Ironic's ISO drive (rd.seedpart=0), the
//! dracut path on xfs, an MBR disk, a second boot that changes nothing, and cloud-init finding
//! its seed after seedpart deleted the drive.
//!
//! SKIP (with the reason) without root, qemu, mmdebstrap or the Debian mirror.
//! `VMTEST_GOLDEN_DEB=FILE` uses that package instead of packaging/deb/build.sh's.

#[macro_use]
#[path = "vm/harness.rs"]
mod harness;

use harness::*;
use serde_json::{Value, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const MAC: &str = "52:54:00:12:34:56";
/// Not the 10.0.2.15 that qemu's DHCP hands out: a static address cannot be mistaken for a lease.
const ADDR: &str = "10.0.2.42";
const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBv1XQyTZ3n7f5oC9q0cM2jYQ3bYk1h0Gm8e3yV0pXvS golden-test";
const IMAGE_SIZE: u64 = 1024 * MIB;
const DISK_SIZE: u64 = 3072 * MIB;

// ---------------------------------------------------------------------------------------------
// The package, the image, the disks

/// The seedpart .deb: `$VMTEST_GOLDEN_DEB`, else what packaging/deb/build.sh builds (the
/// release binary) into target/vm/golden/deb/. Built once per test process.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(p) = std::env::var_os("VMTEST_GOLDEN_DEB") {
            return PathBuf::from(p);
        }
        // build.sh renames the finished package into place: a concurrent run never sees half.
        let out = target_dir().join("golden/deb");
        fs::create_dir_all(&out).unwrap();
        let t = Instant::now();
        let o = Command::new(Path::new(MANIFEST).join("packaging/deb/build.sh"))
            .arg(&out)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("running packaging/deb/build.sh");
        assert!(o.status.success(), "packaging/deb/build.sh failed");
        let stdout = String::from_utf8_lossy(&o.stdout);
        let deb = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
        assert!(
            deb.is_file() && deb.extension().is_some_and(|e| e == "deb"),
            "packaging/deb/build.sh printed no .deb: {stdout}"
        );
        eprintln!(
            "vm_golden: {} built in {:.1} s",
            deb.display(),
            t.elapsed().as_secs_f64()
        );
        deb
    })
}

/// A golden image: `root/`, and the image's own kernel and initramfs.
#[derive(Debug)]
struct Image {
    dir: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Plain,
    CloudInit,
}

/// The cached golden image (tests/vm/golden/image.sh), or why it cannot be made here.
fn image(variant: Variant) -> Result<&'static Image, String> {
    static PLAIN: OnceLock<Result<Image, String>> = OnceLock::new();
    static CLOUD: OnceLock<Result<Image, String>> = OnceLock::new();
    let cell = match variant {
        Variant::Plain => &PLAIN,
        Variant::CloudInit => &CLOUD,
    };
    cell.get_or_init(|| {
        // The rest is root-only anyway (mmdebstrap --mode=root, chroot, loop mounts).
        if !sh(Command::new("id").arg("-u")).trim().eq("0") {
            return Err("the golden image needs root (mmdebstrap, chroot, loop mounts)".into());
        }
        // Checked before the package is built (a release build) for nothing; build.sh's own
        // tools only when it is to run.
        let builds_deb = std::env::var_os("VMTEST_GOLDEN_DEB").is_none();
        for (tool, package, needed) in [
            ("mmdebstrap", "mmdebstrap", true),
            ("unshare", "util-linux", true),
            ("dpkg-shlibdeps", "dpkg-dev", builds_deb),
            ("jq", "jq", builds_deb),
            ("make", "make", builds_deb),
        ] {
            if needed && !have(tool) {
                return Err(format!(
                    "the golden image needs {tool} (apt-get install {package})"
                ));
            }
        }
        let deb = deb();
        let mut cmd = Command::new(Path::new(MANIFEST).join("tests/vm/golden/image.sh"));
        if variant == Variant::CloudInit {
            cmd.arg("--cloud-init");
        }
        let dir = cached_dir(cmd.arg(deb), &format!("golden image ({variant:?})"))?;
        Ok(Image {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.img"),
            dir,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The VM and the image, or `SKIP: reason` and return.
macro_rules! require_golden {
    ($variant:expr) => {{
        let vm = require_vm!();
        match image($variant) {
            Ok(img) => (vm, img),
            Err(why) => {
                eprintln!("SKIP: {why}");
                return;
            }
        }
    }};
}

/// The golden image as a disk: IMAGE_SIZE of table and root, grown to DISK_SIZE (as after dd
/// onto a larger disk). Returns the disk and the kernel command line that boots it.
fn golden_disk(img: &Image, table: Table, fs: Fs, path: &Path) -> (Disk, String) {
    let t = Instant::now();
    let out = sh(
        Command::new(Path::new(MANIFEST).join("tests/vm/golden/disk.sh"))
            .args(["--table", if table == Table::Gpt { "gpt" } else { "mbr" }])
            .args(["--fs", fs.name().unwrap()])
            .args(["--image-size", &IMAGE_SIZE.to_string()])
            .args(["--disk-size", &DISK_SIZE.to_string()])
            .arg(&img.dir)
            .arg(path),
    );
    let cmdline = out.lines().last().unwrap().trim().to_string();
    assert!(cmdline.starts_with("root=UUID="), "disk.sh printed {out:?}");
    eprintln!(
        "vm_golden: {} written in {:.1} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    (Disk::open(path, table, 512, Some(1)), cmdline)
}

/// A config drive's tree: `openstack/2018-08-27/` (cloud-init's ds-identify only looks for
/// dated directories) and `openstack/latest/`, as Nova writes them.
fn config_tree(dir: &Path, uuid: &str, hostname: &str) {
    let meta = json!({
        "uuid": uuid,
        "hostname": hostname,
        "name": hostname,
        "launch_index": 0,
        "availability_zone": "nova",
        "public_keys": { "golden": KEY },
    });
    let net = json!({
        "links": [{
            "id": "nic0", "type": "phy", "ethernet_mac_address": MAC, "mtu": 1500,
            "vif_id": "0d7b5b3c-1a9e-4d3f-8d52-3f4f0a6b7c21"
        }],
        "networks": [{
            "id": "net0", "type": "ipv4", "link": "nic0",
            "ip_address": ADDR, "netmask": "255.255.255.0",
            "network_id": "6a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
            "routes": [{ "network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2" }]
        }],
        "services": [{ "type": "dns", "address": "10.0.2.3" }]
    });
    // Appends, so that a second run would show as a second line.
    let user_data = "#!/bin/sh\necho \"user-data ran on $(hostname) at $(cut -d' ' -f1 /proc/uptime) s\" | tee -a /var/lib/golden-user-data.out\n";
    for v in ["2018-08-27", "latest"] {
        let p = dir.join("openstack").join(v);
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("meta_data.json"), meta.to_string()).unwrap();
        fs::write(p.join("network_data.json"), net.to_string()).unwrap();
        fs::write(p.join("user_data"), user_data).unwrap();
    }
}

/// Ironic's configdrive: the tree as an ISO 9660 image labelled config-2, gzipped, base64.
fn ironic_blob(tree: &Path, out: &Path) {
    let iso = out.with_extension("iso");
    let tool = if have("genisoimage") {
        "genisoimage"
    } else {
        "xorrisofs"
    };
    sh(Command::new(tool)
        .args(["-quiet", "-J", "-r", "-V", "config-2", "-o"])
        .arg(&iso)
        .arg(tree));
    let gz = sh(Command::new("sh").arg("-c").arg(format!(
        "gzip -c '{}' | base64 -w0 >'{}'",
        iso.display(),
        out.display()
    )));
    assert!(gz.is_empty());
}

/// A GPT ext4 golden disk in `dir` with Ironic's own drive for `uuid`/`hostname`: its gzipped
/// base64 ISO 9660 blob through `seedpart build --configdrive --at end`, checked to sit in the
/// disk's last 64 MiB with a clean table. Returns the disk, its kernel command line and the table.
fn ironic_iso_disk(
    img: &Image,
    dir: &Path,
    uuid: &str,
    hostname: &str,
) -> (Disk, String, Vec<TableEntry>) {
    let (disk, cmdline) = golden_disk(img, Table::Gpt, Fs::Ext4, &dir.join("disk.img"));
    let tree = dir.join("drive");
    config_tree(&tree, uuid, hostname);
    let blob = dir.join("configdrive.b64");
    ironic_blob(&tree, &blob);
    build_drive(
        &disk,
        &["--configdrive", blob.to_str().unwrap(), "--at", "end"],
    );
    let before = disk.read_table().unwrap();
    assert_eq!(before.len(), 2, "{before:#?}");
    // Ironic's place: the disk's last 64 MiB (its start aligned down to a MiB).
    assert!(
        before[1].start >= DISK_SIZE - 65 * MIB
            && before[1].start + before[1].size + MIB > DISK_SIZE,
        "not Ironic's place: {before:#?}"
    );
    disk.sgdisk_verify().unwrap();
    (disk, cmdline, before)
}

/// The golden image as a disk (`table`, `fs`) with `seedpart build`'s own drive (vfat) for
/// instance `uuid`, `place` its extra build arguments. Returns the disk, its kernel command
/// line and the table (root and drive).
fn seedpart_drive_disk(
    img: &Image,
    dir: &Path,
    (table, fs): (Table, Fs),
    (uuid, hostname): (&str, &str),
    place: &[&str],
) -> (Disk, String, Vec<TableEntry>) {
    let (disk, cmdline) = golden_disk(img, table, fs, &dir.join("disk.img"));
    let tree = dir.join("drive");
    config_tree(&tree, uuid, hostname);
    build_drive(
        &disk,
        &[&["--from", tree.to_str().unwrap()], place].concat(),
    );
    let before = disk.read_table().unwrap();
    assert_eq!(before.len(), 2, "{before:#?}");
    (disk, cmdline, before)
}

fn build_drive(disk: &Disk, args: &[&str]) {
    let out = sh(Command::new(BIN)
        .args(["build", "--disk", disk.path_str()])
        .args(args));
    eprintln!("vm_golden: seedpart build: {}", out.trim());
}

fn boot(vm: &Vm, img: &Image, disk: &Disk, cmdline: &str, name: &str) -> SerialLog {
    let log = vm
        .boot_image(&disk.path, "")
        .own_boot(&img.kernel, &img.initrd)
        .append(cmdline)
        .append("systemd.show_status=error systemd.log_level=warning")
        .qemu_arg("-nic")
        .qemu_arg(&format!("user,mac={MAC},model=virtio-net-pci"))
        .timeout(Duration::from_secs(900))
        .name(name)
        .go()
        .unwrap();
    log.assert_passed();
    // The image boots clean: no unit failed (cloud-init's stages, networkd-wait-online, ...).
    assert_eq!(
        log.stdout("failed").trim(),
        "",
        "failed units\n{}",
        log.excerpt()
    );
    // Nothing in the journal about seedpart went wrong: no error or warning from it, from the
    // initramfs hook (which says when it leaves the job to the unit) or from systemd about its
    // units. (The kernel command line's own echoes are no trouble: it names seedpart options
    // and systemd.show_status=error.)
    let journal = log.stdout("journal_seedpart");
    let trouble: Vec<&str> = journal
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.contains("command line")
                && ["error", "warning", "fail", "leaving the job"]
                    .iter()
                    .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        trouble.is_empty(),
        "the journal has trouble with seedpart:\n{}",
        trouble.join("\n")
    );
    eprintln!(
        "vm_golden: {name}: boot to poweroff {:.1} s; {}; seedpart in blame: {}",
        log.wall.as_secs_f64(),
        log.text
            .lines()
            .find(|l| l.starts_with("vmtest: report at"))
            .unwrap_or("no report line"),
        log.section("blame")
            .map(|s| s.output.trim().replace('\n', " | "))
            .unwrap_or_default()
    );
    log
}

// ---------------------------------------------------------------------------------------------
// What the VM reported

/// `KEY=VALUE` lines of `systemctl show`.
fn props(log: &SerialLog, section: &str) -> std::collections::HashMap<String, String> {
    log.stdout(section)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn prop_u64(log: &SerialLog, section: &str, key: &str) -> u64 {
    props(log, section)
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {section}:\n{}", log.stdout(section)))
}

/// The unit ran and succeeded (oneshot, exit 0).
fn assert_unit_ok(log: &SerialLog, section: &str) {
    let p = props(log, section);
    let ctx = log.excerpt();
    assert_eq!(
        p.get("Result").map(String::as_str),
        Some("success"),
        "{section}: {p:?}\n{ctx}"
    );
    assert_eq!(
        p.get("ExecMainStatus").map(String::as_str),
        Some("0"),
        "{section}: {p:?}\n{ctx}"
    );
    assert!(
        prop_u64(log, section, "ExecMainStartTimestampMonotonic") > 0,
        "{section} never started: {p:?}"
    );
}

/// When the state file was last written, in the boot's monotonic microseconds (from its mtime
/// and the clock section's realtime/uptime pair).
fn state_written_at(log: &SerialLog) -> u64 {
    let clock: Vec<f64> = log
        .stdout("clock")
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let boot_realtime = clock[0] - clock[1];
    let mtime: f64 = log.stdout("state_mtime").trim().parse().unwrap();
    ((mtime - boot_realtime) * 1e6).max(0.0) as u64
}

/// The root as `findmnt` saw it: (source, fstype, options, size).
fn root_mount(log: &SerialLog) -> (String, String, String, u64) {
    let j = log.json("findmnt");
    let fs = &j["filesystems"][0];
    let s = |k: &str| fs[k].as_str().unwrap_or_default().to_string();
    let size = fs["size"]
        .as_u64()
        .or_else(|| fs["size"].as_str().and_then(|v| v.parse().ok()))
        .unwrap_or(0);
    (s("source"), s("fstype"), s("options"), size)
}

/// The partitions of /dev/vda as lsblk saw them: (number, start sector, size bytes).
fn vm_partitions(log: &SerialLog) -> Vec<(u64, u64, u64)> {
    let j = log.json("lsblk");
    let num = |v: &Value| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0)
    };
    j["blockdevices"][0]["children"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|p| {
                    let name = p["name"].as_str().unwrap_or_default();
                    let n = name.trim_start_matches("vda").parse().unwrap_or(0);
                    (n, num(&p["start"]), num(&p["size"]))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What every first boot that applied a drive shows from inside: seedpart.service ran cleanly
/// and the state says done for `uuid`, the copy verifies, the drive's partition is gone and
/// the root (rw, `fstype`) fills the disk; hostname, key, static address and default route are
/// the drive's, and networkd started only after seedpart had written its configuration.
fn assert_applied_inside(log: &SerialLog, uuid: &str, hostname: &str, fstype: &str) {
    let ctx = log.excerpt();
    assert_unit_ok(log, "seedpart_unit");
    let status = log.json("status");
    assert_eq!(status["state"]["instance_uuid"], json!(uuid), "{status:#}");
    assert_eq!(status["state"]["last_result"], json!("done"), "{status:#}");
    assert_eq!(
        status["state"]["partition_deleted"],
        json!(true),
        "{status:#}"
    );
    assert_eq!(status["copy"]["verified"], json!(true), "{status:#}");
    // Recorded as the booted system sees it, also when the initramfs wrote it via /sysroot.
    assert_eq!(
        status["state"]["copy"]["path"],
        json!("/var/lib/seedpart/config-drive"),
        "{status:#}"
    );
    assert_eq!(
        status["state"]["filesystem_grown"]["fstype"],
        json!(fstype),
        "{status:#}"
    );

    let (source, fs, options, size) = root_mount(log);
    assert_eq!(
        (source.as_str(), fs.as_str()),
        ("/dev/vda1", fstype),
        "{ctx}"
    );
    assert!(
        options.split(',').any(|o| o == "rw"),
        "root not rw: {options}"
    );
    // The root filesystem fills the disk now (less the table and filesystem overhead).
    assert!(
        size > DISK_SIZE - 300 * MIB,
        "root is {size} bytes on a {DISK_SIZE}-byte disk\n{ctx}"
    );
    let parts = vm_partitions(log);
    assert_eq!(
        parts.len(),
        1,
        "the kernel still sees more than the root: {parts:?}\n{ctx}"
    );
    // It ends where the disk does (less GPT's backup and the 1 MiB alignment).
    assert!(
        parts[0].1 * 512 + parts[0].2 + 2 * MIB > DISK_SIZE,
        "vda1 {parts:?} falls short of the {DISK_SIZE}-byte disk's end"
    );

    assert_eq!(log.stdout("hostname").trim(), hostname, "{ctx}");
    assert_eq!(log.stdout("etc_hostname").trim(), hostname, "{ctx}");
    let keys = log.stdout("keys");
    assert_eq!(
        keys.lines().filter(|l| l.trim() == KEY).count(),
        1,
        "the key once in authorized_keys:\n{keys}"
    );
    assert_static_network(log);
}

/// The NIC with the drive's MAC has the static address (not a DHCP lease) and the default route.
fn assert_static_network(log: &SerialLog) {
    let ctx = log.excerpt();
    let addrs = log.json("addr");
    let nic = addrs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["address"].as_str() == Some(MAC))
        .unwrap_or_else(|| panic!("no link with {MAC}: {addrs:#}\n{ctx}"));
    let ifname = nic["ifname"].as_str().unwrap();
    let v4: Vec<&Value> = nic["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .collect();
    assert!(
        v4.len() == 1 && v4[0]["local"] == ADDR && v4[0]["prefixlen"] == 24,
        "{ifname} should have {ADDR}/24 only: {nic:#}\n{ctx}"
    );
    assert_ne!(
        v4[0]["dynamic"],
        Value::Bool(true),
        "a DHCP address: {nic:#}"
    );
    let routes = log.json("route");
    assert!(
        routes
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["dst"] == "default"
                && r["gateway"] == "10.0.2.2"
                && r["dev"].as_str() == Some(ifname)),
        "no default route via 10.0.2.2 on {ifname}: {routes:#}\n{ctx}"
    );
}

/// The user-data script ran once, through seedpart-user-data.service, after the hostname was set.
fn assert_user_data_ran_once(log: &SerialLog, hostname: &str) {
    assert_unit_ok(log, "user_data_unit");
    let out = log.stdout("user_data_out");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "user-data output:\n{out}");
    assert!(
        lines[0].starts_with(&format!("user-data ran on {hostname} at")),
        "{out}"
    );
    let status = log.json("status");
    assert_eq!(
        status["user_data"]["result"],
        json!("success"),
        "{status:#}"
    );
    assert_eq!(status["user_data"]["exit_code"], json!(0), "{status:#}");
}

/// From the host, after the VM stopped: one partition left, starting where it did and
/// reaching the end of the disk; the table verifies; the root filesystem checks clean.
fn assert_host_after(disk: &Disk, before: &[TableEntry], fs: Fs) {
    let after = disk.read_table().unwrap();
    assert_eq!(after.len(), 1, "{after:#?}");
    assert_eq!(after[0].start, before[0].start, "{after:#?}");
    assert!(
        after[0].start + after[0].size > DISK_SIZE - 2 * MIB,
        "the root does not reach the disk's end: {after:#?}"
    );
    match disk.table {
        Table::Gpt => {
            disk.sgdisk_verify().unwrap();
        }
        Table::Mbr => {
            sh(Command::new("sfdisk").arg("--verify").arg(&disk.path));
        }
    }
    disk.fsck(1, fs).unwrap();
    let fs_size = disk.fs_size(1, fs).unwrap();
    assert!(
        fs_size + 2 * MIB >= after[0].size,
        "filesystem {fs_size} bytes in a {}-byte partition",
        after[0].size
    );
}

// ---------------------------------------------------------------------------------------------
// The scenarios

/// (1) The systemd path: rd.seedpart=0 keeps the initramfs hook out, seedpart.service does
/// the job on the live root. GPT, ext4, and Ironic's own drive: a gzipped base64 ISO 9660
/// image labelled config-2 in the last 64 MiB.
#[test]
fn golden_systemd_path_gpt_ext4_ironic_iso() {
    let (vm, img) = require_golden!(Variant::Plain);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let uuid = "5b0c7e8e-3f4d-4a57-9d8e-1c2b3a4d5e61";
    let (disk, cmdline, before) = ironic_iso_disk(img, dir.path(), uuid, "golden-systemd");

    let log = boot(
        vm,
        img,
        &disk,
        &format!("{cmdline} rd.seedpart=0"),
        "golden_systemd_path",
    );
    assert!(log.stdout("cmdline").contains("rd.seedpart=0"));
    assert_applied_inside(&log, uuid, "golden-systemd", "ext4");
    assert_eq!(log.json("status")["state"]["drive"]["fs"], json!("iso9660"));
    // The unit did it, not the initramfs: the state file was written after it started, and
    // the network stack started only after it had finished.
    let started = prop_u64(&log, "seedpart_unit", "ExecMainStartTimestampMonotonic");
    let ended = prop_u64(&log, "seedpart_unit", "ExecMainExitTimestampMonotonic");
    let written = state_written_at(&log);
    assert!(
        written + 20_000 >= started && written <= ended + 20_000,
        "state.json written at {written} µs, seedpart.service ran {started}..{ended} µs"
    );
    let networkd = prop_u64(&log, "networkd_unit", "ExecMainStartTimestampMonotonic");
    assert!(
        ended < networkd,
        "seedpart ended at {ended}, networkd started at {networkd}"
    );
    assert_user_data_ran_once(&log, "golden-systemd");
    assert_host_after(&disk, &before, Fs::Ext4);
}

/// (2) The dracut path on xfs: the initramfs hook runs `seedpart run --root /sysroot` with the
/// root remounted read-write for it (the kernel says `ro`), grows xfs online there, and
/// seedpart.service on the live root then finds nothing to do. The drive: `seedpart build`'s
/// own (vfat, right after the root).
#[test]
fn golden_dracut_path_xfs() {
    let (vm, img) = require_golden!(Variant::Plain);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let uuid = "a4f3b2c1-6d5e-4f70-8a9b-0c1d2e3f4a5b";
    let (disk, cmdline, before) = seedpart_drive_disk(
        img,
        dir.path(),
        (Table::Gpt, Fs::Xfs),
        (uuid, "golden-dracut"),
        &[],
    );
    assert!(cmdline.contains(" ro"), "{cmdline}");
    assert_eq!(before[1].name.as_deref(), Some("config-v2"), "{before:#?}");

    let log = boot(vm, img, &disk, &cmdline, "golden_dracut_path_xfs");
    assert_applied_inside(&log, uuid, "golden-dracut", "xfs");
    assert_eq!(log.json("status")["state"]["drive"]["fs"], json!("vfat"));
    // The initramfs did it: the state file was last written before seedpart.service started
    // (which then ran, succeeded and wrote nothing).
    let started = prop_u64(&log, "seedpart_unit", "ExecMainStartTimestampMonotonic");
    let written = state_written_at(&log);
    assert!(
        written < started,
        "state.json written at {written} µs, after seedpart.service started at {started} µs: the initramfs hook did not do the job\n{}",
        log.stdout("journal_pre_pivot")
    );
    assert_user_data_ran_once(&log, "golden-dracut");
    assert_host_after(&disk, &before, Fs::Xfs);
}

/// (3) An MBR disk (ext4, the drive a primary partition at the disk's end, as Ironic puts it on
/// MBR), booted as shipped: the initramfs hook does the job.
#[test]
fn golden_mbr_ext4() {
    let (vm, img) = require_golden!(Variant::Plain);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let uuid = "3e2d1c0b-9a8f-4e7d-8c6b-5a4f3e2d1c0b";
    let (disk, cmdline, before) = seedpart_drive_disk(
        img,
        dir.path(),
        (Table::Mbr, Fs::Ext4),
        (uuid, "golden-mbr"),
        &["--at", "end"],
    );
    assert_eq!(before[1].start + before[1].size, DISK_SIZE, "{before:#?}");

    let log = boot(vm, img, &disk, &cmdline, "golden_mbr_ext4");
    assert_applied_inside(&log, uuid, "golden-mbr", "ext4");
    assert_eq!(log.json("status")["state"]["drive"]["table"], json!("mbr"));
    assert!(
        state_written_at(&log) < prop_u64(&log, "seedpart_unit", "ExecMainStartTimestampMonotonic")
    );
    assert_user_data_ran_once(&log, "golden-mbr");
    assert_host_after(&disk, &before, Fs::Ext4);
}

/// The bytes of the table: LBA 0-33 and the last 33 sectors (GPT's two copies).
fn table_bytes(disk: &Disk) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = fs::File::open(&disk.path).unwrap();
    let mut v = vec![0u8; 67 * 512];
    f.read_exact(&mut v[..34 * 512]).unwrap();
    f.seek(SeekFrom::End(-33 * 512)).unwrap();
    f.read_exact(&mut v[34 * 512..]).unwrap();
    v
}

/// (4) A second boot: seedpart.service runs, finds nothing to do and changes nothing: the
/// table's bytes, the state file, the filesystem's size, the key (once), the user-data output
/// (one line: the script did not run again). Its time in `systemd-analyze blame` is reported.
#[test]
fn golden_second_boot_changes_nothing() {
    let (vm, img) = require_golden!(Variant::Plain);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let (disk, cmdline) = golden_disk(img, Table::Gpt, Fs::Ext4, &dir.path().join("disk.img"));
    let uuid = "7c6b5a49-3827-4165-9f4e-3d2c1b0a9f8e";
    let tree = dir.path().join("drive");
    config_tree(&tree, uuid, "golden-twice");
    build_drive(&disk, &["--from", tree.to_str().unwrap(), "--at", "end"]);
    let before = disk.read_table().unwrap();

    let first = boot(vm, img, &disk, &cmdline, "golden_second_boot-1");
    assert_applied_inside(&first, uuid, "golden-twice", "ext4");
    assert_user_data_ran_once(&first, "golden-twice");
    assert_host_after(&disk, &before, Fs::Ext4);
    let table = table_bytes(&disk);
    let entries = disk.read_table().unwrap();
    let fs_size = disk.fs_size(1, Fs::Ext4).unwrap();

    let second = boot(vm, img, &disk, &cmdline, "golden_second_boot-2");
    let ctx = second.excerpt();
    assert_unit_ok(&second, "seedpart_unit");
    assert_eq!(
        second.stdout("state"),
        first.stdout("state"),
        "state.json changed\n{ctx}"
    );
    assert_eq!(
        second.stdout("state_mtime"),
        first.stdout("state_mtime"),
        "state.json rewritten"
    );
    assert_eq!(second.json("status")["copy"]["verified"], json!(true));
    assert_eq!(second.stdout("hostname").trim(), "golden-twice");
    let keys = second.stdout("keys");
    assert_eq!(
        keys.lines().filter(|l| l.trim() == KEY).count(),
        1,
        "{keys}"
    );
    assert_static_network(&second);
    // The script did not run again: one line of output, and its unit was skipped.
    assert_eq!(
        second.stdout("user_data_out"),
        first.stdout("user_data_out")
    );
    assert_eq!(
        props(&second, "user_data_unit")
            .get("ConditionResult")
            .map(String::as_str),
        Some("no"),
        "{}",
        second.stdout("user_data_unit")
    );
    assert_eq!(vm_partitions(&second), vm_partitions(&first));
    assert_eq!(root_mount(&second).3, root_mount(&first).3);
    assert!(
        table_bytes(&disk) == table,
        "the partition table's bytes changed on the second boot"
    );
    assert_eq!(disk.read_table().unwrap(), entries);
    assert_eq!(disk.fs_size(1, Fs::Ext4).unwrap(), fs_size);
    disk.sgdisk_verify().unwrap();
    disk.fsck(1, Fs::Ext4).unwrap();
    let ms = |log: &SerialLog| {
        let p = props(log, "seedpart_unit");
        let n = |k: &str| p.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        (n("ExecMainExitTimestampMonotonic").saturating_sub(n("ExecMainStartTimestampMonotonic")))
            as f64
            / 1000.0
    };
    eprintln!(
        "vm_golden: seedpart.service ran {:.0} ms on the first boot, {:.0} ms on the second (blame: {} / {})",
        ms(&first),
        ms(&second),
        first.stdout("blame").trim().replace('\n', " | "),
        second.stdout("blame").trim().replace('\n', " | ")
    );
}

/// (5) cloud-init installed: seedpart (in the initramfs) copies the drive to
/// /var/lib/cloud/seed/config_drive/ and deletes the partition; cloud-init's ConfigDrive
/// datasource then finds the seed, reports the drive's instance id, sets the hostname, renders
/// the network and runs the user-data script (seedpart's own user-data unit stays out).
#[test]
fn golden_cloud_init_finds_its_seed() {
    let (vm, img) = require_golden!(Variant::CloudInit);
    let dir = tempfile::tempdir_in(target_dir()).unwrap();
    let uuid = "e1d2c3b4-a596-4877-8695-a4b3c2d1e0f9";
    let (disk, cmdline, before) = ironic_iso_disk(img, dir.path(), uuid, "golden-cloud");

    let log = boot(vm, img, &disk, &cmdline, "golden_cloud_init");
    let ctx = log.excerpt();
    assert_unit_ok(&log, "seedpart_unit");
    let status = log.json("status");
    assert_eq!(status["state"]["instance_uuid"], json!(uuid), "{status:#}");
    assert_eq!(
        status["state"]["partition_deleted"],
        json!(true),
        "{status:#}"
    );
    assert_eq!(vm_partitions(&log).len(), 1, "{ctx}");
    let seed = log.stdout("cloud_init_seed");
    assert!(
        seed.lines()
            .any(|l| l == "/var/lib/cloud/seed/config_drive/openstack/latest/meta_data.json"),
        "{seed}"
    );
    // cloud-init found it there, not on a device.
    assert_eq!(log.stdout("cloud_init_instance").trim(), uuid, "{ctx}");
    let st = log.stdout("cloud_init_status");
    assert!(st.contains("status: done"), "{st}\n{ctx}");
    assert!(
        st.contains("DataSourceConfigDrive") && st.contains("/var/lib/cloud/seed/config_drive"),
        "{st}\n{}",
        log.stdout("cloud_init_log")
    );
    // What seedpart left to cloud-init, done by cloud-init: the network file is cloud-init's.
    assert_eq!(log.stdout("hostname").trim(), "golden-cloud", "{ctx}");
    assert_static_network(&log);
    let files = log.stdout("network_files");
    assert!(
        files.contains("/etc/systemd/network/10-cloud-init-") && !files.contains("seedpart"),
        "{files}"
    );
    let out = log.stdout("user_data_out");
    assert_eq!(out.lines().count(), 1, "user-data output:\n{out}");
    assert_eq!(
        props(&log, "user_data_unit")
            .get("ConditionResult")
            .map(String::as_str),
        Some("no"),
        "seedpart's own user-data unit ran although cloud-init has the drive"
    );
    assert_host_after(&disk, &before, Fs::Ext4);
}
