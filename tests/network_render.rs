//! The network renderers against golden files, and their output against the real tools:
//! `netplan generate`, `nmcli --offline`, `ifquery`/`ifup --no-act`, and systemd-networkd's
//! documented keys. Cases: the real drives in shared/fixtures and the shapes Nova's and
//! cloud-init's documentation describe (tests/golden/network/<case>/network_data.json).
//!
//! `SEEDPART_BLESS=1 cargo test --test network_render` rewrites the golden files.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use seedpart::apply::network::{RenderedFile, Stack, render};
use seedpart::configdrive::NetworkData;
use seedpart::configdrive::network_data::{LinkType, NetworkType};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/network");

/// Cases taken from shared/fixtures: (case, path under fixtures/).
const FIXTURE_CASES: &[(&str, &str)] = &[
    (
        "vexxhost",
        "glean/vexxhost/openstack/latest/network_data.json",
    ),
    (
        "rax-iad",
        "glean/rax-iad/openstack/latest/network_data.json",
    ),
    (
        "liberty",
        "glean/liberty/openstack/latest/network_info.json",
    ),
    (
        "kubevirt-config-drive",
        "afterburn/kubevirt/config_drive/openstack/latest/network_data.json",
    ),
    (
        "kubevirt-dhcp-static-gw-dns",
        "afterburn/kubevirt/dhcp_static_gw_dns/openstack/latest/network_data.json",
    ),
];

/// Cases written here, each `tests/golden/network/<case>/network_data.json`.
const OWN_CASES: &[&str] = &[
    "nova-phy-static",
    "bond-vlan",
    "bond-modes",
    "ipv6",
    "routes-metrics",
    "dns-levels",
    "unnamed-bonds",
    "link-types",
];

struct Case {
    name: String,
    net: NetworkData,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    match fixtures() {
        Some(f) => {
            for (name, rel) in FIXTURE_CASES {
                let bytes = fs::read(f.join(rel)).unwrap();
                out.push(Case {
                    name: name.to_string(),
                    net: NetworkData::parse(rel, &bytes).unwrap(),
                });
            }
        }
        None => println!(
            "SKIP: no shared/fixtures beside the repository: the fixture cases are not checked"
        ),
    }
    for name in OWN_CASES {
        let p = Path::new(GOLDEN).join(name).join("network_data.json");
        let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        out.push(Case {
            name: name.to_string(),
            net: NetworkData::parse("network_data.json", &bytes).unwrap(),
        });
    }
    out
}

fn rendered(case: &Case, stack: Stack) -> Vec<RenderedFile> {
    render(&case.net, stack).unwrap_or_else(|e| panic!("{} / {stack}: {e}", case.name))
}

/// Writes `files` under `root` with their modes.
fn write_tree(root: &Path, files: &[RenderedFile]) {
    for f in files {
        let p = root.join(f.path.as_str());
        write_file(&p, &f.contents);
        fs::set_permissions(&p, fs::Permissions::from_mode(f.mode)).unwrap();
    }
}

fn listing(files: &[RenderedFile]) -> String {
    files
        .iter()
        .map(|f| format!("{:04o} {}\n", f.mode, f.path))
        .collect()
}

fn read_tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(d: &Path, base: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, fs::read_to_string(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn golden_files() {
    let bless = std::env::var_os("SEEDPART_BLESS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for case in cases() {
        for stack in Stack::ALL {
            let files = rendered(&case, stack);
            let dir = Path::new(GOLDEN).join(&case.name).join(stack.name());
            let mut want: BTreeMap<String, String> = files
                .iter()
                .map(|f| (f.path.to_string(), f.contents.clone()))
                .collect();
            want.insert("files.txt".into(), listing(&files));
            if bless {
                let _ = fs::remove_dir_all(&dir);
                for (rel, c) in &want {
                    let p = dir.join(rel);
                    fs::create_dir_all(p.parent().unwrap()).unwrap();
                    fs::write(p, c).unwrap();
                }
                continue;
            }
            let have = read_tree(&dir);
            for (rel, c) in &want {
                match have.get(rel) {
                    None => problems.push(format!("{}: missing", dir.join(rel).display())),
                    Some(h) if h != c => problems.push(format!(
                        "{}: differs; rendered now:\n{c}",
                        dir.join(rel).display()
                    )),
                    Some(_) => {}
                }
            }
            for rel in have.keys().filter(|k| !want.contains_key(*k)) {
                problems.push(format!("{}: no longer rendered", dir.join(rel).display()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} golden file problem(s) (SEEDPART_BLESS=1 rewrites them after review):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn every_file_has_the_header_and_rendering_is_deterministic() {
    for case in cases() {
        for stack in Stack::ALL {
            let a = rendered(&case, stack);
            assert_eq!(a, rendered(&case, stack), "{} / {stack}", case.name);
            let mut paths: Vec<_> = a.iter().map(|f| f.path.clone()).collect();
            paths.sort();
            assert_eq!(paths, a.iter().map(|f| f.path.clone()).collect::<Vec<_>>());
            for f in &a {
                assert!(
                    f.contents
                        .starts_with("# generated by seedpart from network_data.json\n"),
                    "{} / {stack}: {}",
                    case.name,
                    f.path
                );
                let want_mode = match stack {
                    Stack::NetworkManager | Stack::Netplan => 0o600,
                    _ => 0o644,
                };
                assert_eq!(f.mode, want_mode, "{}", f.path);
            }
        }
    }
}

/// The systemd-networkd files `all` (concatenated) match every NIC of `net` by MAC and hold
/// every static address (`expected_facts`).
#[track_caller]
fn assert_networkd_has_the_facts(all: &str, net: &NetworkData, ctx: &str) {
    let (macs, addrs) = expected_facts(net);
    for m in &macs {
        assert!(
            all.contains(&format!("MACAddress={m}")),
            "{ctx}: no networkd file matches {m}:\n{all}"
        );
    }
    for a in &addrs {
        assert!(
            all.contains(&format!("Address={a}")),
            "{ctx}: no Address={a}:\n{all}"
        );
    }
}

/// What every stack must mention for `net`: the MAC of each NIC that is configured (has a
/// network, is a bond member or a VLAN parent), and each static address with its prefix.
fn expected_facts(net: &NetworkData) -> (BTreeSet<String>, BTreeSet<String>) {
    let used = |id: &str| {
        net.networks_on(id).next().is_some()
            || net
                .links
                .iter()
                .any(|l| l.bond_links.iter().any(|m| m == id) || l.vlan_link.as_deref() == Some(id))
    };
    let macs = net
        .links
        .iter()
        .filter(|l| l.link_type.is_physical() && used(&l.id))
        .filter_map(|l| l.ethernet_mac_address.as_ref())
        .map(|m| m.to_string())
        .collect();
    let addrs = net
        .networks
        .iter()
        .filter(|n| n.network_type.is_static())
        .filter(|n| {
            // Addresses on bond members are dropped (and logged).
            !net.links.iter().any(|l| l.bond_links.contains(&n.link))
        })
        .map(|n| format!("{}/{}", n.ip_address.unwrap(), n.prefix_len.unwrap()))
        .collect();
    (macs, addrs)
}

/// Runs `cmd`: whether it succeeded, its stdout and its stderr.
fn run_command(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// netplan

fn netplan_generate(root: &Path) -> (bool, String, String) {
    run_command(
        tool_command("netplan")
            .arg("generate")
            .arg("--root-dir")
            .arg(root),
    )
}

#[test]
fn netplan_generate_accepts_every_case() {
    if !have_tool("netplan") {
        println!("SKIP: netplan is not installed (scripts/deps.sh installs netplan.io)");
        return;
    }
    // The oracle can fail: a YAML netplan refuses.
    let t = tempfile::tempdir().unwrap();
    write_tree(
        t.path(),
        &[RenderedFile {
            path: seedpart::fs::RelPath::parse("etc/netplan/50-seedpart.yaml").unwrap(),
            mode: 0o600,
            contents: "network:\n  version: 2\n  ethernets:\n    \"x\":\n      dhcp4: maybe\n"
                .into(),
        }],
    );
    assert!(!netplan_generate(t.path()).0, "netplan accepted a bad file");

    let mut checked = 0;
    for case in cases() {
        let files = rendered(&case, Stack::Netplan);
        if files.is_empty() {
            continue;
        }
        let t = tempfile::tempdir().unwrap();
        write_tree(t.path(), &files);
        let (ok, out, err) = netplan_generate(t.path());
        assert!(
            ok && err.trim().is_empty(),
            "{}: netplan generate failed or warned:\n{out}{err}\n{}",
            case.name,
            files[0].contents
        );
        let generated = read_tree(&t.path().join("run/systemd/network"));
        assert!(
            !generated.is_empty(),
            "{}: netplan generated nothing",
            case.name
        );
        let all: String = generated.values().cloned().collect();
        let ctx = format!("{} (what netplan generated)", case.name);
        assert_networkd_has_the_facts(&all, &case.net, &ctx);
        // Bonds and VLANs become .netdev files of the right kind.
        let bonds = case
            .net
            .links
            .iter()
            .filter(|l| l.link_type == LinkType::Bond)
            .count();
        let vlans = case
            .net
            .links
            .iter()
            .filter(|l| l.link_type == LinkType::Vlan)
            .count();
        assert_eq!(all.matches("Kind=bond").count(), bonds, "{}", case.name);
        assert_eq!(all.matches("Kind=vlan").count(), vlans, "{}", case.name);
        checked += 1;
    }
    assert!(checked >= OWN_CASES.len());
}

// ---------------------------------------------------------------------------------------------
// NetworkManager

/// Runs a keyfile through NetworkManager's own keyfile reader and verifier
/// (`nmcli --offline connection modify`, NetworkManager ≥ 1.42: reads a keyfile on stdin,
/// verifies the connection, prints it back normalized). `None` when this nmcli has no
/// `--offline`.
fn nm_roundtrip(contents: &str, id: &str) -> Option<(bool, String, String)> {
    let out = run_stdin_raw(
        "nmcli",
        &["--offline", "connection", "modify", "connection.id", id],
        contents,
    )
    .ok()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if err.contains("--offline") && err.contains("nknown") {
        return None;
    }
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        err,
    ))
}

/// A keyfile as section -> key -> value (comments and blank lines dropped).
fn ini(s: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut sec = String::new();
    for line in s.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sec = name.to_string();
            out.entry(sec.clone()).or_default();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line:?}"));
        assert!(
            out.entry(sec.clone())
                .or_default()
                .insert(k.into(), v.into())
                .is_none(),
            "duplicate key {k} in [{sec}]"
        );
    }
    out
}

#[test]
fn networkmanager_reads_every_keyfile() {
    if !have_tool("nmcli") {
        println!("SKIP: nmcli is not installed (scripts/deps.sh installs network-manager)");
        return;
    }
    // The oracle can fail.
    let Some((ok, _, _)) = nm_roundtrip(
        "[connection]\nid=x\nuuid=8a5b1f7e-0000-8000-8000-000000000001\ntype=ethernet\n\n[ipv4]\nmethod=bogus\n",
        "x",
    ) else {
        println!("SKIP: this nmcli has no --offline (NetworkManager < 1.42)");
        return;
    };
    assert!(!ok, "nmcli accepted ipv4.method=bogus");

    for case in cases() {
        let files = rendered(&case, Stack::NetworkManager);
        let mut uuids = BTreeMap::new();
        for f in &files {
            let mine = ini(&f.contents);
            let id = &mine["connection"]["id"];
            let (ok, out, err) = nm_roundtrip(&f.contents, id).unwrap();
            assert!(
                ok && err.trim().is_empty(),
                "{} {}: NetworkManager refused it: {err}\n{}",
                case.name,
                f.path,
                f.contents
            );
            // Every key written is one NetworkManager knows: it comes back (normalized) from
            // its reader; unknown keys and sections would be dropped silently.
            let back = ini(&out);
            for (sec, keys) in &mine {
                let Some(bsec) = back.get(sec) else {
                    panic!(
                        "{} {}: NetworkManager dropped [{sec}]:\n{out}",
                        case.name, f.path
                    )
                };
                for (k, v) in keys {
                    let Some(bv) = bsec.get(k) else {
                        panic!(
                            "{} {}: NetworkManager dropped {sec}.{k}:\n{out}",
                            case.name, f.path
                        )
                    };
                    let norm = |s: &str| s.to_ascii_lowercase().trim_end_matches(';').to_string();
                    assert_eq!(norm(bv), norm(v), "{} {}: {sec}.{k}", case.name, f.path);
                }
            }
            uuids.insert(mine["connection"]["uuid"].clone(), f.path.to_string());
        }
        // References (bond members' master, VLANs' parent) name a connection written here.
        for f in &files {
            let mine = ini(&f.contents);
            for r in [
                mine["connection"].get("master"),
                mine.get("vlan").and_then(|v| v.get("parent")),
            ]
            .into_iter()
            .flatten()
            {
                assert!(
                    uuids.contains_key(r),
                    "{} {}: {r} names no connection",
                    case.name,
                    f.path
                );
            }
        }
        // And every MAC and static address is in some profile.
        let all: String = files
            .iter()
            .map(|f| f.contents.to_ascii_lowercase())
            .collect();
        let (macs, addrs) = expected_facts(&case.net);
        for m in macs.iter().chain(&addrs) {
            assert!(all.contains(m.as_str()), "{}: {m} in no keyfile", case.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// ifupdown

/// How many interfaces ifupdown names outright: bonds, VLANs and NICs that have no MAC address.
fn by_name(net: &NetworkData) -> usize {
    net.links
        .iter()
        .filter(|l| !l.link_type.is_physical() || l.ethernet_mac_address.is_none())
        .count()
}

#[test]
fn ifupdown_parses_every_interfaces_file() {
    if !have_tool("ifquery") {
        println!("SKIP: ifquery is not installed (scripts/deps.sh installs ifupdown)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state");
    fs::create_dir_all(&state).unwrap();
    let query = |file: &Path, args: &[&str]| {
        run_command(
            tool_command("ifquery")
                .arg("-i")
                .arg(file)
                .arg("--state-dir")
                .arg(&state)
                .args(args),
        )
    };
    // The oracle can fail.
    let bad = t.path().join("bad");
    fs::write(&bad, "auto x\niface x inet bogus\n").unwrap();
    let (ok, _, _) = query(&bad, &["x"]);
    assert!(!ok, "ifquery accepted method bogus");

    for case in cases() {
        let files = rendered(&case, Stack::Ifupdown);
        if files.is_empty() {
            continue;
        }
        let f = t.path().join(&case.name);
        fs::write(&f, &files[0].contents).unwrap();
        let (ok, out, err) = query(&f, &["--list", "--all"]);
        assert!(ok && err.is_empty(), "{}: {err}", case.name);
        // The list holds bonds and VLANs (NIC patterns match no interface of this machine).
        let listed: BTreeSet<&str> = out.lines().filter(|l| *l != "lo").collect();
        // Every logical interface parses, with its options.
        let logical: Vec<String> = files[0]
            .contents
            .lines()
            .filter_map(|l| l.strip_prefix("iface "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert!(!logical.is_empty());
        for name in &logical {
            let (ok, _, err) = query(&f, &[name]);
            assert!(ok && err.is_empty(), "{} {name}: {err}", case.name);
        }
        let created = by_name(&case.net);
        assert_eq!(
            listed.len(),
            created,
            "{}: ifquery --list --all lists the bonds and VLANs, not the MAC patterns: {listed:?}",
            case.name
        );
    }
}

/// In a network namespace of its own, veth interfaces get the NICs' MAC addresses; `ifup
/// --no-act --all` must then find every NIC by its address and print the commands it would run.
#[test]
fn ifupdown_finds_nics_by_mac_in_a_namespace() {
    if !have_tool("ifup") || !have_tool("unshare") || !have_tool("ip") {
        println!("SKIP: ifup, unshare or ip is not installed");
        return;
    }
    let probe = run_command(tool_command("unshare").args([
        "-n", "ip", "link", "add", "sp0", "type", "veth", "peer", "name", "sp1",
    ]));
    if !probe.0 {
        println!(
            "SKIP: cannot make veth interfaces in a new network namespace here: {}",
            probe.2
        );
        return;
    }
    for case in cases() {
        let files = rendered(&case, Stack::Ifupdown);
        if files.is_empty() {
            continue;
        }
        let (macs, addrs) = expected_facts(&case.net);
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("interfaces");
        fs::write(&f, &files[0].contents).unwrap();
        let state = t.path().join("state");
        fs::create_dir_all(&state).unwrap();
        // A mount namespace too, with a sysfs of the new network namespace: ifupdown reads
        // the addresses from /sys/class/net.
        let mut script = String::from("set -e\nmount -t sysfs none /sys\n");
        for (n, m) in macs.iter().enumerate() {
            // A veth cannot carry a 20-octet IPoIB address: those NICs are not checked here.
            if m.len() == 17 {
                script += &format!("ip link add nic{n} address {m} type veth peer name peer{n}\n");
            }
        }
        script += &format!(
            "ifup --no-act --verbose --all -i {} --state-dir {} 2>&1\n",
            f.display(),
            state.display()
        );
        let (ok, out, err) =
            run_command(tool_command("unshare").args(["-n", "-m", "sh", "-c", &script]));
        assert!(ok, "{}: {out}{err}", case.name);
        for (n, m) in macs.iter().enumerate() {
            if m.len() == 17 {
                assert!(
                    out.contains(&format!("configuring interface nic{n}=")),
                    "{}: ifup did not find the NIC with {m} (nic{n}):\n{out}",
                    case.name
                );
            }
        }
        // Bonds and VLANs are brought up under their own names.
        let created = by_name(&case.net);
        let own = out
            .lines()
            .filter_map(|l| l.strip_prefix("ifup: configuring interface "))
            .filter(|l| {
                let (phys, logical) = l.split_once(' ').unwrap().0.split_once('=').unwrap();
                phys == logical && phys != "lo"
            })
            .map(|l| l.split_once('=').unwrap().0)
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(
            own, created,
            "{}: bonds and VLANs brought up:\n{out}",
            case.name
        );
        for a in &addrs {
            let ip = a.split('/').next().unwrap();
            assert!(
                out.contains(&format!("addr add {ip}/")),
                "{}: {a} not configured:\n{out}",
                case.name
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// systemd-networkd

/// Keys by section, from systemd.network(5) and systemd.netdev(5) (systemd 252): every key
/// seedpart may write. networkd has no offline validator (`systemd-analyze verify` does not
/// read .network files), so this checks the names, and `check_value` the shape of each value.
const NETWORK_KEYS: &[(&str, &[&str])] = &[
    (
        "Match",
        &["MACAddress", "Name", "Type", "PermanentMACAddress"],
    ),
    ("Link", &["MTUBytes"]),
    (
        "Network",
        &[
            "DHCP",
            "Address",
            "IPv6AcceptRA",
            "DNS",
            "Domains",
            "Bond",
            "PrimarySlave",
            "VLAN",
            "LinkLocalAddressing",
        ],
    ),
    ("DHCPv6", &["WithoutRA"]),
    (
        "Route",
        &["Destination", "Gateway", "GatewayOnLink", "Metric"],
    ),
];
const NETDEV_KEYS: &[(&str, &[&str])] = &[
    ("NetDev", &["Name", "Kind", "MACAddress", "MTUBytes"]),
    ("VLAN", &["Id"]),
    (
        "Bond",
        &[
            "Mode",
            "TransmitHashPolicy",
            "LACPTransmitRate",
            "MIIMonitorSec",
            "UpDelaySec",
            "DownDelaySec",
            "LearnPacketIntervalSec",
            "AdSelect",
            "FailOverMACPolicy",
            "ARPValidate",
            "ARPIntervalSec",
            "ARPIPTargets",
            "ARPAllTargets",
            "PrimaryReselectPolicy",
            "ResendIGMP",
            "PacketsPerSlave",
            "GratuitousARP",
            "AllSlavesActive",
            "MinLinks",
        ],
    ),
];

fn check_value(key: &str, v: &str) -> bool {
    let ip = |s: &str| s.parse::<IpAddr>().is_ok();
    let cidr = |s: &str| {
        s.split_once('/')
            .is_some_and(|(a, p)| ip(a) && p.parse::<u8>().is_ok_and(|p| p <= 128))
    };
    // 6 octets, or 20 for IPoIB (systemd reads any hardware address there).
    let mac = |s: &str| {
        let o: Vec<&str> = s.split(':').collect();
        matches!(o.len(), 6 | 20)
            && o.iter()
                .all(|o| o.len() == 2 && u8::from_str_radix(o, 16).is_ok())
    };
    let uint = |s: &str| s.parse::<u32>().is_ok();
    let boolean = |s: &str| matches!(s, "yes" | "no");
    let ms = |s: &str| s.strip_suffix("ms").is_some_and(uint);
    match key {
        "MACAddress" | "PermanentMACAddress" => mac(v),
        "Address" | "Destination" => cidr(v),
        "Gateway" | "DNS" => ip(v),
        "Metric" | "MTUBytes" | "Id" | "ResendIGMP" | "PacketsPerSlave" | "GratuitousARP"
        | "MinLinks" => uint(v),
        "MIIMonitorSec" | "UpDelaySec" | "DownDelaySec" | "ARPIntervalSec" => ms(v),
        "GatewayOnLink" | "PrimarySlave" | "AllSlavesActive" => boolean(v),
        "IPv6AcceptRA" => boolean(v),
        "LinkLocalAddressing" => matches!(v, "no" | "yes" | "ipv4" | "ipv6"),
        "DHCP" => matches!(v, "yes" | "no" | "ipv4" | "ipv6"),
        "WithoutRA" => matches!(v, "no" | "solicit" | "information-request"),
        "Kind" => matches!(v, "bond" | "vlan"),
        "Type" => v == "!vlan bond bridge",
        "Mode" => matches!(
            v,
            "balance-rr"
                | "active-backup"
                | "balance-xor"
                | "broadcast"
                | "802.3ad"
                | "balance-tlb"
                | "balance-alb"
        ),
        "TransmitHashPolicy" => matches!(
            v,
            "layer2" | "layer3+4" | "layer2+3" | "encap2+3" | "encap3+4" | "vlan+srcmac"
        ),
        "LACPTransmitRate" => matches!(v, "slow" | "fast"),
        "AdSelect" => matches!(v, "stable" | "bandwidth" | "count"),
        "FailOverMACPolicy" => matches!(v, "none" | "active" | "follow"),
        "ARPValidate" => matches!(
            v,
            "none" | "active" | "backup" | "all" | "filter" | "filter_active" | "filter_backup"
        ),
        "ARPAllTargets" => matches!(v, "any" | "all"),
        "PrimaryReselectPolicy" => matches!(v, "always" | "better" | "failure"),
        "ARPIPTargets" => v.split(' ').all(ip),
        "Name" | "Bond" | "VLAN" => !v.is_empty() && v.len() <= 15,
        "Domains" => !v.is_empty(),
        _ => false,
    }
}

fn networkd_problems(path: &str, contents: &str) -> Vec<String> {
    let table = if path.ends_with(".netdev") {
        NETDEV_KEYS
    } else {
        NETWORK_KEYS
    };
    let mut problems = Vec::new();
    let mut sec = String::new();
    for line in contents.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(n) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sec = n.to_string();
            if !table.iter().any(|(s, _)| *s == sec) {
                problems.push(format!(
                    "{path}: section [{sec}] is not one seedpart should write"
                ));
            }
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            problems.push(format!("{path}: not key=value: {line:?}"));
            continue;
        };
        let known = table
            .iter()
            .find(|(s, _)| *s == sec)
            .is_some_and(|(_, keys)| keys.contains(&k));
        if !known {
            problems.push(format!("{path}: [{sec}] {k}= is not a documented key"));
        } else if !check_value(k, v) {
            problems.push(format!("{path}: [{sec}] {k}={v}: bad value"));
        }
    }
    problems
}

#[test]
fn networkd_writes_only_documented_keys() {
    // The check can fail.
    assert!(!networkd_problems("x.network", "[Network]\nDHCP=maybe\nFoo=1\n[Bogus]\n").is_empty());
    assert_eq!(
        networkd_problems("x.network", "[Network]\nDHCP=maybe\nFoo=1\n[Bogus]\n").len(),
        3
    );
    // Where the man pages are installed, each key in the allow-list is in them.
    let man = |page: &str| run_command(tool_command("man").args([page]).env("MANWIDTH", "200"));
    for (page, table) in [
        ("systemd.network", NETWORK_KEYS),
        ("systemd.netdev", NETDEV_KEYS),
    ] {
        let (ok, text, _) = man(page);
        if !ok || text.is_empty() {
            println!("SKIP: man {page} unavailable: the allow-list is not checked against it");
            continue;
        }
        for (_, keys) in table {
            for k in *keys {
                assert!(text.contains(&format!("{k}=")), "{k}= is not in {page}(5)");
            }
        }
    }
    for case in cases() {
        let files = rendered(&case, Stack::Networkd);
        let mut problems = Vec::new();
        for f in &files {
            problems.extend(networkd_problems(f.path.as_str(), &f.contents));
            assert!(
                f.path
                    .as_str()
                    .starts_with("etc/systemd/network/10-seedpart-")
            );
        }
        assert!(
            problems.is_empty(),
            "{}:\n{}",
            case.name,
            problems.join("\n")
        );
        // Every NIC matched by MAC, every static address present, one .netdev per bond/VLAN.
        let all: String = files.iter().map(|f| f.contents.clone()).collect();
        assert_networkd_has_the_facts(&all, &case.net, &case.name);
        let created = case
            .net
            .links
            .iter()
            .filter(|l| !l.link_type.is_physical())
            .count();
        assert_eq!(
            files
                .iter()
                .filter(|f| f.path.as_str().ends_with(".netdev"))
                .count(),
            created
        );
        // Unknown network types are rendered as DHCP, never dropped.
        for n in &case.net.networks {
            if let NetworkType::Other(_) = n.network_type {
                assert!(all.contains("DHCP="), "{}", case.name);
            }
        }
    }
}
