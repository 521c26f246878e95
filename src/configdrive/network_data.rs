//! `network_data.json` (and the legacy `network_info.json`, the same schema): Nova's L2 `links`,
//! L3 `networks` and `services`, with every field of Nova's schema plus what other producers
//! (Ironic, Metal3, Rackspace, OVH, KubeVirt) add. Unknown keys are kept in `extra`.
//!
//! Validated because the network renderers act on it: MAC addresses (normalized to lowercase
//! `aa:bb:..`), IP addresses, netmasks (dotted, IPv6 masks such as `ffff:ffff:ffff:ffff::`, or
//! prefix lengths), VLAN ids, bond modes, MTUs, and every reference between entries (a
//! network's `link`, a bond's `bond_links`, a VLAN's `vlan_link` must name a link that exists;
//! no cycles, no duplicate ids, no two physical links with one MAC).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::ModelError;
use super::json::{self, Node, Obj};

/// The parsed `network_data.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NetworkData {
    pub links: Vec<Link>,
    pub networks: Vec<Network>,
    /// Services for the whole instance (DNS servers).
    pub services: Vec<Service>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An L2 interface: a NIC (any of the physical-like types), a bond or a VLAN.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Link {
    /// What networks and other links call this link. Often the host's tap name, meaningless in
    /// the guest: interfaces are matched by MAC address.
    pub id: String,
    #[serde(rename = "type")]
    pub link_type: LinkType,
    /// The interface name wanted in the guest (not in Nova's schema; Metal3/KubeVirt write it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ethernet_mac_address: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vif_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neutron_port_id: Option<String>,
    /// Bond members, by link id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bond_links: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond_mode: Option<BondMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond_miimon: Option<u32>,
    /// `layer2`, `layer2+3`, `layer3+4`, `encap2+3`, `encap3+4`, `vlan+srcmac`: passed through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bond_xmit_hash_policy: Option<String>,
    /// Every other `bond_*` key (`bond_lacp_rate`, `bond_updelay`, `bond_primary`, ...), whole
    /// key to value, for the renderers that know them.
    #[serde(flatten)]
    pub bond_options: BTreeMap<String, Value>,
    /// The parent of a VLAN, by link id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vlan_mac_address: Option<MacAddr>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Link {
    /// The MAC address the guest interface carries: a VLAN's own (`vlan_mac_address`) when it
    /// has one, else `ethernet_mac_address`.
    pub fn mac(&self) -> Option<&MacAddr> {
        match self.link_type {
            LinkType::Vlan => self
                .vlan_mac_address
                .as_ref()
                .or(self.ethernet_mac_address.as_ref()),
            _ => self.ethernet_mac_address.as_ref(),
        }
    }
}

/// A link's `type`. Everything but `bond` and `vlan` is a NIC of some kind (the name tells how
/// the host plugged it, which the guest does not care about), as cloud-init treats it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Phy,
    Ethernet,
    Bridge,
    Bgpovs,
    Cascading,
    ContrailVrouter,
    Dvs,
    HwVeb,
    Hyperv,
    Ib,
    IbHostdev,
    HostdevPhysical,
    Iovisor,
    Ivs,
    Macvtap,
    Midonet,
    AgilioOvs,
    Ovs,
    Tap,
    Vdpa,
    Vhostuser,
    Vif,
    Vrouter,
    Qbg,
    Qbh,
    Bond,
    Vlan,
    /// `"type": null` or no `type` (Rackspace writes that for its NICs).
    Unspecified,
    /// A name seedpart does not know: treated as a NIC, like cloud-init does.
    Other(String),
}

const LINK_TYPES: &[(&str, LinkType)] = &[
    ("phy", LinkType::Phy),
    ("ethernet", LinkType::Ethernet),
    ("bridge", LinkType::Bridge),
    ("bgpovs", LinkType::Bgpovs),
    ("cascading", LinkType::Cascading),
    ("contrail_vrouter", LinkType::ContrailVrouter),
    ("dvs", LinkType::Dvs),
    ("hw_veb", LinkType::HwVeb),
    ("hyperv", LinkType::Hyperv),
    ("ib", LinkType::Ib),
    ("ib_hostdev", LinkType::IbHostdev),
    ("hostdev_physical", LinkType::HostdevPhysical),
    ("iovisor", LinkType::Iovisor),
    ("ivs", LinkType::Ivs),
    ("macvtap", LinkType::Macvtap),
    ("midonet", LinkType::Midonet),
    ("agilio_ovs", LinkType::AgilioOvs),
    ("ovs", LinkType::Ovs),
    ("tap", LinkType::Tap),
    ("vdpa", LinkType::Vdpa),
    ("vhostuser", LinkType::Vhostuser),
    ("vif", LinkType::Vif),
    ("vrouter", LinkType::Vrouter),
    ("802.1qbg", LinkType::Qbg),
    ("802.1qbh", LinkType::Qbh),
    ("bond", LinkType::Bond),
    ("vlan", LinkType::Vlan),
];

impl LinkType {
    pub fn parse(s: &str) -> LinkType {
        LINK_TYPES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| LinkType::Other(s.to_string()))
    }

    /// The name as written; `None` for `Unspecified`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            LinkType::Unspecified => None,
            LinkType::Other(s) => Some(s),
            t => LINK_TYPES.iter().find(|(_, k)| k == t).map(|(n, _)| *n),
        }
    }

    /// A NIC to be found by MAC address: everything but bonds and VLANs.
    pub fn is_physical(&self) -> bool {
        !matches!(self, LinkType::Bond | LinkType::Vlan)
    }
}

impl Serialize for LinkType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.as_str() {
            Some(n) => s.serialize_str(n),
            None => s.serialize_none(),
        }
    }
}

/// The Linux bonding modes, by name (Nova's enum) or by the kernel's number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BondMode {
    BalanceRr,
    ActiveBackup,
    BalanceXor,
    Broadcast,
    Lacp,
    BalanceTlb,
    BalanceAlb,
}

const BOND_MODES: [(&str, BondMode); 7] = [
    ("balance-rr", BondMode::BalanceRr),
    ("active-backup", BondMode::ActiveBackup),
    ("balance-xor", BondMode::BalanceXor),
    ("broadcast", BondMode::Broadcast),
    ("802.3ad", BondMode::Lacp),
    ("balance-tlb", BondMode::BalanceTlb),
    ("balance-alb", BondMode::BalanceAlb),
];

impl BondMode {
    /// The kernel's name (`802.3ad`, `active-backup`, ...).
    pub fn as_str(self) -> &'static str {
        BOND_MODES
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("balance-rr")
    }

    /// The kernel's number (0 to 6).
    pub fn number(self) -> u8 {
        BOND_MODES.iter().position(|(_, m)| *m == self).unwrap_or(0) as u8
    }

    fn parse(s: &str) -> Option<BondMode> {
        let s = s.trim();
        if let Ok(n) = s.parse::<usize>() {
            return BOND_MODES.get(n).map(|(_, m)| *m);
        }
        BOND_MODES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, m)| *m)
    }
}

impl Serialize for BondMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A MAC address, normalized to lowercase with colons. Usually 6 octets; 20-octet InfiniBand
/// hardware addresses are accepted too.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(String);

impl MacAddr {
    pub fn parse(s: &str) -> Option<MacAddr> {
        let sep = if s.contains('-') { '-' } else { ':' };
        let parts: Vec<&str> = s.split(sep).collect();
        if !matches!(parts.len(), 6 | 20) {
            return None;
        }
        let mut out = String::with_capacity(parts.len() * 3);
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            if i > 0 {
                out.push(':');
            }
            out.push_str(&p.to_ascii_lowercase());
        }
        Some(MacAddr(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn octets(&self) -> Vec<u8> {
        self.0
            .split(':')
            .map(|p| u8::from_str_radix(p, 16).unwrap_or(0))
            .collect()
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An L3 network on a link.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Network {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub network_type: NetworkType,
    /// The link's id.
    pub link: String,
    /// Neutron's network UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_id: Option<String>,
    /// Present on static networks (`ipv4`, `ipv6`); Nova also writes it on `ipv6_slaac` ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<IpAddr>,
    /// From `netmask`, `prefix` or an `ip_address` written as `addr/len`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_len: Option<u8>,
    pub routes: Vec<Route>,
    /// DNS servers of this network (Nova writes them here and, deduplicated, at the top).
    pub services: Vec<Service>,
    /// Not in Nova's schema; cloud-init honours them when present.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_nameservers: Vec<IpAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Network {
    /// The netmask for `prefix_len`, in the address's family.
    pub fn netmask(&self) -> Option<IpAddr> {
        let len = self.prefix_len?;
        Some(match self.ip_address {
            Some(IpAddr::V6(_)) => IpAddr::V6(v6_mask(len)),
            Some(IpAddr::V4(_)) => IpAddr::V4(v4_mask(len)),
            None if self.network_type.family() == Some(Family::V6) => IpAddr::V6(v6_mask(len)),
            None => IpAddr::V4(v4_mask(len)),
        })
    }

    /// DNS servers given for this network: its `services`, `dns_nameservers`, and its routes'
    /// `services` (Nova's schema allows them there), each once.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let all = self
            .services
            .iter()
            .chain(self.routes.iter().flat_map(|r| r.services.iter()))
            .filter_map(Service::dns_address)
            .chain(self.dns_nameservers.iter().copied());
        for a in all {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

/// A network's `type`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum NetworkType {
    Ipv4,
    Ipv4Dhcp,
    Ipv6,
    Ipv6Dhcp,
    Ipv6Slaac,
    Ipv6Dhcpv6Stateful,
    Ipv6Dhcpv6Stateless,
    /// Kept so a renderer can say what it skipped.
    Other(String),
}

const NETWORK_TYPES: [(&str, NetworkType); 7] = [
    ("ipv4", NetworkType::Ipv4),
    ("ipv4_dhcp", NetworkType::Ipv4Dhcp),
    ("ipv6", NetworkType::Ipv6),
    ("ipv6_dhcp", NetworkType::Ipv6Dhcp),
    ("ipv6_slaac", NetworkType::Ipv6Slaac),
    ("ipv6_dhcpv6-stateful", NetworkType::Ipv6Dhcpv6Stateful),
    ("ipv6_dhcpv6-stateless", NetworkType::Ipv6Dhcpv6Stateless),
];

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(a: &IpAddr) -> Family {
        match a {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    fn max_prefix(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl NetworkType {
    pub fn parse(s: &str) -> NetworkType {
        NETWORK_TYPES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| NetworkType::Other(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            NetworkType::Other(s) => s,
            t => NETWORK_TYPES
                .iter()
                .find(|(_, k)| k == t)
                .map(|(n, _)| *n)
                .unwrap_or(""),
        }
    }

    /// `ipv4` and `ipv6`: an address to configure statically.
    pub fn is_static(&self) -> bool {
        matches!(self, NetworkType::Ipv4 | NetworkType::Ipv6)
    }

    pub fn family(&self) -> Option<Family> {
        match self {
            NetworkType::Ipv4 | NetworkType::Ipv4Dhcp => Some(Family::V4),
            NetworkType::Other(_) => None,
            _ => Some(Family::V6),
        }
    }
}

impl Serialize for NetworkType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A route of a network.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Route {
    /// The destination's network address (`0.0.0.0` / `::` for the default route).
    pub network: IpAddr,
    pub prefix_len: u8,
    /// Absent only from producers outside Nova (an on-link route). A link-local gateway's
    /// `%zone` suffix is dropped: it names a host interface, not a guest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }
}

/// A service (`{"type": "dns", "address": "8.8.8.8"}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Service {
    #[serde(rename = "type")]
    pub service_type: String,
    /// As written. For `dns` it is checked to be an IP address at parse time.
    pub address: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Service {
    /// The DNS server's address, for a `dns` service.
    pub fn dns_address(&self) -> Option<IpAddr> {
        if self.service_type == "dns" {
            parse_ip(&self.address).map(|(a, _)| a)
        } else {
            None
        }
    }
}

impl NetworkData {
    /// Parses the bytes of `file` (a drive-relative path, used in errors).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<NetworkData, ModelError> {
        let v = json::parse(file, bytes)?;
        NetworkData::from_value(file, &v)
    }

    pub fn from_value(file: &str, v: &Value) -> Result<NetworkData, ModelError> {
        let root = Node::root(file, v);
        let mut o = root.obj()?;
        let link_nodes = list(&mut o, "links")?;
        let links = link_nodes.iter().map(link).collect::<Result<Vec<_>, _>>()?;
        let net_nodes = list(&mut o, "networks")?;
        let networks = net_nodes
            .iter()
            .map(network)
            .collect::<Result<Vec<_>, _>>()?;
        let services = list(&mut o, "services")?
            .iter()
            .map(service)
            .collect::<Result<Vec<_>, _>>()?;
        let nd = NetworkData {
            links,
            networks,
            services,
            extra: o.rest(),
        };
        nd.check_references(&link_nodes, &net_nodes)?;
        Ok(nd)
    }

    pub fn link(&self, id: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.id == id)
    }

    /// The networks configured on link `id`, in file order.
    pub fn networks_on<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s Network> + 's {
        self.networks.iter().filter(move |n| n.link == id)
    }

    /// The instance-wide DNS servers (top-level `services`), each once.
    pub fn dns_servers(&self) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for a in self.services.iter().filter_map(Service::dns_address) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    fn check_references(
        &self,
        link_nodes: &[Node<'_>],
        net_nodes: &[Node<'_>],
    ) -> Result<(), ModelError> {
        let field = |i: usize, key: &str| {
            let mut o = link_nodes[i].obj().expect("checked while parsing");
            o.take(key)
        };
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, l) in self.links.iter().enumerate() {
            if let Some(j) = index.insert(&l.id, i) {
                return Err(field(i, "id").inconsistent(format!(
                    "link id {:?} is already the id of links[{j}]",
                    l.id
                )));
            }
        }
        let mut macs: HashMap<&MacAddr, usize> = HashMap::new();
        for (i, l) in self.links.iter().enumerate() {
            let resolve = |target: &str, at: Node<'_>| -> Result<usize, ModelError> {
                match index.get(target) {
                    Some(&j) if j == i => {
                        Err(at.inconsistent(format!("link {:?} names itself", l.id)))
                    }
                    Some(&j) => Ok(j),
                    None => Err(at.inconsistent(format!(
                        "names link {target:?}, but no entry of links has that id (ids: {})",
                        id_list(&self.links)
                    ))),
                }
            };
            if let Some(p) = &l.vlan_link {
                resolve(p, field(i, "vlan_link"))?;
            }
            let members = field(i, "bond_links");
            for (k, m) in l.bond_links.iter().enumerate() {
                let at = members
                    .items()
                    .map(|v| v[k].clone())
                    .unwrap_or_else(|_| members.clone());
                resolve(m, at)?;
            }
            if l.link_type.is_physical()
                && let Some(mac) = &l.ethernet_mac_address
                && let Some(j) = macs.insert(mac, i)
            {
                return Err(field(i, "ethernet_mac_address").inconsistent(format!(
                    "{mac} is also the MAC address of links[{j}]: matching interfaces by MAC would be ambiguous"
                )));
            }
        }
        // A VLAN on a VLAN on ... must end at a NIC; a loop would hang every renderer.
        for (i, l) in self.links.iter().enumerate() {
            let mut seen = vec![i];
            let mut stack: Vec<usize> = parents(l, &index);
            while let Some(j) = stack.pop() {
                if j == i {
                    return Err(link_nodes[i].inconsistent(format!(
                        "link {:?} depends on itself through vlan_link/bond_links",
                        l.id
                    )));
                }
                if !seen.contains(&j) {
                    seen.push(j);
                    stack.extend(parents(&self.links[j], &index));
                }
            }
        }
        for (i, n) in self.networks.iter().enumerate() {
            if !index.contains_key(n.link.as_str()) {
                let mut o = net_nodes[i].obj().expect("checked while parsing");
                return Err(o.take("link").inconsistent(format!(
                    "names link {:?}, but no entry of links has that id (ids: {})",
                    n.link,
                    id_list(&self.links)
                )));
            }
        }
        Ok(())
    }
}

fn parents(l: &Link, index: &HashMap<&str, usize>) -> Vec<usize> {
    l.vlan_link
        .iter()
        .chain(l.bond_links.iter())
        .filter_map(|p| index.get(p.as_str()).copied())
        .collect()
}

fn id_list(links: &[Link]) -> String {
    if links.is_empty() {
        return "none".into();
    }
    let ids: Vec<String> = links
        .iter()
        .take(8)
        .map(|l| format!("{:?}", l.id))
        .collect();
    let more = if links.len() > 8 { ", ..." } else { "" };
    format!("{}{more}", ids.join(", "))
}

/// A top-level list; absent or null is an empty one (Nova always writes all three, others do
/// not).
fn list<'a>(o: &mut Obj<'a>, key: &str) -> Result<Vec<Node<'a>>, ModelError> {
    match o.take(key).opt() {
        None => Ok(Vec::new()),
        Some(n) => n.items(),
    }
}

fn opt_string(o: &mut Obj<'_>, key: &str) -> Result<Option<String>, ModelError> {
    o.take(key).opt().map(|n| n.string_or_number()).transpose()
}

fn mac(n: &Node<'_>) -> Result<MacAddr, ModelError> {
    n.str()
        .ok()
        .and_then(MacAddr::parse)
        .ok_or_else(|| n.invalid("a MAC address like fa:16:3e:00:00:01"))
}

fn link(n: &Node<'_>) -> Result<Link, ModelError> {
    let mut o = n.obj()?;
    let id_node = o.take("id");
    let id = id_node
        .string_or_number()
        .map_err(|_| id_node.invalid("the link's id (a string)"))?;
    let type_node = o.take("type");
    let link_type = match type_node.clone().opt() {
        None => LinkType::Unspecified,
        Some(t) => LinkType::parse(t.str()?),
    };
    let name = opt_string(&mut o, "name")?;
    let ethernet_mac_address = o
        .take("ethernet_mac_address")
        .opt()
        .map(|m| mac(&m))
        .transpose()?;
    let mtu = o
        .take("mtu")
        .opt()
        .map(|m| m.uint(68, 65535, "an MTU").map(|v| v as u32))
        .transpose()?;
    let vif_id = opt_string(&mut o, "vif_id")?;
    let neutron_port_id = opt_string(&mut o, "neutron_port_id")?;

    let bond_links = match o.take("bond_links").opt() {
        None => Vec::new(),
        Some(b) => b
            .items()?
            .iter()
            .map(|m| {
                m.string_or_number()
                    .map_err(|_| m.invalid("a link id (a string)"))
            })
            .collect::<Result<_, _>>()?,
    };
    let bond_mode = match o.take("bond_mode").opt() {
        None => None,
        Some(m) => Some(
            m.string_or_number()
                .ok()
                .and_then(|s| BondMode::parse(&s))
                .ok_or_else(|| {
                    m.invalid("a bond mode (802.3ad, active-backup, balance-rr, balance-xor, broadcast, balance-tlb, balance-alb or 0-6)")
                })?,
        ),
    };
    let bond_miimon = o
        .take("bond_miimon")
        .opt()
        .map(|m| {
            m.uint(0, u32::MAX as u64, "a MII monitoring interval in ms")
                .map(|v| v as u32)
        })
        .transpose()?;
    let bond_xmit_hash_policy = opt_string(&mut o, "bond_xmit_hash_policy")?;
    let bond_options: BTreeMap<String, Value> = o
        .take_prefixed("bond_")
        .into_iter()
        .filter(|(_, v)| v.is_given())
        .map(|(k, v)| (k.to_string(), v.value().clone()))
        .collect();

    let vlan_link = opt_string(&mut o, "vlan_link")?;
    let vlan_id = o
        .take("vlan_id")
        .opt()
        .map(|v| v.uint(0, 4095, "a VLAN id").map(|v| v as u16))
        .transpose()?;
    let vlan_mac_address = o
        .take("vlan_mac_address")
        .opt()
        .map(|m| mac(&m))
        .transpose()?;

    match link_type {
        LinkType::Bond if bond_links.is_empty() => {
            return Err(o
                .take("bond_links")
                .invalid("the bond's member link ids (a non-empty array)"));
        }
        LinkType::Vlan if vlan_link.is_none() => {
            return Err(o.take("vlan_link").invalid("the VLAN's parent link id"));
        }
        LinkType::Vlan if vlan_id.is_none() => {
            return Err(o
                .take("vlan_id")
                .invalid("a VLAN id (a whole number from 0 to 4095)"));
        }
        ref t if t.is_physical() && ethernet_mac_address.is_none() && name.is_none() => {
            // A NIC is found by its MAC address; with neither MAC nor name nothing can be.
            return Err(o.take("ethernet_mac_address").invalid(
                "a MAC address like fa:16:3e:00:00:01 (a NIC with no name is found by it)",
            ));
        }
        _ => {}
    }

    Ok(Link {
        id,
        link_type,
        name,
        ethernet_mac_address,
        mtu,
        vif_id,
        neutron_port_id,
        bond_links,
        bond_mode,
        bond_miimon,
        bond_xmit_hash_policy,
        bond_options,
        vlan_link,
        vlan_id,
        vlan_mac_address,
        extra: o.rest(),
    })
}

fn network(n: &Node<'_>) -> Result<Network, ModelError> {
    let mut o = n.obj()?;
    let id = opt_string(&mut o, "id")?;
    let type_node = o.take("type");
    let network_type = NetworkType::parse(type_node.str().map_err(|_| {
        type_node.invalid("a network type (ipv4, ipv4_dhcp, ipv6, ipv6_dhcp, ipv6_slaac, ...)")
    })?);
    let family = network_type.family();
    let link_node = o.take("link");
    let link = link_node
        .string_or_number()
        .map_err(|_| link_node.invalid("the id of a link (a string)"))?;
    let network_id = opt_string(&mut o, "network_id")?;

    let ip_node = o.take("ip_address");
    let (ip_address, ip_prefix) = match ip_node.clone().opt() {
        None => (None, None),
        Some(a) => {
            let (addr, len) = ip_with_prefix(&a, family)?;
            (Some(addr), len)
        }
    };
    let family = ip_address.as_ref().map(Family::of).or(family);

    let mask_prefix = o
        .take("netmask")
        .opt()
        .map(|m| mask(&m, family))
        .transpose()?;
    let prefix_node = o.take("prefix");
    let field_prefix = prefix_node
        .clone()
        .opt()
        .map(|m| mask(&m, family))
        .transpose()?;
    let mut prefix_len = None;
    for (p, what) in [
        (ip_prefix, "ip_address's /length"),
        (mask_prefix, "netmask"),
        (field_prefix, "prefix"),
    ] {
        match (prefix_len, p) {
            (None, Some(p)) => prefix_len = Some((p, what)),
            (Some((q, other)), Some(p)) if p != q => {
                return Err(n.inconsistent(format!("{what} says /{p} but {other} says /{q}")));
            }
            _ => {}
        }
    }
    let prefix_len = prefix_len.map(|(p, _)| p);

    if network_type.is_static() {
        if ip_address.is_none() {
            return Err(ip_node.invalid(format!(
                "an {} address (type {} is a static address)",
                family.map_or("IP", Family::name),
                network_type.as_str()
            )));
        }
        if prefix_len.is_none() {
            return Err(o.take("netmask").invalid(match family {
                Some(Family::V6) => "a netmask like ffff:ffff:ffff:ffff:: or a prefix length",
                _ => "a netmask like 255.255.255.0 or a prefix length",
            }));
        }
    }

    let routes = match o.take("routes").opt() {
        None => Vec::new(),
        Some(r) => r
            .items()?
            .iter()
            .map(|r| route(r, family))
            .collect::<Result<_, _>>()?,
    };
    let services = match o.take("services").opt() {
        None => Vec::new(),
        Some(s) => s.items()?.iter().map(service).collect::<Result<_, _>>()?,
    };
    let dns_nameservers = match o.take("dns_nameservers").opt() {
        None => Vec::new(),
        Some(s) => s
            .items()?
            .iter()
            .map(|a| ip_with_prefix(a, None).map(|(ip, _)| ip))
            .collect::<Result<_, _>>()?,
    };
    let dns_search = match o.take("dns_search").opt() {
        None => Vec::new(),
        Some(s) if s.value().is_string() => s.str()?.split_whitespace().map(String::from).collect(),
        Some(s) => s
            .items()?
            .iter()
            .map(|d| d.str().map(String::from))
            .collect::<Result<_, _>>()?,
    };

    Ok(Network {
        id,
        network_type,
        link,
        network_id,
        ip_address,
        prefix_len,
        routes,
        services,
        dns_nameservers,
        dns_search,
        extra: o.rest(),
    })
}

fn route(n: &Node<'_>, family: Option<Family>) -> Result<Route, ModelError> {
    let mut o = n.obj()?;
    let net_node = o.take("network");
    let (network, net_prefix) = ip_with_prefix(&net_node, family)?;
    let family = Some(Family::of(&network));
    let mask_prefix = match o.take("netmask").opt() {
        Some(m) => Some(mask(&m, family)?),
        None => net_prefix,
    };
    let prefix_len = match (mask_prefix, net_prefix) {
        (Some(m), Some(p)) if m != p => {
            return Err(n.inconsistent(format!("netmask says /{m} but network says /{p}")));
        }
        (Some(m), _) => m,
        (None, _) => {
            return Err(o.take("netmask").invalid(
                "the route's netmask (like 255.255.255.0, ffff:ffff:: or a prefix length)",
            ));
        }
    };
    let gateway = o
        .take("gateway")
        .opt()
        .map(|g| ip_with_prefix(&g, family).map(|(a, _)| a))
        .transpose()?;
    let metric = o
        .take("metric")
        .opt()
        .map(|m| {
            m.uint(0, u32::MAX as u64, "a route metric")
                .map(|v| v as u32)
        })
        .transpose()?;
    let services = match o.take("services").opt() {
        None => Vec::new(),
        Some(s) => s.items()?.iter().map(service).collect::<Result<_, _>>()?,
    };
    Ok(Route {
        network,
        prefix_len,
        gateway,
        metric,
        services,
        extra: o.rest(),
    })
}

fn service(n: &Node<'_>) -> Result<Service, ModelError> {
    let mut o = n.obj()?;
    let t = o.take("type");
    let service_type = t.str()?.to_string();
    let a = o.take("address");
    let address = if service_type == "dns" {
        let s = a
            .str()
            .map_err(|_| a.invalid("a DNS server's IP address"))?;
        if parse_ip(s).is_none() {
            return Err(a.invalid("a DNS server's IP address"));
        }
        s.to_string()
    } else {
        a.opt()
            .map(|a| a.string_or_number())
            .transpose()?
            .unwrap_or_default()
    };
    Ok(Service {
        service_type,
        address,
        extra: o.rest(),
    })
}

/// An address, optionally `addr/len`, optionally with a `%zone` (dropped). Checked against the
/// family the network's type implies.
fn ip_with_prefix(
    n: &Node<'_>,
    family: Option<Family>,
) -> Result<(IpAddr, Option<u8>), ModelError> {
    let expected = || match family {
        Some(Family::V4) => "an IPv4 address like 192.0.2.10".to_string(),
        Some(Family::V6) => "an IPv6 address like 2001:db8::10".to_string(),
        None => "an IP address".to_string(),
    };
    let s = n.str().map_err(|_| n.invalid(expected()))?;
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let (ip, _) = parse_ip(addr).ok_or_else(|| n.invalid(expected()))?;
    if let Some(f) = family
        && Family::of(&ip) != f
    {
        return Err(n.invalid(expected()));
    }
    let max = Family::of(&ip).max_prefix();
    let len = match len {
        None => None,
        Some(l) => match l.parse::<u8>() {
            Ok(l) if l <= max => Some(l),
            _ => {
                return Err(n.invalid(format!("{} with a prefix length of 0 to {max}", expected())));
            }
        },
    };
    Ok((ip, len))
}

fn parse_ip(s: &str) -> Option<(IpAddr, Option<&str>)> {
    let s = s.trim();
    let (addr, zone) = match s.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (s, None),
    };
    addr.parse::<IpAddr>().ok().map(|a| (a, zone))
}

/// A netmask as a prefix length: `255.255.255.0`, `ffff:ffff:ffff:ffff::`, `24`, `"24"` or
/// `"/24"`. Non-contiguous masks are refused: no renderer can express them.
fn mask(n: &Node<'_>, family: Option<Family>) -> Result<u8, ModelError> {
    let max = family.map_or(128, Family::max_prefix);
    let expected = || match family {
        Some(Family::V6) => {
            "an IPv6 netmask like ffff:ffff:ffff:ffff:: or a prefix length of 0 to 128".to_string()
        }
        Some(Family::V4) => {
            "an IPv4 netmask like 255.255.255.0 or a prefix length of 0 to 32".to_string()
        }
        None => "a netmask or a prefix length".to_string(),
    };
    if n.value().is_number() {
        return n.uint(0, max as u64, &expected()).map(|v| v as u8);
    }
    let s = n.str().map_err(|_| n.invalid(expected()))?.trim();
    let digits = s.strip_prefix('/').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match digits.parse::<u8>() {
            Ok(p) if p <= max => Ok(p),
            _ => Err(n.invalid(expected())),
        };
    }
    let m: IpAddr = s.parse().map_err(|_| n.invalid(expected()))?;
    if family.is_some_and(|f| f != Family::of(&m)) {
        return Err(n.invalid(expected()));
    }
    // Left-aligned in 128 bits, so one test serves both families.
    let bits = match m {
        IpAddr::V4(a) => u128::from(u32::from(a)) << 96,
        IpAddr::V6(a) => u128::from(a),
    };
    let ones = bits.leading_ones();
    if bits.count_ones() != ones {
        return Err(n.invalid(format!("{} (a contiguous mask)", expected())));
    }
    Ok(ones as u8)
}

fn v4_mask(len: u8) -> Ipv4Addr {
    let len = len.min(32) as u32;
    Ipv4Addr::from(u32::MAX.checked_shl(32 - len).unwrap_or(0))
}

fn v6_mask(len: u8) -> Ipv6Addr {
    let len = len.min(128) as u32;
    Ipv6Addr::from(u128::MAX.checked_shl(128 - len).unwrap_or(0))
}

#[cfg(test)]
#[path = "network_data_tests.rs"]
mod tests;
