# shellcheck shell=dash
# Helpers for VM test scripts, sourced by /init before the script (busybox sh, `set -e`).
# The host reads their markers (tests/vm/README.md, tests/vm/harness.rs).

# vmtest_section NAME CMD [ARG]...: runs CMD; its stdout goes to the log between
#   ===VMTEST-SECTION NAME===  and  ===VMTEST-SECTION-END NAME rc=N===
# and its stderr straight to the console (before the section). Returns CMD's status, so under
# `set -e` a failing command ends the script: add `|| true` when failure is expected.
vmtest_section() {
    _vs_name=$1
    shift
    _vs_rc=0
    "$@" >/tmp/vmtest-section.out || _vs_rc=$?
    echo "===VMTEST-SECTION $_vs_name==="
    cat /tmp/vmtest-section.out
    # The end marker must start a line even when the output does not end with one.
    if [ -s /tmp/vmtest-section.out ] && [ "$(tail -c 1 /tmp/vmtest-section.out | od -An -c | tr -d ' ')" != '\n' ]; then
        echo
    fi
    echo "===VMTEST-SECTION-END $_vs_name rc=$_vs_rc==="
    return "$_vs_rc"
}

# vmtest_partitions [DISK]: the kernel's view of DISK's partitions (default vda), one line each:
#   NAME START SIZE   (512-byte units, as sysfs gives them), then "disk SIZE".
vmtest_partitions() {
    _vp_disk=${1:-vda}
    for _vp in /sys/class/block/"$_vp_disk"/"$_vp_disk"*; do
        [ -e "$_vp/partition" ] || continue
        echo "${_vp##*/} $(cat "$_vp/start") $(cat "$_vp/size")"
    done
    echo "disk $(cat /sys/class/block/"$_vp_disk"/size)"
}

# vmtest_fs_size [DIR]: the mounted filesystem's size in bytes (default /sysroot), from statfs.
vmtest_fs_size() {
    stat -f -c '%S %b' "${1:-/sysroot}" | awk '{ printf "%.0f\n", $1 * $2 }'
}

# vmtest_powercut MS CMD [ARG]...: starts CMD in the background and cuts the power MS
# milliseconds later (sysrq b: an immediate reset, nothing synced; with -no-reboot qemu exits).
# Writes ===VMTEST-POWERCUT after_ms=MS command=running|exited=== first. Never returns.
# The disk keeps what the guest had written to it; the guest's page cache is lost. Console
# output of the last moments before the cut may be lost too (the marker is not).
vmtest_powercut() {
    _vp_ms=$1
    shift
    "$@" &
    _vp_pid=$!
    usleep $((_vp_ms * 1000))
    if kill -0 "$_vp_pid" 2>/dev/null; then _vp_state=running; else _vp_state=exited; fi
    echo "===VMTEST-POWERCUT after_ms=$_vp_ms command=$_vp_state==="
    stty -echo 2>/dev/null # TCSADRAIN: the marker is out before the reset
    echo b >/proc/sysrq-trigger
    sleep 60
}

# vmtest_powercut_random MIN_MS MAX_MS CMD [ARG]...: vmtest_powercut after a random delay.
vmtest_powercut_random() {
    _vr_min=$1
    _vr_max=$2
    shift 2
    _vr_r=$(od -An -tu4 -N4 /dev/urandom | tr -d ' ')
    vmtest_powercut $((_vr_min + _vr_r % (_vr_max - _vr_min + 1))) "$@"
}

# vmtest_oracle: puts the host tools packed into the initramfs (sfdisk, resize2fs, ...; see
# initramfs.sh) on PATH. They are kept off it otherwise, so seedpart cannot lean on them.
vmtest_oracle() {
    PATH=/opt/oracle/bin:$PATH
    export PATH
}
