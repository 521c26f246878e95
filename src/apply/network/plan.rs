//! What to configure, decided once for every stack: interface names, bond membership, VLAN
//! parents, the L3 settings of each interface, validated bond options.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use super::RenderError;
use crate::configdrive::network_data::{
    BondMode, Link, LinkType, MacAddr, Network, NetworkData, NetworkType,
};

/// Longest kernel interface name (`IFNAMSIZ` less the NUL).
pub const IFNAMSIZ: usize = 15;

#[derive(Clone, Debug)]
pub struct Plan {
    /// In bring-up order: NICs, then bonds and VLANs on NICs, then VLANs on those, ...; by name
    /// within one depth.
    pub ifaces: Vec<Iface>,
}

#[derive(Clone, Debug)]
pub struct Iface {
    pub name: String,
    pub link_id: String,
    pub kind: Kind,
    /// A NIC: the address it is matched by. A bond or VLAN: the address to give it.
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    /// The bond this NIC is a member of.
    pub bond: Option<String>,
    /// This member is its bond's `primary`.
    pub primary: bool,
    /// Names of the VLANs whose parent this is.
    pub vlans: Vec<String>,
    /// `None`: no network names this link (a bond member, or a parent of VLANs only).
    pub l3: Option<L3>,
    depth: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Matched by `mac` (or, for a NIC with a `name` and no MAC, by that name).
    Nic {
        infiniband: bool,
    },
    Bond(Bond),
    Vlan {
        parent: String,
        id: u16,
    },
}

impl Iface {
    pub fn is_nic(&self) -> bool {
        matches!(self.kind, Kind::Nic { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bond {
    /// Member interface names, in `bond_links` order.
    pub members: Vec<String>,
    pub mode: BondMode,
    /// Validated options that fit the mode, sorted by option.
    pub options: Vec<(BondOpt, OptValue)>,
}

/// How IPv6 is to be configured on an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dhcp6 {
    #[default]
    No,
    /// DHCPv6 for DNS and other information only (`ipv6_dhcpv6-stateless`).
    Stateless,
    /// DHCPv6 as the router advertisements say (Nova's legacy `ipv6_dhcp`).
    Auto,
    /// DHCPv6 for the address (`ipv6_dhcpv6-stateful`).
    Stateful,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L3 {
    pub dhcp4: bool,
    pub dhcp6: Dhcp6,
    /// Accept router advertisements: `Some(true)` for every dynamic IPv6 type, `Some(false)` when
    /// the link's only IPv6 is static, `None` (the stack's default) with no IPv6 network.
    pub accept_ra: Option<bool>,
    /// Static addresses with prefix lengths, IPv4 first, each family in file order.
    pub addrs: Vec<(IpAddr, u8)>,
    pub routes: Vec<RouteSpec>,
    pub dns: Vec<IpAddr>,
    pub search: Vec<String>,
}

impl L3 {
    pub fn addrs4(&self) -> impl Iterator<Item = &(IpAddr, u8)> {
        self.addrs.iter().filter(|(a, _)| a.is_ipv4())
    }

    pub fn addrs6(&self) -> impl Iterator<Item = &(IpAddr, u8)> {
        self.addrs.iter().filter(|(a, _)| a.is_ipv6())
    }

    /// Some IPv4 configuration (static or DHCP).
    pub fn has_v4(&self) -> bool {
        self.dhcp4 || self.addrs4().next().is_some()
    }

    /// IPv6 by router advertisements (SLAAC, stateless DHCPv6 or legacy `ipv6_dhcp`).
    pub fn slaac(&self) -> bool {
        self.accept_ra == Some(true)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub dest: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
    pub metric: Option<u32>,
    /// The gateway is in none of the link's static prefixes: tell the stack it is on-link.
    pub onlink: bool,
}

impl RouteSpec {
    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }

    pub fn dest_cidr(&self) -> String {
        format!("{}/{}", self.dest, self.prefix)
    }
}

/// The bonding options seedpart renders, by their kernel (sysfs) names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BondOpt {
    Miimon,
    Updelay,
    Downdelay,
    XmitHashPolicy,
    LacpRate,
    AdSelect,
    MinLinks,
    Primary,
    PrimaryReselect,
    FailOverMac,
    ArpInterval,
    ArpIpTarget,
    ArpValidate,
    ArpAllTargets,
    NumGratArp,
    AllSlavesActive,
    ResendIgmp,
    PacketsPerSlave,
}

/// An option's value, checked to be of its option's kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptValue {
    /// Milliseconds (`miimon`, `updelay`, `downdelay`, `arp_interval`).
    Ms(u32),
    Int(u32),
    /// One of the kernel's names for the option (numbers are turned into names).
    Name(&'static str),
    Bool(bool),
    /// An interface name (`primary`).
    Iface(String),
    Ips(Vec<Ipv4Addr>),
}

impl OptValue {
    /// The value as the kernel (sysfs, `ip link`) and NetworkManager spell it.
    pub fn kernel(&self, sep: &str) -> String {
        match self {
            OptValue::Ms(n) | OptValue::Int(n) => n.to_string(),
            OptValue::Name(s) => s.to_string(),
            OptValue::Bool(b) => u8::from(*b).to_string(),
            OptValue::Iface(s) => s.clone(),
            OptValue::Ips(v) => join(v, sep),
        }
    }
}

pub fn join<T: ToString>(v: &[T], sep: &str) -> String {
    v.iter().map(T::to_string).collect::<Vec<_>>().join(sep)
}

/// `(option, kernel name, accepted names by number, modes it applies to (None: all))`.
type OptSpec = (BondOpt, &'static str, Kind2, Option<&'static [BondMode]>);

#[derive(Clone, Copy)]
enum Kind2 {
    Ms,
    Int,
    Names(&'static [&'static str]),
    Bool,
    Iface,
    Ips,
}

use BondMode::*;
const XOR_LIKE: &[BondMode] = &[BalanceXor, Lacp, BalanceTlb];
const PRIMARY_MODES: &[BondMode] = &[ActiveBackup, BalanceTlb, BalanceAlb];
const ARP_MODES: &[BondMode] = &[BalanceRr, ActiveBackup, BalanceXor, Broadcast];

const OPTS: &[OptSpec] = &[
    (BondOpt::Miimon, "miimon", Kind2::Ms, None),
    (BondOpt::Updelay, "updelay", Kind2::Ms, None),
    (BondOpt::Downdelay, "downdelay", Kind2::Ms, None),
    (
        BondOpt::XmitHashPolicy,
        "xmit_hash_policy",
        Kind2::Names(&[
            "layer2",
            "layer3+4",
            "layer2+3",
            "encap2+3",
            "encap3+4",
            "vlan+srcmac",
        ]),
        Some(XOR_LIKE),
    ),
    (
        BondOpt::LacpRate,
        "lacp_rate",
        Kind2::Names(&["slow", "fast"]),
        Some(&[Lacp]),
    ),
    (
        BondOpt::AdSelect,
        "ad_select",
        Kind2::Names(&["stable", "bandwidth", "count"]),
        Some(&[Lacp]),
    ),
    (BondOpt::MinLinks, "min_links", Kind2::Int, Some(&[Lacp])),
    (
        BondOpt::Primary,
        "primary",
        Kind2::Iface,
        Some(PRIMARY_MODES),
    ),
    (
        BondOpt::PrimaryReselect,
        "primary_reselect",
        Kind2::Names(&["always", "better", "failure"]),
        Some(PRIMARY_MODES),
    ),
    (
        BondOpt::FailOverMac,
        "fail_over_mac",
        Kind2::Names(&["none", "active", "follow"]),
        Some(&[ActiveBackup]),
    ),
    (
        BondOpt::ArpInterval,
        "arp_interval",
        Kind2::Ms,
        Some(ARP_MODES),
    ),
    (
        BondOpt::ArpIpTarget,
        "arp_ip_target",
        Kind2::Ips,
        Some(ARP_MODES),
    ),
    (
        BondOpt::ArpValidate,
        "arp_validate",
        Kind2::Names(&[
            "none",
            "active",
            "backup",
            "all",
            "filter",
            "filter_active",
            "filter_backup",
        ]),
        Some(ARP_MODES),
    ),
    (
        BondOpt::ArpAllTargets,
        "arp_all_targets",
        Kind2::Names(&["any", "all"]),
        Some(ARP_MODES),
    ),
    (BondOpt::NumGratArp, "num_grat_arp", Kind2::Int, None),
    (
        BondOpt::AllSlavesActive,
        "all_slaves_active",
        Kind2::Bool,
        None,
    ),
    (BondOpt::ResendIgmp, "resend_igmp", Kind2::Int, None),
    (
        BondOpt::PacketsPerSlave,
        "packets_per_slave",
        Kind2::Int,
        Some(&[BalanceRr]),
    ),
];

impl BondOpt {
    pub fn kernel_name(self) -> &'static str {
        OPTS.iter()
            .find(|o| o.0 == self)
            .map(|o| o.1)
            .expect("every option is in OPTS")
    }
}

fn err(link: &Link, reason: impl Into<String>) -> RenderError {
    RenderError::Link {
        link: link.id.clone(),
        reason: reason.into(),
    }
}

/// A usable kernel interface name: 1 to 15 bytes of `[A-Za-z0-9_.-]`, not starting with `.` or
/// `-`. Every name seedpart writes is one, so names need no quoting in any format, cannot escape
/// a directory and cannot inject a line or a shell word.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IFNAMSIZ
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `name` with every byte outside `[A-Za-z0-9_.-]` replaced by `_`, if that is a valid name.
fn sanitise(name: &str) -> Option<String> {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    valid_ifname(&s).then_some(s)
}

fn mac_name(mac: &MacAddr) -> String {
    let o = mac.octets();
    let hex: String = o[o.len() - 6..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if o.len() == 6 {
        format!("enx{hex}")
    } else {
        format!("ibx{hex}")
    }
}

impl Plan {
    pub fn build(net: &NetworkData) -> Result<Plan, RenderError> {
        let links = &net.links;
        let index: HashMap<&str, usize> = links
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.as_str(), i))
            .collect();

        // Bond membership, checked: a member is a NIC and in one bond only.
        let mut bond_of: HashMap<usize, usize> = HashMap::new();
        for (b, l) in links.iter().enumerate() {
            if l.link_type != LinkType::Bond {
                continue;
            }
            for m in &l.bond_links {
                let mi = index[m.as_str()];
                if !links[mi].link_type.is_physical() {
                    return Err(err(
                        l,
                        format!(
                            "bond member {m:?} is a {}, not a NIC",
                            type_name(&links[mi])
                        ),
                    ));
                }
                if let Some(other) = bond_of.insert(mi, b)
                    && other != b
                {
                    return Err(err(
                        &links[mi],
                        format!(
                            "is a member of both bond {:?} and bond {:?}",
                            links[other].id, l.id
                        ),
                    ));
                }
            }
        }
        let parents: HashSet<usize> = links
            .iter()
            .filter(|l| l.link_type == LinkType::Vlan)
            .filter_map(|l| l.vlan_link.as_deref().map(|p| index[p]))
            .collect();

        // Which links become interfaces: bonds, VLANs, and NICs that something refers to.
        let wanted: Vec<usize> = (0..links.len())
            .filter(|&i| {
                let l = &links[i];
                let used = !l.link_type.is_physical()
                    || bond_of.contains_key(&i)
                    || parents.contains(&i)
                    || net.networks_on(&l.id).next().is_some();
                if !used {
                    log::info!(
                        "network_data.json: link {:?} ({}) has no network and no bond or VLAN on it: left alone",
                        l.id,
                        type_name(l)
                    );
                }
                used
            })
            .collect();

        let names = name_links(links, &wanted, &index)?;

        // Depth: NIC 0, bond 1, VLAN = parent + 1 (the model refuses cycles).
        fn depth(i: usize, links: &[Link], index: &HashMap<&str, usize>) -> usize {
            match links[i].link_type {
                LinkType::Bond => 1,
                LinkType::Vlan => {
                    1 + depth(
                        index[links[i].vlan_link.as_deref().expect("model checks")],
                        links,
                        index,
                    )
                }
                _ => 0,
            }
        }

        let global_dns = net.dns_servers();
        let mut ifaces = Vec::new();
        for &i in &wanted {
            let l = &links[i];
            let name = names[&i].clone();
            let kind = match l.link_type {
                LinkType::Bond => Kind::Bond(bond(l, &index, &names)?),
                LinkType::Vlan => {
                    let parent =
                        names[&index[l.vlan_link.as_deref().expect("model checks")]].clone();
                    Kind::Vlan {
                        parent,
                        id: l.vlan_id.expect("model checks"),
                    }
                }
                _ => {
                    // IPoIB is told apart by its 20-octet hardware address: an InfiniBand type
                    // with an Ethernet-style MAC is matched as given, like any NIC.
                    let ib = l
                        .ethernet_mac_address
                        .as_ref()
                        .is_some_and(|m| m.octets().len() == 20);
                    if matches!(l.link_type, LinkType::Ib | LinkType::IbHostdev) && !ib {
                        log::warn!(
                            "network_data.json: link {:?} is InfiniBand but has no 20-octet IPoIB address: matched as an Ethernet NIC",
                            l.id
                        );
                    }
                    Kind::Nic { infiniband: ib }
                }
            };
            let bond = bond_of.get(&i).map(|b| names[b].clone());
            let primary = bond_of
                .get(&i)
                .is_some_and(|&b| primary_member(&links[b], &index).is_some_and(|p| p == i));
            let vlans: Vec<String> = {
                let mut v: Vec<String> = links
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| {
                        c.link_type == LinkType::Vlan && c.vlan_link.as_deref() == Some(&l.id)
                    })
                    .map(|(j, _)| names[&j].clone())
                    .collect();
                v.sort();
                v
            };
            let nets: Vec<&Network> = net.networks_on(&l.id).collect();
            let l3 = if nets.is_empty() {
                None
            } else if bond.is_some() {
                log::warn!(
                    "network_data.json: link {:?} is a member of bond {:?}: its {} network(s) are ignored (an enslaved interface carries no address)",
                    l.id,
                    bond.as_deref().unwrap_or(""),
                    nets.len()
                );
                None
            } else {
                Some(l3(l, &nets, &global_dns))
            };
            ifaces.push(Iface {
                name,
                link_id: l.id.clone(),
                kind,
                mac: l.mac().cloned(),
                mtu: l.mtu,
                bond,
                primary,
                vlans,
                l3,
                depth: depth(i, links, &index),
            });
        }
        ifaces.sort_by(|a, b| (a.depth, &a.name).cmp(&(b.depth, &b.name)));
        // Later default routes of one family with no metric would fight for one kernel route.
        let mut plan = Plan { ifaces };
        plan.spread_default_metrics(net, &names, &index);
        Ok(plan)
    }

    pub fn get(&self, name: &str) -> Option<&Iface> {
        self.ifaces.iter().find(|i| i.name == name)
    }

    fn spread_default_metrics(
        &mut self,
        net: &NetworkData,
        names: &HashMap<usize, String>,
        index: &HashMap<&str, usize>,
    ) {
        // File order of the networks decides which default route is first.
        let order: Vec<&str> = net
            .networks
            .iter()
            .filter_map(|n| names.get(&index[n.link.as_str()]).map(String::as_str))
            .collect();
        let mut rank: Vec<String> = Vec::new();
        for n in order {
            if !rank.iter().any(|r| r == n) {
                rank.push(n.to_string());
            }
        }
        for v6 in [false, true] {
            let mut k = 0u32;
            for name in &rank {
                let Some(iface) = self.ifaces.iter_mut().find(|i| &i.name == name) else {
                    continue;
                };
                let Some(l3) = iface.l3.as_mut() else {
                    continue;
                };
                let mut seen_here = false;
                for r in l3
                    .routes
                    .iter_mut()
                    .filter(|r| r.is_default() && r.dest.is_ipv6() == v6 && r.metric.is_none())
                {
                    if !seen_here {
                        seen_here = true;
                        if k > 0 {
                            let base = if v6 { 1024 } else { 0 };
                            r.metric = Some(base + 100 * k);
                            log::info!(
                                "network_data.json: {} default route of {} given metric {} (another link has one first)",
                                if v6 { "IPv6" } else { "IPv4" },
                                iface.name,
                                base + 100 * k
                            );
                        }
                    }
                }
                if seen_here {
                    k += 1;
                }
            }
        }
    }
}

fn type_name(l: &Link) -> String {
    l.link_type
        .as_str()
        .map_or_else(|| "untyped link".to_string(), |t| format!("{t} link"))
}

/// Names: every link's own `name` first (a clash there is an error), then derived names, made
/// unique against everything taken before them.
fn name_links(
    links: &[Link],
    wanted: &[usize],
    index: &HashMap<&str, usize>,
) -> Result<HashMap<usize, String>, RenderError> {
    let mut names: HashMap<usize, String> = HashMap::new();
    let mut taken: HashMap<String, usize> = HashMap::new();
    for &i in wanted {
        let l = &links[i];
        let Some(n) = &l.name else { continue };
        match sanitise(n) {
            Some(s) => {
                if s != *n {
                    log::warn!(
                        "network_data.json: link {:?}: name {n:?} sanitised to {s:?}",
                        l.id
                    );
                }
                if let Some(&j) = taken.get(&s) {
                    return Err(err(
                        l,
                        format!("name {s:?} is also the name of link {:?}", links[j].id),
                    ));
                }
                taken.insert(s.clone(), i);
                names.insert(i, s);
            }
            None => log::warn!(
                "network_data.json: link {:?}: name {n:?} is no usable interface name (1 to {IFNAMSIZ} bytes): a name is derived instead",
                l.id
            ),
        }
    }
    // NICs, then bonds, then VLANs (whose names derive from their parents'), each in file order.
    let mut bond_n = 0;
    let mut pending: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|i| !names.contains_key(i))
        .collect();
    // Bonds whose id is a clean name keep it before any bondN is handed out.
    pending.sort_by_key(|&i| match links[i].link_type {
        LinkType::Bond if sanitise(&links[i].id).is_some_and(|s| !s.contains('.')) => 1,
        LinkType::Bond => 2,
        LinkType::Vlan => 3,
        _ => 0,
    });
    // VLANs on VLANs: a VLAN's parent must be named first; repeat until all are.
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for i in pending {
            let l = &links[i];
            let candidates: Vec<String> = match l.link_type {
                LinkType::Bond => {
                    match sanitise(&l.id).filter(|s| !s.contains('.') && !taken.contains_key(s)) {
                        Some(s) => vec![s],
                        None => loop {
                            let n = format!("bond{bond_n}");
                            bond_n += 1;
                            if !taken.contains_key(&n) {
                                break vec![n];
                            }
                        },
                    }
                }
                LinkType::Vlan => {
                    let p = index[l.vlan_link.as_deref().expect("model checks")];
                    let Some(parent) = names.get(&p) else {
                        rest.push(i);
                        continue;
                    };
                    let vid = l.vlan_id.expect("model checks");
                    vec![format!("{parent}.{vid}"), format!("vlan{vid}")]
                }
                _ => match (&l.ethernet_mac_address, sanitise(&l.id)) {
                    (Some(m), _) => vec![mac_name(m)],
                    (None, Some(s)) => vec![s],
                    (None, None) => vec!["nic".to_string()],
                },
            };
            let name = candidates
                .iter()
                .find(|c| valid_ifname(c) && !taken.contains_key(*c))
                .cloned()
                .unwrap_or_else(|| unique(&candidates[candidates.len() - 1], &taken));
            taken.insert(name.clone(), i);
            names.insert(i, name);
        }
        if rest.len() == before {
            unreachable!("the model refuses VLAN cycles");
        }
        pending = rest;
    }
    Ok(names)
}

/// `base` made unique with a `-N` suffix, cut to fit 15 bytes.
fn unique(base: &str, taken: &HashMap<String, usize>) -> String {
    for n in 1.. {
        let suffix = format!("-{n}");
        let keep = IFNAMSIZ.saturating_sub(suffix.len()).min(base.len());
        let c = format!("{}{suffix}", &base[..keep]);
        if valid_ifname(&c) && !taken.contains_key(&c) {
            return c;
        }
    }
    unreachable!()
}

fn primary_member(bond: &Link, index: &HashMap<&str, usize>) -> Option<usize> {
    let v = bond.bond_options.get("bond_primary")?;
    let s = v.as_str()?;
    bond.bond_links
        .iter()
        .find(|m| m.as_str() == s)
        .map(|m| index[m.as_str()])
}

fn bond(
    l: &Link,
    index: &HashMap<&str, usize>,
    names: &HashMap<usize, String>,
) -> Result<Bond, RenderError> {
    let members: Vec<String> = l
        .bond_links
        .iter()
        .map(|m| names[&index[m.as_str()]].clone())
        .collect();
    let mode = l.bond_mode.unwrap_or_else(|| {
        log::warn!(
            "network_data.json: bond {:?} has no bond_mode: balance-rr (the kernel's default)",
            l.id
        );
        BondMode::BalanceRr
    });
    // Every option given: the typed fields and the other `bond_*` keys.
    let mut given: BTreeMap<String, Value> = BTreeMap::new();
    if let Some(m) = l.bond_miimon {
        given.insert("miimon".into(), Value::from(m));
    }
    if let Some(x) = &l.bond_xmit_hash_policy {
        given.insert("xmit_hash_policy".into(), Value::from(x.as_str()));
    }
    for (k, v) in &l.bond_options {
        let k = k.strip_prefix("bond_").unwrap_or(k).replace('-', "_");
        given.insert(k, v.clone());
    }
    // Aliases of the same options.
    for (alias, name) in [
        ("slaves_active", "all_slaves_active"),
        ("all_members_active", "all_slaves_active"),
        ("packets_per_member", "packets_per_slave"),
        ("num_unsol_na", "num_grat_arp"),
    ] {
        if let Some(v) = given.remove(alias) {
            given.entry(name.to_string()).or_insert(v);
        }
    }
    let mut options = Vec::new();
    for (key, v) in &given {
        let Some(&(opt, kname, kind, modes)) = OPTS.iter().find(|o| o.1 == key) else {
            log::warn!(
                "network_data.json: bond {:?}: option bond_{key} is not one seedpart renders: skipped",
                l.id
            );
            continue;
        };
        if let Some(modes) = modes
            && !modes.contains(&mode)
        {
            log::warn!(
                "network_data.json: bond {:?}: bond_{kname} does not apply to mode {}: skipped",
                l.id,
                mode.as_str()
            );
            continue;
        }
        match opt_value(kind, v, l, index, names) {
            Some(val) => options.push((opt, val)),
            None => log::warn!(
                "network_data.json: bond {:?}: bond_{kname} = {v} is not a valid value: skipped",
                l.id
            ),
        }
    }
    // ARP monitoring and MII monitoring exclude each other: MII wins, as in the kernel.
    if options
        .iter()
        .any(|(o, v)| *o == BondOpt::Miimon && *v != OptValue::Ms(0))
        && options.iter().any(|(o, _)| {
            matches!(
                o,
                BondOpt::ArpInterval
                    | BondOpt::ArpIpTarget
                    | BondOpt::ArpValidate
                    | BondOpt::ArpAllTargets
            )
        })
    {
        log::warn!(
            "network_data.json: bond {:?}: both MII and ARP monitoring given: the ARP options are skipped",
            l.id
        );
        options.retain(|(o, _)| {
            !matches!(
                o,
                BondOpt::ArpInterval
                    | BondOpt::ArpIpTarget
                    | BondOpt::ArpValidate
                    | BondOpt::ArpAllTargets
            )
        });
    }
    options.sort_by_key(|(o, _)| *o);
    Ok(Bond {
        members,
        mode,
        options,
    })
}

fn as_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn opt_value(
    kind: Kind2,
    v: &Value,
    l: &Link,
    index: &HashMap<&str, usize>,
    names: &HashMap<usize, String>,
) -> Option<OptValue> {
    match kind {
        Kind2::Ms => as_u32(v).map(OptValue::Ms),
        Kind2::Int => as_u32(v).map(OptValue::Int),
        Kind2::Names(list) => {
            if let Some(n) = as_u32(v) {
                return list.get(n as usize).map(|s| OptValue::Name(s));
            }
            let s = v.as_str()?.trim();
            list.iter()
                .find(|n| n.eq_ignore_ascii_case(s))
                .map(|s| OptValue::Name(s))
        }
        Kind2::Bool => match v {
            Value::Bool(b) => Some(OptValue::Bool(*b)),
            _ => match as_u32(v) {
                Some(0) => Some(OptValue::Bool(false)),
                Some(1) => Some(OptValue::Bool(true)),
                _ => match v.as_str()?.trim() {
                    "true" | "yes" | "on" => Some(OptValue::Bool(true)),
                    "false" | "no" | "off" => Some(OptValue::Bool(false)),
                    _ => None,
                },
            },
        },
        // The primary member, by link id (or by the name seedpart gives it).
        Kind2::Iface => {
            let s = v.as_str()?;
            l.bond_links
                .iter()
                .map(|m| &names[&index[m.as_str()]])
                .zip(l.bond_links.iter())
                .find(|(name, id)| *name == s || id.as_str() == s)
                .map(|(name, _)| OptValue::Iface(name.clone()))
        }
        Kind2::Ips => {
            let items: Vec<&str> = match v {
                Value::String(s) => s.split([',', ' ']).filter(|s| !s.is_empty()).collect(),
                Value::Array(a) => a.iter().map(Value::as_str).collect::<Option<_>>()?,
                _ => return None,
            };
            let ips: Vec<Ipv4Addr> = items
                .iter()
                .map(|s| s.trim().parse().ok())
                .collect::<Option<_>>()?;
            (!ips.is_empty() && ips.len() <= 16).then_some(OptValue::Ips(ips))
        }
    }
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

/// A search domain safe to write in every format: letters, digits, `-`, `_` and dots.
fn valid_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn in_prefix(a: IpAddr, net: IpAddr, len: u8) -> bool {
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

/// `a` with the bits past `len` cleared.
fn network_address(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(a) => {
            let m = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

fn l3(l: &Link, nets: &[&Network], global_dns: &[IpAddr]) -> L3 {
    let mut x = L3::default();
    let mut static6 = false;
    let mut dynamic6 = false;
    for n in nets {
        let t = &n.network_type;
        match t {
            NetworkType::Ipv4 | NetworkType::Ipv6 => {
                let (Some(a), Some(p)) = (n.ip_address, n.prefix_len) else {
                    unreachable!("the model requires an address and a prefix on static networks");
                };
                push_unique(&mut x.addrs, (a, p));
                static6 |= a.is_ipv6();
            }
            NetworkType::Ipv4Dhcp => x.dhcp4 = true,
            NetworkType::Ipv6Slaac => dynamic6 = true,
            NetworkType::Ipv6Dhcpv6Stateless => {
                dynamic6 = true;
                x.dhcp6 = x.dhcp6.max(Dhcp6::Stateless);
            }
            NetworkType::Ipv6Dhcp => {
                dynamic6 = true;
                x.dhcp6 = x.dhcp6.max(Dhcp6::Auto);
            }
            NetworkType::Ipv6Dhcpv6Stateful => {
                dynamic6 = true;
                x.dhcp6 = x.dhcp6.max(Dhcp6::Stateful);
            }
            NetworkType::Other(name) => {
                let v6 = name.starts_with("ipv6");
                log::warn!(
                    "network_data.json: network {:?} on link {:?} has unknown type {name:?}: rendered as {}",
                    n.id.as_deref().unwrap_or(""),
                    l.id,
                    if v6 { "DHCPv6" } else { "DHCPv4" }
                );
                if v6 {
                    dynamic6 = true;
                    x.dhcp6 = x.dhcp6.max(Dhcp6::Auto);
                } else {
                    x.dhcp4 = true;
                }
            }
        }
        for d in n.dns_servers() {
            push_unique(&mut x.dns, d);
        }
        for s in &n.dns_search {
            if valid_domain(s) {
                push_unique(&mut x.search, s.clone());
            } else {
                log::warn!(
                    "network_data.json: link {:?}: search domain {s:?} is not a domain name: skipped",
                    l.id
                );
            }
        }
    }
    // IPv4 addresses sorted before IPv6 ones, each family keeping file order.
    x.addrs.sort_by_key(|(a, _)| a.is_ipv6());
    x.accept_ra = if dynamic6 {
        Some(true)
    } else if static6 {
        Some(false)
    } else {
        None
    };
    for d in global_dns {
        push_unique(&mut x.dns, *d);
    }
    for n in nets {
        for r in &n.routes {
            let dhcp_family = if r.network.is_ipv6() {
                x.slaac() || x.dhcp6 != Dhcp6::No
            } else {
                x.dhcp4
            };
            let onlink = match r.gateway {
                None => false,
                Some(IpAddr::V6(g)) if g.is_unicast_link_local() => false,
                Some(g) => !dhcp_family && !x.addrs.iter().any(|(a, p)| in_prefix(g, *a, *p)),
            };
            let spec = RouteSpec {
                dest: network_address(r.network, r.prefix_len),
                prefix: r.prefix_len,
                gateway: r.gateway,
                metric: r.metric,
                onlink,
            };
            push_unique(&mut x.routes, spec);
        }
    }
    x
}
