//! ifupdown: one `etc/network/interfaces.d/50-seedpart` (a name `source-directory` accepts too).
//!
//! NICs are matched by MAC address with ifupdown's own patterns, `auto mac/ADDR/1=NAME`: the NIC
//! that has that address (the first one, by interface index: a bond created later carries a
//! member's address too) is brought up as the logical interface `NAME`, whose commands see the
//! real kernel name in `$IFACE`. Nothing is renamed. Bonds and VLANs are made with `ip link`
//! (iproute2 only, no ifenslave or vlan package needed):
//! - each member creates its bond if it does not exist yet, then enslaves itself, so members come
//!   first (in `auto` order) and the bond is brought up (DHCP included) with its members in;
//! - a VLAN's parent creates the VLAN in its `post-up` (only the parent knows its kernel name),
//!   then the VLAN's own stanza configures it.
//!
//! Routes are `post-up ip route add` in the last stanza of their family (after every address of
//! that family is up), `|| true` so that one route the kernel refuses does not fail the
//! interface. Every word written is an interface name, an address, a number or a fixed keyword
//! (checked when the plan is built), so no shell quoting is needed.

use std::fmt::Write;

use super::plan::{BondOpt, Dhcp6, Iface, Kind, OptValue, Plan, RouteSpec};
use super::{HEADER, RenderedFile, file};

pub fn render(plan: &Plan) -> Vec<RenderedFile> {
    if plan.ifaces.is_empty() {
        return Vec::new();
    }
    let mut s = format!("# {HEADER}\n");
    s += "# NICs are matched by MAC address: auto mac/ADDRESS/1=NAME brings up the NIC that has\n";
    s += "# ADDRESS as logical interface NAME; its commands see the kernel's name in $IFACE.\n";
    for i in &plan.ifaces {
        s += "\n";
        s += &super::networkd::id_comment(i, "#");
        s += &stanzas(plan, i);
    }
    vec![file(
        "etc/network/interfaces.d/50-seedpart".into(),
        0o644,
        s,
    )]
}

struct Stanza {
    family: &'static str,
    method: &'static str,
    lines: Vec<String>,
}

impl Stanza {
    fn new(family: &'static str, method: &'static str) -> Stanza {
        Stanza {
            family,
            method,
            lines: Vec::new(),
        }
    }
}

/// `ip link add NAME [address MAC] type bond mode MODE OPTIONS...`, run only if NAME is missing.
fn create_bond(plan: &Plan, bond: &str) -> String {
    let b = plan.get(bond).expect("members name an existing bond");
    let Kind::Bond(spec) = &b.kind else {
        unreachable!("a member's bond is a bond")
    };
    let mut cmd = format!("ip link show dev {bond} >/dev/null 2>&1 || ip link add {bond}");
    if let Some(m) = &b.mac {
        let _ = write!(cmd, " address {m}");
    }
    let _ = write!(cmd, " type bond mode {}", spec.mode.as_str());
    for (o, v) in &spec.options {
        if *o == BondOpt::Primary {
            continue; // set by the primary member once it is enslaved
        }
        let v = match v {
            OptValue::Bool(b) => u8::from(*b).to_string(),
            other => other.kernel(","),
        };
        let _ = write!(cmd, " {} {v}", o.kernel_name());
    }
    cmd
}

fn route_cmd(r: &RouteSpec) -> String {
    let fam = if r.dest.is_ipv6() { "-6" } else { "-4" };
    let mut c = format!("ip {fam} route add {}", r.dest_cidr());
    if let Some(g) = r.gateway {
        let _ = write!(c, " via {g}");
    }
    c += " dev $IFACE";
    if r.onlink {
        c += " onlink";
    }
    if let Some(m) = r.metric {
        let _ = write!(c, " metric {m}");
    }
    c + " || true"
}

fn stanzas(plan: &Plan, i: &Iface) -> String {
    let mut list: Vec<Stanza> = Vec::new();
    match (&i.bond, &i.l3) {
        (Some(_), _) | (None, None) => list.push(Stanza::new("inet", "manual")),
        (None, Some(l3)) => {
            if l3.dhcp4 {
                list.push(Stanza::new("inet", "dhcp"));
            }
            for (a, p) in l3.addrs4() {
                let mut st = Stanza::new("inet", "static");
                st.lines.push(format!("address {a}/{p}"));
                list.push(st);
            }
            // Static IPv6 first: its stanza turns autoconf off, a later auto/dhcp one on again.
            for (a, p) in l3.addrs6() {
                let mut st = Stanza::new("inet6", "static");
                st.lines.push(format!("address {a}/{p}"));
                if l3.accept_ra == Some(false) {
                    st.lines.push("accept_ra 0".into());
                }
                list.push(st);
            }
            if l3.slaac() {
                let mut st = match l3.dhcp6 {
                    Dhcp6::No => Stanza::new("inet6", "auto"),
                    Dhcp6::Stateless => {
                        let mut st = Stanza::new("inet6", "auto");
                        st.lines.push("dhcp 1".into());
                        st
                    }
                    Dhcp6::Auto | Dhcp6::Stateful => Stanza::new("inet6", "dhcp"),
                };
                st.lines.push("accept_ra 1".into());
                list.push(st);
            }
            if list.is_empty() {
                list.push(Stanza::new("inet", "manual"));
            }
        }
    }

    // Link-level work goes in the first stanza, before anything else happens.
    let mut first = Vec::new();
    if let Kind::Bond(_) = &i.kind {
        first.push(format!("pre-up {}", create_bond(plan, &i.name)));
    }
    if let Some(mtu) = i.mtu {
        first.push(format!("pre-up ip link set dev $IFACE mtu {mtu}"));
    }
    if let Some(b) = &i.bond {
        first.push(format!("pre-up {}", create_bond(plan, b)));
        first.push("pre-up ip link set dev $IFACE down".into());
        first.push(format!("pre-up ip link set dev $IFACE master {b}"));
        if i.primary {
            first.push(format!(
                "post-up ip link set dev {b} type bond primary $IFACE"
            ));
        }
        first.push("post-down ip link set dev $IFACE nomaster || true".into());
    }
    for v in &i.vlans {
        let c = plan.get(v).expect("VLAN children exist");
        let Kind::Vlan { id, .. } = c.kind else {
            unreachable!("children are VLANs")
        };
        let mut cmd = format!(
            "post-up ip link show dev {v} >/dev/null 2>&1 || ip link add link $IFACE name {v}"
        );
        if let Some(m) = &c.mac {
            let _ = write!(cmd, " address {m}");
        }
        let _ = write!(cmd, " type vlan id {id}");
        first.push(cmd);
    }
    if let Some(l3) = &i.l3
        && i.bond.is_none()
    {
        if !l3.dns.is_empty() {
            first.push(format!(
                "dns-nameservers {}",
                super::plan::join(&l3.dns, " ")
            ));
        }
        if !l3.search.is_empty() {
            first.push(format!("dns-search {}", l3.search.join(" ")));
        }
        for r in &l3.routes {
            let fam = if r.dest.is_ipv6() { "inet6" } else { "inet" };
            let at = list
                .iter()
                .rposition(|st| st.family == fam)
                .unwrap_or(list.len() - 1);
            list[at].lines.push(format!("post-up {}", route_cmd(r)));
        }
    }
    let mut lines = first;
    lines.append(&mut list[0].lines);
    list[0].lines = lines;

    let mut s = String::new();
    match (&i.kind, &i.mac) {
        (Kind::Nic { .. }, Some(m)) => {
            let _ = writeln!(s, "auto mac/{m}/1={}", i.name);
        }
        _ => {
            let _ = writeln!(s, "auto {}", i.name);
        }
    }
    for st in list {
        let _ = writeln!(s, "iface {} {} {}", i.name, st.family, st.method);
        for l in st.lines {
            let _ = writeln!(s, "    {l}");
        }
    }
    s
}
