#!/usr/bin/env bash
# Installs what the VM tests need on the host (Debian): qemu, static busybox, cpio, kmod
# (depmod/modprobe for the kernel's modules), fdisk, and the mkfs and oracle tools. Idempotent:
# does nothing when everything is there; as non-root it only says what is missing (the tests
# then say SKIP). The kernel itself comes from tests/vm/kernel.sh.
set -euo pipefail
need=()
for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static cpio:cpio depmod:kmod \
    modprobe:kmod fdisk:fdisk sfdisk:fdisk sgdisk:gdisk resizepart:util-linux mkfs.ext4:e2fsprogs \
    resize2fs:e2fsprogs mkfs.xfs:xfsprogs xfs_growfs:xfsprogs mkfs.btrfs:btrfs-progs \
    mkfs.vfat:dosfstools mmdebstrap:mmdebstrap strip:binutils timeout:coreutils lz4:lz4; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
# A dynamically linked busybox (package busybox) would need its libraries: want the static one.
if command -v busybox >/dev/null 2>&1 && ldd "$(command -v busybox)" >/dev/null 2>&1; then
    need+=(busybox-static)
fi
# qboot (a faster firmware than SeaBIOS for -kernel boots) comes with qemu-system-data.
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
    echo "vm deps: missing ${need[*]}; run as root to install them (the VM tests will say SKIP)" >&2
    exit 0
fi
echo "vm deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
