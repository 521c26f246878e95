#!/usr/bin/env bash
# The first boot a cloud-init user runs instead of `seedpart run`, on the same disk, doing the
# same job: find and read the config drive, apply it, keep a copy, delete its partition, grow
# the root partition and its xfs filesystem online.
#
#   bench/peer-firstboot.sh DISK ROOT     # DISK: /dev/loopN; ROOT: its mounted root partition
#
# 1. cloud-init's code finds, reads and applies the drive and copies it to cloud-init's seed
#    directory (peer_cloudinit.py: the details, and how the drive is read without mounting);
# 2. one syncfs on the root, so the copy is on disk before the partition that held it goes
#    (seedpart fsyncs its copy for the same reason);
# 3. the partition is deleted from the table, then `partx -d` deletes it from the kernel (the
#    tools' own re-read fails while the root is mounted). PEER_DELETE picks the tool: `sfdisk`
#    (`sfdisk --delete`, the default: the faster) or `sgdisk` (`sgdisk -d`, which after writing
#    calls sync() and then sleeps one second before asking the kernel to re-read);
# 4. `growpart` grows the root partition (and tells the kernel), `xfs_growfs` the filesystem.
#
# Each step prints `@step NAME EPOCHREALTIME` on stderr as it starts: the harness takes the
# kernel's filesystem resize (the `xfs_growfs` step, whole) out of the total with them. bash's
# $EPOCHREALTIME costs no process, so the markers do not slow the pipeline down.
set -euo pipefail

disk=$1
root=$2
here=$(dirname "${BASH_SOURCE[0]}")
mark() { printf '@step %s %s\n' "$1" "$EPOCHREALTIME" >&2; }

mark cloud-init
part=$(/usr/bin/python3 "$here/peer_cloudinit.py" firstboot "$disk" "$root")
mark sync
sync -f "$root"
mark delete
# Both say the kernel still uses the old table (the root is busy): partx below tells it.
case ${PEER_DELETE:-sfdisk} in
sgdisk) sgdisk -d "$part" "$disk" >/dev/null 2>&1 ;;
sfdisk) sfdisk -q --no-reread --delete "$disk" "$part" >/dev/null 2>&1 ;;
*) echo "PEER_DELETE: sfdisk or sgdisk" >&2; exit 2 ;;
esac
partx -d --nr "$part" "$disk"
mark growpart
growpart "$disk" 1 >/dev/null
mark xfs_growfs
xfs_growfs "$root" >/dev/null
mark end
