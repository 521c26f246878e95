#!/usr/bin/env bash
# tests/vm/debian/rootfs.sh: a small systemd Debian root for tests/vm_debian.rs, made with
# mmdebstrap (variant minbase + systemd, systemd-resolved, udev, iproute2, dbus), with
# systemd-networkd, its wait-online, systemd-resolved, the fixture units of this directory
# (seedpart.service, vmtest-report.service) enabled and the gettys masked. No kernel: the VM
# boots the harness's cloud kernel and switch_roots into it (vmtest.switchroot=1).
# Cached as target/vm/debian/<key>/root (key: this directory's files, suite, mirror, packages);
# prints that directory. Needs root (mmdebstrap's root mode keeps ownership for mkfs.ext4 -d).
# Exit 3: cannot run here (not root, no mmdebstrap, mirror unreachable): the test says SKIP.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="${VMTEST_TARGET:-$here/../../../target/vm}"
mkdir -p "$top/debian"
cache="$(cd "$top/debian" && pwd)"
say() { echo "rootfs.sh: $*" >&2; }

suite="${VMTEST_DEBIAN_SUITE:-bookworm}"
mirror="${VMTEST_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The host's mirror: the first http(s) URI of a Debian source.
    mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        sed -n 's|^URIs: *\(https\{0,1\}://[^ ]*/debian\)/*$|\1|p; s|^deb  *\(https\{0,1\}://[^ ]*/debian\)/* .*|\1|p' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi
packages=systemd,systemd-sysv,systemd-resolved,udev,iproute2,dbus

key="$(
    {
        echo "$suite $mirror $packages"
        sha256sum "$here/rootfs.sh" "$here/seedpart.service" "$here/vmtest-report.service" "$here/vmtest-report" | cut -d' ' -f1
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
mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook="install -m 0644 '$here/seedpart.service' \"\$1/etc/systemd/system/seedpart.service\"" \
    --customize-hook="install -m 0644 '$here/vmtest-report.service' \"\$1/etc/systemd/system/vmtest-report.service\"" \
    --customize-hook="install -D -m 0755 '$here/vmtest-report' \"\$1/usr/local/sbin/vmtest-report\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd systemd-networkd-wait-online.service systemd-resolved seedpart.service vmtest-report.service' \
    --customize-hook='chroot "$1" systemctl mask serial-getty@ttyS0.service getty@tty1.service console-getty.service' \
    --customize-hook='echo localhost >"$1/etc/hostname"; printf "127.0.0.1\tlocalhost\n" >"$1/etc/hosts"; : >"$1/etc/machine-id"' \
    --customize-hook='rm -rf "$1/var/cache/apt/"* "$1/var/lib/apt/lists/"*' \
    "$suite" "$tmp/root" "$mirror" >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
# Older keys.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name 'stage-*' -exec rm -rf {} +
say "$key ready in $(($(date +%s) - start)) s: $(du -sh "$dir/root" | cut -f1)"
echo "$dir/root"
