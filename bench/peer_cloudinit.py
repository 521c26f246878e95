#!/usr/bin/python3
"""cloud-init's half of the peer pipeline: what a cloud-init user's first boot does with a config
drive, done by cloud-init's own code (Debian's `cloud-init` package), with the target root
passed explicitly instead of `/` so it can run on the benchmark's loop-mounted root.

    peer_cloudinit.py firstboot DISK ROOT   # cloud-init init --local's datasource step + the
                                            # init stage's hostname and keys; prints the
                                            # drive's partition number
    peer_cloudinit.py noop ROOT             # a later boot's reading step (seed dir, instance id)

Run by the system python (`/usr/bin/python3`) on purpose: that is the interpreter cloud-init
runs under, and its start-up is part of what a user pays at every boot.

What `firstboot` does, and which cloud-init code does it:
1. find: `DataSourceConfigDrive.find_candidate_devs()` (its eight `blkid` calls), keeping the
   candidates on DISK (other loop devices on this shared machine may carry test drives);
2. read: cloud-init mounts the drive; this kernel has neither vfat nor iso9660, so the drive
   is extracted to a directory on tmpfs instead (mcopy for vfat; bsdtar or xorriso for ISO 9660:
   $PEER_ISO_EXTRACTOR, default bsdtar; bench.py passes whichever it measured faster) and
   read from there with
   `read_config_drive` (`openstack.ConfigDriveReader.read_v2`). The extraction is counted;
3. `openstack.convert_net_json` on network_data.json, `network_state.parse_net_config_data`,
   and cloud-init's systemd-networkd renderer writing into ROOT;
4. the injected files (`write_injected_files`, as init-local does), /etc/hostname and the
   127.0.1.1 line of /etc/hosts (cc_set_hostname, cc_update_etc_hosts), root's
   authorized_keys (cc_ssh), the user data and instance id under /var/lib/cloud;
5. the drive's tree copied to ROOT/var/lib/cloud/seed/config_drive, where cloud-init's
   ConfigDrive datasource finds it once the partition is gone (what seedpart's copy is for).
Durability (one syncfs) and the table and filesystem steps are the shell's
(peer-firstboot.sh).
"""

import os
import shutil
import subprocess
import sys
import tempfile


def extract(dev, fstype, dest):
    if fstype == "vfat":
        env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
        subprocess.run(["mcopy", "-s", "-n", "-i", dev, "::/*", dest], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    elif os.environ.get("PEER_ISO_EXTRACTOR", "bsdtar") == "xorriso":
        subprocess.run(["xorriso", "-osirrox", "on", "-indev", "stdio:" + dev, "-extract", "/", dest],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        subprocess.run(["bsdtar", "-x", "-f", dev, "-C", dest], check=True)


def write(root, rel, data, mode=0o644):
    from cloudinit import util
    util.write_file(os.path.join(root, rel.lstrip("/")), data, mode=mode)


def firstboot(disk, root):
    from cloudinit import util
    from cloudinit.net import network_state, networkd
    from cloudinit.sources import DataSourceConfigDrive as ds
    from cloudinit.sources.helpers import openstack

    # 1. find
    devs = [d for d in ds.find_candidate_devs() if d.startswith(disk + "p")]
    if not devs:
        sys.exit(f"no config drive on {disk}")
    dev = devs[0]
    fstype = util.find_devs_with(path=dev, tag="TYPE", oformat="value")
    fstype = (fstype or ["iso9660"])[0]
    # 2. read (cloud-init: util.mount_cb(dev, read_config_drive))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        extract(dev, fstype, tmp)
        results = ds.read_config_drive(tmp)
        md = results["metadata"]
        # 3. network
        if results.get("networkdata"):
            netcfg = openstack.convert_net_json(results["networkdata"])
            ns = network_state.parse_net_config_data(netcfg)
            networkd.Renderer().render_network_state(ns, target=root)
        # 4. files, host name, keys, user data, instance id
        for path, content in (results.get("files") or {}).items():
            write(root, path, content, mode=0o660)
        hostname = md.get("hostname") or md.get("name")
        if hostname:
            write(root, "/etc/hostname", hostname + "\n")
            hosts_path = os.path.join(root, "etc/hosts")
            with open(hosts_path) as f:
                lines = [ln for ln in f.read().splitlines() if not ln.startswith("127.0.1.1")]
            short = hostname.split(".")[0]
            lines.append(f"127.0.1.1 {hostname} {short}")
            write(root, "/etc/hosts", "\n".join(lines) + "\n")
        # SourceMixin.get_public_ssh_keys reads meta_data.json's public_keys.
        keys = md.get("public_keys") or {}
        if keys:
            ssh = os.path.join(root, "root/.ssh")
            os.makedirs(ssh, mode=0o700, exist_ok=True)
            with open(os.path.join(ssh, "authorized_keys"), "a") as f:
                for k in keys.values():
                    f.write(k.strip() + "\n")
            os.chmod(os.path.join(ssh, "authorized_keys"), 0o600)
        if results.get("userdata") is not None:
            write(root, "/var/lib/cloud/instance/user-data.txt", results["userdata"], mode=0o600)
        write(root, "/var/lib/cloud/data/instance-id", md["instance-id"] + "\n")
        # 5. the seed copy
        seed = os.path.join(root, "var/lib/cloud/seed/config_drive")
        os.makedirs(os.path.dirname(seed), exist_ok=True)
        shutil.copytree(tmp, seed)
        os.chmod(seed, 0o700)
    print(dev[len(disk) + 1:])


def noop(root):
    """A later boot: cloud-init init --local reads its datasource again (the seed copy, the
    partition being gone) and compares the instance id with the one it recorded."""
    from cloudinit.sources import DataSourceConfigDrive as ds

    seed = os.path.join(root, "var/lib/cloud/seed/config_drive")
    results = ds.read_config_drive(seed)
    with open(os.path.join(root, "var/lib/cloud/data/instance-id")) as f:
        previous = f.read().strip()
    if results["metadata"]["instance-id"] != previous:
        sys.exit("new instance: not a no-op boot")


if __name__ == "__main__":
    if sys.argv[1:2] == ["firstboot"] and len(sys.argv) == 4:
        firstboot(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["noop"] and len(sys.argv) == 3:
        noop(sys.argv[2])
    else:
        sys.exit(__doc__)
