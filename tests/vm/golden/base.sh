#!/usr/bin/env bash
# tests/vm/golden/base.sh [--cloud-init]
#
# The golden image's base (image.sh adds seedpart's package to a copy of it): a Debian
# (bookworm) root made with mmdebstrap --variant=minbase plus systemd, systemd-sysv,
# systemd-resolved, udev, dbus, iproute2, kmod, linux-image-cloud-amd64, dracut (instead of
# initramfs-tools; configured by dracut.conf) and xfsprogs. systemd-networkd and
# systemd-resolved enabled, the gettys masked (the serial console is the tests' report
# channel), machine-id and random seed left for first boot. No docs, man pages or locales.
# --cloud-init: a copy of that with cloud-init apt-installed (a layer rather than a second
# mmdebstrap: the same kernel, initramfs and packages, and minutes less) and configured by
# cloud.cfg.
#
# Cached as target/vm/golden/base-<variant>-<key>/root (key: suite, mirror, packages, this
# script, dracut.conf, cloud.cfg); prints that directory. Minutes to make (the kernel's dracut
# run is a good part); one builder per variant at a time, the others wait for it.
# Mirror: the host's first Debian `URIs:` (or VMTEST_DEBIAN_MIRROR).
# Exit 3: cannot run here (not root, no mmdebstrap, mirror unreachable).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { echo "base.sh: $*" >&2; }

variant=plain
[ "${1:-}" != --cloud-init ] || variant=cloud-init
top="${VMTEST_TARGET:-$here/../../../target/vm}"
mkdir -p "$top/golden"
cache="$(cd "$top/golden" && pwd)"

suite="${VMTEST_DEBIAN_SUITE:-bookworm}"
mirror="${VMTEST_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # The host's mirror: the first http(s) URI of a Debian source (as tests/vm/debian/rootfs.sh).
    mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
        sed -n 's|^URIs: *\(https\{0,1\}://[^ ]*/debian\)/*$|\1|p; s|^deb  *\(https\{0,1\}://[^ ]*/debian\)/* .*|\1|p' | head -n1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi
packages=systemd,systemd-sysv,systemd-resolved,udev,dbus,iproute2,kmod,linux-image-cloud-amd64,dracut,xfsprogs

key="$(
    {
        echo "$suite $mirror $packages"
        sha256sum "$here/base.sh" "$here/dracut.conf" "$here/cloud.cfg" | cut -d' ' -f1
    } | sha256sum | cut -c1-16
)"
dir="$cache/base-$variant-$key"
if [ -f "$dir/.complete" ]; then
    touch "$dir" 2>/dev/null || true # in use: see prune
    echo "$dir"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { say "needs root (mmdebstrap --mode=root)"; exit 3; }
command -v mmdebstrap >/dev/null 2>&1 || { say "mmdebstrap is missing (apt-get install mmdebstrap)"; exit 3; }
exec 9>"$cache/.lock-base-$variant"
flock 9
if [ -f "$dir/.complete" ]; then
    touch "$dir" 2>/dev/null || true # in use: see prune
    echo "$dir"
    exit 0
fi

if command -v curl >/dev/null 2>&1 && ! curl -fsS -m 20 -o /dev/null "$mirror/dists/$suite/Release"; then
    say "mirror $mirror is unreachable"
    exit 3
fi

# Other bases of this variant (an older recipe), unless used within the hour: another test run
# on this machine may still be using one.
prune() {
    find "$cache" -mindepth 1 -maxdepth 1 -type d -name "base-$variant-*" ! -name "base-$variant-$key" \
        -mmin +60 -exec rm -rf {} +
}

if [ "$variant" = cloud-init ]; then
    rc=0
    plain="$("$0")" || rc=$?
    [ "$rc" -eq 0 ] || exit "$rc"
    start=$(date +%s)
    tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    cp -a "$plain/root" "$tmp/root"
    # The root's resolv.conf points into /run (systemd-resolved's stub): the host's goes there.
    # shellcheck disable=SC2016 # the inner script's variables are its own
    unshare --mount --propagation private -- sh -euc '
        r=$1
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys"
        mount --rbind /dev "$r/dev"
        mount -t tmpfs tmpfs "$r/run"
        mkdir -p "$r/run/systemd/resolve"
        cp -L /etc/resolv.conf "$r/run/systemd/resolve/stub-resolv.conf"
        chroot "$r" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive chroot "$r" apt-get install -y -qq --no-install-recommends cloud-init
        chroot "$r" apt-get clean
    ' sh "$tmp/root" >&2
    rm -rf "$tmp/root/var/lib/apt/lists/"*
    install -m 0644 "$here/cloud.cfg" "$tmp/root/etc/cloud/cloud.cfg.d/90-golden.cfg"
    touch "$tmp/.complete"
    rm -rf "$dir"
    mv "$tmp" "$dir"
    trap - EXIT
    prune
    say "$variant base ($key) made in $(($(date +%s) - start)) s: $(du -sh "$dir/root" | cut -f1)"
    echo "$dir"
    exit 0
fi

start=$(date +%s)
tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# dracut.conf goes in before the packages, so that the kernel's own dracut run already uses it.
# machine-id is emptied and the random seed removed, as in any golden image: each deployed
# machine makes its own on its first boot.
# shellcheck disable=SC2016 # the hooks' $1 is mmdebstrap's, expanded by its shell
mmdebstrap --mode=root --variant=minbase --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --setup-hook="install -D -m 0644 '$here/dracut.conf' \"\$1/etc/dracut.conf.d/50-golden.conf\"" \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd systemd-resolved' \
    --customize-hook='chroot "$1" systemctl mask serial-getty@ttyS0.service getty@tty1.service console-getty.service' \
    --customize-hook='echo localhost >"$1/etc/hostname"; printf "127.0.0.1\tlocalhost\n" >"$1/etc/hosts"' \
    --customize-hook=': >"$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id" "$1/var/lib/systemd/random-seed"' \
    --customize-hook='rm -rf "$1/var/cache/apt/"* "$1/var/lib/apt/lists/"*' \
    "$suite" "$tmp/root" "$mirror" >&2
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
prune
say "$variant base ($key) made in $(($(date +%s) - start)) s: $(du -sh "$dir/root" | cut -f1)"
echo "$dir"
