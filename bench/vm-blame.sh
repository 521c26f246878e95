#!/usr/bin/env bash
# bench/vm-blame.sh: seedpart.service next to cloud-init-local.service in
# `systemd-analyze blame`, in the golden Debian image with cloud-init (tests/vm/golden, built by
# image.sh --cloud-init with this tree's seedpart package installed), on its first boot with
# Ironic's config drive (ISO 9660 `config-2` in the last 64 MiB, the whole-job benchmark's
# drive) and on a second boot with nothing to do. Prints one JSON object on stdout.
#
# seedpart runs as seedpart.service (rd.seedpart=0 keeps its dracut hook out of the way), before
# cloud-init-local.service: it applies the drive, gives cloud-init its copy in
# /var/lib/cloud/seed/config_drive and deletes the partition; cloud-init-local then reads that
# seed (it no longer has a drive to look for) and renders the network. Both units' times are
# systemd's own, in the same boot of the same image, so they compare; under qemu's TCG
# (no KVM here) both are many times slower than on hardware.
#
# The disk is tests/vm/golden/disk.sh's. Its report fixture prints only seedpart's lines of
# `blame`, so on this copy of the disk the fixture is wrapped: the wrapper prints the whole
# `blame` first (section bench_blame), then runs the fixture.
#
# The serial logs are kept in target/bench-vm-logs/.
# Exit 3 (and the reason on stderr): cannot run here (no golden scripts yet, no qemu, image.sh
# says it cannot run). The package is packaging/deb/build.sh's, of the release build it makes
# (in $CARGO_TARGET_DIR, which bench/run.sh sets).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
golden=$repo/tests/vm/golden
skip() { echo "vm-blame.sh: skipped: $*" >&2; exit 3; }
say() { echo "vm-blame.sh: $*" >&2; }

[[ $# -eq 0 ]] || { echo "usage: bench/vm-blame.sh" >&2; exit 2; }
for f in image.sh disk.sh report; do
    [[ -e $golden/$f ]] || skip "tests/vm/golden/$f is not there yet"
done
command -v qemu-system-x86_64 >/dev/null 2>&1 || skip "qemu-system-x86_64 is not installed (tests/vm/deps.sh)"
[[ $(id -u) -eq 0 ]] || skip "needs root"

work=$(mktemp -d "$repo/target/bench-vm.XXXXXX")
mnt="" dev=""
logs=$repo/target/bench-vm-logs
cleanup() {
    # The serial logs outlive the run: they are what explains a boot that went wrong.
    mkdir -p "$logs"
    cp "$work"/*.log "$logs/" 2>/dev/null || true
    if [[ -n $mnt ]] && mountpoint -q "$mnt"; then umount "$mnt"; fi
    if [[ -n $dev ]]; then partx -d "$dev" 2>/dev/null || true; losetup -d "$dev"; fi
    rm -rf "$work"
}
trap cleanup EXIT

deb=$("$repo/packaging/deb/build.sh" "$work/deb" | tail -n1)
rc=0
img=$("$golden/image.sh" --cloud-init "$deb") || rc=$?
[[ $rc -eq 3 ]] && skip "tests/vm/golden/image.sh cannot run here"
[[ $rc -eq 0 ]] || { say "image.sh failed ($rc)"; exit 1; }

disk=$work/disk.img
cmdline=$("$golden/disk.sh" --table gpt --fs ext4 "$img" "$disk" | tail -n1)

# Ironic's drive: the backup GPT moved to the disk's end, a partition in the last 64 MiB, the
# ISO written into it. The NIC is qemu's (the MAC the golden tests give it).
mac=52:54:00:12:34:56
/usr/bin/python3 "$here/fixtures.py" nova-iso "$work/drive.iso" "$mac"
sgdisk -e "$disk" >/dev/null
sgdisk -n 0:-64M:0 -t 0:0700 "$disk" >/dev/null
start=$(sfdisk --json "$disk" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["partitiontable"]["partitions"][-1]["start"])')
dd if="$work/drive.iso" of="$disk" bs=512 seek="$start" conv=notrunc status=none

# Wrap the report fixture (see the header).
dev=$(losetup --find --show "$disk")
partx -a "$dev"
mnt=$work/mnt
mkdir "$mnt"
mount "${dev}p1" "$mnt"
mv "$mnt/usr/local/sbin/vmtest-report" "$mnt/usr/local/sbin/vmtest-report.fixture"
cat >"$mnt/usr/local/sbin/vmtest-report" <<'WRAP'
#!/bin/sh
export SYSTEMD_COLORS=0 SYSTEMD_PAGER=
systemctl is-system-running --wait >/dev/null 2>&1
echo "===VMTEST-SECTION bench_blame==="
systemd-analyze blame --no-pager 2>&1
echo "===VMTEST-SECTION-END bench_blame rc=$?==="
exec /usr/local/sbin/vmtest-report.fixture "$@"
WRAP
chmod 0755 "$mnt/usr/local/sbin/vmtest-report"
umount "$mnt"
partx -d "$dev"
losetup -d "$dev"
dev=""

boot() {
    VMTEST_KERNEL=$img/vmlinuz VMTEST_INITRD=$img/initrd.img VMTEST_ROOT=none \
        VMTEST_APPEND="$cmdline rd.seedpart=0 systemd.show_status=yes" \
        VMTEST_TIMEOUT=900 VMTEST_QUIET=1 VMTEST_LOG="$work/$1.log" \
        "$repo/tests/vm/run.sh" "$disk" none -nic "user,mac=$mac,model=virtio-net-pci" >/dev/null
}
say "first boot (qemu TCG: minutes)"
boot first
say "second boot"
boot second

/usr/bin/python3 - "$work/first.log" "$work/second.log" <<'PY'
import json, re, sys

def ms(text):
    """systemd's time spans: 1min 2.345s, 1.234s, 123ms, 456us."""
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(min|ms|us|s)", text):
        total += float(value) * {"min": 60e3, "s": 1e3, "ms": 1, "us": 1e-3}[unit]
    return total

out = {"note": "qemu TCG, 1 vCPU: both units many times slower than on hardware"}
for name, path in zip(("first_boot", "second_boot"), sys.argv[1:]):
    log = open(path, errors="replace").read().replace("\r", "")
    m = re.search(r"===VMTEST-SECTION bench_blame===\n(.*?)===VMTEST-SECTION-END", log, re.S)
    units = {}
    for line in (m.group(1) if m else "").splitlines():
        parts = line.strip().rsplit(" ", 1)
        if len(parts) == 2 and parts[1].endswith(".service"):
            units[parts[1]] = ms(parts[0])
    out[name] = {"seedpart_ms": units.get("seedpart.service"),
                 "cloud_init_local_ms": units.get("cloud-init-local.service"),
                 "top": sorted(units.items(), key=lambda kv: -kv[1])[:8]}
out.update(seedpart_ms=out["first_boot"]["seedpart_ms"],
           cloud_init_local_ms=out["first_boot"]["cloud_init_local_ms"])
print(json.dumps(out))
PY
