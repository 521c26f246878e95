#!/bin/sh
# dracut pre-pivot hook (sourced by dracut's init: never `exit` here). The root is mounted at
# $NEWROOT (/sysroot). seedpart applies the config drive to it, copies the drive, deletes the
# partition and grows the root online, so the real system boots with its hostname, network and
# keys in place from the first instant.
#
# rd.seedpart=0 leaves the job to seedpart.service on the live root; seedpart.disable turns off
# both. A failure here does not stop the boot: seedpart.service tries again on the live root, and
# every step converges (a run cut short is finished by the next one).

# shellcheck source=/dev/null # dracut-lib.sh is only in the initramfs
type getargbool >/dev/null 2>&1 || . /lib/dracut-lib.sh

seedpart_hook() {
    # Plain variables (no `local` in POSIX sh), unset below: this runs in dracut's own shell.
    sp_root="${NEWROOT:-/sysroot}"
    sp_remounted=""
    getargbool 1 rd.seedpart || return 0
    getargbool 0 seedpart.disable && return 0
    [ -x /usr/bin/seedpart ] || return 0
    # The root is mounted read-only unless the kernel command line says `rw`: the job needs it
    # writable, and it is put back as it was for systemd-remount-fs to handle as usual.
    # Plain shell: dracut's initramfs has no tail, awk or findmnt. The last line for the mount
    # point is the one in effect.
    sp_opts=""
    while read -r _ sp_mnt _ sp_o _; do
        [ "$sp_mnt" = "$sp_root" ] && sp_opts="$sp_o"
    done </proc/mounts
    if [ -z "$sp_opts" ]; then
        warn "seedpart: $sp_root is not mounted; leaving the job to seedpart.service"
        return 0
    fi
    case ",$sp_opts," in
    *,ro,*)
        if ! mount -o remount,rw "$sp_root"; then
            warn "seedpart: cannot remount $sp_root read-write; leaving the job to seedpart.service"
            return 0
        fi
        sp_remounted=1
        ;;
    esac
    /usr/bin/seedpart -v run --root "$sp_root"
    sp_rc=$?
    [ "$sp_rc" -eq 0 ] || warn "seedpart: run --root $sp_root exited with $sp_rc; seedpart.service will finish the job"
    if [ -n "$sp_remounted" ]; then
        mount -o remount,ro "$sp_root" || warn "seedpart: cannot remount $sp_root read-only again"
    fi
    return 0
}

seedpart_hook
unset -f seedpart_hook
unset sp_root sp_opts sp_rc sp_remounted sp_mnt sp_o
