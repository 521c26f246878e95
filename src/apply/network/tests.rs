//! Unit tests of the plan: names, bond options, metrics, and of `detect`. The renderers' output
//! is checked against golden files and the real tools in `tests/network_render.rs`.

use super::plan::{BondOpt, Dhcp6, Kind, OptValue, Plan, valid_ifname};
use super::*;

fn nd(s: &str) -> NetworkData {
    NetworkData::parse("network_data.json", s.as_bytes()).unwrap()
}

#[test]
fn names_come_from_name_then_mac_then_id() {
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "tap8056a42d-1c", "type": null, "ethernet_mac_address": "BC:76:4E:20:D7:2F"},
        {"id": "x", "type": "phy", "name": "eth1", "ethernet_mac_address": "bc:76:4e:20:d7:30"},
        {"id": "nomac", "type": "phy", "name": "ens9"},
        {"id": "b6a0e1f5-0c5e-4a4b-9b4f-3a2e8c1d0e7f", "type": "bond", "bond_links": ["tap8056a42d-1c"], "bond_mode": "1"},
        {"id": "bond0", "type": "bond", "bond_links": ["x"], "bond_mode": "802.3ad"},
        {"id": "v", "type": "vlan", "vlan_link": "bond0", "vlan_id": 4000},
        {"id": "w", "type": "vlan", "vlan_link": "x", "vlan_id": 7},
        {"id": "u", "type": "vlan", "vlan_link": "nomac", "vlan_id": 7}
    ], "networks": [{"id": "n", "type": "ipv4_dhcp", "link": "nomac"}]}"#))
    .unwrap();
    let names: Vec<&str> = p.ifaces.iter().map(|i| i.name.as_str()).collect();
    // Depth, then name: NICs; bonds and VLANs on NICs; VLANs on bonds.
    assert_eq!(
        names,
        [
            "ens9",
            "enxbc764e20d72f",
            "eth1",
            "bond0",
            "bond1",
            "ens9.7",
            "eth1.7",
            "bond0.4000"
        ]
    );
    assert!(names.iter().all(|n| valid_ifname(n)));
    // The UUID-like bond id is no kernel name: bondN, skipping the one a bond's id took.
    let b = p.get("bond1").unwrap();
    assert_eq!(b.link_id, "b6a0e1f5-0c5e-4a4b-9b4f-3a2e8c1d0e7f");
    let Kind::Bond(spec) = &b.kind else { panic!() };
    assert_eq!(spec.members, ["enxbc764e20d72f"]);
    assert_eq!(spec.mode.as_str(), "active-backup");
    assert_eq!(
        p.get("enxbc764e20d72f").unwrap().bond.as_deref(),
        Some("bond1")
    );
    assert_eq!(p.get("eth1").unwrap().vlans, ["eth1.7"]);
    assert!(p.get("ens9").unwrap().l3.as_ref().unwrap().dhcp4);
}

#[test]
fn long_vlan_names_fall_back_and_clashes_are_refused() {
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "b", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:02"},
        {"id": "v1", "type": "vlan", "vlan_link": "a", "vlan_id": 25},
        {"id": "v2", "type": "vlan", "vlan_link": "b", "vlan_id": 25}
    ]}"#))
    .unwrap();
    let vlans: Vec<&str> = p.ifaces[2..].iter().map(|i| i.name.as_str()).collect();
    assert_eq!(vlans, ["vlan25", "vlan25-1"]);

    let e = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "name": "eth0", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "b", "type": "phy", "name": "eth0", "ethernet_mac_address": "fa:16:3e:00:00:02"}
    ], "networks": [{"type": "ipv4_dhcp", "link": "a"}, {"type": "ipv4_dhcp", "link": "b"}]}"#))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"network_data.json: link "b": name "eth0" is also the name of link "a""#
    );

    // A name that would break a file or a shell line is not used.
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "name": "eth0\n up rm -rf /", "ethernet_mac_address": "fa:16:3e:00:00:01"}
    ], "networks": [{"type": "ipv4_dhcp", "link": "a"}]}"#))
    .unwrap();
    assert_eq!(p.ifaces[0].name, "enxfa163e000001");
}

#[test]
fn bond_members_must_be_nics_in_one_bond() {
    let e = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "b1", "type": "bond", "bond_links": ["a"], "bond_mode": "802.3ad"},
        {"id": "b2", "type": "bond", "bond_links": ["a"], "bond_mode": "802.3ad"}
    ]}"#))
    .unwrap_err();
    assert!(e.to_string().contains("member of both bond"), "{e}");
    let e = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "v", "type": "vlan", "vlan_link": "a", "vlan_id": 3},
        {"id": "b1", "type": "bond", "bond_links": ["v"], "bond_mode": "802.3ad"}
    ]}"#))
    .unwrap_err();
    assert!(e.to_string().contains("is a vlan link, not a NIC"), "{e}");
}

#[test]
fn bond_options_are_checked_against_the_mode() {
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "c", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:02"},
        {"id": "b", "type": "bond", "bond_links": ["a", "c"], "bond_mode": "active-backup",
         "bond_miimon": 100, "bond_xmit_hash_policy": "layer3+4", "bond_lacp_rate": "fast",
         "bond_primary": "c", "bond_fail_over_mac": 1, "bond_updelay": "200",
         "bond_arp_interval": 100, "bond_bogus": 1, "bond_downdelay": "soon",
         "bond_all_slaves_active": true, "bond_num_unsol_na": 2}
    ]}"#))
    .unwrap();
    let Kind::Bond(b) = &p.get("b").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        b.options,
        [
            (BondOpt::Miimon, OptValue::Ms(100)),
            (BondOpt::Updelay, OptValue::Ms(200)),
            (BondOpt::Primary, OptValue::Iface("enxfa163e000002".into())),
            (BondOpt::FailOverMac, OptValue::Name("active")),
            (BondOpt::NumGratArp, OptValue::Int(2)),
            (BondOpt::AllSlavesActive, OptValue::Bool(true)),
        ],
        "xmit_hash_policy and lacp_rate do not fit active-backup, ARP monitoring loses to MII, \
         bogus and a non-numeric delay are skipped"
    );
    assert!(p.get("enxfa163e000002").unwrap().primary);
    assert!(!p.get("enxfa163e000001").unwrap().primary);

    for (n, name) in [(0, "layer2"), (1, "layer3+4"), (5, "vlan+srcmac")] {
        let p = Plan::build(&nd(&format!(
            r#"{{"links": [{{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}},
               {{"id": "b", "type": "bond", "bond_links": ["a"], "bond_mode": 2, "bond_xmit_hash_policy": "{n}"}}]}}"#
        )))
        .unwrap();
        let Kind::Bond(b) = &p.get("b").unwrap().kind else {
            panic!()
        };
        assert_eq!(b.options, [(BondOpt::XmitHashPolicy, OptValue::Name(name))]);
    }
}

#[test]
fn network_types_map_to_l3() {
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
        {"id": "b", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:02"},
        {"id": "c", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:03"},
        {"id": "d", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:04"}
    ], "networks": [
        {"type": "ipv6", "link": "a", "ip_address": "2001:db8::5", "prefix": 64},
        {"type": "ipv4", "link": "a", "ip_address": "192.0.2.5", "prefix": 24,
         "routes": [{"network": "10.1.2.3", "netmask": "255.0.0.0", "gateway": "198.51.100.1"}]},
        {"type": "ipv6_slaac", "link": "b"},
        {"type": "ipv6_dhcpv6-stateless", "link": "b"},
        {"type": "ipv6_dhcpv6-stateful", "link": "c"},
        {"type": "ipv6_slaac", "link": "c"},
        {"type": "ipv9_magic", "link": "d"},
        {"type": "ipv6_magic", "link": "d"}
    ]}"#))
    .unwrap();
    let a = p.get("enxfa163e000001").unwrap().l3.clone().unwrap();
    assert_eq!(a.accept_ra, Some(false), "static IPv6 only: RAs ignored");
    assert_eq!(a.addrs[0].0.to_string(), "192.0.2.5", "IPv4 first");
    assert_eq!(
        a.routes[0].dest.to_string(),
        "10.0.0.0",
        "host bits cleared"
    );
    assert!(a.routes[0].onlink, "198.51.100.1 is outside 192.0.2.0/24");
    let b = p.get("enxfa163e000002").unwrap().l3.clone().unwrap();
    assert_eq!(
        (b.accept_ra, b.dhcp6, b.dhcp4),
        (Some(true), Dhcp6::Stateless, false)
    );
    let c = p.get("enxfa163e000003").unwrap().l3.clone().unwrap();
    assert_eq!(c.dhcp6, Dhcp6::Stateful, "the strongest DHCPv6 mode wins");
    let d = p.get("enxfa163e000004").unwrap().l3.clone().unwrap();
    assert!(d.dhcp4, "unknown type: DHCP");
    assert_eq!(d.dhcp6, Dhcp6::Auto, "unknown ipv6 type: DHCPv6");
}

#[test]
fn later_default_routes_get_metrics() {
    let p = Plan::build(&nd(r#"{"links": [
        {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:0a"},
        {"id": "b", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:0b"},
        {"id": "c", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:0c"}
    ], "networks": [
        {"type": "ipv4", "link": "c", "ip_address": "192.0.2.5", "prefix": 24,
         "routes": [{"network": "0.0.0.0", "netmask": 0, "gateway": "192.0.2.1"}]},
        {"type": "ipv4", "link": "a", "ip_address": "198.51.100.5", "prefix": 24,
         "routes": [{"network": "0.0.0.0", "netmask": 0, "gateway": "198.51.100.1"}]},
        {"type": "ipv4", "link": "b", "ip_address": "203.0.113.5", "prefix": 24,
         "routes": [{"network": "0.0.0.0", "netmask": 0, "gateway": "203.0.113.1", "metric": 7}]},
        {"type": "ipv6", "link": "a", "ip_address": "2001:db8::5", "prefix": 64,
         "routes": [{"network": "::", "netmask": 0, "gateway": "fe80::1"}]}
    ]}"#))
    .unwrap();
    let metric = |n: &str, v6: bool| {
        p.get(n)
            .unwrap()
            .l3
            .as_ref()
            .unwrap()
            .routes
            .iter()
            .find(|r| r.dest.is_ipv6() == v6)
            .unwrap()
            .metric
    };
    assert_eq!(
        metric("enxfa163e00000c", false),
        None,
        "first in file order"
    );
    assert_eq!(metric("enxfa163e00000a", false), Some(100));
    assert_eq!(
        metric("enxfa163e00000b", false),
        Some(7),
        "a given metric is kept"
    );
    assert_eq!(metric("enxfa163e00000a", true), None, "only IPv6 default");
}

#[test]
fn uuids_are_stable_and_well_formed() {
    let u = nm::uuid("bond0");
    assert_eq!(u, nm::uuid("bond0"));
    assert_ne!(u, nm::uuid("bond1"));
    let parts: Vec<&str> = u.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('8'), "version 8: {u}");
    assert!(
        matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
        "RFC variant: {u}"
    );
}

#[test]
fn empty_data_renders_nothing() {
    for s in Stack::ALL {
        assert!(render(&nd("{}"), s).unwrap().is_empty());
        assert_eq!(Stack::from_name(s.name()), Some(s));
    }
}

#[test]
fn detect_follows_the_documented_precedence() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let touch = |p: &str| {
        let p = r.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"").unwrap();
    };
    let link = |p: &str, to: &str| {
        let p = r.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(to, p).unwrap();
    };
    assert_eq!(detect(r), None);
    touch("etc/network/interfaces");
    assert_eq!(detect(r), None, "no ifup");
    touch("sbin/ifup");
    assert_eq!(detect(r), Some(Stack::Ifupdown));
    touch("usr/lib/systemd/systemd-networkd");
    assert_eq!(
        detect(r),
        Some(Stack::Ifupdown),
        "networkd installed, not enabled"
    );
    // Absolute symlinks dangle from outside the root: still counted.
    link(
        "etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
        "/usr/lib/systemd/system/systemd-networkd.service",
    );
    assert_eq!(detect(r), Some(Stack::Networkd));
    touch("usr/sbin/NetworkManager");
    assert_eq!(
        detect(r),
        Some(Stack::Networkd),
        "NetworkManager not enabled"
    );
    link(
        "etc/systemd/system/dbus-org.freedesktop.NetworkManager.service",
        "/usr/lib/systemd/system/NetworkManager.service",
    );
    assert_eq!(detect(r), Some(Stack::NetworkManager));
    std::fs::create_dir_all(r.join("etc/netplan")).unwrap();
    assert_eq!(
        detect(r),
        Some(Stack::NetworkManager),
        "etc/netplan alone is a leftover"
    );
    touch("usr/lib/systemd/system-generators/netplan");
    assert_eq!(detect(r), Some(Stack::Netplan));
}
