#!/usr/bin/env bash
# tests/packaging/rpm-scriptlets.sh ROOT RPM WORKDIR: installs the rpm into a copy-on-write
# overlay of ROOT (tests/packaging/chroot.sh's systemd Debian) with the host's rpm --root, which
# runs the scriptlets chrooted, as an image builder's rpm or dnf --installroot does, and checks
# them: %post's preset enables both units on a first installation, a reinstall keeps a unit the
# admin disabled, %preun disables both on erase, and %config(noreplace) keeps an edited
# configuration as .rpmsave. --nodeps: the Debian root's libraries are not in an rpm database.
# Runs in a private mount namespace; ROOT is never written. Needs root.
set -euo pipefail
lower="$(realpath "${1:?usage: rpm-scriptlets.sh ROOT RPM WORKDIR}")"
rpmfile="$(realpath "${2:?}")"
work="$(realpath -m "${3:?}")"

if [ -z "${SEEDPART_RPM_TEST_NS:-}" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    exec env SEEDPART_RPM_TEST_NS=1 unshare --mount --propagation private "$0" "$@"
fi

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
ok() { echo "ok: $*"; }

root="$work/root"
mkdir -p "$work/upper" "$work/ovl" "$root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" "$root"
mount -t proc proc "$root/proc"

enabled() { chroot "$root" systemctl is-enabled "$1" 2>/dev/null || true; }
rpm_root() { rpm --root="$root" --dbpath=/var/lib/rpm "$@"; }

# Fedora's policy: whatever no preset file names is disabled (99-default-disable.preset). Only
# the package's own preset can then enable its units.
mkdir -p "$root/etc/systemd/system-preset"
echo 'disable *' >"$root/etc/systemd/system-preset/99-default-disable.preset"

rpm_root --nodeps -i "$rpmfile"
[ "$(chroot "$root" seedpart --version)" = "$(rpm -qp --qf 'seedpart %{VERSION}' "$rpmfile")" ] ||
    fail "seedpart --version does not match the package version"
for unit in seedpart.service seedpart-user-data.service; do
    [ "$(enabled "$unit")" = enabled ] || fail "%post did not enable $unit"
done
ok "rpm -i: %post's preset enabled seedpart.service and seedpart-user-data.service under a disable-all policy"
[ "$(rpm_root -qc seedpart)" = /etc/seedpart/seedpart.conf ] || fail "the configuration file is not %config"

chroot "$root" systemctl disable seedpart-user-data.service 2>/dev/null
rpm_root --nodeps -U --replacepkgs "$rpmfile"
[ "$(enabled seedpart-user-data.service)" = disabled ] || fail "a reinstall re-enabled a unit the admin disabled"
[ "$(enabled seedpart.service)" = enabled ] || fail "a reinstall disabled seedpart.service"
ok "rpm -U --replacepkgs keeps the admin's disable"

echo 'grow = false' >>"$root/etc/seedpart/seedpart.conf"
rpm_root -e seedpart
[ ! -e "$root/usr/bin/seedpart" ] || fail "rpm -e left /usr/bin/seedpart"
for link in sysinit.target.wants/seedpart.service multi-user.target.wants/seedpart-user-data.service; do
    if [ -L "$root/etc/systemd/system/$link" ]; then
        fail "%preun left /etc/systemd/system/$link"
    fi
done
grep -q '^grow = false$' "$root/etc/seedpart/seedpart.conf.rpmsave" ||
    fail "the edited configuration was not kept as seedpart.conf.rpmsave"
ok "rpm -e: %preun disabled both units; the edited configuration is kept as .rpmsave"
