//! NetworkManager keyfiles: `etc/NetworkManager/system-connections/seedpart-NAME.nmconnection`,
//! mode 0600 (NetworkManager ignores keyfiles that others can read). NICs are matched by
//! `mac-address` (an `ethernet` profile never applies to a bond or VLAN device, so no filter is
//! needed); bond members point at their bond's profile by UUID, VLANs at their parent's. UUIDs are
//! derived from the connection name, so a re-render gives the same ones.

use std::fmt::Write;
use std::net::IpAddr;

use sha2::{Digest, Sha256};

use super::plan::{BondOpt, Dhcp6, Iface, Kind, L3, Plan, RouteSpec};
use super::{HEADER, RenderedFile, file};

const DIR: &str = "etc/NetworkManager/system-connections";

pub fn render(plan: &Plan) -> Vec<RenderedFile> {
    plan.ifaces
        .iter()
        .map(|i| {
            file(
                format!("{DIR}/seedpart-{}.nmconnection", i.name),
                0o600,
                keyfile(i),
            )
        })
        .collect()
}

/// A stable UUID for connection `name` (RFC 9562 version 8, from SHA-256).
pub fn uuid(name: &str) -> String {
    let d = Sha256::digest(format!("seedpart network connection {name}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn mac_upper(m: &impl ToString) -> String {
    m.to_string().to_ascii_uppercase()
}

fn keyfile(i: &Iface) -> String {
    let mut s = format!("# {HEADER}\n");
    s += &super::networkd::id_comment(i, "#");
    let ctype = match &i.kind {
        Kind::Nic { infiniband: false } => "ethernet",
        Kind::Nic { infiniband: true } => "infiniband",
        Kind::Bond(_) => "bond",
        Kind::Vlan { .. } => "vlan",
    };
    let _ = write!(
        s,
        "\n[connection]\nid=seedpart-{}\nuuid={}\ntype={ctype}\n",
        i.name,
        uuid(&i.name)
    );
    // Created devices are named; a NIC is found by MAC address, or by name when it has none.
    if !i.is_nic() || i.mac.is_none() {
        let _ = writeln!(s, "interface-name={}", i.name);
    }
    if let Some(b) = &i.bond {
        let _ = write!(s, "master={}\nslave-type=bond\n", uuid(b));
    }

    match &i.kind {
        Kind::Nic { infiniband } => {
            let sec = if *infiniband {
                "infiniband"
            } else {
                "ethernet"
            };
            if *infiniband || i.mac.is_some() || i.mtu.is_some() {
                let _ = write!(s, "\n[{sec}]\n");
            }
            if let Some(m) = &i.mac {
                let _ = writeln!(s, "mac-address={}", mac_upper(m));
            }
            if let Some(mtu) = i.mtu {
                let _ = writeln!(s, "mtu={mtu}");
            }
            if *infiniband {
                s += "transport-mode=datagram\n";
            }
        }
        Kind::Bond(b) => {
            link_section(&mut s, i);
            let _ = write!(s, "\n[bond]\nmode={}\n", b.mode.as_str());
            for (o, v) in &b.options {
                if *o == BondOpt::Primary {
                    // NetworkManager wants the member's kernel name, unknown until boot.
                    log::warn!(
                        "network_data.json: bond {}: bond_primary cannot be expressed in a NetworkManager keyfile (it needs the member's kernel name): skipped",
                        i.name
                    );
                    continue;
                }
                let _ = writeln!(s, "{}={}", o.kernel_name(), v.kernel(","));
            }
        }
        Kind::Vlan { parent, id } => {
            link_section(&mut s, i);
            let _ = write!(s, "\n[vlan]\nid={id}\nparent={}\n", uuid(parent));
        }
    }

    if i.bond.is_some() {
        // A bond member carries no IP configuration.
        return s;
    }
    match &i.l3 {
        None => s += "\n[ipv4]\nmethod=disabled\n\n[ipv6]\nmethod=disabled\n",
        Some(l3) => {
            ip_section(&mut s, l3, false);
            ip_section(&mut s, l3, true);
        }
    }
    s
}

/// `[ethernet]` of a bond or VLAN: its own MAC address and MTU.
fn link_section(s: &mut String, i: &Iface) {
    if i.mac.is_none() && i.mtu.is_none() {
        return;
    }
    *s += "\n[ethernet]\n";
    if let Some(m) = &i.mac {
        let _ = writeln!(s, "cloned-mac-address={}", mac_upper(m));
    }
    if let Some(mtu) = i.mtu {
        let _ = writeln!(s, "mtu={mtu}");
    }
}

fn ip_section(s: &mut String, l3: &L3, v6: bool) {
    let fam = |a: &IpAddr| a.is_ipv6() == v6;
    let method = if !v6 {
        if l3.dhcp4 {
            "auto"
        } else if l3.has_v4() {
            "manual"
        } else {
            "disabled"
        }
    } else {
        match (l3.accept_ra, l3.dhcp6) {
            (_, Dhcp6::Stateful) => "dhcp",
            (Some(true), _) => "auto",
            (Some(false), _) => "manual",
            // No IPv6 network: NetworkManager's own default for a new profile.
            (None, _) => "auto",
        }
    };
    let _ = write!(s, "\n[ipv{}]\nmethod={method}\n", if v6 { 6 } else { 4 });
    if v6 {
        // The address SLAAC makes is the one Neutron expects (and its port security allows).
        s.push_str("addr-gen-mode=eui64\n");
    }
    for (n, (a, p)) in l3.addrs.iter().filter(|(a, _)| fam(a)).enumerate() {
        let _ = writeln!(s, "address{}={a}/{p}", n + 1);
    }
    let dns: Vec<String> = l3
        .dns
        .iter()
        .filter(|a| fam(a))
        .map(|a| a.to_string())
        .collect();
    // NetworkManager refuses DNS servers on a disabled family.
    if !dns.is_empty() && method != "disabled" {
        let _ = writeln!(s, "dns={};", dns.join(";"));
    }
    if !l3.search.is_empty() && method != "disabled" {
        let _ = writeln!(s, "dns-search={};", l3.search.join(";"));
    }
    let routes: Vec<&RouteSpec> = l3.routes.iter().filter(|r| fam(&r.dest)).collect();
    for (n, r) in routes.iter().enumerate() {
        let mut v = r.dest_cidr();
        match (r.gateway, r.metric) {
            (Some(g), Some(m)) => {
                let _ = write!(v, ",{g},{m}");
            }
            (Some(g), None) => {
                let _ = write!(v, ",{g}");
            }
            (None, Some(m)) => {
                let unspec = if v6 { "::" } else { "0.0.0.0" };
                let _ = write!(v, ",{unspec},{m}");
            }
            (None, None) => {}
        }
        let _ = writeln!(s, "route{}={v}", n + 1);
        if r.onlink {
            let _ = writeln!(s, "route{}_options=onlink=true", n + 1);
        }
    }
}
