#!/usr/bin/env bash
# Installs the Debian tools the tests use as independent oracles (never needed by seedpart at
# run time). Idempotent: does nothing when they are all there.
set -euo pipefail
need=()
for pair in sgdisk:gdisk sfdisk:fdisk partx:util-linux mkfs.vfat:dosfstools fsck.vfat:dosfstools \
    mcopy:mtools genisoimage:genisoimage xorriso:xorriso isoinfo:genisoimage mkfs.xfs:xfsprogs \
    mkfs.btrfs:btrfs-progs mkfs.ext4:e2fsprogs; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${need[*]}; run as root to install them (tests needing them will say SKIP)" >&2
    exit 0
fi
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
