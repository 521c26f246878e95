#!/bin/bash
# dracut module: runs `seedpart run --root /sysroot` in the initramfs, once the root is mounted
# and before switch-root. seedpart reads the config drive itself, so nothing else is needed:
# no vfat or isofs module, no blkid, no sgdisk, no growpart.

# Included in every initramfs while seedpart is installed: the job is a no-op once done, and
# an image built before deployment must carry it.
check() {
    require_binaries /usr/bin/seedpart || return 1
    return 0
}

depends() {
    return 0
}

install() {
    inst_binary /usr/bin/seedpart
    # shellcheck disable=SC2154 # dracut sets moddir to this directory
    inst_hook pre-pivot 50 "$moddir/seedpart-hook.sh"
}
