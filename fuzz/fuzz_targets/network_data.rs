//! `network_data.json` (and `network_info.json`): `NetworkData::parse` on any bytes, then the
//! lookups the network renderers make and the JSON serialization `inspect --json` prints.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::configdrive::NetworkData;

fuzz_target!(|data: &[u8]| {
    match NetworkData::parse("network_data.json", data) {
        Ok(nd) => {
            let _ = nd.dns_servers();
            for l in &nd.links {
                assert!(nd.link(&l.id).is_some());
                let _ = (l.mac(), l.link_type.as_str(), l.link_type.is_physical());
                if let Some(m) = l.mac() {
                    let _ = (m.as_str(), m.octets());
                }
                let _ = nd.networks_on(&l.id).count();
            }
            for n in &nd.networks {
                let _ = (n.netmask(), n.dns_servers(), n.network_type.as_str());
                let _ = (n.network_type.is_static(), n.network_type.family());
                for r in &n.routes {
                    let _ = (r.is_default(), r.prefix_len, r.gateway);
                }
            }
            for s in &nd.services {
                let _ = s.dns_address();
            }
            serde_json::to_string(&nd).expect("parsed network data serializes");
        }
        Err(e) => {
            let _ = (e.to_string(), e.file(), e.json_path());
        }
    }
});
