#!/usr/bin/env bash
# Generates the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (gitignored): small
# valid partition tables, FAT and ISO 9660 config drives and JSON files, made with the same
# independent tools the tests use as oracles (sgdisk, sfdisk, mkfs.vfat + mtools, genisoimage,
# xorriso). Without them the fuzzers hardly get past the first magic number.
#
# Usage: fuzz/seeds.sh [--force]   (does nothing for a target whose corpus already has files,
# unless --force). A missing tool skips its seeds with a note; python3 is used only for the
# 4096-byte-sector GPT, which no partitioner writes into an image file.
#
# The disk targets (gpt, mbr) read an input as `gap: u32 LE in 4 KiB units | tail: u8 in KiB |
# bytes`, the disk `bytes[..n-tail] ++ gap zero bytes ++ bytes[n-tail..]` (fuzz/src/lib.rs,
# `Disk`), so a seed holds a table's sectors and not the empty space between them. The fat
# target zero-extends its input to the volume size of its boot sector, and the iso target
# reads its input as the image from byte 32768 on, so both seeds are trimmed of trailing zeros.
set -euo pipefail
cd "$(dirname "$0")"
force=0
[ "${1:-}" = "--force" ] && force=1

fixtures=""
for f in "${SEEDPART_FIXTURES:-}" ../../shared/fixtures /work/shared/fixtures; do
    if [ -n "$f" ] && [ -d "$f" ]; then
        fixtures=$f
        break
    fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

note() { echo "seeds: $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# want TARGET: whether its corpus is to be (re)generated; creates the directory.
want() {
    local d=corpus/$1
    if [ "$force" = 0 ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then
        return 1
    fi
    rm -rf "$d"
    mkdir -p "$d"
}

le32() {
    local v=$1
    # shellcheck disable=SC2059
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) \
        $((v >> 16 & 255)) $((v >> 24 & 255)))"
}
byte() {
    # shellcheck disable=SC2059
    printf "$(printf '\\x%02x' "$1")"
}

# disk_seed OUT IMG HEAD TAIL: the disk input for image IMG whose bytes between the first HEAD
# and the last TAIL are zeros (checked when there are at most 256 MiB of them).
disk_seed() {
    local out=$1 img=$2 head=$3 tail=$4 size gap
    size=$(stat -c %s "$img")
    gap=$((size - head - tail))
    if [ $gap -lt 0 ] || [ $((gap % 4096)) -ne 0 ] || [ $((tail % 1024)) -ne 0 ] ||
        [ $tail -gt $((255 * 1024)) ]; then
        echo "seeds: $img: bad split $head/$gap/$tail" >&2
        exit 1
    fi
    if [ $gap -le $((256 << 20)) ] &&
        ! cmp -s -n "$gap" <(tail -c +$((head + 1)) "$img") /dev/zero; then
        echo "seeds: $img: bytes $head..$((head + gap)) are not all zero" >&2
        exit 1
    fi
    {
        le32 $((gap / 4096))
        byte $((tail / 1024))
        head -c "$head" "$img"
        tail -c "$tail" "$img"
    } >"$out"
}

# raw_disk_seed OUT IMG [GAP_BYTES]: IMG as it is, on a disk GAP_BYTES larger (default 0).
raw_disk_seed() {
    {
        le32 $((${3:-0} / 4096))
        byte 0
        cat "$2"
    } >"$1"
}

# mbr_entry IMG SLOT BOOT TYPE START SECTORS [LBA_OF_SECTOR]: writes one 16-byte MBR/EBR entry
# (CHS fields set to the "beyond CHS" marker) and the 0x55AA signature, in 512-byte units.
mbr_entry() {
    local img=$1 slot=$2 boot=$3 type=$4 start=$5 sectors=$6 at=${7:-0}
    {
        byte "$boot"
        printf '\xfe\xff\xff'
        byte "$type"
        printf '\xfe\xff\xff'
        le32 "$start"
        le32 "$sectors"
    } | dd of="$img" bs=1 seek=$((at * 512 + 446 + 16 * slot)) conv=notrunc status=none
    printf '\x55\xaa' | dd of="$img" bs=1 seek=$((at * 512 + 510)) conv=notrunc status=none
}

# trim IMG SKIP OUT: IMG from byte SKIP on, without its trailing all-zero 512-byte blocks.
trim() {
    local img=$1 skip=$2 out=$3 blocks
    tail -c +$((skip + 1)) "$img" >"$tmp/trim"
    blocks=$(od -An -v -tx1 -w512 "$tmp/trim" | awk '/[1-9a-f]/ { n = NR } END { print n + 0 }')
    head -c $((blocks * 512)) "$tmp/trim" >"$out"
}

# ---- JSON -----------------------------------------------------------------------------------
meta_small='{"uuid": "0f6a3b1c-7e5d-4b8a-9c2d-1e3f4a5b6c7d", "name": "node", "hostname": "node-1.example.com", "launch_index": 0, "availability_zone": "nova", "project_id": "p"}'
meta_rich='{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "name": "test", "hostname": "test.novalocal",
 "admin_pass": "secret", "launch_index": "0", "availability_zone": "nova", "project_id": "x",
 "devices": [], "meta": {"role": "webserver", "essential": "false", "n": 3},
 "public_keys": {"mykey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x ops\n\n# comment\nssh-rsa AAAAB3NzaC1yc2E two\n", "k2": "ssh-ed25519 AAAA one"},
 "keys": [{"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAA one"},
          {"name": "cert", "type": "x509", "data": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}],
 "files": [{"path": "/etc/motd", "content_path": "/content/0000"},
           {"path": "/root/.ssh/config", "content_path": "/content/0001"}],
 "network_config": {"content_path": "/content/0002", "name": "/etc/network/interfaces"},
 "random_seed": "yu5ZnkqF2CqnDZVAfZgarG2nvSU+Xg4m6yCkbfXWnSI7wDDuZJuOkqaD5HYBlx8FJQD9ClPvlaoHsl2nL3sGXkIYaS95bPVm86WHUAdl2Hs0rHygmPGjnjS5lGEO5j0W/M5DHwdrHODHr9KGXkemjgKswOeKcpGrLu7w=="}'
meta_list_keys='{"uuid": "u", "public_keys": ["ssh-rsa A a", "ssh-rsa B b"], "name": "n"}'
network_rich='{
  "links": [
    {"id": "eth0", "type": "phy", "ethernet_mac_address": "FA:16:3E:00:00:01", "mtu": 9000},
    {"id": "eth1", "type": "phy", "ethernet_mac_address": "fa-16-3e-00-00-02", "mtu": 9000},
    {"id": "eth2", "type": "hw_veb", "ethernet_mac_address": "fa:16:3e:00:00:03", "name": "ens3"},
    {"id": "eth3", "type": null, "ethernet_mac_address": "fa:16:3e:00:00:04", "vif_id": "v"},
    {"id": "bond0", "type": "bond", "bond_mode": "active-backup", "bond_links": ["eth0", "eth1"],
     "ethernet_mac_address": "fa:16:3e:00:00:01", "bond_miimon": "100", "mtu": 9000},
    {"id": "bond1", "type": "bond", "bond_mode": 4, "bond_links": ["eth2", "eth3"],
     "bond_xmit_hash_policy": "layer3+4", "bond_lacp_rate": "fast"},
    {"id": "vlan0", "type": "vlan", "vlan_link": "bond0", "vlan_id": 101,
     "vlan_mac_address": "FA:16:3E:00:01:01", "neutron_port_id": "p-101"},
    {"id": "vlan1", "type": "vlan", "vlan_link": "bond1", "vlan_id": "102"}
  ],
  "networks": [
    {"id": "net0", "type": "ipv4", "link": "vlan0", "ip_address": "192.0.2.10", "netmask": "255.255.255.0",
     "network_id": "n0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"},
                {"network": "198.51.100.0", "netmask": "255.255.255.128", "gateway": "192.0.2.2", "metric": 50},
                {"network": "203.0.113.0/24", "gateway": "192.0.2.3", "metric": "200"}],
     "services": [{"type": "dns", "address": "192.0.2.53"}], "dns_search": ["example.com"]},
    {"id": "net1", "type": "ipv4_dhcp", "link": "vlan1", "network_id": "n1"},
    {"id": "net2", "type": "ipv6", "link": "eth2", "ip_address": "2001:db8::10/64",
     "routes": [{"network": "::", "netmask": "::", "gateway": "2001:db8::1"}],
     "dns_nameservers": ["2001:db8::53"]},
    {"id": "net3", "type": "ipv6_slaac", "link": "eth3", "ip_address": "2001:db8:1::5",
     "netmask": "ffff:ffff:ffff:ffff::", "prefix": 64}
  ],
  "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "2001:4860:4860::8888"},
               {"type": "ntp", "address": "pool.ntp.org"}]
}'

# The config drive the FAT and ISO seeds hold.
drive=$tmp/drive
mkdir -p "$drive/openstack/latest" "$drive/openstack/2012-08-10" "$drive/openstack/content" \
    "$drive/ec2/latest" "$drive/a/deeper/directory/tree"
printf '%s\n' "$meta_rich" >"$drive/openstack/latest/meta_data.json"
printf '%s\n' "$network_rich" >"$drive/openstack/latest/network_data.json"
printf '%s\n' "$meta_small" >"$drive/openstack/2012-08-10/meta_data.json"
printf '{"static": {"k": "v"}}\n' >"$drive/openstack/latest/vendor_data2.json"
printf '{}\n' >"$drive/openstack/latest/vendor_data.json"
printf '#cloud-config\nhostname: node-1\n' >"$drive/openstack/latest/user_data"
printf 'Welcome\n' >"$drive/openstack/content/0000"
printf 'Host *\n' >"$drive/openstack/content/0001"
printf 'auto lo\n' >"$drive/openstack/content/0002"
printf '{"instance-id": "i-1"}\n' >"$drive/ec2/latest/meta-data.json"
head -c 5000 /dev/zero | tr '\0' 'x' >"$drive/a/deeper/directory/tree/A file with a rather long name, for VFAT and Joliet.txt"
printf 'x' >"$drive/a/MiXeD.CaSe"

# Its small variant: one version directory, meta_data.json only.
small=$tmp/small
mkdir -p "$small/openstack/latest"
printf '%s\n' "$meta_small" >"$small/openstack/latest/meta_data.json"

json_fixtures() { # NAME...: every fixture file with one of these names
    [ -n "$fixtures" ] || return 0
    local n
    for n in "$@"; do
        find "$fixtures" -type f -name "$n"
    done | sort
}

if want meta_data; then
    printf '%s' "$meta_small" >corpus/meta_data/small.json
    printf '%s' "$meta_rich" >corpus/meta_data/rich.json
    printf '%s' "$meta_list_keys" >corpus/meta_data/list-keys.json
    i=0
    for f in $(json_fixtures meta_data.json meta-data.json vendor_data.json); do
        cat "$f" >"corpus/meta_data/fixture-$i.json"
        i=$((i + 1))
    done
fi

if want network_data; then
    printf '%s' "$network_rich" >corpus/network_data/rich.json
    printf '{"links": [], "networks": [], "services": []}' >corpus/network_data/empty.json
    i=0
    for f in $(json_fixtures network_data.json network_info.json); do
        cat "$f" >"corpus/network_data/fixture-$i.json"
        i=$((i + 1))
    done
fi

# ---- GPT ------------------------------------------------------------------------------------
# gpt4k IMG SIZE ENTRIES PART...: a GPT with 4096-byte sectors (PART is START:END:NAME in
# 4096-byte LBAs, Linux data type), protective MBR included.
gpt4k() {
    python3 - "$@" <<'PY'
import struct, sys, uuid, zlib
img, size, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parts = [p.split(":") for p in sys.argv[4:]]
ss = 4096
sectors = size // ss
arr_sectors = (n * 128 + ss - 1) // ss
linux = uuid.UUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4").bytes_le
arr = bytearray(n * 128)
for i, (s, e, name) in enumerate(parts):
    arr[i * 128:(i + 1) * 128] = (linux + uuid.uuid4().bytes_le + struct.pack("<QQQ", int(s), int(e), 0)
                                  + name.encode("utf-16-le").ljust(72, b"\0"))
first, last = 2 + arr_sectors, sectors - 2 - arr_sectors
disk_guid = uuid.uuid4().bytes_le
def header(me, alt, arr_lba):
    h = struct.pack("<8sIIIIQQQQ16sQIII", b"EFI PART", 0x10000, 92, 0, 0, me, alt, first, last,
                    disk_guid, arr_lba, n, 128, zlib.crc32(arr))
    h = h[:16] + struct.pack("<I", zlib.crc32(h)) + h[20:]
    return h.ljust(ss, b"\0")
with open(img, "r+b") as f:
    mbr = bytearray(512)
    mbr[446:462] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack("<II", 1, min(sectors - 1, 0xFFFFFFFF))
    mbr[510:512] = b"\x55\xaa"
    f.write(mbr)
    f.seek(ss); f.write(header(1, sectors - 1, 2))
    f.seek(2 * ss); f.write(arr)
    f.seek((sectors - 1 - arr_sectors) * ss); f.write(arr)
    f.seek((sectors - 1) * ss); f.write(header(sectors - 1, 1, sectors - 1 - arr_sectors))
PY
}

if want gpt; then
    if have sgdisk; then
        g=$tmp/g.img
        # Root and config-v2 after it, free space behind: the seed's own proposal.
        rm -f "$g" && truncate -s 8M "$g"
        sgdisk -o -n 1:2048:+1M -t 1:8300 -c 1:root -n 2:0:+1M -t 2:8300 -c 2:config-v2 "$g" >/dev/null
        disk_seed corpus/gpt/proposal "$g" 20480 20480
        # The same with its primary header destroyed: read from the backup.
        cp "$g" "$tmp/g2.img"
        dd if=/dev/zero of="$tmp/g2.img" bs=512 seek=1 count=1 conv=notrunc status=none
        disk_seed corpus/gpt/backup-only "$tmp/g2.img" 20480 20480
        # Ironic's layout: root, then (after `sgdisk -e`) a config partition at the disk's end.
        rm -f "$g" && truncate -s 96M "$g"
        sgdisk -o -n 1:2048:+2M -t 1:8300 -c 1:root -n 2:-64M:0 -t 2:0700 "$g" >/dev/null
        disk_seed corpus/gpt/ironic-end "$g" 20480 20480
        # A small golden image, then the same written onto a 64 MiB disk (backup short of the end).
        rm -f "$g" && truncate -s 64K "$g"
        sgdisk -o -a 8 -n 1:40:0 -t 1:8300 -c 1:root "$g" >/dev/null
        raw_disk_seed corpus/gpt/golden "$g"
        raw_disk_seed corpus/gpt/golden-on-bigger-disk "$g" $((64 << 20))
        # Four entries only, and many small partitions.
        rm -f "$g" && truncate -s 4M "$g"
        sgdisk -o -S 4 -a 8 -n 1:8:+64 -n 2:0:+64 -n 3:0:+1M -c 3:config-v2 -n 4:0:0 "$g" >/dev/null
        disk_seed corpus/gpt/four-entries "$g" 4096 4096
        rm -f "$g" && truncate -s 1M "$g"
        args=()
        for i in $(seq 1 12); do args+=(-n "$i:0:+16"); done
        sgdisk -o -a 8 "${args[@]}" -c 12:config-v2 "$g" >/dev/null
        disk_seed corpus/gpt/twelve "$g" 20480 20480
    else
        note "no sgdisk: no 512-byte GPT seeds"
    fi
    if have python3; then
        g=$tmp/g4k.img
        rm -f "$g" && truncate -s 16M "$g"
        gpt4k "$g" $((16 << 20)) 128 256:511:root 512:767:config-v2
        disk_seed corpus/gpt/4k-proposal "$g" 24576 20480
        rm -f "$g" && truncate -s 8M "$g"
        gpt4k "$g" $((8 << 20)) 32 256:1023:root
        disk_seed corpus/gpt/4k-32-entries "$g" 12288 8192
    else
        note "no python3: no 4096-byte-sector GPT seeds"
    fi
fi

# ---- MBR ------------------------------------------------------------------------------------
if want mbr; then
    m=$tmp/m.img
    if have sfdisk; then
        # Root, then the seed's 0x99 proposal, free space behind.
        rm -f "$m" && truncate -s 8M "$m"
        printf 'label: dos\nstart=2048, size=2048, type=83\nstart=4096, size=2048, type=99\n' |
            sfdisk -q "$m"
        disk_seed corpus/mbr/proposal "$m" 4096 0
        # An extended partition with three logicals (root the second one), on a larger disk.
        rm -f "$m" && truncate -s 128K "$m"
        printf 'label: dos\nstart=2, size=30, type=83\nstart=32, size=224, type=5\nstart=34, size=30, type=83\nstart=66, size=60, type=83\nstart=130, size=100, type=99\n' |
            sfdisk -q "$m"
        raw_disk_seed corpus/mbr/logicals "$m"
        raw_disk_seed corpus/mbr/logicals-bigger-disk "$m" $((16 << 20))
        # Ironic on MBR: root, and the config partition as the last primary at the disk's end.
        rm -f "$m" && truncate -s 128M "$m"
        printf 'label: dos\nstart=2048, size=4096, type=83, bootable\nstart=65536, size=131072, type=c\n' |
            sfdisk -q "$m"
        disk_seed corpus/mbr/ironic-end "$m" 4096 0
    else
        note "no sfdisk: no MBR seeds from sfdisk"
    fi
    # A disk past 2 TiB: the config partition at the 2 TiB mark, root before it.
    rm -f "$m" && truncate -s 4K "$m"
    mbr_entry "$m" 0 128 131 2048 $(((1 << 32) - 2048 - 131072))
    mbr_entry "$m" 1 0 12 $(((1 << 32) - 131072)) 131072
    raw_disk_seed corpus/mbr/past-2tib "$m" $((3 << 40))
    # Logicals out of disk order (L5 at 100..130, L6 at 50..60, L7 at 200..250; EBRs at 32, 40
    # and 45), which sfdisk and the kernel accept, and an EBR inside the logical before it (L6's
    # at LBA 65, inside L5 at 36..66): the planner must not grow one logical over another.
    rm -f "$m" && truncate -s 128K "$m"
    mbr_entry "$m" 0 0 131 2 30
    mbr_entry "$m" 1 0 5 32 224
    mbr_entry "$m" 0 0 131 68 30 32
    mbr_entry "$m" 1 0 5 8 1 32
    mbr_entry "$m" 0 0 131 10 10 40
    mbr_entry "$m" 1 0 5 13 1 40
    mbr_entry "$m" 0 0 131 155 50 45
    raw_disk_seed corpus/mbr/logicals-out-of-order "$m" $((16 << 20))
    rm -f "$m" && truncate -s 128K "$m"
    mbr_entry "$m" 0 0 131 2 30
    mbr_entry "$m" 1 0 5 32 224
    mbr_entry "$m" 0 0 131 4 30 32
    mbr_entry "$m" 1 0 5 33 1 32
    mbr_entry "$m" 0 0 131 1 60 65
    raw_disk_seed corpus/mbr/ebr-inside-logical "$m" $((16 << 20))
    # A 4096-byte-sector image: only a FAT boot sector at 4096 * start tells the sector size.
    if have mkfs.vfat; then
        rm -f "$m" && truncate -s 4K "$m"
        mbr_entry "$m" 0 0 12 1 512
        rm -f "$tmp/v.img" && mkfs.vfat -C -S 4096 -n CONFIG-2 "$tmp/v.img" 2048 >/dev/null
        head -c 16384 "$tmp/v.img" >>"$m"
        raw_disk_seed corpus/mbr/4k-vfat "$m" $((4 << 20))
    fi
fi

# ---- FAT ------------------------------------------------------------------------------------
# fat NAME KIB TREE MKFS_ARGS...: a FAT volume holding TREE, trimmed of trailing zeros.
fat() {
    local name=$1 kib=$2 tree=$3 v=$tmp/fat.img
    shift 3
    rm -f "$v"
    local out
    out=$(mkfs.vfat -C "$@" "$v" "$kib" 2>&1) || {
        echo "$out" >&2
        exit 1
    }
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "$v" "$tree"/* ::/
    trim "$v" 0 "corpus/fat/$name"
}

if want fat; then
    if have mkfs.vfat && have mcopy; then
        fat fat12 1024 "$drive" -n CONFIG-2 -F 12
        fat fat12-small 1024 "$small" -n config-2 -F 12
        fat fat16 2400 "$drive" -n CONFIG-2 -F 16 -s 1
        fat fat12-4k-sectors 2048 "$drive" -n CONFIG-2 -F 12 -S 4096 -s 1
        fat fat16-4k-sectors 20480 "$small" -n CONFIG-2 -F 16 -S 4096 -s 1
        fat fat32 34000 "$drive" -n CONFIG-2 -F 32 -s 1 -f 1
    else
        note "no mkfs.vfat or mcopy: no FAT seeds"
    fi
fi

# ---- ISO 9660 -------------------------------------------------------------------------------
# iso NAME TREE TOOL ARGS...: an ISO image of TREE, from byte 32768 on, trimmed of zeros.
iso() {
    local name=$1 tree=$2 i=$tmp/iso.img
    shift 2
    rm -f "$i"
    "$@" -o "$i" "$tree" 2>/dev/null
    trim "$i" 32768 "corpus/iso/$name"
}

if want iso; then
    if have genisoimage; then
        iso rr-joliet "$drive" genisoimage -quiet -no-pad -J -r -V config-2
        iso rr "$drive" genisoimage -quiet -no-pad -r -V config-2
        iso joliet "$drive" genisoimage -quiet -no-pad -J -joliet-long -V config-2
        iso plain-level3 "$small" genisoimage -quiet -no-pad -iso-level 3 -V config-2
        iso small "$small" genisoimage -quiet -no-pad -J -r -V config-2
    else
        note "no genisoimage: no ISO seeds from it"
    fi
    if have xorriso; then
        iso xorriso "$drive" xorriso -as mkisofs -quiet -J -r -V config-2
    fi
fi

# ---- Ironic's configdrive blob ----------------------------------------------------------------
if want blob; then
    printf '{"meta_data": %s, "network_data": %s, "user_data": "#cloud-config\\nhostname: x\\n", "vendor_data": {"k": 1}}' \
        "$meta_rich" "$network_rich" >corpus/blob/json
    printf '{"meta_data": %s, "user_data": {"a": [1]}}' "$meta_small" >corpus/blob/json-small
    if have genisoimage; then
        genisoimage -quiet -no-pad -J -r -V config-2 -o "$tmp/b.iso" "$small" 2>/dev/null
        gzip -9 -n -c "$tmp/b.iso" >corpus/blob/iso.gz
        base64 -w0 corpus/blob/iso.gz >corpus/blob/iso.gz.b64
        base64 "$tmp/b.iso" >"$tmp/b.b64"
        head -c 20000 "$tmp/b.b64" >corpus/blob/iso.b64-truncated
        head -c 40960 "$tmp/b.iso" >corpus/blob/iso-head
    fi
fi

for t in corpus/*/; do
    note "$(basename "$t"): $(find "$t" -type f | wc -l) seeds, $(du -sk "$t" | cut -f1) KiB"
done
