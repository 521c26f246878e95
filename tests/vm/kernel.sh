#!/usr/bin/env bash
# Fetches Debian's cloud kernel (linux-image-cloud-amd64 and the versioned package it depends
# on), unpacks it and runs depmod, under target/vm/kernel/<package>_<version>/. Idempotent: a
# complete directory for the candidate version is reused without any download. Prints the
# directory on stdout; it holds `vmlinuz`, `kver` (the module directory name) and
# `root/lib/modules/<kver>/`.
#
# Needs apt-get (download only, no install) and depmod (package kmod), or a cached directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="${VMTEST_TARGET:-$here/../../target/vm}"
cache="$top/kernel"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
meta=linux-image-cloud-amd64

say() { echo "kernel.sh: $*" >&2; }

# The versioned image package the meta package depends on, and its version (one apt-cache call:
# each takes about a second).
resolve() {
    local dep
    dep="$(apt-cache show --no-all-versions "$meta" 2>/dev/null | sed -n 's/^Depends: //p' | head -n1)"
    # "linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)"
    pkg="$(sed -n 's/^\(linux-image-[0-9][^ ,]*-cloud-amd64\) (= \([^)]*\)).*/\1/p' <<<"$dep")"
    ver="$(sed -n 's/^\(linux-image-[0-9][^ ,]*-cloud-amd64\) (= \([^)]*\)).*/\2/p' <<<"$dep")"
    [ -n "$pkg" ] && [ -n "$ver" ]
}

if ! resolve; then
    # No package lists (a fresh machine): reuse the last kernel if there is one, else update.
    if [ -f "$cache/current/.complete" ]; then
        say "apt does not know $meta; reusing $(readlink "$cache/current")"
        echo "$cache/$(readlink "$cache/current")"
        exit 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        say "apt does not know $meta: running apt-get update"
        apt-get update -qq >&2 || true
    fi
    resolve || { say "cannot resolve $meta with apt-cache"; exit 1; }
fi

# extract_vmlinux BZIMAGE OUT: finds the compressed kernel in the bzImage by its magic (as the
# kernel's scripts/extract-vmlinux does) and decompresses it; true when OUT is an ELF file.
extract_vmlinux() {
    local magic tool off
    # Octal escapes for printf %b; a shell string cannot hold xz's NUL, its prefix will do.
    for pair in '\0002!L\0030:lz4 -dc' '(\0265/\0375:zstd -qdc' '\03757zXZ:xz -dc' '\0037\0213\0010:gzip -dc'; do
        magic="$(printf '%b' "${pair%%:*}")"
        tool="${pair#*:}"
        command -v "${tool%% *}" >/dev/null 2>&1 || continue
        while read -r off; do
            # shellcheck disable=SC2086 # the tool and its flags
            tail -c +$((off + 1)) "$1" | ${tool} >"$2" 2>/dev/null || true
            if [ "$(head -c 4 "$2" 2>/dev/null)" = "$(printf '\177ELF')" ]; then
                return 0
            fi
        done < <(grep -abo "$magic" "$1" 2>/dev/null | cut -d: -f1 | head -n 3)
    done
    rm -f "$2"
    return 1
}

key="${pkg}_${ver//[^A-Za-z0-9.+-]/_}"
dir="$cache/$key"
if [ -f "$dir/.complete" ]; then
    ln -sfn "$key" "$cache/current"
    echo "$dir"
    exit 0
fi

command -v depmod >/dev/null 2>&1 || { say "depmod is missing (apt-get install kmod)"; exit 1; }
start=$(date +%s%N)
tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "downloading $pkg $ver"
# apt's _apt user may not reach target/: download as the calling user instead.
(cd "$tmp" && apt-get -q -o APT::Sandbox::User="$(id -un)" download "$pkg=$ver" >&2)
deb="$(ls "$tmp"/*.deb)"
dpkg-deb -x "$deb" "$tmp/root"
rm -f "$deb"
vmlinuz="$(ls "$tmp"/root/boot/vmlinuz-*)"
kver="${vmlinuz##*/vmlinuz-}"
[ -d "$tmp/root/lib/modules/$kver" ] || { say "no modules for $kver in $pkg"; exit 1; }
mv "$vmlinuz" "$tmp/vmlinuz"
cp "$tmp/root/boot/config-$kver" "$tmp/config"
rm -rf "$tmp/root/boot" "$tmp/root/usr"
depmod -b "$tmp/root" "$kver"
# qemu boots an uncompressed vmlinux directly through its PVH entry point, which saves the
# bzImage's self-decompression (about a second under TCG). Optional: run.sh falls back on vmlinuz.
if grep -q '^CONFIG_PVH=y' "$tmp/config"; then
    extract_vmlinux "$tmp/vmlinuz" "$tmp/vmlinux" || say "no vmlinux extracted: booting vmlinuz"
fi
echo "$kver" >"$tmp/kver"
echo "$pkg $ver" >"$tmp/package"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
ln -sfn "$key" "$cache/current"
say "$key ready in $((($(date +%s%N) - start) / 1000000)) ms"
echo "$dir"
