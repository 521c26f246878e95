#!/usr/bin/env bash
# tests/packaging/chroot.sh CACHEDIR: a Debian root for the diskimage-builder element test, as a
# distro element would leave it before the seedpart element runs: mmdebstrap minbase with
# systemd, dracut (so the package's initramfs trigger and the element's dracut step have
# something to act on) and the cloud kernel with the initramfs dracut built for it.
# Cached as CACHEDIR/<key>/root (key: suite, mirror, packages, this script); prints that path.
# Exit 3: cannot run here (not root, no mmdebstrap, mirror unreachable): the test says SKIP.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "${1:?usage: chroot.sh CACHEDIR}"
cache="$(cd "$1" && pwd)"
say() { echo "chroot.sh: $*" >&2; }

suite="${PACKAGING_DEBIAN_SUITE:-bookworm}"
mirror="${PACKAGING_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The host's mirror: the first http(s) URI of a Debian source.
    mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        sed -n 's|^URIs: *\(https\{0,1\}://[^ ]*/debian\)/*$|\1|p; s|^deb  *\(https\{0,1\}://[^ ]*/debian\)/* .*|\1|p' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi
packages=systemd,systemd-sysv,dracut,linux-image-cloud-amd64

key="$(
    {
        echo "$suite $mirror $packages"
        sha256sum "$here/chroot.sh" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
)"
dir="$cache/$key"
if [ -f "$dir/.complete" ]; then
    echo "$dir/root"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "needs root (mmdebstrap --mode=root)"; exit 3; }
command -v mmdebstrap >/dev/null 2>&1 || { say "mmdebstrap is missing (apt-get install mmdebstrap)"; exit 3; }
if command -v curl >/dev/null 2>&1 && ! curl -fsS -m 20 -o /dev/null "$mirror/dists/$suite/Release"; then
    say "mirror $mirror is unreachable"
    exit 3
fi

start=$(date +%s)
tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# No man or doc excludes: the test checks what the package installs there.
# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded by the hook's shell
mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --customize-hook='rm -rf "$1/var/cache/apt/"*' \
    "$suite" "$tmp/root" "$mirror" >&2
if ! compgen -G "$tmp/root/boot/initrd.img-*" >/dev/null; then
    say "dracut built no initramfs in the chroot"
    exit 1
fi
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
# Older keys.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.tmp.*' -exec rm -rf {} +
say "$key ready in $(($(date +%s) - start)) s: $(du -sh "$dir/root" | cut -f1)"
echo "$dir/root"
