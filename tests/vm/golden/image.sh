#!/usr/bin/env bash
# tests/vm/golden/image.sh [--cloud-init] DEB
#
# The golden image of tests/vm_golden.rs and scripts/demo.sh: the Debian root of base.sh
# (systemd, linux-image-cloud-amd64, dracut; with --cloud-init also cloud-init), into which
# the seedpart package DEB is installed with dpkg -i (its postinst has dracut rebuild the
# initramfs with the 90seedpart module; checked with lsinitrd). Prints the
# image's directory: root/ (the tree), vmlinuz and initrd.img (the image's own kernel and
# initramfs, for qemu's direct kernel boot), kver.
#
# Two cached layers under target/vm/golden/ (or $VMTEST_TARGET/golden):
#   base-<variant>-<key>/          base.sh's mmdebstrap tree: minutes, made again only when
#                                  its own inputs change.
#   <variant>-<key>-<deb>-<this>/  a full copy with DEB installed (dracut reruns): ~30-80 s.
#                                  <deb> hashes the package's contents (not its mtimes), so
#                                  an unchanged seedpart rebuilt reuses the image.
# Keying one mmdebstrap run by the .deb would redo minutes of downloads and installs for
# every change to seedpart; a copy, dpkg -i and dracut are the cheap half. Layers unused for
# an hour are removed when a new one is made.
#
# Exit 3: cannot run here (not root, no mmdebstrap or unshare, mirror unreachable); the tests
# then say SKIP. Other failures exit 1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { echo "image.sh: $*" >&2; }

variant=plain opt=()
if [ "${1:-}" = --cloud-init ]; then
    variant=cloud-init opt=(--cloud-init)
    shift
fi
[ $# -eq 1 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
deb="$(realpath "$1")"
[ -f "$deb" ] || { say "no package $1"; exit 2; }
[ "$(id -u)" -eq 0 ] || { say "needs root (mmdebstrap --mode=root, chroot)"; exit 3; }
for tool in unshare chroot dpkg-deb flock; do
    command -v "$tool" >/dev/null 2>&1 || { say "$tool is missing"; exit 3; }
done

rc=0
base="$("$here/base.sh" "${opt[@]}")" || rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
cache="$(dirname "$base")"

# The package's identity is what it installs, not when it was built: paths, modes, contents
# and control data.
debkey="$(
    x="$(mktemp -d)"
    trap 'rm -rf "$x"' EXIT
    dpkg-deb -R "$deb" "$x/p"
    cd "$x/p"
    find . -printf '%p %m %l\n' | LC_ALL=C sort
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
)"
debkey="$(sha256sum <<<"$debkey" | cut -c1-12)"
self="$(sha256sum "$here/image.sh" | cut -c1-8)"
dir="$cache/$variant-${base##*-}-$debkey-$self"
if [ -f "$dir/.complete" ]; then
    touch "$dir" # in use: see the pruning below
    echo "$dir"
    exit 0
fi
exec 9>"$cache/.lock-$variant"
flock 9
if [ -f "$dir/.complete" ]; then
    touch "$dir" # in use: see the pruning below
    echo "$dir"
    exit 0
fi

start=$(date +%s)
tmp="$(mktemp -d "$cache/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# A real copy, not hard links: dpkg appends to its logs and dracut rewrites the initramfs in
# place, which would change the base through shared inodes.
cp -a "$base/root" "$tmp/root"
install -m 0644 "$deb" "$tmp/root/tmp/seedpart.deb"
kver="$(basename "$(find "$tmp/root/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n1)")"
[ -n "$kver" ] || { say "no kernel in the base root"; exit 1; }
# The image build's chroot: its own mount namespace, so that /proc, /sys and /dev go away
# with it whatever happens.
# shellcheck disable=SC2016 # the inner script's variables are its own
unshare --mount --propagation private -- sh -euc '
    r=$1 kver=$2
    mount -t proc proc "$r/proc"
    mount -t sysfs sysfs "$r/sys"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs tmpfs "$r/run"
    # The package rebuilds the initramfs itself (its postinst triggers dracut): checked below.
    chroot "$r" dpkg -i /tmp/seedpart.deb
    # lsinitrd needs /dev and /proc: listed here, checked below.
    chroot "$r" lsinitrd "/boot/initrd.img-$kver" >"$r/tmp/lsinitrd"
' sh "$tmp/root" "$kver" >&2
rm -f "$tmp/root/tmp/seedpart.deb"
# What the image must carry for the tests to mean anything.
[ -x "$tmp/root/usr/bin/seedpart" ] || { say "the package installed no /usr/bin/seedpart"; exit 1; }
if ! grep -q 'usr/bin/seedpart$' "$tmp/root/tmp/lsinitrd" ||
    ! grep -q 'pre-pivot/50-seedpart-hook.sh$' "$tmp/root/tmp/lsinitrd"; then
    say "the initramfs has no seedpart or no pre-pivot hook (dracut module 90seedpart)"
    exit 1
fi
rm "$tmp/root/tmp/lsinitrd"
find "$tmp/root/etc/systemd/system" -name seedpart.service -type l | grep -q . ||
    { say "seedpart.service is not enabled after dpkg -i (the preset?)"; exit 1; }
ln -s "root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
ln -s "root/boot/initrd.img-$kver" "$tmp/initrd.img"
echo "$kver" >"$tmp/kver"
touch "$tmp/.complete"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
# Other images of this variant (other bases, packages or recipes), unless used within the hour:
# another test run on this machine (another build of seedpart) may be booting one.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name "$variant-*" ! -name "$(basename "$dir")" \
    -mmin +60 -exec rm -rf {} +
say "$variant image with $(basename "$deb") ready in $(($(date +%s) - start)) s: $(du -sh "$dir/root" | cut -f1)"
echo "$dir"
