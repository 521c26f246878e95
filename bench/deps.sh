#!/usr/bin/env bash
# Installs the tools the benchmark runs: the peers (cloud-init's reader, growpart, sgdisk,
# mtools, bsdtar, xorriso, xfs_growfs), the disk builders (mkfs.*, genisoimage), the meters
# (GNU time for peak RSS, valgrind for instruction counts) and the plotter (gnuplot).
# Debian package names; only what is missing is installed, so re-running is cheap.
set -euo pipefail

# command -> Debian package that ships it
declare -A PKG=(
    [cloud-init]=cloud-init
    [growpart]=cloud-guest-utils
    [sgdisk]=gdisk
    [sfdisk]=fdisk
    [mcopy]=mtools
    [mkfs.vfat]=dosfstools
    [bsdtar]=libarchive-tools
    [xorriso]=xorriso
    [genisoimage]=genisoimage
    [mkfs.xfs]=xfsprogs
    [xfs_growfs]=xfsprogs
    [blkid]=util-linux
    [partx]=util-linux
    [gnuplot]=gnuplot-nox
    [valgrind]=valgrind
    [strace]=strace
)
missing=()
for cmd in "${!PKG[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
# GNU time: /usr/bin/time, not the shell keyword.
[[ -x /usr/bin/time ]] || missing+=(time)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "bench/deps.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No recommends: cloud-init recommends a tree of optional helpers the benchmark never uses.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# cloud-init must be the Debian package run by the system python (not a pyenv shim).
/usr/bin/python3 -c 'import cloudinit.sources.helpers.openstack' 
