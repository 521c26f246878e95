#!/usr/bin/env bash
# tests/vm/golden/disk.sh [--table gpt|mbr] [--fs ext4|xfs] [--image-size SIZE] [--disk-size SIZE]
#                         IMAGE_DIR OUT
#
# Writes the golden image (IMAGE_DIR from image.sh) as a disk image, as an image pipeline
# would, then "writes it onto a disk" larger than itself, as a deployer's dd does: OUT is
# IMAGE-SIZE (default 1G) of table plus root partition 1 (from 1 MiB to the end; GPT name
# `root`, MBR type 83), grown to DISK-SIZE (default 3G) with zeros, so a GPT's backup header is
# then short of the end. The root filesystem is ext4 (mkfs.ext4 -d) or xfs (mkfs.xfs, then
# mounted on a loop device here and filled with cp -a) with a fresh UUID, and /etc/fstab naming
# it. The test fixture vmtest-report.service (report, report.service) is added and enabled:
# it prints the VM's view on the serial console and powers off.
#
# Prints the kernel command line that boots it (root=UUID=... ro rootfstype=...).
# Needs root (the tree's ownership; xfs: mount).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { echo "disk.sh: $*" >&2; }

table=gpt fs=ext4 image_size=1G disk_size=3G
while [ $# -gt 2 ]; do
    case "$1" in
    --table) table=$2 ;;
    --fs) fs=$2 ;;
    --image-size) image_size=$2 ;;
    --disk-size) disk_size=$2 ;;
    *) say "unknown option $1"; exit 2 ;;
    esac
    shift 2
done
[ $# -eq 2 ] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
image=$1 out=$2
[ -f "$image/.complete" ] || { say "$image is not a complete golden image (image.sh)"; exit 2; }
case "$table:$fs" in gpt:ext4 | gpt:xfs | mbr:ext4 | mbr:xfs) ;; *) say "--table gpt|mbr, --fs ext4|xfs"; exit 2 ;; esac

work="$(mktemp -d "$(dirname "$out")/.disk.XXXXXX")"
mnt=""
cleanup() {
    if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT

uuid="$(cat /proc/sys/kernel/random/uuid)"
# The tree as it goes onto this disk: hard links to the cached image (mkfs.ext4 -d and cp -a
# only read them); every file changed here is removed first and written anew, never in place.
stage="$work/root"
cp -al "$image/root" "$stage"
rm -f "$stage/etc/fstab"
if [ "$fs" = ext4 ]; then
    printf 'UUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' "$uuid" >"$stage/etc/fstab"
else
    printf 'UUID=%s\t/\txfs\tdefaults\t0\t0\n' "$uuid" >"$stage/etc/fstab"
fi
install -D -m 0755 "$here/report" "$stage/usr/local/sbin/vmtest-report"
install -m 0644 "$here/report.service" "$stage/etc/systemd/system/vmtest-report.service"
mkdir -p "$stage/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/vmtest-report.service "$stage/etc/systemd/system/multi-user.target.wants/"

bytes() { numfmt --from=iec "$1"; }
img_b="$(bytes "$image_size")"
disk_b="$(bytes "$disk_size")"
[ "$disk_b" -ge "$img_b" ] || { say "--disk-size is smaller than --image-size"; exit 2; }
mib=$((1024 * 1024))
# The root runs from 1 MiB to the image's end (GPT: less the backup header's 33 sectors,
# rounded down to a MiB).
part_b=$((img_b - mib))
[ "$table" = mbr ] || part_b=$(((img_b - 34 * 512) / mib * mib - mib))

fsimg="$work/fs.img"
truncate -s "$part_b" "$fsimg"
if [ "$fs" = ext4 ]; then
    mkfs.ext4 -q -F -b 4096 -U "$uuid" -L root -d "$stage" "$fsimg"
else
    mkfs.xfs -q -f -m uuid="$uuid" -L root "$fsimg"
    mnt="$work/mnt"
    mkdir "$mnt"
    mount -o loop "$fsimg" "$mnt"
    cp -a "$stage/." "$mnt/"
    umount "$mnt"
    mnt=""
fi

rm -f "$out"
truncate -s "$img_b" "$out"
if [ "$table" = gpt ]; then
    printf 'label: gpt\nstart=2048, size=%d, type=linux, name="root"\n' $((part_b / 512)) |
        sfdisk -q "$out"
else
    printf 'label: dos\nstart=2048, size=%d, type=83, bootable\n' $((part_b / 512)) |
        sfdisk -q "$out"
fi
# conv=sparse: zero blocks are skipped, the image stays sparse.
dd if="$fsimg" of="$out" bs=1M seek=1 conv=notrunc,sparse status=none
# The deployer's dd onto a bigger disk.
truncate -s "$disk_b" "$out"
echo "root=UUID=$uuid ro rootfstype=$fs"
