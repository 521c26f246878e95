//! The config-drive model against real drives published by other projects (shared/fixtures),
//! against drives made here to be wrong, and Ironic's configdrive blob forms.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use seedpart::configdrive::network_data::{BondMode, LinkType, NetworkType};
use seedpart::configdrive::{Blob, ConfigDrive, ModelError};
use seedpart::fs::dir::DirFs;
use seedpart::fs::{FileData, RelPath};

/// The shared fixtures (`common::fixtures`), or `None` after a `SKIP:` line.
fn require_fixtures() -> Option<PathBuf> {
    let found = fixtures();
    if found.is_none() {
        eprintln!("SKIP: no shared/fixtures beside the repository");
    }
    found
}

/// Every folder holding an `openstack/` directory: what the fixtures' README calls a drive.
fn drive_roots(base: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        if dir.join("openstack").is_dir() {
            let rel = dir
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.insert(rel);
        }
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), base, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(base, base, &mut out);
    out
}

fn load_dir(p: &Path) -> Result<ConfigDrive, ModelError> {
    let mut fs = DirFs::open(p).unwrap();
    ConfigDrive::load(&mut fs)
}

/// What each fixture must yield.
struct Expect {
    drive: &'static str,
    version: &'static str,
    uuid: &'static str,
    hostname: Option<&'static str>,
    public_keys: usize,
    keys: usize,
    authorized: usize,
    /// (file, links, networks, services), or None without network data.
    network: Option<(&'static str, usize, usize, usize)>,
    vendor: bool,
    vendor2: bool,
}

const EXPECT: &[Expect] = &[
    Expect {
        drive: "afterburn/kubevirt/config_drive",
        version: "latest",
        uuid: "5d307ca9-b3ef-428c-8861-06e72d69f223",
        hostname: Some("test_instance-kubevirt.foo.cloud"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: Some(("network_data", 3, 5, 4)),
        vendor: false,
        vendor2: false,
    },
    Expect {
        drive: "afterburn/kubevirt/dhcp_static_gw_dns",
        version: "latest",
        uuid: "test-dhcp-static-gw-dns",
        hostname: Some("test-dhcp-static-gw-dns"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: Some(("network_data", 1, 2, 2)),
        vendor: false,
        vendor2: false,
    },
    Expect {
        drive: "afterburn/kubevirt/full_metadata",
        version: "latest",
        uuid: "5d307ca9-b3ef-428c-8861-06e72d69f223",
        hostname: Some("test_instance-kubevirt.foo.cloud"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: None,
        vendor: false,
        vendor2: false,
    },
    Expect {
        drive: "afterburn/openstack-config-drive/openstack-config-drive2",
        version: "latest",
        uuid: "b3f43d9c-9198-4cd4-ac9f-bed14960794b",
        hostname: None,
        public_keys: 0,
        keys: 0,
        authorized: 0,
        network: None,
        vendor: false,
        vendor2: false,
    },
    Expect {
        drive: "afterburn/openstack-metadata",
        version: "2012-08-10",
        uuid: "99dcf33b-6eb5-4acf-9abb-d81723e0c949",
        hostname: Some("mule"),
        public_keys: 1,
        keys: 1,
        authorized: 1,
        network: None,
        vendor: false,
        vendor2: false,
    },
    Expect {
        drive: "glean/hp",
        version: "latest",
        uuid: "88a8a694-bd3d-428d-870e-673790ac90d1",
        hostname: Some("monty-testnova.novalocal"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: None,
        vendor: true,
        vendor2: false,
    },
    Expect {
        drive: "glean/liberty",
        version: "latest",
        uuid: "2615627a-222f-41bb-813b-df92b776ee78",
        hostname: Some("test-monty-config-drive"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: Some(("network_info", 17, 9, 2)),
        vendor: true,
        vendor2: false,
    },
    Expect {
        drive: "glean/nokey",
        version: "latest",
        uuid: "88a8a694-bd3d-428d-870e-673790ac90d1",
        hostname: Some("monty-testnova.novalocal"),
        public_keys: 0,
        keys: 0,
        authorized: 0,
        network: None,
        vendor: true,
        vendor2: false,
    },
    Expect {
        drive: "glean/rax",
        version: "latest",
        uuid: "2615627a-222f-41bb-813b-df92b776ee78",
        hostname: Some("test-monty-config-drive.somedomain.com"),
        public_keys: 1,
        keys: 0,
        authorized: 1,
        network: None,
        vendor: true,
        vendor2: false,
    },
    Expect {
        drive: "glean/rax-iad",
        version: "latest",
        uuid: "e5bf01c5-5be7-4c2e-b436-14e0ee5ac855",
        hostname: Some("pabelanger-test"),
        public_keys: 0,
        keys: 0,
        authorized: 0,
        network: Some(("network_data", 2, 3, 2)),
        vendor: true,
        vendor2: false,
    },
    Expect {
        drive: "glean/vexxhost",
        version: "latest",
        uuid: "63d5b209-be4a-43f3-8ee3-c24c797e9f73",
        hostname: Some("glean-test.novalocal"),
        public_keys: 1,
        keys: 1,
        authorized: 7,
        network: Some(("network_data", 1, 2, 2)),
        vendor: true,
        vendor2: true,
    },
];

/// `afterburn/openstack-config-drive` holds `openstack/meta_data.json` directly, with no version
/// directory: afterburn's unit tests read that file on its own, it is no drive layout any
/// producer writes. Loading it as a drive must fail clearly; its meta_data.json is checked on
/// its own in `afterburn_file_level_meta_data`.
const NOT_A_DRIVE: &str = "afterburn/openstack-config-drive";

#[test]
fn every_fixture_drive_loads() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let found = drive_roots(&base);
    let mut expected: BTreeSet<String> = EXPECT.iter().map(|e| e.drive.to_string()).collect();
    expected.insert(NOT_A_DRIVE.to_string());
    assert_eq!(found, expected, "fixture drives changed: update EXPECT");

    for x in EXPECT {
        let cd = load_dir(&base.join(x.drive)).unwrap_or_else(|e| panic!("{}: {e}", x.drive));
        let d = x.drive;
        assert_eq!(cd.version, x.version, "{d}");
        assert_eq!(
            cd.version_dir.as_str(),
            format!("openstack/{}", x.version),
            "{d}"
        );
        assert_eq!(cd.uuid(), x.uuid, "{d}");
        assert_eq!(cd.hostname(), x.hostname, "{d}");
        assert_eq!(cd.meta_data.public_keys.len(), x.public_keys, "{d}");
        assert_eq!(cd.meta_data.keys.len(), x.keys, "{d}");
        assert_eq!(cd.meta_data.authorized_keys().len(), x.authorized, "{d}");
        let net = match (&cd.network_data, &cd.network_info) {
            (Some(n), None) => Some(("network_data", n)),
            (None, Some(n)) => Some(("network_info", n)),
            (None, None) => None,
            _ => panic!("{d}: both network files"),
        };
        assert_eq!(
            net.map(|(f, n)| (f, n.links.len(), n.networks.len(), n.services.len())),
            x.network,
            "{d}"
        );
        assert_eq!(cd.vendor_data.is_some(), x.vendor, "{d}");
        assert_eq!(cd.vendor_data2.is_some(), x.vendor2, "{d}");
        assert!(cd.user_data.is_none(), "{d}");
        let s = cd.summary();
        assert_eq!(
            (s.uuid.as_str(), s.hostname.as_deref()),
            (x.uuid, x.hostname)
        );
        // Everything seedpart read serializes (inspect --json), and never the admin password.
        let json = serde_json::to_string(&cd).unwrap();
        assert!(
            !json.contains("not-a-password") && !json.contains("Qs634jUssypC"),
            "{d}"
        );
    }
}

#[test]
fn afterburn_file_level_meta_data() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let err = load_dir(&base.join(NOT_A_DRIVE)).unwrap_err();
    assert!(matches!(err, ModelError::NoVersion { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "not an OpenStack config drive: no openstack/latest nor openstack/YYYY-MM-DD directory (openstack/ holds no directory)"
    );
    let file = base.join(NOT_A_DRIVE).join("openstack/meta_data.json");
    let md =
        seedpart::configdrive::MetaData::parse("meta_data.json", &std::fs::read(file).unwrap())
            .unwrap();
    assert_eq!(md.uuid, "b3c7f4de-da0b-44ae-a42c-fa3806b61d7f");
    assert_eq!(md.hostname(), Some("abai-fcos-afterburn-test"));
    assert_eq!(md.admin_pass.as_deref(), Some("Qs634jUssypC"));
    assert_eq!(
        md.project_id.as_deref(),
        Some("8aa32be0972144a99ce5001d0f07905f")
    );
    // Its seed has a stray space in the base64, which cloud-init's decoder skips too.
    assert_eq!(md.random_seed_bytes().map(|b| b.len()), Some(512));
}

#[test]
fn rax_iad_untyped_links() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let cd = load_dir(&base.join("glean/rax-iad")).unwrap();
    let nd = cd.network().unwrap();
    assert!(
        nd.links
            .iter()
            .all(|l| l.link_type == LinkType::Unspecified && l.link_type.is_physical())
    );
    assert_eq!(nd.links[0].mac().unwrap().as_str(), "bc:76:4e:20:d7:2f");
    assert_eq!(nd.links[0].mtu, Some(1500));
    let v6 = &nd.networks[1];
    assert_eq!(v6.network_type, NetworkType::Ipv6);
    assert_eq!(v6.prefix_len, Some(64));
    assert_eq!(v6.routes[1].prefix_len, 48);
    assert_eq!(v6.routes[0].gateway, Some("fe80::def".parse().unwrap()));
    assert_eq!(v6.dns_servers().len(), 2);
    assert_eq!(nd.networks[2].prefix_len, Some(19));
    assert_eq!(nd.networks[2].routes.len(), 2);
    // The legacy network_config pointer names content that glean did not capture: kept, not read.
    let nc = cd.meta_data.network_config.as_ref().unwrap();
    assert_eq!(
        nc.content.as_ref().unwrap().as_str(),
        "openstack/content/0000"
    );
    assert_eq!(nc.extra["name"], "network_config");
    assert_eq!(cd.meta_data.random_seed_bytes().map(|b| b.len()), Some(512));
}

#[test]
fn vexxhost_ovs_dhcp_and_slaac() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let cd = load_dir(&base.join("glean/vexxhost")).unwrap();
    let nd = cd.network().unwrap();
    assert_eq!(nd.links[0].link_type, LinkType::Ovs);
    assert_eq!(nd.links[0].mac().unwrap().as_str(), "fa:16:3e:d1:1f:b2");
    let types: Vec<_> = nd.networks.iter().map(|n| n.network_type.clone()).collect();
    assert_eq!(types, [NetworkType::Ipv4Dhcp, NetworkType::Ipv6Slaac]);
    assert_eq!(
        nd.networks[1].ip_address,
        Some("2604:e100:1:0:f816:3eff:fed1:1fb2".parse().unwrap())
    );
    assert_eq!(nd.networks[1].prefix_len, Some(64));
    assert_eq!(nd.dns_servers().len(), 2);
    assert_eq!(
        cd.vendor_data2.as_ref().unwrap()["static"],
        serde_json::json!({})
    );
    assert_eq!(cd.meta_data.dedicated_cpus.len(), 0);
}

#[test]
fn liberty_legacy_network_info() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let cd = load_dir(&base.join("glean/liberty")).unwrap();
    assert!(cd.network_data.is_none());
    let nd = cd.network().unwrap();
    let bonds: Vec<_> = nd
        .links
        .iter()
        .filter(|l| l.link_type == LinkType::Bond)
        .collect();
    assert_eq!(bonds.len(), 3);
    assert!(
        bonds
            .iter()
            .all(|b| b.bond_mode == Some(BondMode::Lacp) && b.bond_miimon == Some(100))
    );
    let vlan2 = nd.link("vlan2").unwrap();
    assert_eq!(vlan2.vlan_link.as_deref(), Some("bond1"));
    assert_eq!(vlan2.vlan_id, Some(27));
    assert_eq!(vlan2.mac().unwrap().as_str(), "bc:76:4e:12:a4:be");
    assert_eq!(nd.networks_on("bond2").count(), 1);
}

#[test]
fn kubevirt_static_gateway_dns() {
    let Some(base) = require_fixtures() else {
        return;
    };
    let cd = load_dir(&base.join("afterburn/kubevirt/config_drive")).unwrap();
    let nd = cd.network().unwrap();
    assert_eq!(nd.links[0].name.as_deref(), Some("eth0"));
    assert_eq!(nd.links[2].name, None);
    let n0 = &nd.networks[0];
    assert_eq!(n0.network_type, NetworkType::Ipv4);
    assert_eq!(
        (n0.ip_address, n0.prefix_len),
        (Some("192.168.1.10".parse().unwrap()), Some(24))
    );
    assert!(n0.routes[0].is_default());
    assert_eq!(n0.routes[0].gateway, Some("192.168.1.1".parse().unwrap()));
    let n1 = &nd.networks[1];
    assert_eq!(
        (n1.ip_address, n1.prefix_len),
        (Some("2001:db8::10".parse().unwrap()), Some(64))
    );
    assert_eq!(n1.routes[0].gateway, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(nd.networks[3].network_type, NetworkType::Ipv6Dhcp);
    let dns: Vec<IpAddr> = nd.dns_servers();
    assert_eq!(dns.len(), 4);
    assert!(dns.contains(&"2001:4860:4860::8844".parse().unwrap()));

    let cd = load_dir(&base.join("afterburn/kubevirt/dhcp_static_gw_dns")).unwrap();
    let n = &cd.network().unwrap().networks;
    assert_eq!(n[0].network_type, NetworkType::Ipv4Dhcp);
    assert_eq!(n[0].routes[0].gateway, Some("192.168.1.1".parse().unwrap()));
}

// ---- drives made to order ------------------------------------------------------------------

struct Drive(tempfile::TempDir);

impl Drive {
    fn new() -> Drive {
        Drive(tempfile::tempdir().unwrap())
    }

    /// A drive holding `openstack/latest/meta_data.json`.
    fn with_meta(meta_data: impl AsRef<[u8]>) -> Drive {
        Drive::new().file("openstack/latest/meta_data.json", meta_data)
    }

    fn file(self, rel: &str, bytes: impl AsRef<[u8]>) -> Drive {
        write_file(&self.0.path().join(rel), bytes);
        self
    }

    fn dir(self, rel: &str) -> Drive {
        std::fs::create_dir_all(self.0.path().join(rel)).unwrap();
        self
    }

    fn load(&self) -> Result<ConfigDrive, ModelError> {
        load_dir(self.0.path())
    }
}

fn md(uuid: &str) -> String {
    format!(r#"{{"uuid": "{uuid}", "hostname": "h-{uuid}"}}"#)
}

#[test]
fn newest_date_wins_and_latest_wins_over_dates() {
    let d = Drive::new()
        .file("openstack/2012-08-10/meta_data.json", md("old"))
        .file("openstack/2015-10-15/meta_data.json", md("new"))
        .dir("openstack/content")
        .file("openstack/2099-99-99/meta_data.json", md("not-a-date"));
    let cd = d.load().unwrap();
    assert_eq!((cd.version.as_str(), cd.uuid()), ("2015-10-15", "new"));
    assert_eq!(cd.version_dir.as_str(), "openstack/2015-10-15");

    let d = d.file("openstack/latest/meta_data.json", md("latest"));
    let cd = d.load().unwrap();
    assert_eq!((cd.version.as_str(), cd.uuid()), ("latest", "latest"));
}

#[test]
fn missing_meta_data_names_the_path() {
    let d = Drive::new().file("openstack/latest/user_data", "#!/bin/sh\n");
    let e = d.load().unwrap_err().to_string();
    assert!(
        e.starts_with("openstack/latest/meta_data.json: missing"),
        "{e}"
    );

    let d = Drive::new().file("ec2/latest/meta-data.json", "{}");
    let e = d.load().unwrap_err().to_string();
    assert!(e.ends_with("(there is no openstack/ directory)"), "{e}");

    let d = Drive::new().dir("openstack/content").dir("openstack/notes");
    let e = d.load().unwrap_err().to_string();
    assert!(e.ends_with("(openstack/ holds: content, notes)"), "{e}");

    let d = Drive::new().dir("openstack/latest/meta_data.json");
    let e = d.load().unwrap_err().to_string();
    assert_eq!(
        e,
        "openstack/latest/meta_data.json: is a directory, expected a file"
    );
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let d = Drive::with_meta(md("u")).file(
        "openstack/latest/network_data.json",
        "{\n  \"links\": [\n    {\"id\": \"eth0\" \"type\": \"phy\"}\n  ]\n}\n",
    );
    let e = d.load().unwrap_err();
    let ModelError::Syntax {
        file, line, column, ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (file.as_str(), *line, *column),
        ("openstack/latest/network_data.json", 3, 19)
    );
    assert!(
        e.to_string().starts_with(
            "openstack/latest/network_data.json: malformed JSON at line 3, column 19: "
        )
    );

    let d = Drive::with_meta(md("u")).file("openstack/latest/vendor_data2.json", "{\"static\": ");
    let e = d.load().unwrap_err().to_string();
    assert!(
        e.starts_with("openstack/latest/vendor_data2.json: malformed JSON at line 1, column 11"),
        "{e}"
    );
}

#[test]
fn validation_errors_name_file_and_json_path() {
    let d = Drive::with_meta(md("u")).file(
        "openstack/latest/network_data.json",
        r#"{"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "fa:16:3e:00:00:01"},
                          {"id": "b", "type": "phy", "ethernet_mac_address": "zz"}]}"#,
    );
    assert_eq!(
        d.load().unwrap_err().to_string(),
        r#"openstack/latest/network_data.json: links[1].ethernet_mac_address: expected a MAC address like fa:16:3e:00:00:01, found "zz""#
    );

    let d = Drive::with_meta(md("u")).file(
        "openstack/latest/network_data.json",
        r#"{"links": [], "networks": [{"id": "n", "type": "ipv4_dhcp", "link": "tap0"}]}"#,
    );
    let e = d.load().unwrap_err();
    assert_eq!(e.file(), Some("openstack/latest/network_data.json"));
    assert_eq!(e.json_path(), Some("networks[0].link"));

    let d = Drive::with_meta(r#"{"uuid": "u", "hostname": 1234}"#);
    assert_eq!(
        d.load().unwrap_err().to_string(),
        "openstack/latest/meta_data.json: hostname: expected a host name (a string), found 1234"
    );
}

#[test]
fn injected_files_must_be_on_the_drive() {
    let meta =
        r#"{"uuid": "u", "files": [{"path": "/etc/motd", "content_path": "/content/0000"}]}"#;
    let d = Drive::with_meta(meta);
    let e = d.load().unwrap_err().to_string();
    assert_eq!(
        e,
        r#"openstack/latest/meta_data.json: files[0].content_path: "/content/0000" names openstack/content/0000, which is not a file on the drive"#
    );
    let d = d.file("openstack/content/0000", "hello\n");
    let cd = d.load().unwrap();
    assert_eq!(cd.meta_data.files[0].target.as_str(), "etc/motd");
    assert_eq!(
        cd.meta_data.files[0].content,
        RelPath::parse("openstack/content/0000").unwrap()
    );

    let meta = r#"{"uuid": "u", "files": [{"path": "/etc/x", "content_path": "/content/../latest/meta_data.json"}]}"#;
    let d = Drive::with_meta(meta);
    let e = d.load().unwrap_err().to_string();
    assert!(e.starts_with("openstack/latest/meta_data.json: files[0].content_path: expected a content path like /content/0000"), "{e}");
}

#[test]
fn user_data_is_kept_as_bytes_and_sizes_are_capped() {
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let d = Drive::with_meta(md("u")).file("openstack/latest/user_data", &binary);
    assert_eq!(d.load().unwrap().user_data.as_deref(), Some(&binary[..]));

    let d = Drive::with_meta(md("u")).file("openstack/latest/user_data", vec![b'x'; 16 << 20 | 1]);
    let e = d.load().unwrap_err().to_string();
    assert!(
        e.contains("openstack/latest/user_data") && e.contains("limit"),
        "{e}"
    );

    let d = Drive::with_meta(format!(
        r#"{{"uuid": "u", "pad": "{}"}}"#,
        "x".repeat(4 << 20)
    ));
    let e = d.load().unwrap_err().to_string();
    assert!(
        e.contains("openstack/latest/meta_data.json") && e.contains("limit"),
        "{e}"
    );
}

#[test]
fn huge_hostname_is_refused() {
    let d = Drive::with_meta(format!(
        r#"{{"uuid": "u", "hostname": "{}"}}"#,
        "h".repeat(3 << 20)
    ));
    let e = d.load().unwrap_err().to_string();
    assert!(
        e.starts_with(
            "openstack/latest/meta_data.json: hostname: expected a host name of at most 255 bytes"
        ),
        "{e}"
    );
    assert!(e.len() < 300);
}

#[test]
fn symlinks_on_a_drive_are_refused() {
    let d = Drive::with_meta(md("u"));
    std::os::unix::fs::symlink("/etc/shadow", d.0.path().join("openstack/latest/user_data"))
        .unwrap();
    let e = d.load().unwrap_err();
    assert!(
        matches!(e, ModelError::Fs(seedpart::fs::FsError::Hostile { .. })),
        "{e:?}"
    );
}

// ---- Ironic's configdrive blob -------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn blob_iso_forms_round_trip() {
    let d = Drive::with_meta(md("iso")).file("openstack/latest/user_data", "#cloud-config\n");
    let out = tempfile::tempdir().unwrap();
    let iso_path = out.path().join("cd.iso");
    if !require_tool("genisoimage") {
        return;
    }
    genisoimage(d.0.path(), "config-2", &iso_path);
    let iso = std::fs::read(&iso_path).unwrap();
    assert_eq!(&iso[32769..32774], b"CD001");
    let gz = gzip(&iso);
    let mut b64 = base64::engine::general_purpose::STANDARD
        .encode(&gz)
        .into_bytes();
    b64.push(b'\n');
    // Ironic's form, then the conveniences.
    assert_eq!(Blob::parse(&b64).unwrap(), Blob::Iso(iso.clone()));
    let wrapped: Vec<u8> = b64
        .chunks(76)
        .flat_map(|c| c.iter().copied().chain([b'\n']))
        .collect();
    assert_eq!(Blob::parse(&wrapped).unwrap(), Blob::Iso(iso.clone()));
    assert_eq!(Blob::parse(&gz).unwrap(), Blob::Iso(iso.clone()));
    assert_eq!(Blob::parse(&iso).unwrap(), Blob::Iso(iso.clone()));
    let raw_b64 = base64::engine::general_purpose::STANDARD.encode(&iso);
    assert_eq!(Blob::parse(raw_b64.as_bytes()).unwrap(), Blob::Iso(iso));
}

#[test]
fn blob_json_dict_renders_like_ironic() {
    let blob = br#"{
        "meta_data": {"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "name": "node-1", "metal3-name": "node-1",
                      "public_keys": {"0": "ssh-ed25519 AAAA k"}},
        "network_data": {"links": [{"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:12:34:56"}],
                         "networks": [{"id": "n0", "type": "ipv4_dhcp", "link": "eth0"}], "services": []},
        "user_data": {"users": [{"name": "core"}]},
        "vendor_data": {"k": "v"}
    }"#;
    let Blob::Tree(tree) = Blob::parse(blob).unwrap() else {
        panic!("not a tree")
    };
    let dirs: Vec<&str> = tree.dirs.iter().map(RelPath::as_str).collect();
    assert_eq!(
        dirs,
        ["openstack", "openstack/2012-08-10", "openstack/latest"]
    );
    let names: Vec<&str> = tree.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "openstack/2012-08-10/meta_data.json",
            "openstack/2012-08-10/network_data.json",
            "openstack/2012-08-10/vendor_data2.json",
            "openstack/2012-08-10/user_data",
            "openstack/latest/meta_data.json",
            "openstack/latest/network_data.json",
            "openstack/latest/vendor_data2.json",
            "openstack/latest/user_data",
        ]
    );
    let get = |name: &str| -> Vec<u8> {
        let (_, data) = tree.files.iter().find(|(p, _)| p.as_str() == name).unwrap();
        match data {
            FileData::Bytes(b) => b.clone(),
            FileData::Host(p) => std::fs::read(p).unwrap(),
        }
    };
    let ud: serde_json::Value = serde_json::from_slice(&get("openstack/latest/user_data")).unwrap();
    assert_eq!(ud["users"][0]["name"], "core");
    let md: serde_json::Value =
        serde_json::from_slice(&get("openstack/latest/meta_data.json")).unwrap();
    assert_eq!(md["metal3-name"], "node-1");

    // Written out, the tree is a drive `run` accepts.
    let d = Drive::new();
    for (p, _) in &tree.files {
        write_file(&d.0.path().join(p.as_str()), get(p.as_str()));
    }
    let cd = d.load().unwrap();
    assert_eq!(cd.uuid(), "1be26c0b-03f2-4d2e-ae87-c02d7f33c123");
    assert_eq!(cd.hostname(), Some("node-1"));
    assert_eq!(cd.network().unwrap().links.len(), 1);
    assert_eq!(cd.vendor_data2.as_ref().unwrap()["k"], "v");

    // A string user_data is written as is; empty parts are left out, as openstacksdk does.
    let blob = br##"{"meta_data": {"uuid": "u"}, "user_data": "#!/bin/sh\necho hi\n", "network_data": {}, "vendor_data": null}"##;
    let Blob::Tree(tree) = Blob::parse(blob).unwrap() else {
        panic!()
    };
    let names: Vec<&str> = tree.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "openstack/2012-08-10/meta_data.json",
            "openstack/2012-08-10/user_data",
            "openstack/latest/meta_data.json",
            "openstack/latest/user_data",
        ]
    );
    assert_eq!(
        tree.files[1].1,
        FileData::Bytes(b"#!/bin/sh\necho hi\n".to_vec())
    );
}

#[test]
fn blob_json_dict_is_validated() {
    let cases: [(&[u8], &str); 6] = [
        (br#"{"meta_data": {"name": "x"}}"#, "configdrive blob (meta_data): uuid: expected the instance id"),
        (br#"{}"#, "configdrive blob (meta_data): uuid: expected the instance id"),
        (br#"{"meta_data": {"uuid": "u"}, "userdata": "x"}"#, "configdrive blob: userdata: unknown key"),
        (br#"{"meta_data": {"uuid": "u"}, "user_data": 5}"#, "configdrive blob: user_data: expected a string, a JSON object or a JSON array, found 5"),
        (
            br#"{"meta_data": {"uuid": "u"}, "network_data": {"links": [{"id": "a", "type": "phy", "ethernet_mac_address": "x"}]}}"#,
            r#"configdrive blob (network_data): links[0].ethernet_mac_address: expected a MAC address like fa:16:3e:00:00:01, found "x""#,
        ),
        (b"{\"meta_data\": {\"uuid\": \"u\"},\n}", "configdrive blob: malformed JSON at line 2, column 1"),
    ];
    for (blob, want) in cases {
        let e = Blob::parse(blob).unwrap_err().to_string();
        assert!(e.starts_with(want), "got: {e}\nwant: {want}");
    }
}

#[test]
fn blob_garbage_is_refused() {
    for junk in [
        &b"hello world, not a drive"[..],
        b"",
        b"\x00\x01\x02",
        b"SGVsbG8gd29ybGQ=",
    ] {
        let e = Blob::parse(junk).unwrap_err().to_string();
        assert!(e.starts_with("configdrive blob: "), "{e}");
    }
    let e = Blob::parse(b"SGVsbG8gd29ybGQ=").unwrap_err().to_string();
    assert!(
        e.contains("neither a gzipped nor a raw ISO 9660 image"),
        "{e}"
    );
    let e = Blob::parse(b"H4sI!!!").unwrap_err().to_string();
    assert!(e.contains("not a configdrive"), "{e}");
    let e = Blob::parse(&gzip(b"just text")).unwrap_err().to_string();
    assert!(e.contains("not an ISO 9660 image"), "{e}");
    let mut truncated = gzip(&vec![7u8; 100_000]);
    truncated.truncate(truncated.len() / 2);
    let e = Blob::parse(&truncated).unwrap_err().to_string();
    assert!(e.contains("corrupt gzip stream"), "{e}");
}

#[test]
fn blob_gzip_bomb_is_capped() {
    // 65 MiB of zeros gzips to ~65 KiB; base64 of it is Ironic's form.
    let bomb = gzip(&vec![0u8; (64 << 20) + 4096]);
    assert!(bomb.len() < 1 << 20);
    let e = Blob::parse(&bomb).unwrap_err();
    assert!(matches!(e, ModelError::BlobTooLarge { .. }), "{e:?}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bomb);
    let e = Blob::parse(b64.as_bytes()).unwrap_err().to_string();
    assert!(e.contains("inflates past 67108864 bytes"), "{e}");
}
