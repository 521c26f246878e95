#!/usr/bin/env bash
# run.sh DISK_IMAGE SCRIPT [QEMU_ARG]...
#
# Boots the cloud kernel under qemu (TCG) with DISK_IMAGE as /dev/vda (raw, virtio), runs
# SCRIPT (a file, or - for stdin) in the initramfs with the root mounted at /sysroot, prints
# the serial log on stdout as it comes and a summary on stderr. SCRIPT `none`: VMTEST_INITRD is
# booted as it is (a distribution's own initramfs; the system reports and powers off by
# itself). Exit status:
#   0  the script ran and exited 0
#   1  the script failed (its status is in the log: ===VMTEST-END rc=N===)
#   2  usage error, or the kernel/initramfs could not be made
#   3  the script cut the power (===VMTEST-POWERCUT ...===): boot the disk again to go on
#   4  the VM stopped without either marker (kernel panic, a reset nobody asked for)
#   124  timeout
#
# Environment:
#   VMTEST_KERNEL   kernel image (default: kernel.sh's vmlinux, else its vmlinuz)
#   VMTEST_INITRD   initramfs to use (from initramfs.sh, or any with SCRIPT none); else one is
#                   made from VMTEST_BIN
#   VMTEST_BIN      the seedpart binary (default: target/debug/seedpart)
#   VMTEST_ROOT     the root to mount at /sysroot (default /dev/vda1; none: no mount)
#   VMTEST_FSTYPE   its filesystem type (default: probed)
#   VMTEST_SECTOR   512 (default) or 4096: logical and physical sector size of DISK_IMAGE
#   VMTEST_APPEND   more kernel command line (seedpart.nogrow, vmtest.debug, ...)
#   VMTEST_FILES    a directory put into the initramfs at /vmtest/files
#   VMTEST_ORACLE=1 add the host's oracle tools (initramfs.sh --oracles; see vmtest_oracle)
#   VMTEST_TIMEOUT  seconds (default 120)
#   VMTEST_MEM      MiB (default 1024)
#   VMTEST_LOG      also write the serial log to this file
#   VMTEST_QUIET=1  do not echo the serial log on stdout (it is still in VMTEST_LOG)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
say() { echo "run.sh: $*" >&2; }

if [ $# -lt 2 ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi
disk=$1
script=$2
shift 2
[ -f "$disk" ] || [ -b "$disk" ] || { say "no disk image $disk"; exit 2; }
command -v qemu-system-x86_64 >/dev/null 2>&1 || { say "qemu-system-x86_64 is missing"; exit 2; }

kernel="${VMTEST_KERNEL:-}"
if [ -z "$kernel" ]; then
    kdir="$("$here/kernel.sh")" || { say "no kernel"; exit 2; }
    kernel="$kdir/vmlinuz"
    [ ! -f "$kdir/vmlinux" ] || kernel="$kdir/vmlinux"
fi
work="$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")"
trap 'rm -rf "$work"' EXIT

initrd="${VMTEST_INITRD:-}"
if [ "$script" = none ] && [ -z "$initrd" ]; then
    say "SCRIPT none needs VMTEST_INITRD"
    exit 2
fi
if [ -z "$initrd" ]; then
    bin="${VMTEST_BIN:-$here/../../target/debug/seedpart}"
    [ -x "$bin" ] || { say "no seedpart binary at $bin (cargo build, or set VMTEST_BIN)"; exit 2; }
    initrd="$work/base.img"
    "$here/initramfs.sh" "$bin" "$initrd" || exit 2
fi

# The per-run layer: the script and the files, appended to the initramfs as one more archive.
if [ "$script" = none ]; then
    ln -s "$(realpath "$initrd")" "$work/initrd.img"
else
    mkdir -p "$work/layer/vmtest"
    if [ "$script" = - ]; then cat >"$work/layer/vmtest/script"; else cp "$script" "$work/layer/vmtest/script"; fi
    if [ -n "${VMTEST_FILES:-}" ]; then
        mkdir -p "$work/layer/vmtest/files"
        cp -a "$VMTEST_FILES/." "$work/layer/vmtest/files/"
    fi
    oracles=/dev/null
    if [ "${VMTEST_ORACLE:-}" = 1 ]; then
        oracles="$("$here/initramfs.sh" --oracles)" || exit 2
    fi
    {
        cat "$initrd" "$oracles" || { say "cannot read $initrd or $oracles"; exit 2; }
        (cd "$work/layer" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
    } >"$work/initrd.img"
fi

sector="${VMTEST_SECTOR:-512}"
case "$sector" in 512 | 4096) ;; *) say "VMTEST_SECTOR must be 512 or 4096"; exit 2 ;; esac
root="${VMTEST_ROOT:-/dev/vda1}"
# Boot time under TCG: the crypto self-tests (cryptomgr.notests) cost about a second; qboot
# instead of SeaBIOS and the PVH entry of an uncompressed vmlinux another second. The clock is
# HPET (qemu's virtual clock): TSC calibration goes wrong on a loaded host (a guest second
# once lasted 1/48 s), and tsc=reliable would then keep that for the whole boot.
append="console=ttyS0 panic=-1 oops=panic sysrq_always_enabled=1 loglevel=4 mitigations=off"
append+=" cryptomgr.notests no_timer_check clocksource=hpet"
append+=" vmtest.root=$root${VMTEST_FSTYPE:+ vmtest.fstype=$VMTEST_FSTYPE} ${VMTEST_APPEND:-}"
log="${VMTEST_LOG:-$work/serial.log}"
mkdir -p "$(dirname "$log")"
: >"$log"

# cache=unsafe: the guest's flushes are not passed on to the host disk, which only costs the
# host's durability; what the guest wrote is in the image file when qemu exits, power cut or not.
firmware=()
for f in /usr/share/qemu/qboot.rom /usr/share/qemu-*/qboot.rom; do
    if [ -f "$f" ]; then firmware=(-bios "$f"); break; fi
done
qemu=(qemu-system-x86_64 -accel tcg -smp 1 -m "${VMTEST_MEM:-1024}" "${firmware[@]}"
    -display none -monitor none -no-reboot -nodefaults
    -chardev "stdio,id=ser0,signal=off,logfile=$log" -serial chardev:ser0
    -kernel "$kernel" -initrd "$work/initrd.img" -append "$append"
    -drive "file=$disk,format=raw,if=none,id=d0,cache=unsafe"
    -device "virtio-blk-pci,drive=d0,logical_block_size=$sector,physical_block_size=$sector"
    "$@")

timeout="${VMTEST_TIMEOUT:-120}"
start=$(date +%s%N)
qrc=0
if [ "${VMTEST_QUIET:-}" = 1 ]; then
    timeout -k 5 "$timeout" "${qemu[@]}" </dev/null >/dev/null || qrc=$?
else
    timeout -k 5 "$timeout" "${qemu[@]}" </dev/null || qrc=$?
fi
ms=$((($(date +%s%N) - start) / 1000000))
secs="$((ms / 1000)).$(printf %03d $((ms % 1000)))"

end="$(tr -d '\r' <"$log" | sed -n 's/^===VMTEST-END rc=\([0-9]*\)===$/\1/p' | tail -n1)"
cut="$(tr -d '\r' <"$log" | grep -c '^===VMTEST-POWERCUT ' || true)"
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
    say "TIMEOUT after $timeout s ($disk)"
    exit 124
elif [ -n "$end" ]; then
    if [ "$end" -eq 0 ]; then
        say "ok: script passed; boot to poweroff $secs s"
        exit 0
    fi
    say "FAILED: script exited $end; boot to poweroff $secs s"
    exit 1
elif [ "$cut" -gt 0 ]; then
    say "power cut by the script after $secs s"
    exit 3
fi
say "FAILED: the VM stopped without an end marker after $secs s (qemu exit $qrc)"
exit 4
