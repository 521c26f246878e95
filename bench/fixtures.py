"""The benchmark's inputs, built once per run from fixed seeds so every run sees the same bytes.

- `nova_tree`: a config drive as Nova writes it (every metadata version directory, `ec2/`,
  injected files, a static IPv4+IPv6 network for this machine's NIC, a `#!` user-data script).
  It is the drive of the whole-job benchmark (1, 2, 4).
- `many_files_tree`: the reading benchmark's drive (3): 1,000 files, 40 MiB in all, in a
  64 MiB filesystem.
- `iso` / `vfat`: the two filesystems, made by the independent tools (genisoimage with Nova's
  own flags; mkfs.vfat + mcopy), never by seedpart.
- `disk_template`: a sparse GPT disk of any size as Ironic leaves it: an xfs root of 1 GiB at
  1 MiB, the ISO 9660 config drive in the last 64 MiB (`sgdisk -n 0:-64M:0`), free space between.
"""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

MIB = 1 << 20
GIB = 1 << 30
UUID = "3b4f8f1e-6c0a-4d7e-9a51-2f1c8e9d0b7a"
HOSTNAME = "bench-node-01.example.org"
KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x "
    "bench@example"
)
# The metadata versions Nova writes (nova/api/metadata/base.py, OPENSTACK_VERSIONS), each a
# directory holding the same files, plus `latest`.
NOVA_VERSIONS = [
    "2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
    "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest",
]
EC2_VERSIONS = ["2009-04-04", "latest"]


def sh(*cmd, **kw):
    """Runs a command, failing loudly with its output."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def host_mac():
    """The MAC of this machine's first physical NIC: both cloud-init's convert_net_json and
    seedpart match network_data.json's links by MAC against the running system."""
    for dev in sorted(os.listdir("/sys/class/net")):
        d = Path("/sys/class/net", dev)
        if (d / "device").exists() or dev.startswith(("eth", "en")):
            mac = (d / "address").read_text().strip()
            if mac and mac != "00:00:00:00:00:00":
                return mac, dev
    raise RuntimeError("no NIC with a MAC address in /sys/class/net")


def nova_tree(dest: Path, mac=None):
    """A Nova-style config drive tree, the same for seedpart and the peer. `mac`: the NIC the
    network applies to (default: this machine's, which both tools match against)."""
    if dest.exists():
        shutil.rmtree(dest)
    mac = mac or host_mac()[0]
    meta = {
        "uuid": UUID,
        "name": "bench-node-01",
        "hostname": HOSTNAME,
        "availability_zone": "nova",
        "project_id": "8d5f2b8c1e4a4f0f9d6c7b5a4e3d2c1b",
        "launch_index": 0,
        "admin_pass": "s3cret-s3cret",
        "public_keys": {"bench": KEY},
        "keys": [{"name": "bench", "type": "ssh", "data": KEY}],
        "meta": {"role": "bench", "cluster": "c1"},
        "devices": [],
        "random_seed": "".join(
            random.Random(1).choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
            for _ in range(684)
        ) + "==",
        "files": [
            {"path": "/etc/bench/motd", "content_path": "/content/0000"},
            {"path": "/etc/bench/app.conf", "content_path": "/content/0001"},
        ],
    }
    network = {
        "links": [
            {"id": "tap7d2f1c3b-9a", "type": "ovs", "vif_id": "7d2f1c3b-9a4e-4f61-8c2d-5e6f7a8b9c0d",
             "ethernet_mac_address": mac, "mtu": 1500},
        ],
        "networks": [
            {"id": "network0", "type": "ipv4", "link": "tap7d2f1c3b-9a",
             "ip_address": "192.0.2.10", "netmask": "255.255.255.0",
             "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}],
             "network_id": "d2b6e1a4-0c3f-4b8e-9a7d-6c5b4a3f2e1d",
             "services": [{"type": "dns", "address": "192.0.2.53"}]},
            {"id": "network1", "type": "ipv6", "link": "tap7d2f1c3b-9a",
             "ip_address": "2001:db8::10", "netmask": "ffff:ffff:ffff:ffff::",
             "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}],
             "network_id": "e3c7f2b5-1d4a-4c9f-8b6e-7d6c5b4a3f2e"},
        ],
        "services": [{"type": "dns", "address": "192.0.2.53"}],
    }
    user_data = b"#!/bin/sh\necho 'first boot of bench-node-01' > /var/log/first-boot.txt\n"
    vendor = {"cloud-init": "#cloud-config\n{}\n"}
    for v in NOVA_VERSIONS:
        d = dest / "openstack" / v
        d.mkdir(parents=True)
        (d / "meta_data.json").write_text(json.dumps(meta))
        (d / "user_data").write_bytes(user_data)
        if v >= "2015-10-15":
            (d / "network_data.json").write_text(json.dumps(network))
            (d / "vendor_data.json").write_text(json.dumps(vendor))
        if v >= "2016-10-06":
            (d / "vendor_data2.json").write_text("{}")
    content = dest / "openstack" / "content"
    content.mkdir()
    (content / "0000").write_text("Welcome to the benchmark node.\n")
    (content / "0001").write_text("[app]\nlisten = 0.0.0.0:8080\nworkers = 4\n")
    ec2_meta = {
        "ami-id": "ami-00000001", "hostname": HOSTNAME, "instance-id": "i-00000001",
        "local-hostname": HOSTNAME, "public-keys": {"0": {"openssh-key": KEY}},
    }
    for v in EC2_VERSIONS:
        d = dest / "ec2" / v
        d.mkdir(parents=True)
        (d / "meta-data.json").write_text(json.dumps(ec2_meta))
        (d / "user-data").write_bytes(user_data)
    return dest


def many_files_tree(dest: Path, count=1000, total=40 * MIB):
    """The reading benchmark's drive: a valid config drive whose `openstack/content/` holds
    `count` files of random sizes (4 KiB to 120 KiB, incompressible), `total` bytes in all, in
    100 subdirectories' worth of names, the way a drive carrying an application's payload looks."""
    if dest.exists():
        shutil.rmtree(dest)
    latest = dest / "openstack" / "latest"
    latest.mkdir(parents=True)
    (latest / "meta_data.json").write_text(json.dumps({"uuid": UUID, "hostname": HOSTNAME}))
    (latest / "user_data").write_bytes(b"#cloud-config\n{}\n")
    rng = random.Random(42)
    sizes = [rng.randint(4096, 120 * 1024) for _ in range(count - 2)]
    scale = (total - 4096) / sum(sizes)
    sizes = [max(1, int(s * scale)) for s in sizes]
    content = dest / "openstack" / "content"
    for i, size in enumerate(sizes):
        d = content / f"{i // 10:02x}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{i:04x}").write_bytes(rng.randbytes(size))
    n = sum(1 for _ in dest.rglob("*") if _.is_file())
    assert n == count, n
    return dest


def iso(tree: Path, out: Path):
    """ISO 9660 with Rock Ridge and Joliet, labelled config-2, with Nova's genisoimage flags
    (nova/virt/configdrive.py)."""
    sh("genisoimage", "-o", out, "-ldots", "-allow-lowercase", "-allow-multidot", "-l",
       "-publisher", "bench", "-quiet", "-J", "-r", "-V", "config-2", tree)
    return out


def vfat(tree: Path, out: Path, size=64 * MIB):
    """vfat labelled CONFIG-2 (Nova's vfat config drive), filled by mtools."""
    out.unlink(missing_ok=True)
    sh("mkfs.vfat", "-C", "-n", "CONFIG-2", out, str(size // 1024))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    sh("mcopy", "-s", "-i", out, *sorted(str(p) for p in tree.iterdir()), "::/", env=env)
    return out


def populate_root(mnt: Path):
    """A minimal image root: root's account, a host name, and systemd-networkd installed and
    enabled, so seedpart renders networkd files, as cloud-init's networkd renderer does."""
    etc = mnt / "etc"
    (etc / "systemd/system/multi-user.target.wants").mkdir(parents=True)
    (etc / "systemd/network").mkdir(parents=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    (etc / "hostname").write_text("localhost\n")
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    (mnt / "root").mkdir(mode=0o700)
    lib = mnt / "usr/lib/systemd"
    lib.mkdir(parents=True)
    (lib / "systemd-networkd").write_bytes(b"")
    (lib / "systemd-networkd").chmod(0o755)
    (etc / "systemd/system/multi-user.target.wants/systemd-networkd.service").symlink_to(
        "/usr/lib/systemd/system/systemd-networkd.service")
    (mnt / "var/lib").mkdir(parents=True)


def disk_template(out: Path, size: int, drive_iso: Path, mnt: Path):
    """A sparse disk of `size` bytes as Ironic leaves it (see the module's docstring)."""
    out.unlink(missing_ok=True)
    with open(out, "wb") as f:
        f.truncate(size)
    sh("sgdisk", "-n", "1:2048:+1G", "-t", "1:8300", "-c", "1:root", out)
    # Ironic: `sgdisk -n 0:-64MB:0` on the deployed disk (its backup GPT already at the end).
    sh("sgdisk", "-n", "2:-64M:0", "-t", "2:0700", out)
    dev = sh("losetup", "--find", "--show", out).strip()
    try:
        # A loop device detached without `partx -d` keeps its partitions for the next user.
        subprocess.run(["partx", "-d", dev], capture_output=True)
        sh("partx", "-a", dev)
        sh("mkfs.xfs", "-q", "-f", f"{dev}p1")
        mnt.mkdir(parents=True, exist_ok=True)
        sh("mount", f"{dev}p1", mnt)
        try:
            populate_root(mnt)
        finally:
            sh("umount", mnt)
        with open(f"{dev}p2", "r+b") as p2, open(drive_iso, "rb") as src:
            shutil.copyfileobj(src, p2, 1 << 20)
            p2.flush()
            os.fsync(p2.fileno())
    finally:
        subprocess.run(["partx", "-d", dev], capture_output=True)
        sh("losetup", "-d", dev)
    return out


if __name__ == "__main__":
    # `fixtures.py nova-iso OUT.iso [MAC]`: the whole-job drive as an ISO, for bench/vm-blame.sh.
    import sys
    import tempfile
    if len(sys.argv) in (3, 4) and sys.argv[1] == "nova-iso":
        with tempfile.TemporaryDirectory() as t:
            iso(nova_tree(Path(t) / "tree", sys.argv[3] if len(sys.argv) == 4 else None),
                Path(sys.argv[2]))
    else:
        sys.exit("usage: fixtures.py nova-iso OUT.iso [MAC]")
