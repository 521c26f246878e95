#!/usr/bin/env bash
# initramfs.sh BINARY [BINARY...] OUT
# initramfs.sh --oracles
#
# The first form writes OUT: an uncompressed initramfs for the VM tests, made of two
# concatenated cpio archives (the kernel unpacks them in turn):
#  - the base, cached under target/vm/initramfs/ and keyed by everything it is made of:
#    static busybox, the kernel's modules (virtio, virtio_net, xfs, btrfs, vfat, isofs, loop, virtio_scsi
#    and their dependencies, decompressed, with a modules.dep for busybox modprobe), /init
#    (tests/vm/init) and /vmtest/lib.sh;
#  - the binaries given (seedpart), in /usr/local/bin, with the libraries ldd names, stripped
#    (a debug seedpart shrinks from ~30 MB to ~5: each MB costs ~40 ms of boot under TCG).
# The second form prints the path of a cached archive of the host's "oracle" tools (sfdisk,
# sgdisk, resizepart, resize2fs, e2fsck, xfs_growfs, btrfs, ... with their libraries) under
# /opt/oracle/bin, off PATH unless a script calls vmtest_oracle; run.sh appends it to the
# initramfs when VMTEST_ORACLE=1.
#
# Environment: VMTEST_MODULES adds modules; VMTEST_ORACLE_TOOLS replaces the oracle list.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="${VMTEST_TARGET:-$here/../../target/vm}"
mkdir -p "$top"
top="$(cd "$top" && pwd)"
say() { echo "initramfs.sh: $*" >&2; }

oracle_mode=""
if [ "${1:-}" = --oracles ] && [ $# -eq 1 ]; then
    oracle_mode=1
elif [ $# -lt 2 ]; then
    echo "usage: $0 BINARY [BINARY...] OUT | $0 --oracles" >&2
    exit 2
else
    out="${*: -1}"
    bins=("${@:1:$#-1}")
    for b in "${bins[@]}"; do
        [ -x "$b" ] || { say "$b is not an executable"; exit 2; }
    done
fi
mkdir -p "$top/initramfs"

# Tests boot VMs in parallel and all of them may find a cache entry missing on a fresh machine:
# one builds while the others wait, then find it made. Without the lock, one process's cleanup
# of older keys deleted the entry another had just made, and booted a missing file.
exec 9>"$top/initramfs/.lock"
flock 9

# Copies executable $1 to $2 (a path inside staging dir $3) with the libraries ldd names.
copy_with_libs() {
    local src=$1 dst=$2 stage=$3 lib
    mkdir -p "$stage/$(dirname "$dst")"
    if command -v strip >/dev/null 2>&1 && strip -o "$stage/$dst" "$src" 2>/dev/null; then
        chmod 0755 "$stage/$dst"
    else
        cp -L "$src" "$stage/$dst"
    fi
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)"
    while read -r lib; do
        if [ -z "$lib" ] || [ -e "$stage/$lib" ]; then continue; fi
        mkdir -p "$stage/$(dirname "$lib")"
        cp -L "$lib" "$stage/$lib"
    done < <(ldd "$src" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (0x.*/\1/p')
}

mkcpio() { # mkcpio DIR > FILE: a reproducible newc archive of DIR, owned by root
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
}

if [ -n "$oracle_mode" ]; then
    oracles=()
    for t in ${VMTEST_ORACLE_TOOLS-sfdisk sgdisk partx resizepart blockdev blkid resize2fs e2fsck dumpe2fs xfs_growfs xfs_repair xfs_db btrfs}; do
        p="$(command -v "$t" 2>/dev/null || true)"
        # Only ELF tools: xfs_info, for one, is a shell script around xfs_spaceman.
        if [ -n "$p" ] && head -c 4 "$p" | grep -q 'ELF'; then oracles+=("$p"); else say "oracle $t: not here, skipped"; fi
    done
    okey="$(
        {
            sha256sum "$here/initramfs.sh" | cut -d' ' -f1
            if [ ${#oracles[@]} -gt 0 ]; then sha256sum "${oracles[@]}"; fi
        } | sha256sum | cut -c1-16
    )"
    layer="$top/initramfs/oracles-$okey.cpio"
    if [ ! -f "$layer" ]; then
        stage="$(mktemp -d "$top/initramfs/.stage.XXXXXX")"
        trap 'rm -rf "$stage" "$stage.cpio"' EXIT
        mkdir -p "$stage/opt/oracle/bin"
        for o in "${oracles[@]}"; do
            copy_with_libs "$o" "opt/oracle/bin/$(basename "$o")" "$stage"
        done
        mkcpio "$stage" >"$stage.cpio"
        find "$top/initramfs" -maxdepth 1 -name 'oracles-*.cpio' ! -name "oracles-$okey.cpio" -delete # older keys
        mv "$stage.cpio" "$layer"
        say "oracle tools $(basename "$layer"): $(du -h "$layer" | cut -f1): ${oracles[*]##*/}"
    fi
    echo "$layer"
    exit 0
fi

for t in cpio depmod modprobe busybox; do
    command -v "$t" >/dev/null 2>&1 || { say "$t is missing (tests/vm/deps.sh installs it)"; exit 1; }
done

kdir="$("$here/kernel.sh")"
kver="$(cat "$kdir/kver")"
busybox="$(command -v busybox)"

# Modules: required ones fail the build when missing, the others are skipped with a note.
required_modules=(virtio_pci virtio_blk)
optional_modules=(xfs btrfs vfat isofs nls_cp437 nls_iso8859_1 nls_utf8 loop virtio_scsi sd_mod virtio_net)
read -r -a extra_modules <<<"${VMTEST_MODULES:-}"

key="$(
    {
        basename "$kdir"
        sha256sum "$here/initramfs.sh" "$here/init" "$here/lib.sh" "$busybox" | cut -d' ' -f1
        echo "${required_modules[*]} ${optional_modules[*]} ${extra_modules[*]}"
    } | sha256sum | cut -c1-16
)"
base="$top/initramfs/base-$key.cpio"

if [ ! -f "$base" ]; then
    start=$(date +%s%N)
    stage="$(mktemp -d "$top/initramfs/.stage.XXXXXX")"
    trap 'rm -rf "$stage" "$stage.cpio"' EXIT
    mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc/vmtest,proc,sys,dev,run,tmp,sysroot,root,vmtest,opt/oracle/bin}
    copy_with_libs "$busybox" bin/busybox "$stage"
    while read -r applet; do
        [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
    done < <("$busybox" --list-full)
    if [ "$(id -u)" -eq 0 ]; then
        mknod -m 0600 "$stage/dev/console" c 5 1
    fi
    install -m 0755 "$here/init" "$stage/init"
    install -m 0644 "$here/lib.sh" "$stage/vmtest/lib.sh"
    echo "$kver" >"$stage/etc/vmtest/kver"

    # Module files in load order, dependencies first, each once.
    mroot="$kdir/root"
    mdir="lib/modules/$kver"
    : >"$stage/etc/vmtest/modules.list"
    declare -A seen=()
    for m in "${required_modules[@]}" "${optional_modules[@]}" "${extra_modules[@]}"; do
        [ -n "$m" ] || continue
        if ! deps="$(modprobe -d "$mroot" -S "$kver" --show-depends "$m" 2>/dev/null)"; then
            case " ${required_modules[*]} " in
            *" $m "*) say "module $m is not in kernel $kver"; exit 1 ;;
            *) say "module $m is not in kernel $kver: skipped"; continue ;;
            esac
        fi
        while read -r verb path _; do
            [ "$verb" = insmod ] || continue # "builtin NAME"
            rel="${path#"$mroot/$mdir/"}"
            dst="${rel%.xz}"
            dst="${dst%.zst}"
            dst="${dst%.gz}"
            [ -z "${seen[$dst]:-}" ] || continue
            seen[$dst]=1
            mkdir -p "$stage/$mdir/$(dirname "$dst")"
            case "$path" in
            *.xz) xz -dc "$path" >"$stage/$mdir/$dst" ;;
            *.zst) zstd -qdc "$path" >"$stage/$mdir/$dst" ;;
            *.gz) gzip -dc "$path" >"$stage/$mdir/$dst" ;;
            *) cp "$path" "$stage/$mdir/$dst" ;;
            esac
        done <<<"$deps"
        echo "$m $(sed -n 's/^insmod [^ ]*\/\([^/ ]*\)\.ko.*/\1/p' <<<"$deps" | tr '\n' ' ')" >>"$stage/etc/vmtest/modules.list"
    done
    # modules.dep for the copies, so that busybox modprobe works too.
    for f in modules.order modules.builtin modules.builtin.modinfo; do
        [ ! -f "$mroot/$mdir/$f" ] || cp "$mroot/$mdir/$f" "$stage/$mdir/"
    done
    depmod -b "$stage" "$kver"

    mkcpio "$stage" >"$stage.cpio"
    find "$top/initramfs" -maxdepth 1 -name 'base-*.cpio' ! -name "base-$key.cpio" -delete # older keys
    mv "$stage.cpio" "$base"
    rm -rf "$stage"
    trap - EXIT
    say "base $(basename "$base"): $(du -h "$base" | cut -f1), ${#seen[@]} modules, built in $((($(date +%s%N) - start) / 1000000)) ms"
fi

# The layer with the binaries under test: rebuilt every time (they change on every build).
layer="$(mktemp -d "$top/initramfs/.layer.XXXXXX")"
trap 'rm -rf "$layer"' EXIT
for b in "${bins[@]}"; do
    copy_with_libs "$b" "usr/local/bin/$(basename "$b")" "$layer"
done
mkdir -p "$(dirname "$out")"
tmp_out="$(mktemp "$out.XXXXXX")"
{
    cat "$base"
    mkcpio "$layer"
} >"$tmp_out"
chmod 0644 "$tmp_out"
mv "$tmp_out" "$out"
