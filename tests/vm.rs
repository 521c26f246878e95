//! Tests in a real kernel: disk images booted under qemu (TCG) with Debian's cloud kernel and a
//! busybox initramfs carrying this build of seedpart (tests/vm/, README there). They prove what
//! the sandbox cannot: a mounted root on a virtio disk with 512- or 4096-byte sectors, online
//! filesystem growth (needs CAP_SYS_RESOURCE), and power cuts. Without qemu or the kernel they
//! say SKIP; CI installs both (tests/vm/deps.sh, tests/vm/kernel.sh).

#[macro_use]
#[path = "vm/harness.rs"]
mod harness;

use harness::*;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_seedpart");

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

/// A minimal config drive tree.
fn config_tree(dir: &Path, uuid: &str, hostname: &str) {
    let p = dir.join("openstack/latest");
    fs::create_dir_all(&p).unwrap();
    fs::write(
        p.join("meta_data.json"),
        format!(r#"{{"uuid": "{uuid}", "hostname": "{hostname}", "name": "vm-test"}}"#),
    )
    .unwrap();
}

/// `seedpart build --disk IMG --from TREE` on the host (the deployer's half).
fn add_config_drive(disk: &Disk, uuid: &str, hostname: &str) {
    let t = tempfile::tempdir().unwrap();
    config_tree(t.path(), uuid, hostname);
    let o = Command::new(BIN)
        .args(["build", "--disk", disk.path_str(), "--from"])
        .arg(t.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "seedpart build: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The kernel's view (`vmtest_partitions`): (name, start, size) in 512-byte units, and the
/// disk's size.
fn kernel_parts(out: &str) -> (Vec<(String, u64, u64)>, u64) {
    let mut parts = Vec::new();
    let mut disk = 0;
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["disk", n] => disk = n.parse().unwrap(),
            [name, start, size] => parts.push((
                name.to_string(),
                start.parse().unwrap(),
                size.parse().unwrap(),
            )),
            _ => panic!("odd vmtest_partitions line {line:?}"),
        }
    }
    (parts, disk)
}

/// Boots a disk with a root partition and a config drive made by `seedpart build`, runs
/// `seedpart inspect --root /sysroot --json` inside, and checks from the host that what it
/// reports is the layout on the image and in the kernel.
fn inspect_in_vm(table: Table, sector_size: u32) {
    let vm = require_vm!();
    let ctx = format!("{table:?}, {sector_size}-byte sectors");
    let dir = tempfile::tempdir().unwrap();
    let spec = match table {
        Table::Gpt => DiskSpec::gpt(512 * MIB),
        Table::Mbr => DiskSpec::mbr(512 * MIB),
    };
    let disk = spec
        .sector_size(sector_size)
        .root(200 * MIB, Fs::Ext4)
        .build(&dir.path().join("disk.img"))
        .unwrap();
    let uuid = "5b8a1c39-0d52-4c4a-9d4e-2f3e0c6f7a10";
    add_config_drive(&disk, uuid, "vm-inspect");
    let table_now = disk.read_table().unwrap();
    assert_eq!(table_now.len(), 2, "{ctx}: {table_now:#?}");
    let (root, drive) = (&table_now[0], &table_now[1]);

    let log = vm
        .boot(
            &disk,
            "vmtest_section parts vmtest_partitions\n\
             vmtest_section inspect seedpart inspect --root /sysroot --json\n\
             vmtest_section human seedpart inspect --root /sysroot\n",
        )
        .go()
        .unwrap();
    log.assert_passed();

    // The kernel sees the table the host wrote (sysfs counts 512-byte units).
    let (kparts, ksize) = kernel_parts(log.stdout("parts"));
    assert_eq!(ksize * 512, disk.len(), "{ctx}");
    let want: Vec<(String, u64, u64)> = table_now
        .iter()
        .map(|e| (format!("vda{}", e.number), e.start / 512, e.size / 512))
        .collect();
    assert_eq!(kparts, want, "{ctx}");

    let j = log.json("inspect");
    assert_eq!(s(&j["disk"]), "/dev/vda", "{ctx}: {j:#}");
    assert_eq!(
        s(&j["table"]),
        if table == Table::Gpt { "gpt" } else { "mbr" },
        "{ctx}: {j:#}"
    );
    assert_eq!(u(&j["sector_size"]), u64::from(sector_size), "{ctx}");
    assert_eq!(s(&j["filesystem"]), "ext4", "{ctx}");
    let p = &j["partition"];
    assert_eq!(s(&p["device"]), "/dev/vda2", "{ctx}: {j:#}");
    assert_eq!(s(&p["disk"]), "/dev/vda", "{ctx}");
    assert_eq!(u(&p["number"]), 2, "{ctx}");
    assert_eq!(s(&p["fs"]), "vfat", "{ctx}");
    assert_eq!(
        (u(&p["start"]), u(&p["size"])),
        (drive.start, drive.size),
        "{ctx}"
    );
    assert_eq!(p["deletable"], Value::Bool(true), "{ctx}");
    assert_eq!(s(&j["metadata"]["uuid"]), uuid, "{ctx}");
    assert_eq!(s(&j["metadata"]["hostname"]), "vm-inspect", "{ctx}");
    let g = &j["grow"];
    assert_eq!(s(&g["partition"]), "/dev/vda1", "{ctx}: {j:#}");
    assert_eq!(u(&g["number"]), 1, "{ctx}");
    assert_eq!(u(&g["from"]), root.size, "{ctx}");
    let end = root.start + u(&g["to"]);
    assert!(u(&g["to"]) > root.size + drive.size / 2, "{ctx}: {j:#}");
    assert!(end <= disk.len(), "{ctx}: {j:#}");
    assert!(log.stdout("human").contains("/dev/vda2"), "{ctx}");

    // The VM unmounted the root cleanly and nothing wrote to the disk.
    disk.fsck(1, Fs::Ext4).unwrap();
    assert_eq!(disk.read_table().unwrap(), table_now, "{ctx}");
}

/// (a) GPT, 512-byte sectors: `inspect` inside the VM reports the partition layout.
#[test]
fn inspect_in_vm_gpt_512() {
    inspect_in_vm(Table::Gpt, 512);
}

/// (b) The same on a 4Kn disk (virtio-blk with 4096-byte logical sectors), GPT and MBR.
#[test]
fn inspect_in_vm_gpt_4kn() {
    inspect_in_vm(Table::Gpt, 4096);
}

#[test]
fn inspect_in_vm_mbr_4kn() {
    inspect_in_vm(Table::Mbr, 4096);
}

/// (c) The kernel side of reclaiming space, with standard tools as the oracle: in the VM, with
/// the root mounted, sfdisk rewrites the table (the kernel cannot reread it: the disk is
/// busy), resizepart tells the kernel through BLKPG_RESIZE_PARTITION, and the filesystem
/// grows online (EXT4_IOC_RESIZE_FS, XFS_IOC_FSGROWFSDATA, BTRFS_IOC_RESIZE). The same boot
/// with `seedpart run` instead of the tools is `seedpart_run_reclaims_the_config_partition`.
fn grow_online_with_tools(fs: Fs, root_size: u64, disk_size: u64, grow: &str) {
    let vm = require_vm!();
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskSpec::gpt(disk_size)
        .root(root_size, fs)
        .build(&dir.path().join("disk.img"))
        .unwrap();
    let script = format!(
        r#"vmtest_oracle
vmtest_section before vmtest_fs_size
echo ', +' | sfdisk -q --no-reread --no-tell-kernel -N 1 /dev/vda
size=$(sfdisk -d /dev/vda | sed -n 's|^/dev/vda1 : start= *[0-9]*, size= *\([0-9]*\),.*|\1|p')
resizepart /dev/vda 1 "$size"
vmtest_section parts vmtest_partitions
{grow}
vmtest_section after vmtest_fs_size
"#
    );
    let log = vm.boot(&disk, &script).oracle().go().unwrap();
    log.assert_passed();
    let before: u64 = log.stdout("before").trim().parse().unwrap();
    let after: u64 = log.stdout("after").trim().parse().unwrap();
    let table = disk.read_table().unwrap();
    let root = &table[0];
    assert!(
        root.size > root_size + (disk_size - root_size) * 9 / 10,
        "{table:#?}"
    );
    let (kparts, _) = kernel_parts(log.stdout("parts"));
    assert_eq!(
        kparts,
        vec![("vda1".into(), root.start / 512, root.size / 512)]
    );
    assert!(
        after > before + (root.size - root_size) * 8 / 10,
        "{fs:?}: {before} -> {after}\n{}",
        log.excerpt()
    );
    // On the host: the filesystem is clean and its superblock spans the grown partition.
    disk.fsck(1, fs).unwrap();
    let sb = disk.fs_size(1, fs).unwrap();
    assert!(
        sb <= root.size && sb > root.size - 16 * MIB,
        "{fs:?} size {sb} vs partition {}",
        root.size
    );
}

#[test]
fn ext4_grows_online_in_vm() {
    grow_online_with_tools(Fs::Ext4, 128 * MIB, 512 * MIB, "resize2fs /dev/vda1");
}

#[test]
fn xfs_grows_online_in_vm() {
    grow_online_with_tools(Fs::Xfs, 300 * MIB, 640 * MIB, "xfs_growfs /sysroot");
}

#[test]
fn btrfs_grows_online_in_vm() {
    grow_online_with_tools(
        Fs::Btrfs,
        128 * MIB,
        512 * MIB,
        "btrfs filesystem resize max /sysroot",
    );
}

/// The power-cut cycle: the first boot writes and syncs in a loop and cuts the power
/// (`vmtest_powercut`, sysrq b) at a random moment; the second boot finds the journal needing
/// recovery, which proves the cut was real, and the data written up to the last sync.
#[test]
fn power_cut_then_finish() {
    let vm = require_vm!();
    let dir = tempfile::tempdir().unwrap();
    let disk = DiskSpec::gpt(256 * MIB)
        .root(128 * MIB, Fs::Ext4)
        .build(&dir.path().join("disk.img"))
        .unwrap();
    let (cut, finish) = vm
        .power_cut_cycle(
            &disk,
            "vmtest_powercut_random 300 900 sh -c \
             'i=0; while :; do i=$((i+1)); echo $i >>/sysroot/counter; sync; done'",
            "vmtest_section count sh -c 'wc -l </sysroot/counter'\n\
             vmtest_section last tail -n 1 /sysroot/counter\n",
        )
        .unwrap();
    cut.assert_power_cut();
    assert!(!cut.text.contains("===VMTEST-END"), "{}", cut.excerpt());
    let Outcome::PowerCut {
        after_ms,
        command_running,
    } = cut.outcome
    else {
        unreachable!()
    };
    assert!((300..=900).contains(&after_ms) && command_running);
    finish.assert_passed();
    assert!(
        finish.dmesg().contains("EXT4-fs (vda1): recovery complete"),
        "no journal recovery after the cut\n{}",
        finish.excerpt()
    );
    let n: u64 = finish.stdout("count").trim().parse().unwrap();
    assert!(n > 0, "{}", finish.excerpt());
    assert_eq!(finish.stdout("last").trim(), n.to_string());
    disk.fsck(1, Fs::Ext4).unwrap();
}

/// TODO(lead): `seedpart run` in the VM, once it exists. Un-ignore and extend the matrix: the
/// root's table (GPT, MBR), sector size (512, 4096), filesystem (ext4, xfs, btrfs), the drive
/// where Ironic puts it (`build --at end`) or after the root; then a second boot must be a
/// no-op; and the power-cut loop (`Vm::power_cut_cycle` with `vmtest_powercut MS seedpart run
/// --root /sysroot` for MS over the run's duration, then a finishing `seedpart run`).
#[test]
fn seedpart_run_reclaims_the_config_partition() {
    let _vm = require_vm!(); // SKIP without qemu; run_scenario uses the same shared VM
    for (table, ss, fs, size) in [
        (Table::Gpt, 512, Fs::Ext4, 200 * MIB),
        (Table::Mbr, 4096, Fs::Xfs, 300 * MIB),
        (Table::Gpt, 4096, Fs::Btrfs, 200 * MIB),
    ] {
        let ctx = format!("{table:?} {ss} {fs:?}");
        let dir = tempfile::tempdir().unwrap();
        let spec = match table {
            Table::Gpt => DiskSpec::gpt(1024 * MIB),
            Table::Mbr => DiskSpec::mbr(1024 * MIB),
        };
        let disk = spec
            .sector_size(ss)
            .root(size, fs)
            .build(&dir.path().join("disk.img"))
            .unwrap();
        add_config_drive(&disk, "0e3c0a7e-7a55-4d0c-a3c4-6bd1b7a4f5e1", "vm-run");
        let log = run_scenario(
            &disk,
            "vmtest_section before vmtest_fs_size\n\
             vmtest_section run seedpart run --root /sysroot\n\
             vmtest_section parts vmtest_partitions\n\
             vmtest_section after vmtest_fs_size\n\
             vmtest_section again seedpart run --root /sysroot\n\
             vmtest_section status seedpart status --root /sysroot --json\n",
        )
        .unwrap();
        log.assert_passed();
        let table_now = disk.read_table().unwrap();
        assert_eq!(
            table_now.len(),
            1,
            "{ctx}: the drive is deleted: {table_now:#?}"
        );
        assert!(table_now[0].size > 900 * MIB, "{ctx}: the root grew");
        let before: u64 = log.stdout("before").trim().parse().unwrap();
        let after: u64 = log.stdout("after").trim().parse().unwrap();
        assert!(after > before + 600 * MIB, "{ctx}: {before} -> {after}");
        disk.fsck(1, fs).unwrap();
        if table == Table::Gpt && fs == Fs::Ext4 {
            // A second boot: nothing to do, nothing written, in milliseconds.
            // The tables at both ends (the mount itself writes to the root filesystem).
            let ends = |p: &std::path::Path| {
                let b = std::fs::read(p).unwrap();
                let n = b.len();
                [b[..MIB as usize].to_vec(), b[n - MIB as usize..].to_vec()].concat()
            };
            let image_before = ends(&disk.path);
            let log = run_scenario(
                &disk,
                "vmtest_section again seedpart -v run --root /sysroot\n\
                 vmtest_section status seedpart status --root /sysroot --json\n",
            )
            .unwrap();
            log.assert_passed();
            let status = log.json("status");
            assert_eq!(
                status["copy"]["verified"],
                Value::Bool(true),
                "{ctx}: {status:#}"
            );
            assert!(
                ends(&disk.path) == image_before,
                "{ctx}: the second boot's run changed the disk"
            );
        }
    }
}

/// The serial-log parser, without a VM.
#[test]
fn serial_log_markers() {
    let raw = "noise\r\nvmtest: kernel up at 2.73 s, script starts at 3.42 s (uptime)\r\n\
               ===VMTEST-BEGIN===\r\nhello\r\n===VMTEST-SECTION a b===\r\n{\"x\": 1}\r\n\
               [   3.5] kernel says hi\r\n===VMTEST-SECTION-END a b rc=0===\r\n\
               ===VMTEST-SECTION e===\r\n===VMTEST-SECTION-END e rc=3===\r\n\
               ===VMTEST-RESULT rc=3===\r\n===VMTEST-DMESG===\r\n[ 0.1] boot\r\n\
               ===VMTEST-DMESG-END===\r\n===VMTEST-END rc=3===\r\n";
    let log = SerialLog::parse(raw, false, Duration::ZERO, "x.log".into());
    assert_eq!(log.outcome, Outcome::Failed { rc: 3 });
    assert_eq!(log.stdout("a b"), "{\"x\": 1}\n[   3.5] kernel says hi\n");
    assert_eq!(log.section("e").unwrap().rc, 3);
    assert_eq!(log.section("e").unwrap().output, "");
    assert_eq!(log.dmesg(), "[ 0.1] boot\n");
    assert!(log.script_output().starts_with("hello\n"));
    assert_eq!((log.init_at, log.script_at), (Some(2.73), Some(3.42)));

    let cut = "===VMTEST-BEGIN===\n===VMTEST-POWERCUT after_ms=412 command=exited===\n";
    let log = SerialLog::parse(cut, false, Duration::ZERO, "x.log".into());
    assert_eq!(
        log.outcome,
        Outcome::PowerCut {
            after_ms: 412,
            command_running: false
        }
    );
    let log = SerialLog::parse("Kernel panic", false, Duration::ZERO, "x.log".into());
    assert_eq!(log.outcome, Outcome::Crashed);
    let log = SerialLog::parse("", true, Duration::ZERO, "x.log".into());
    assert_eq!(log.outcome, Outcome::TimedOut);
    let log = SerialLog::parse(
        "===VMTEST-END rc=0===\n",
        false,
        Duration::ZERO,
        "x.log".into(),
    );
    assert_eq!(log.outcome, Outcome::Passed);
}

/// The image builder and table reader on the host, without a VM (fdisk with 4096-byte
/// sectors on a plain file, the filesystem copied in at the right offset).
#[test]
fn disk_builder_layouts() {
    if !have("fdisk") || !have("mkfs.ext4") {
        eprintln!("SKIP: fdisk or mkfs.ext4 is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (table, ss) in [
        (Table::Gpt, 512),
        (Table::Gpt, 4096),
        (Table::Mbr, 512),
        (Table::Mbr, 4096),
    ] {
        let ctx = format!("{table:?} {ss}");
        let spec = match table {
            Table::Gpt => DiskSpec::gpt(256 * MIB),
            Table::Mbr => DiskSpec::mbr(256 * MIB),
        };
        let mut swap = PartSpec::new(16 * MIB, Fs::None).start(200 * MIB);
        if table == Table::Gpt {
            swap = swap.name("swap").type_code("swap");
        } else {
            swap = swap.type_code("82");
        }
        let disk = spec
            .sector_size(ss)
            .root(64 * MIB, Fs::Ext4)
            .part(swap)
            .build(&dir.path().join(format!("{table:?}-{ss}.img")))
            .unwrap();
        let t = disk.read_table().unwrap();
        assert_eq!(
            t.iter()
                .map(|e| (e.number, e.start, e.size))
                .collect::<Vec<_>>(),
            vec![(1, MIB, 64 * MIB), (2, 200 * MIB, 16 * MIB)],
            "{ctx}"
        );
        if table == Table::Gpt {
            assert_eq!(t[0].name.as_deref(), Some("root"), "{ctx}");
        } else {
            assert_eq!(t[1].type_code, "82", "{ctx}");
        }
        if (table, ss) == (Table::Gpt, 512) {
            disk.sgdisk_verify().unwrap();
        }
        disk.fsck(1, Fs::Ext4).unwrap();
        assert_eq!(disk.fs_size(1, Fs::Ext4).unwrap(), 64 * MIB, "{ctx}");
        // Grow the root on the host (same start, new end), as a deployer's growpart would.
        disk.resize_partition(1, 128 * MIB).unwrap();
        let t2 = disk.read_table().unwrap();
        assert_eq!((t2[0].start, t2[0].size), (MIB, 128 * MIB), "{ctx}");
        assert_eq!(t2[1], t[1], "{ctx}");
        assert_eq!(t2[0].name, t[0].name, "{ctx}");
    }
}

/// TODO(lead): the power-cut loop for `seedpart run`. For each delay the power goes while `run`
/// works (sysrq b), then a second boot runs it again: it must converge, the drive's space in
/// the root, the copy verified, the filesystem clean. Ignored until `run` has landed.
#[test]
fn seedpart_run_survives_power_cuts() {
    let vm = require_vm!();
    // At least 20 power cuts spread over `run`'s ~1.7 s (debug build, TCG): a fixed
    // pseudo-random sequence, so a failure can be replayed. Each must converge on the next boot.
    let trials: u64 = std::env::var("VMTEST_POWERCUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut converged = 0;
    for trial in 0..trials {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let ms = 20 + x % 2200;
        let ctx = format!("trial {trial}: cut after {ms} ms");
        let dir = tempfile::tempdir().unwrap();
        let disk = DiskSpec::gpt(512 * MIB)
            .root(200 * MIB, Fs::Ext4)
            .build(&dir.path().join("disk.img"))
            .unwrap();
        add_config_drive(&disk, "6f1d2c3b-4a59-4e68-8f7a-1b2c3d4e5f60", "vm-cut");
        let (cut, finish) = vm
            .power_cut_cycle(
                &disk,
                &format!("vmtest_powercut {ms} seedpart run --root /sysroot"),
                "vmtest_section run seedpart run --root /sysroot\n\
                 vmtest_section status seedpart status --root /sysroot --json\n\
                 vmtest_section after vmtest_fs_size\n",
            )
            .unwrap();
        cut.assert_power_cut();
        finish.assert_passed();
        let table = disk.read_table().unwrap();
        assert_eq!(table.len(), 1, "{ctx}: {table:#?}\n{}", finish.excerpt());
        assert!(table[0].size > 450 * MIB, "{ctx}: {table:#?}");
        let after: u64 = finish.stdout("after").trim().parse().unwrap();
        assert!(after > 400 * MIB, "{ctx}: {after}");
        let status = finish.json("status");
        assert_eq!(
            status["copy"]["verified"],
            Value::Bool(true),
            "{ctx}: {status:#}"
        );
        disk.fsck(1, Fs::Ext4).unwrap();
        converged += 1;
        eprintln!("power cut {ctx}: converged ({converged}/{trials})");
    }
    eprintln!("power cuts: {converged} of {trials} trials converged");
}
