#!/usr/bin/env bash
# tests/packaging/dib-element.sh ROOT DEB WORKDIR: runs the diskimage-builder element
# packaging/diskimage-builder/seedpart the way disk-image-create does (extra-data.d outside the
# image with TMP_MOUNT_PATH and TMP_HOOKS_PATH, then install.d and finalise.d in the chroot with
# the hooks bind-mounted read-only at /tmp/in_target.d), on a copy-on-write overlay of ROOT
# (tests/packaging/chroot.sh), then checks the image and the package's maintainer scripts:
#   - the units are enabled, `seedpart --version` runs, the conffile is registered;
#   - dracut's trigger rebuilt the initramfs with seedpart and its pre-pivot hook;
#   - finalise.d rebuilds an initramfs made before the package (as on RPM distros);
#   - a reinstall keeps a unit the admin disabled; purge removes links, conffile and state.
# Everything runs in a private mount namespace, so no mount outlives the script. ROOT is never
# written. Needs root. Prints "ok: ..." lines; exits non-zero on the first failure.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
element="$(cd "$here/../../packaging/diskimage-builder/seedpart" && pwd)"
lower="$(realpath "${1:?usage: dib-element.sh ROOT DEB WORKDIR}")"
deb="$(realpath "${2:?}")"
work="$(realpath -m "${3:?}")"

if [ -z "${SEEDPART_DIB_TEST_NS:-}" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    exec env SEEDPART_DIB_TEST_NS=1 unshare --mount --propagation private "$0" "$@"
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

root="$work/root"
hooks="$work/hooks"
mkdir -p "$work/upper" "$work/ovl" "$root" "$hooks"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"

# What disk-image-create does around the element's phases (lib/img-functions: run_d and
# run_d_in_target), with a sanitised environment as in its run_in_target.
in_chroot() {
    chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DIB_DEBUG_TRACE=1 \
        ${DIB_SEEDPART_DRACUT+"DIB_SEEDPART_DRACUT=$DIB_SEEDPART_DRACUT"} "$@"
}
mkdir -p "$root/tmp/in_target.d"
mount --bind "$hooks" "$root/tmp/in_target.d"
mount -o remount,ro,bind "$root/tmp/in_target.d"
run_in_target() {
    local phase="$1" script
    rm -rf "${hooks:?}/$phase.d"
    cp -a "$element/$phase.d" "$hooks/"
    for script in "$hooks/$phase.d"/*; do
        echo "--- $phase.d/$(basename "$script")"
        in_chroot "/tmp/in_target.d/$phase.d/$(basename "$script")"
    done
}
enabled() { in_chroot systemctl is-enabled "$1" 2>/dev/null || true; }
# Only the seedpart module matters here: a host-only, uncompressed initramfs takes dracut
# seconds instead of a minute. Written into the overlay, so it does not outlive the test.
printf 'hostonly="yes"\ncompress="cat"\n' >"$root/etc/dracut.conf.d/90-seedpart-test.conf"
initrd="$(find "$root/boot" -maxdepth 1 -name 'initrd.img-*' | head -n1)"
[ -n "$initrd" ] || fail "no initramfs in the chroot"
has_seedpart() {
    local listing
    listing="$(in_chroot lsinitrd "${initrd#"$root"}")"
    grep -q -E '[[:space:]/]usr/bin/seedpart$' <<<"$listing" &&
        grep -q -E 'dracut/hooks/pre-pivot/50-seedpart-hook\.sh$' <<<"$listing"
}
has_seedpart && fail "the chroot's initramfs already carries seedpart"
cp -a "$initrd" "$work/initrd.before"

echo "--- extra-data.d (outside the image)"
for script in "$element/extra-data.d"/*; do
    env TMP_MOUNT_PATH="$root" TMP_HOOKS_PATH="$hooks" DIB_SEEDPART_PACKAGE="$(dirname "$deb")" \
        DIB_DEBUG_TRACE=2 "$script"
done
[ -f "$hooks/seedpart/$(basename "$deb")" ] || fail "extra-data.d did not stage $(basename "$deb")"
ok "extra-data.d staged $(basename "$deb") from the directory DIB_SEEDPART_PACKAGE names"

start=$(date +%s)
run_in_target install
echo "install.d took $(($(date +%s) - start)) s (with dracut's triggered rebuild)"

# shellcheck disable=SC2016 # dpkg-query's ${field}, not the shell's
[ "$(in_chroot dpkg-query -W -f '${db:Status-Status}' seedpart)" = installed ] || fail "seedpart is not installed"
version="$(in_chroot seedpart --version)"
[[ "$version" == "seedpart "* ]] || fail "seedpart --version printed '$version'"
ok "installed; $version"
for unit in seedpart.service seedpart-user-data.service; do
    state="$(enabled "$unit")"
    [ "$state" = enabled ] || fail "$unit is $state, not enabled"
done
[ -L "$root/etc/systemd/system/sysinit.target.wants/seedpart.service" ] ||
    fail "no sysinit.target.wants/seedpart.service link"
[ -L "$root/etc/systemd/system/multi-user.target.wants/seedpart-user-data.service" ] ||
    fail "no multi-user.target.wants/seedpart-user-data.service link"
ok "seedpart.service (sysinit.target) and seedpart-user-data.service (multi-user.target) enabled"
# shellcheck disable=SC2016 # dpkg-query's ${field}, not the shell's
in_chroot dpkg-query -W -f '${Conffiles}\n' seedpart | grep -q '^ /etc/seedpart/seedpart.conf [0-9a-f]\{32\}$' ||
    fail "/etc/seedpart/seedpart.conf is not a registered conffile"
ok "/etc/seedpart/seedpart.conf is a conffile"
# The preset agrees with what deb-systemd-helper did.
for unit in seedpart.service seedpart-user-data.service; do
    in_chroot systemctl preset "$unit" 2>&1
    [ "$(enabled "$unit")" = enabled ] || fail "the preset disables $unit"
done
ok "90-seedpart.preset enables both units"

has_seedpart || fail "dracut's update-initramfs trigger did not put seedpart into ${initrd#"$root"}"
ok "the package's trigger rebuilt ${initrd#"$root"} with /usr/bin/seedpart and the pre-pivot hook"

# An initramfs built before the package (what an RPM distro leaves): finalise.d rebuilds it.
cp -a "$work/initrd.before" "$initrd"
start=$(date +%s)
run_in_target finalise
echo "finalise.d took $(($(date +%s) - start)) s"
has_seedpart || fail "finalise.d did not rebuild ${initrd#"$root"} with seedpart"
ok "finalise.d rebuilt an initramfs made before the package"
out="$(run_in_target finalise)"
grep -q 'already carries seedpart' <<<"$out" || fail "finalise.d rebuilt an initramfs that had seedpart: $out"
ok "finalise.d leaves an initramfs that has seedpart alone"
out="$(DIB_SEEDPART_DRACUT=0 run_in_target finalise 2>&1)" || fail "DIB_SEEDPART_DRACUT=0: $out"
out="$(DIB_SEEDPART_DRACUT=bogus run_in_target finalise 2>&1)" && fail "DIB_SEEDPART_DRACUT=bogus was accepted"
ok "DIB_SEEDPART_DRACUT=0 skips, a bad value fails the build"

# Maintainer scripts on the installed system, without the element.
in_chroot systemctl disable seedpart-user-data.service 2>&1
cp "$deb" "$root/tmp/"
in_chroot dpkg -i "/tmp/$(basename "$deb")" >/dev/null
[ "$(enabled seedpart-user-data.service)" = disabled ] ||
    fail "reinstalling re-enabled a unit the admin disabled"
[ "$(enabled seedpart.service)" = enabled ] || fail "reinstalling disabled seedpart.service"
ok "a reinstall keeps the admin's disable"
in_chroot dpkg -r seedpart >/dev/null
[ ! -e "$root/usr/bin/seedpart" ] || fail "dpkg -r left /usr/bin/seedpart"
[ -f "$root/etc/seedpart/seedpart.conf" ] || fail "dpkg -r removed the conffile"
! has_seedpart || fail "dpkg -r left seedpart in the initramfs (no update-initramfs trigger)"
mkdir -p "$root/var/lib/seedpart/config-drive"
echo '{}' >"$root/var/lib/seedpart/state.json"
in_chroot dpkg -P seedpart >/dev/null
for gone in /etc/seedpart /var/lib/seedpart /etc/systemd/system/sysinit.target.wants/seedpart.service \
    /etc/systemd/system/multi-user.target.wants/seedpart-user-data.service; do
    if [ -e "$root$gone" ] || [ -L "$root$gone" ]; then
        fail "purge left $gone"
    fi
done
ok "remove keeps the conffile and drops seedpart from the initramfs; purge removes it, the unit links and /var/lib/seedpart"
