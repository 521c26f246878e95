//! systemd-networkd: `etc/systemd/network/10-seedpart-NAME.network` for every interface, plus a
//! `.netdev` for each bond and VLAN. NICs are matched by MAC address: bond members by their
//! permanent one (enslaved, they take the bond's), others by the current one with `Type=!vlan
//! bond bridge`, because a bond and the VLANs on it carry a member's MAC address too. No `.link`
//! file: nothing is renamed, and MTUs are set by the `.network` files.

use std::fmt::Write;

use super::plan::{BondOpt, Dhcp6, Iface, Kind, OptValue, Plan, join};
use super::{HEADER, RenderedFile, file};

const DIR: &str = "etc/systemd/network";

pub fn render(plan: &Plan) -> Vec<RenderedFile> {
    let mut out = Vec::new();
    for i in &plan.ifaces {
        if let Some(nd) = netdev(i) {
            out.push(file(
                format!("{DIR}/10-seedpart-{}.netdev", i.name),
                0o644,
                nd,
            ));
        }
        out.push(file(
            format!("{DIR}/10-seedpart-{}.network", i.name),
            0o644,
            network(i),
        ));
    }
    out
}

/// A link id in a comment, when it is plain enough to be one (it comes from the drive).
pub fn id_comment(i: &Iface, prefix: &str) -> String {
    let plain = i.link_id.len() <= 64
        && i.link_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'));
    if plain {
        format!("{prefix} network_data.json link {}\n", i.link_id)
    } else {
        String::new()
    }
}

fn ms(n: u32) -> String {
    format!("{n}ms")
}

fn bond_key(o: BondOpt, v: &OptValue) -> (&'static str, String) {
    let val = match v {
        OptValue::Ms(n) => ms(*n),
        OptValue::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
        other => other.kernel(" "),
    };
    let key = match o {
        BondOpt::Miimon => "MIIMonitorSec",
        BondOpt::Updelay => "UpDelaySec",
        BondOpt::Downdelay => "DownDelaySec",
        BondOpt::XmitHashPolicy => "TransmitHashPolicy",
        BondOpt::LacpRate => "LACPTransmitRate",
        BondOpt::AdSelect => "AdSelect",
        BondOpt::MinLinks => "MinLinks",
        BondOpt::Primary => unreachable!("rendered as PrimarySlave= in the member's .network"),
        BondOpt::PrimaryReselect => "PrimaryReselectPolicy",
        BondOpt::FailOverMac => "FailOverMACPolicy",
        BondOpt::ArpInterval => "ARPIntervalSec",
        BondOpt::ArpIpTarget => "ARPIPTargets",
        BondOpt::ArpValidate => "ARPValidate",
        BondOpt::ArpAllTargets => "ARPAllTargets",
        BondOpt::NumGratArp => "GratuitousARP",
        BondOpt::AllSlavesActive => "AllSlavesActive",
        BondOpt::ResendIgmp => "ResendIGMP",
        BondOpt::PacketsPerSlave => "PacketsPerSlave",
    };
    (key, val)
}

fn netdev(i: &Iface) -> Option<String> {
    let mut s = format!("# {HEADER}\n");
    s += &id_comment(i, "#");
    let _ = write!(s, "\n[NetDev]\nName={}\n", i.name);
    match &i.kind {
        Kind::Nic { .. } => return None,
        Kind::Bond(b) => {
            s += "Kind=bond\n";
            if let Some(m) = &i.mac {
                let _ = writeln!(s, "MACAddress={m}");
            }
            let _ = write!(s, "\n[Bond]\nMode={}\n", b.mode.as_str());
            for (o, v) in &b.options {
                if *o == BondOpt::Primary {
                    continue;
                }
                let (k, v) = bond_key(*o, v);
                let _ = writeln!(s, "{k}={v}");
            }
        }
        Kind::Vlan { id, .. } => {
            s += "Kind=vlan\n";
            if let Some(m) = &i.mac {
                let _ = writeln!(s, "MACAddress={m}");
            }
            let _ = write!(s, "\n[VLAN]\nId={id}\n");
        }
    }
    Some(s)
}

fn network(i: &Iface) -> String {
    let mut s = format!("# {HEADER}\n");
    s += &id_comment(i, "#");
    s += "\n[Match]\n";
    match (&i.kind, &i.mac) {
        // Enslaved, a member takes its bond's MAC address (active-backup gives every member the
        // same one): it is matched by the address it was made with, as netplan does.
        (Kind::Nic { .. }, Some(m)) if i.bond.is_some() => {
            let _ = writeln!(s, "PermanentMACAddress={m}");
        }
        // Any driver reports a current address (not all a permanent one); a bond and the VLANs
        // on it carry a member's address too, so only the NIC itself is let match.
        (Kind::Nic { .. }, Some(m)) => {
            let _ = writeln!(s, "MACAddress={m}");
            s += "Type=!vlan bond bridge\n";
        }
        _ => {
            let _ = writeln!(s, "Name={}", i.name);
        }
    }
    if let Some(mtu) = i.mtu {
        let _ = write!(s, "\n[Link]\nMTUBytes={mtu}\n");
    }

    s += "\n[Network]\n";
    if let Some(b) = &i.bond {
        let _ = writeln!(s, "Bond={b}");
        if i.primary {
            s += "PrimarySlave=yes\n";
        }
    }
    let mut dhcp6_section = None;
    let mut routes = String::new();
    match &i.l3 {
        None if i.bond.is_none() => {
            // A parent of VLANs (or a bond) with no network of its own: no address at all.
            s += "LinkLocalAddressing=no\nIPv6AcceptRA=no\n";
        }
        None => {}
        Some(l3) => {
            let v6 = l3.dhcp6 != Dhcp6::No;
            let dhcp = match (l3.dhcp4, v6) {
                (true, true) => Some("yes"),
                (true, false) => Some("ipv4"),
                (false, true) => Some("ipv6"),
                (false, false) => None,
            };
            if let Some(d) = dhcp {
                let _ = writeln!(s, "DHCP={d}");
            }
            for (a, p) in &l3.addrs {
                let _ = writeln!(s, "Address={a}/{p}");
            }
            match l3.accept_ra {
                Some(true) => s += "IPv6AcceptRA=yes\n",
                Some(false) => s += "IPv6AcceptRA=no\n",
                None => {}
            }
            for d in &l3.dns {
                let _ = writeln!(s, "DNS={d}");
            }
            if !l3.search.is_empty() {
                let _ = writeln!(s, "Domains={}", join(&l3.search, " "));
            }
            dhcp6_section = match l3.dhcp6 {
                Dhcp6::Stateful => Some("solicit"),
                Dhcp6::Stateless => Some("information-request"),
                Dhcp6::Auto | Dhcp6::No => None,
            };
            for r in &l3.routes {
                routes += "\n[Route]\n";
                let _ = writeln!(routes, "Destination={}", r.dest_cidr());
                if let Some(g) = r.gateway {
                    let _ = writeln!(routes, "Gateway={g}");
                }
                if r.onlink {
                    routes += "GatewayOnLink=yes\n";
                }
                if let Some(m) = r.metric {
                    let _ = writeln!(routes, "Metric={m}");
                }
            }
        }
    }
    for v in &i.vlans {
        let _ = writeln!(s, "VLAN={v}");
    }
    if let Some(w) = dhcp6_section {
        let _ = write!(s, "\n[DHCPv6]\nWithoutRA={w}\n");
    }
    s += &routes;
    s
}
