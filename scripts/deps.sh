#!/usr/bin/env bash
# Installs the Debian tools the tests use as independent oracles (never needed by seedpart at
# run time). Idempotent: does nothing when they are all there.
set -euo pipefail
need=()
for pair in sgdisk:gdisk sfdisk:fdisk partx:util-linux mkfs.vfat:dosfstools fsck.vfat:dosfstools \
    mcopy:mtools genisoimage:genisoimage xorriso:xorriso isoinfo:genisoimage mkfs.xfs:xfsprogs \
    mkfs.btrfs:btrfs-progs mkfs.ext4:e2fsprogs \
    netplan:netplan.io nmcli:network-manager ifquery:ifupdown man:man-db \
    make:make dpkg-shlibdeps:dpkg-dev objcopy:binutils jq:jq lintian:lintian rpmbuild:rpm \
    rpmlint:rpmlint shellcheck:shellcheck mmdebstrap:mmdebstrap curl:curl file:file pip3:python3-pip; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing ${need[*]}; run as root to install them (tests needing them will say SKIP)" >&2
    else
        echo "deps: installing ${need[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
    fi
fi
# qemu, busybox and the kernel tools of the VM tests.
"$(dirname "$0")/../tests/vm/deps.sh"
