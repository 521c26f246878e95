//! netplan: one `etc/netplan/50-seedpart.yaml`, mode 0600 (netplan warns about files others can
//! read). Written by hand: every string is double-quoted, and every string is an interface name,
//! an address, a domain or an option name checked to hold no quote, backslash or control
//! character. NICs are matched by `macaddress` with no `set-name`: nothing is renamed.

use std::fmt::Write;

use super::plan::{BondOpt, Dhcp6, Iface, Kind, OptValue, Plan};
use super::{HEADER, RenderedFile, file};

/// A YAML double-quoted scalar. The values are checked plain ASCII already; escaping anyway
/// keeps this correct for whatever reaches it.
fn q(s: impl ToString) -> String {
    let s = s.to_string();
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

pub fn render(plan: &Plan) -> Vec<RenderedFile> {
    if plan.ifaces.is_empty() {
        return Vec::new();
    }
    let mut s = format!("# {HEADER}\nnetwork:\n  version: 2\n");
    type Pick = fn(&Iface) -> bool;
    let groups: [(&str, Pick); 3] = [
        ("ethernets", |i| i.is_nic()),
        ("bonds", |i| matches!(i.kind, Kind::Bond(_))),
        ("vlans", |i| matches!(i.kind, Kind::Vlan { .. })),
    ];
    for (group, pick) in groups {
        let mut members: Vec<&Iface> = plan.ifaces.iter().filter(|i| pick(i)).collect();
        if members.is_empty() {
            continue;
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let _ = writeln!(s, "  {group}:");
        for i in members {
            iface(&mut s, i);
        }
    }
    vec![file("etc/netplan/50-seedpart.yaml".into(), 0o600, s)]
}

fn bond_param(o: BondOpt, v: &OptValue) -> (&'static str, String) {
    let val = match v {
        OptValue::Ms(n) | OptValue::Int(n) => n.to_string(),
        OptValue::Name(s) => q(s),
        OptValue::Bool(b) => b.to_string(),
        OptValue::Iface(s) => q(s),
        OptValue::Ips(ips) => format!("[{}]", ips.iter().map(q).collect::<Vec<_>>().join(", ")),
    };
    let key = match o {
        BondOpt::Miimon => "mii-monitor-interval",
        BondOpt::Updelay => "up-delay",
        BondOpt::Downdelay => "down-delay",
        BondOpt::XmitHashPolicy => "transmit-hash-policy",
        BondOpt::LacpRate => "lacp-rate",
        BondOpt::AdSelect => "ad-select",
        BondOpt::MinLinks => "min-links",
        BondOpt::Primary => "primary",
        BondOpt::PrimaryReselect => "primary-reselect-policy",
        BondOpt::FailOverMac => "fail-over-mac-policy",
        BondOpt::ArpInterval => "arp-interval",
        BondOpt::ArpIpTarget => "arp-ip-targets",
        BondOpt::ArpValidate => "arp-validate",
        BondOpt::ArpAllTargets => "arp-all-targets",
        BondOpt::NumGratArp => "gratuitous-arp",
        BondOpt::AllSlavesActive => "all-slaves-active",
        BondOpt::ResendIgmp => "resend-igmp",
        BondOpt::PacketsPerSlave => "packets-per-slave",
    };
    (key, val)
}

fn iface(s: &mut String, i: &Iface) {
    let _ = writeln!(s, "    {}:", q(&i.name));
    match &i.kind {
        Kind::Nic { .. } => match &i.mac {
            Some(m) => {
                let _ = writeln!(s, "      match:\n        macaddress: {}", q(m));
            }
            None => {
                let _ = writeln!(s, "      match:\n        name: {}", q(&i.name));
            }
        },
        Kind::Bond(b) => {
            let _ = writeln!(s, "      interfaces:");
            for m in &b.members {
                let _ = writeln!(s, "        - {}", q(m));
            }
            let _ = writeln!(s, "      parameters:\n        mode: {}", q(b.mode.as_str()));
            for (o, v) in &b.options {
                let (k, v) = bond_param(*o, v);
                let _ = writeln!(s, "        {k}: {v}");
            }
        }
        Kind::Vlan { parent, id } => {
            let _ = writeln!(s, "      id: {id}\n      link: {}", q(parent));
        }
    }
    if !i.is_nic()
        && let Some(m) = &i.mac
    {
        let _ = writeln!(s, "      macaddress: {}", q(m));
    }
    if let Some(mtu) = i.mtu {
        let _ = writeln!(s, "      mtu: {mtu}");
    }
    if i.bond.is_some() {
        return;
    }
    let Some(l3) = &i.l3 else {
        // A parent with no network of its own: no address, not even a link-local one.
        let _ = writeln!(s, "      link-local: []\n      accept-ra: false");
        return;
    };
    if l3.dhcp4 {
        s.push_str("      dhcp4: true\n");
    }
    if l3.dhcp6 != Dhcp6::No {
        s.push_str("      dhcp6: true\n");
    }
    match l3.accept_ra {
        Some(true) => s.push_str("      accept-ra: true\n"),
        Some(false) => s.push_str("      accept-ra: false\n"),
        None => {}
    }
    if !l3.addrs.is_empty() {
        s.push_str("      addresses:\n");
        for (a, p) in &l3.addrs {
            let _ = writeln!(s, "        - {}", q(format!("{a}/{p}")));
        }
    }
    if !l3.routes.is_empty() {
        s.push_str("      routes:\n");
        for r in &l3.routes {
            let _ = writeln!(s, "        - to: {}", q(r.dest_cidr()));
            match r.gateway {
                Some(g) => {
                    let _ = writeln!(s, "          via: {}", q(g));
                }
                None => s.push_str("          scope: \"link\"\n"),
            }
            if let Some(m) = r.metric {
                let _ = writeln!(s, "          metric: {m}");
            }
            if r.onlink {
                s.push_str("          on-link: true\n");
            }
        }
    }
    if !l3.dns.is_empty() || !l3.search.is_empty() {
        s.push_str("      nameservers:\n");
        if !l3.dns.is_empty() {
            s.push_str("        addresses:\n");
            for d in &l3.dns {
                let _ = writeln!(s, "          - {}", q(d));
            }
        }
        if !l3.search.is_empty() {
            s.push_str("        search:\n");
            for d in &l3.search {
                let _ = writeln!(s, "          - {}", q(d));
            }
        }
    }
}
