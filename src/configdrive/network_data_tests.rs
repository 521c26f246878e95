//! The shapes of network data that Nova's documentation and cloud-init's tests describe (bonds,
//! VLANs over bonds, IPv6 static and SLAAC, routes with metrics, DNS at both levels, untyped
//! links), written out here, and the ways a file can be wrong.

use super::*;

const FILE: &str = "openstack/latest/network_data.json";

fn parse(s: &str) -> Result<NetworkData, ModelError> {
    NetworkData::parse(FILE, s.as_bytes())
}

fn err(s: &str) -> String {
    let e = parse(s).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{FILE}: ")), "{e}");
    e
}

const BONDS: &str = r#"{
  "links": [
    {"id": "eth0", "type": "phy", "ethernet_mac_address": "FA:16:3E:00:00:01", "mtu": 9000},
    {"id": "eth1", "type": "phy", "ethernet_mac_address": "fa-16-3e-00-00-02", "mtu": 9000},
    {"id": "eth2", "type": "hw_veb", "ethernet_mac_address": "fa:16:3e:00:00:03"},
    {"id": "eth3", "type": "vif", "ethernet_mac_address": "fa:16:3e:00:00:04"},
    {"id": "bond0", "type": "bond", "bond_mode": "active-backup", "bond_links": ["eth0", "eth1"],
     "ethernet_mac_address": "fa:16:3e:00:00:01", "bond_miimon": "100", "mtu": 9000},
    {"id": "bond1", "type": "bond", "bond_mode": 4, "bond_links": ["eth2", "eth3"],
     "ethernet_mac_address": "fa:16:3e:00:00:03", "bond_miimon": 100,
     "bond_xmit_hash_policy": "layer3+4", "bond_lacp_rate": "fast", "bond_updelay": 200},
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
     "services": [{"type": "dns", "address": "192.0.2.53"}]},
    {"id": "net1", "type": "ipv4_dhcp", "link": "vlan1", "network_id": "n1"}
  ],
  "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "2001:4860:4860::8888"},
               {"type": "dns", "address": "8.8.8.8"}, {"type": "ntp", "address": "pool.ntp.org"}]
}"#;

#[test]
fn bonds_with_vlans_on_top() {
    let nd = parse(BONDS).unwrap();
    assert_eq!(nd.links.len(), 8);
    let eth1 = nd.link("eth1").unwrap();
    assert_eq!(
        eth1.ethernet_mac_address.as_ref().unwrap().as_str(),
        "fa:16:3e:00:00:02"
    );
    assert_eq!(eth1.mtu, Some(9000));
    assert!(eth1.link_type.is_physical());
    assert!(nd.link("eth2").unwrap().link_type.is_physical());

    let b0 = nd.link("bond0").unwrap();
    assert_eq!(b0.link_type, LinkType::Bond);
    assert!(!b0.link_type.is_physical());
    assert_eq!(b0.bond_mode, Some(BondMode::ActiveBackup));
    assert_eq!(b0.bond_miimon, Some(100));
    assert_eq!(b0.bond_links, ["eth0", "eth1"]);
    assert!(b0.name.is_none(), "Nova names no bond: the renderer does");

    let b1 = nd.link("bond1").unwrap();
    assert_eq!(b1.bond_mode, Some(BondMode::Lacp));
    assert_eq!(b1.bond_mode.unwrap().as_str(), "802.3ad");
    assert_eq!(b1.bond_mode.unwrap().number(), 4);
    assert_eq!(b1.bond_xmit_hash_policy.as_deref(), Some("layer3+4"));
    assert_eq!(b1.bond_options.len(), 2);
    assert_eq!(b1.bond_options["bond_lacp_rate"], "fast");
    assert!(b1.extra.is_empty());

    let v0 = nd.link("vlan0").unwrap();
    assert_eq!(
        (v0.vlan_link.as_deref(), v0.vlan_id),
        (Some("bond0"), Some(101))
    );
    assert_eq!(v0.mac().unwrap().as_str(), "fa:16:3e:00:01:01");
    assert_eq!(v0.neutron_port_id.as_deref(), Some("p-101"));
    let v1 = nd.link("vlan1").unwrap();
    assert_eq!(v1.vlan_id, Some(102));
    assert_eq!(v1.mac(), None);

    let net0 = &nd.networks[0];
    assert_eq!(net0.network_type, NetworkType::Ipv4);
    assert!(net0.network_type.is_static());
    assert_eq!(net0.ip_address, Some("192.0.2.10".parse().unwrap()));
    assert_eq!(net0.prefix_len, Some(24));
    assert_eq!(net0.netmask(), Some("255.255.255.0".parse().unwrap()));
    let r: Vec<_> = net0
        .routes
        .iter()
        .map(|r| {
            (
                r.network.to_string(),
                r.prefix_len,
                r.gateway.unwrap().to_string(),
                r.metric,
            )
        })
        .collect();
    assert_eq!(
        r,
        [
            ("0.0.0.0".into(), 0, "192.0.2.1".into(), None),
            ("198.51.100.0".into(), 25, "192.0.2.2".into(), Some(50)),
            ("203.0.113.0".into(), 24, "192.0.2.3".into(), Some(200)),
        ]
    );
    assert!(net0.routes[0].is_default());
    assert_eq!(
        net0.dns_servers(),
        ["192.0.2.53".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(nd.networks_on("vlan1").count(), 1);
    assert_eq!(
        nd.dns_servers(),
        [
            "8.8.8.8".parse::<IpAddr>().unwrap(),
            "2001:4860:4860::8888".parse().unwrap()
        ]
    );
    assert_eq!(nd.services[3].address, "pool.ntp.org");
}

#[test]
fn ipv6_static_slaac_and_dhcpv6() {
    let nd = parse(
        r#"{"links": [{"id": "tap1", "type": "ovs", "ethernet_mac_address": "fa:16:3e:d1:1f:b2", "mtu": null}],
            "networks": [
              {"id": "n0", "type": "ipv6", "link": "tap1", "ip_address": "2001:db8:1::10", "netmask": "ffff:ffff:ffff:ffff::",
               "routes": [{"network": "::", "netmask": "::", "gateway": "fe80::1%tap1", "metric": 100},
                          {"network": "2001:db8:9::", "netmask": "ffff:ffff:ffff::", "gateway": "2001:db8:1::2",
                           "services": [{"type": "dns", "address": "2001:db8:9::53"}]}],
               "services": [{"type": "dns", "address": "2001:db8:1::53"}, {"type": "dns", "address": "192.0.2.53"}]},
              {"id": "n1", "type": "ipv6", "link": "tap1", "ip_address": "2001:db8:2::10/56"},
              {"id": "n2", "type": "ipv6_slaac", "link": "tap1", "ip_address": "2604:e100:1:0:f816:3eff:fed1:1fb2",
               "netmask": "ffff:ffff:ffff:ffff::", "routes": [], "services": []},
              {"id": "n3", "type": "ipv6_slaac", "link": "tap1"},
              {"id": "n4", "type": "ipv6_dhcpv6-stateful", "link": "tap1"},
              {"id": "n5", "type": "ipv6_dhcpv6-stateless", "link": "tap1"},
              {"id": "n6", "type": "ipv6_dhcp", "link": "tap1"},
              {"id": "n7", "type": "ipv4", "link": "tap1", "ip_address": "192.0.2.7", "prefix": 28, "netmask": "255.255.255.240"},
              {"id": "n8", "type": "ipv4", "link": "tap1", "ip_address": "192.0.2.8", "netmask": "/30"}
            ]}"#,
    )
    .unwrap();
    let n = &nd.networks;
    assert_eq!(nd.links[0].link_type, LinkType::Ovs);
    assert_eq!(nd.links[0].mtu, None);
    assert_eq!(n[0].prefix_len, Some(64));
    assert_eq!(
        n[0].netmask(),
        Some("ffff:ffff:ffff:ffff::".parse().unwrap())
    );
    assert_eq!(n[0].routes[0].gateway, Some("fe80::1".parse().unwrap()));
    assert_eq!(n[0].routes[0].prefix_len, 0);
    assert_eq!(n[0].routes[1].prefix_len, 48);
    assert_eq!(
        n[0].dns_servers().len(),
        3,
        "network, route and IPv4-in-IPv6 DNS"
    );
    assert_eq!(n[1].prefix_len, Some(56));
    assert_eq!(n[2].network_type, NetworkType::Ipv6Slaac);
    assert!(!n[2].network_type.is_static());
    assert_eq!(n[2].prefix_len, Some(64));
    assert_eq!(n[3].ip_address, None);
    assert_eq!(n[4].network_type, NetworkType::Ipv6Dhcpv6Stateful);
    assert_eq!(n[5].network_type, NetworkType::Ipv6Dhcpv6Stateless);
    assert_eq!(n[6].network_type, NetworkType::Ipv6Dhcp);
    assert_eq!(n[7].prefix_len, Some(28));
    assert_eq!(n[8].prefix_len, Some(30));
}

#[test]
fn untyped_and_unknown_links_are_nics() {
    let nd = parse(
        r#"{"links": [{"id": "a", "type": null, "ethernet_mac_address": "BC:76:4E:20:D7:2F"},
                      {"id": "b", "ethernet_mac_address": "bc:76:4e:20:d7:30"},
                      {"id": "c", "type": "linux_bridge", "name": "br0"},
                      {"id": "d", "type": "802.1qbh", "ethernet_mac_address": "bc:76:4e:20:d7:31"},
                      {"id": "e", "type": "ib", "ethernet_mac_address": "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0f:5c:71"}],
            "networks": [], "services": []}"#,
    )
    .unwrap();
    let t: Vec<_> = nd.links.iter().map(|l| l.link_type.clone()).collect();
    assert_eq!(
        t,
        [
            LinkType::Unspecified,
            LinkType::Unspecified,
            LinkType::Other("linux_bridge".into()),
            LinkType::Qbh,
            LinkType::Ib
        ]
    );
    assert!(nd.links.iter().all(|l| l.link_type.is_physical()));
    assert_eq!(nd.links[0].mac().unwrap().to_string(), "bc:76:4e:20:d7:2f");
    assert_eq!(nd.links[4].mac().unwrap().octets().len(), 20);
    let json = serde_json::to_value(&nd).unwrap();
    assert_eq!(json["links"][0]["type"], Value::Null);
    assert_eq!(json["links"][3]["type"], "802.1qbh");
    assert_eq!(json["links"][2]["type"], "linux_bridge");
}

#[test]
fn every_link_type_name_round_trips() {
    for (name, t) in LINK_TYPES {
        assert_eq!(LinkType::parse(name), *t);
        assert_eq!(t.as_str(), Some(*name));
    }
    for (name, t) in &NETWORK_TYPES {
        assert_eq!(NetworkType::parse(name), *t);
        assert_eq!(t.as_str(), *name);
    }
}

#[test]
fn empty_and_partial_documents() {
    let nd = parse("{}").unwrap();
    assert!(nd.links.is_empty() && nd.networks.is_empty() && nd.services.is_empty());
    let nd = parse(r#"{"links": null, "extra_key": {"x": 1}}"#).unwrap();
    assert_eq!(nd.extra["extra_key"]["x"], 1);
}

#[test]
fn bad_mac_names_its_path() {
    let e = err(
        r#"{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                      {"id": "b", "type": "phy", "ethernet_mac_address": "zz"}]}"#,
    );
    assert_eq!(
        e,
        format!(
            r#"{FILE}: links[1].ethernet_mac_address: expected a MAC address like fa:16:3e:00:00:01, found "zz""#
        )
    );
    let e = err(
        r#"{"links": [{"id": "v", "type": "vlan", "vlan_link": "x", "vlan_id": 1, "vlan_mac_address": "fa:16:3e:00:00"}]}"#,
    );
    assert!(
        e.contains("links[0].vlan_mac_address: expected a MAC address"),
        "{e}"
    );
}

#[test]
fn broken_references_name_the_link() {
    let e = err(
        r#"{"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}],
            "networks": [{"id": "n0", "type": "ipv4_dhcp", "link": "eth0"},
                         {"id": "n1", "type": "ipv4_dhcp", "link": "eth9"}]}"#,
    );
    assert_eq!(
        e,
        format!(
            r#"{FILE}: networks[1].link: names link "eth9", but no entry of links has that id (ids: "eth0")"#
        )
    );
    let e = err(
        r#"{"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                      {"id": "b", "type": "bond", "bond_mode": "802.3ad", "bond_links": ["eth0", "eth1"]}]}"#,
    );
    assert!(
        e.contains(r#"links[1].bond_links[1]: names link "eth1""#),
        "{e}"
    );
    let e = err(r#"{"links": [{"id": "v", "type": "vlan", "vlan_link": "nope", "vlan_id": 5}]}"#);
    assert!(
        e.contains(r#"links[0].vlan_link: names link "nope""#),
        "{e}"
    );
    let e = err(r#"{"links": [{"id": "v", "type": "vlan", "vlan_link": "v", "vlan_id": 5}]}"#);
    assert!(
        e.contains(r#"links[0].vlan_link: link "v" names itself"#),
        "{e}"
    );
    let e = err(
        r#"{"links": [{"id": "v1", "type": "vlan", "vlan_link": "v2", "vlan_id": 5},
                      {"id": "v2", "type": "vlan", "vlan_link": "v1", "vlan_id": 6}]}"#,
    );
    assert!(e.contains("links[0]: link \"v1\" depends on itself"), "{e}");
    let e = err(
        r#"{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                      {"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:02"}]}"#,
    );
    assert!(
        e.contains(r#"links[1].id: link id "a" is already the id of links[0]"#),
        "{e}"
    );
    let e = err(
        r#"{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                      {"id": "b", "type": "tap", "ethernet_mac_address": "FA:16:3E:00:00:01"}]}"#,
    );
    assert!(
        e.contains(
            "links[1].ethernet_mac_address: fa:16:3e:00:00:01 is also the MAC address of links[0]"
        ),
        "{e}"
    );
}

#[test]
fn incomplete_links_and_networks() {
    let cases = [
        (
            r#"{"links": [{"id": "b", "type": "bond", "bond_mode": "802.3ad"}]}"#,
            "links[0].bond_links: expected the bond's member link ids",
        ),
        (
            r#"{"links": [{"id": "b", "type": "bond", "bond_links": [], "bond_mode": "802.3ad"}]}"#,
            "links[0].bond_links: expected the bond's member link ids (a non-empty array), found an array of 0 items",
        ),
        (
            r#"{"links": [{"id": "p", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}, {"id": "b", "type": "bond", "bond_links": ["p"], "bond_mode": "lacp"}]}"#,
            r#"links[1].bond_mode: expected a bond mode (802.3ad, "#,
        ),
        (
            r#"{"links": [{"id": "v", "type": "vlan", "vlan_link": "x"}]}"#,
            "links[0].vlan_id: expected a VLAN id",
        ),
        (
            r#"{"links": [{"id": "v", "type": "vlan", "vlan_id": 4096, "vlan_link": "x"}]}"#,
            "links[0].vlan_id: expected a VLAN id (a whole number from 0 to 4095), found 4096",
        ),
        (
            r#"{"links": [{"id": "p", "type": "phy"}]}"#,
            "links[0].ethernet_mac_address: expected a MAC address like fa:16:3e:00:00:01 (a NIC with no name is found by it), found nothing",
        ),
        (
            r#"{"links": [{"id": "p", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01", "mtu": 0}]}"#,
            "links[0].mtu: expected an MTU",
        ),
        (
            r#"{"links": [{"type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"}]}"#,
            "links[0].id: expected the link's id (a string), found nothing",
        ),
        (
            r#"{"links": {"id": "x"}}"#,
            "links: expected a JSON array, found an object",
        ),
        (
            r#"{"networks": [{"id": "n", "link": "x"}]}"#,
            "networks[0].type: expected a network type",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "netmask": "255.255.255.0"}]}"#,
            "networks[0].ip_address: expected an IPv4 address (type ipv4 is a static address), found nothing",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.1"}]}"#,
            "networks[0].netmask: expected a netmask like 255.255.255.0 or a prefix length, found nothing",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "2001:db8::1", "netmask": "24"}]}"#,
            r#"networks[0].ip_address: expected an IPv4 address like 192.0.2.10, found "2001:db8::1""#,
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.300", "netmask": "24"}]}"#,
            "networks[0].ip_address: expected an IPv4 address",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.1", "netmask": "255.0.255.0"}]}"#,
            "networks[0].netmask: expected an IPv4 netmask like 255.255.255.0 or a prefix length of 0 to 32 (a contiguous mask)",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.1", "netmask": "ffff::"}]}"#,
            "networks[0].netmask: expected an IPv4 netmask",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.1", "netmask": 33}]}"#,
            "networks[0].netmask: expected an IPv4 netmask",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4", "link": "x", "ip_address": "192.0.2.1/24", "netmask": "255.255.0.0"}]}"#,
            "networks[0]: netmask says /16 but ip_address's /length says /24",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv6", "link": "x", "ip_address": "2001:db8::1", "netmask": "ffff:0:ffff::"}]}"#,
            "networks[0].netmask: expected an IPv6 netmask",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4_dhcp", "link": "x", "routes": [{"network": "10.0.0.0", "gateway": "10.0.0.1"}]}]}"#,
            "networks[0].routes[0].netmask: expected the route's netmask",
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4_dhcp", "link": "x", "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "fe80::1"}]}]}"#,
            r#"networks[0].routes[0].gateway: expected an IPv4 address like 192.0.2.10, found "fe80::1""#,
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4_dhcp", "link": "x", "routes": [{"network": "10.0.0.0", "netmask": "255.0.0.0", "gateway": "10.0.0.1", "metric": -1}]}]}"#,
            "networks[0].routes[0].metric: expected a route metric",
        ),
        (
            r#"{"services": [{"type": "dns", "address": "dns.example.com"}]}"#,
            r#"services[0].address: expected a DNS server's IP address, found "dns.example.com""#,
        ),
        (
            r#"{"networks": [{"id": "n", "type": "ipv4_dhcp", "link": "x", "services": [{"type": "dns"}]}]}"#,
            "networks[0].services[0].address: expected a DNS server's IP address, found nothing",
        ),
    ];
    for (doc, want) in cases {
        let e = err(doc);
        assert!(e.contains(want), "{doc}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn malformed_json_gives_line_and_column() {
    let e = parse("{\"links\": [\n  {\"id\": \"a\",}\n]}").unwrap_err();
    assert!(
        matches!(
            e,
            ModelError::Syntax {
                line: 2,
                column: 14,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("{FILE}: malformed JSON at line 2, column 14: "))
    );
}

#[test]
fn masks() {
    let v: Value = serde_json::json!([
        "255.255.255.255",
        "0.0.0.0",
        "255.255.254.0",
        0,
        "/0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "::",
        "ffff:ff00::"
    ]);
    let n = Node::root("f", &v).items().unwrap();
    let got: Vec<u8> = n.iter().map(|n| mask(n, None).unwrap()).collect();
    assert_eq!(got, [32, 0, 23, 0, 0, 128, 0, 24]);
    assert_eq!(v4_mask(0), Ipv4Addr::new(0, 0, 0, 0));
    assert_eq!(v4_mask(20), Ipv4Addr::new(255, 255, 240, 0));
    assert_eq!(v6_mask(128), Ipv6Addr::from(u128::MAX));
}
