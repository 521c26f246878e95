#!/usr/bin/env bash
# The demo (README): builds a small golden disk image, writes it onto a larger "disk", adds a
# config drive the way a deployer would (`seedpart build`, and Ironic's ISO blob), and shows
# what `seedpart inspect` finds and plans. Everything lives under target/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --locked -q
sp=target/release/seedpart
d=target/demo
rm -rf "$d" && mkdir -p "$d"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a 1 GiB golden image: GPT, one ext4 root partition"
truncate -s 1G "$d/golden.img"
sgdisk -n 1:2048:0 -t 1:8300 -c 1:root "$d/golden.img" >/dev/null
mkfs.ext4 -q -F -E offset=$((2048 * 512)) "$d/golden.img" $(( (1024 - 2) * 1024 ))k
sfdisk -l "$d/golden.img" | sed 's/^/  /'

step "the deployer writes it onto a 4 GiB disk (its backup GPT header is now short of the end)"
cp --sparse=always "$d/golden.img" "$d/disk.img"
truncate -s 4G "$d/disk.img"

step "a config drive: meta_data.json, network_data.json, user_data"
mkdir -p "$d/drive/openstack/latest"
cat > "$d/drive/openstack/latest/meta_data.json" <<'JSON'
{"uuid": "0f6a3b1c-7e5d-4b8a-9c2d-1e3f4a5b6c7d", "name": "demo", "hostname": "demo-node.example.com",
 "public_keys": {"ops": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOwQ7wIvNdn1wV0dJ3M0wPq1Uo0bQ6kFbXnGm7h9Qm3x ops@example"},
 "launch_index": 0, "availability_zone": "nova"}
JSON
cat > "$d/drive/openstack/latest/network_data.json" <<'JSON'
{"links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56", "mtu": 1500}],
 "networks": [{"id": "net0", "type": "ipv4", "link": "tap0", "ip_address": "10.0.2.15", "netmask": "255.255.255.0",
   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.2.2"}]}],
 "services": [{"type": "dns", "address": "10.0.2.3"}]}
JSON
printf '#!/bin/sh\necho "hello from user-data" > /var/tmp/seedpart-demo\n' > "$d/drive/openstack/latest/user_data"
find "$d/drive" -type f | sed "s|^$d/drive/|  |"

step "seedpart build --disk disk.img --from drive --at end   (Ironic's place: the last 64 MiB)"
"$sp" build --disk "$d/disk.img" --from "$d/drive" --at end
sgdisk -v "$d/disk.img" | sed 's/^/  sgdisk -v: /' | grep -v '^  sgdisk -v: $'
sfdisk -l "$d/disk.img" | sed 's/^/  /'

step "seedpart inspect --device disk.img"
"$sp" inspect --device "$d/disk.img"

step "seedpart inspect --device disk.img --json"
"$sp" inspect --device "$d/disk.img" --json

step "Ironic's own form: a gzipped, base64 ISO 9660 configdrive, written as is on an MBR disk"
truncate -s 1G "$d/mbr.img"
echo 'start=2048, type=83' | sfdisk -q "$d/mbr.img"
truncate -s 4G "$d/mbr.img"
genisoimage -quiet -J -r -V config-2 -o "$d/drive.iso" "$d/drive"
gzip -c "$d/drive.iso" | base64 -w0 > "$d/configdrive.b64"
"$sp" build --disk "$d/mbr.img" --configdrive "$d/configdrive.b64" --at end
"$sp" inspect --device "$d/mbr.img"
