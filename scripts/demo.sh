#!/usr/bin/env bash
# scripts/demo.sh [--second-boot]: the whole story (README). Builds the seedpart .deb
# (packaging/deb/build.sh) and a Debian golden image with it (tests/vm/golden/image.sh:
# mmdebstrap with systemd, linux-image-cloud-amd64, dracut; cached under target/vm/golden/),
# writes the image onto a larger disk, adds a config drive with `seedpart build --at end`
# (hostname, SSH key, static network, a user-data script), boots it under qemu TCG with the
# image's own kernel and initramfs, and shows before and after: the partition table, `df /`,
# the hostname, the NIC's addresses, the user-data output and systemd-analyze blame's lines
# for seedpart. --second-boot boots once more: nothing left to do, and how long that takes.
# Needs root (mmdebstrap, chroot, a loop mount). Work files: target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
second=""
case "${1:-}" in
"") ;;
--second-boot) second=1 ;;
*) echo "usage: scripts/demo.sh [--second-boot]" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "demo: needs root (mmdebstrap builds the image as root; the disk's root is loop-mounted)" >&2
    exit 1
fi
scripts/deps.sh

d=target/demo
rm -rf "$d" && mkdir -p "$d"
mac=52:54:00:12:34:56
mnt=""
cleanup() { if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt"; fi; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
indent() { sed 's/^/  /'; }
seconds() { echo "$(($(date +%s) - $1)) s"; }
# The text of one section of the VM's report (tests/vm/golden/report) in a serial log.
section() { tr -d '\r' <"$2" | sed -n "/^===VMTEST-SECTION $1===\$/,/^===VMTEST-SECTION-END $1 rc=/{//!p}"; }

step "the package: packaging/deb/build.sh"
t=$(date +%s)
deb="$(packaging/deb/build.sh "$d/deb" 2>"$d/deb.log" | tail -n1)" || { cat "$d/deb.log" >&2; exit 1; }
echo "  $deb ($(seconds "$t"))"
dpkg-deb -c "$deb" | awk '{print $6}' | grep -E 'bin/|\.service$|\.preset$|dracut/.*\.sh$' | indent

step "the golden image: mmdebstrap bookworm + systemd, linux-image-cloud-amd64, dracut, and the .deb (dpkg -i)"
t=$(date +%s)
img="$(tests/vm/golden/image.sh "$deb")"
root="$img/root"
echo "  $img ($(seconds "$t"); cached under target/vm/golden/ by its inputs)"
# shellcheck disable=SC2016 # dpkg-query's ${Field}s, not shell variables
chroot "$root" dpkg-query -W -f '  ${Package} ${Version}\n' seedpart systemd dracut "linux-image-$(cat "$img/kver")"
echo "  kernel $(cat "$img/kver"), initramfs by dracut with the 90seedpart module"

step "written as a 1 GiB disk image, then onto a 3 GiB disk (as dd does: the backup GPT header is now short of the end)"
cmdline="$(tests/vm/golden/disk.sh --table gpt --fs ext4 --image-size 1G --disk-size 3G "$img" "$d/disk.img")"
echo "  kernel command line: $cmdline"

step "a config drive: hostname, SSH key, static network (10.0.2.42, not qemu's DHCP .15), a user-data script"
drive="$d/drive/openstack/latest"
mkdir -p "$drive"
cat >"$drive/meta_data.json" <<'JSON'
{"uuid": "0f6a3b1c-7e5d-4b8a-9c2d-1e3f4a5b6c7d", "name": "demo", "hostname": "demo-node",
 "public_keys": {"ops": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x ops@example"},
 "launch_index": 0, "availability_zone": "nova"}
JSON
cat >"$drive/network_data.json" <<JSON
{"links": [{"id": "nic0", "type": "phy", "ethernet_mac_address": "$mac", "mtu": 1500}],
 "networks": [{"id": "net0", "type": "ipv4", "link": "nic0", "ip_address": "10.0.2.42", "netmask": "255.255.255.0",
   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]}],
 "services": [{"type": "dns", "address": "10.0.2.3"}]}
JSON
# The report reads /var/lib/golden-user-data.out.
cat >"$drive/user_data" <<'SH'
#!/bin/sh
echo "hello from user-data on $(hostname), $(ip -4 -o addr show scope global | awk '{print $4}')" | tee -a /var/lib/golden-user-data.out
SH
(cd "$d/drive" && find . -type f | sort | sed 's|^\./|  |')

step "seedpart build --disk disk.img --from drive --at end   (Ironic's place: the last 64 MiB)"
sp="$(dirname "$deb")/root/usr/bin/seedpart"
mkdir -p "$(dirname "$deb")/root"
dpkg-deb -x "$deb" "$(dirname "$deb")/root"
"$sp" build --disk "$d/disk.img" --from "$d/drive" --at end 2>&1 | indent
sgdisk -v "$d/disk.img" | grep -E '^(No problems found|Identified)' | sed 's/^/sgdisk -v: /' | indent

step "seedpart inspect --device disk.img   (what the first boot will find and do)"
"$sp" inspect --device "$d/disk.img" | indent

step "BEFORE (the disk as deployed, seen from the host)"
mnt="$PWD/$d/mnt"
mkdir -p "$mnt"
mount -o ro,noload,loop,offset=$((1024 * 1024)) "$d/disk.img" "$mnt"
echo "partition table:"
sfdisk -l "$d/disk.img" 2>/dev/null | sed -n '/^Device/,$p' | indent
echo "df / (the root filesystem, loop-mounted read-only):"
df -h "$mnt" | sed "s|$mnt\$|/|; s|/dev/loop[0-9]*|root    |" | indent
echo "hostname (/etc/hostname): $(cat "$mnt/etc/hostname")"
echo "ip addr: no network configuration in the image ($(find "$mnt/etc/systemd/network" -name '*.network' | wc -l) .network files)"
echo "user-data output: $(cat "$mnt/var/lib/golden-user-data.out" 2>/dev/null || echo none)"
echo "systemd-analyze blame: never booted"
umount "$mnt"
mnt=""

# Who wrote state.json, from its mtime against the boot's clock: the initramfs hook (before
# seedpart.service started) or seedpart.service.
who_did_it() {
    local clock mtime start
    clock="$(section clock "$1")"
    mtime="$(section state_mtime "$1")"
    start="$(section seedpart_unit "$1" | sed -n 's/^ExecMainStartTimestampMonotonic=//p')"
    awk -v c="$clock" -v m="$mtime" -v s="$start" 'BEGIN {
        split(c, a, " "); w = m - (a[1] - a[2]); s = s / 1e6
        printf "%s (state.json written at %.1f s of uptime, seedpart.service started at %.1f s)\n",
            (w < s ? "the initramfs hook" : "seedpart.service"), w, s }'
}

boot() {
    local log=$1 t
    t=$(date +%s)
    VMTEST_KERNEL="$img/vmlinuz" VMTEST_INITRD="$img/initrd.img" VMTEST_TIMEOUT=900 \
        VMTEST_APPEND="$cmdline systemd.show_status=error systemd.log_level=warning" \
        VMTEST_LOG="$log" VMTEST_QUIET=1 \
        tests/vm/run.sh "$d/disk.img" none -nic "user,mac=$mac,model=virtio-net-pci" 2>"$log.run" ||
        { cat "$log.run" "$log" >&2; exit 1; }
    echo "  booted, reported and powered off in $(seconds "$t")"
    section analyze "$log" | head -n1 | indent
}

step "BOOT: qemu-system-x86_64 -accel tcg, the image's own /boot/vmlinuz and dracut initramfs"
echo "  qemu ... -kernel $(readlink "$img/vmlinuz") -initrd $(readlink "$img/initrd.img") -append '$cmdline ...'"
boot "$d/boot1.log"

step "AFTER (the VM's own view, printed by a report unit before it powered off; then the host's)"
echo "partition table (lsblk in the VM):"
section lsblk_h "$d/boot1.log" | indent
echo "partition table (sfdisk -l on the host, after):"
sfdisk -l "$d/disk.img" 2>/dev/null | sed -n '/^Device/,$p' | indent
echo "df /:"
section df_h "$d/boot1.log" | indent
echo "hostname: $(section hostname "$d/boot1.log")"
echo "ip addr show dev <the NIC with $mac>:"
section addr_nic "$d/boot1.log" | indent
echo "user-data output (/var/lib/golden-user-data.out, by seedpart-user-data.service):"
section user_data_out "$d/boot1.log" | indent
echo "systemd-analyze blame | grep seedpart (dracut-pre-pivot.service runs the initramfs hook):"
section blame "$d/boot1.log" | indent
echo "the job was done by $(who_did_it "$d/boot1.log")"
echo "seedpart status:"
section status_h "$d/boot1.log" | indent
sgdisk -v "$d/disk.img" | grep -E '^(No problems found|Identified)' | sed 's/^/sgdisk -v: /' | indent

if [ -n "$second" ]; then
    step "SECOND BOOT: nothing left to do"
    boot "$d/boot2.log"
    echo "systemd-analyze blame | grep seedpart:"
    section blame "$d/boot2.log" | indent
    echo "state.json unchanged: $(
        [ "$(section state "$d/boot1.log")" = "$(section state "$d/boot2.log")" ] && echo yes || echo NO
    ); user-data output still one line: $(section user_data_out "$d/boot2.log" | wc -l)"
fi
