//! The packages (`make deb`, `make rpm`, `make install`) and the diskimage-builder element.
//!
//! The release binary and the packages are built once, with their own target directory
//! (`<target>/packaging`: a nested cargo must not wait on the lock of the `cargo test` that runs
//! this), and cached there like any cargo build. Then: the deb's exact file list, modes and
//! owners, its control data and lintian (no error, no warning); the rpm's payload against the
//! deb's, its scriptlets and rpmlint; `make install`'s tree against both; the man pages through
//! `man --warnings`; both packages byte-for-byte reproducible; shellcheck on every script; and,
//! as root with the Debian mirror reachable, the element (and the deb's maintainer scripts and
//! the rpm's scriptlets) in an mmdebstrap chroot cached under `<target>/packaging/chroot`.
//! A test that cannot run here prints `SKIP: <reason>`.
//!
//! Debian packages these tests need: make dpkg-dev binutils jq lintian rpm rpmlint man-db
//! shellcheck mmdebstrap (and python3-pip for dib-lint).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

const TOP: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `<target>/packaging`: the cargo target directory of the package builds, and their caches.
fn work() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is <target>/tmp")
        .join("packaging")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The first of `tools` that is missing, as a SKIP reason naming its Debian package.
fn missing(tools: &[(&str, &str)]) -> Option<String> {
    tools
        .iter()
        .find(|(tool, _)| !have(tool))
        .map(|(tool, pkg)| format!("{tool} is missing (apt-get install {pkg})"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).expect("UTF-8 output")
}

/// A command in the source tree with the packaging target directory.
fn cmd(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.current_dir(TOP).env("CARGO_TARGET_DIR", work());
    c
}

/// Package builds share the man page directory (`make man` remakes it): one at a time.
fn build_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs a packaging/*/build.sh into `outdir`; the package is its last line of stdout.
fn build_package(script: &str, outdir: &Path) -> PathBuf {
    let _guard = build_lock();
    let t = Instant::now();
    let out = stdout(
        cmd(Path::new(TOP).join(script))
            .arg(outdir)
            .stderr(Stdio::inherit()),
    );
    let path = PathBuf::from(out.lines().last().expect("build.sh printed the package"));
    eprintln!(
        "packaging: {script} made {} in {:.1} s",
        path.display(),
        t.elapsed().as_secs_f64()
    );
    assert!(path.is_file(), "{} is not a file", path.display());
    path
}

fn deb() -> Result<&'static Path, String> {
    static DEB: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(skip) = missing(&[
            ("make", "make"),
            ("dpkg-shlibdeps", "dpkg-dev"),
            ("strip", "binutils"),
            ("jq", "jq"),
        ]) {
            return Err(skip);
        }
        let deb = build_package("packaging/deb/build.sh", &work().join("packages"));
        assert_eq!(
            deb.file_name().unwrap().to_str().unwrap(),
            format!("seedpart_{VERSION}-1_{}.deb", dpkg_arch())
        );
        Ok(deb)
    })
    .as_deref()
    .map_err(Clone::clone)
}

fn rpm() -> Result<&'static Path, String> {
    static RPM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    RPM.get_or_init(|| {
        if let Some(skip) = missing(&[("make", "make"), ("rpmbuild", "rpm"), ("jq", "jq")]) {
            return Err(skip);
        }
        let rpm = build_package("packaging/rpm/build.sh", &work().join("packages"));
        assert_eq!(
            rpm.file_name().unwrap().to_str().unwrap(),
            format!("seedpart-{VERSION}-1.{}.rpm", std::env::consts::ARCH)
        );
        Ok(rpm)
    })
    .as_deref()
    .map_err(Clone::clone)
}

fn dpkg_arch() -> String {
    stdout(Command::new("dpkg").arg("--print-architecture"))
        .trim()
        .to_string()
}

/// The man pages mangen wrote for the last build, by file name (seedpart.8, seedpart-run.8...).
fn man_pages() -> Vec<String> {
    let mut pages: Vec<String> = fs::read_dir(work().join("man"))
        .expect("the man pages of the package build")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".8"))
        .collect();
    pages.sort();
    assert!(
        pages.contains(&"seedpart.8".to_string()) && pages.contains(&"seedpart-run.8".to_string()),
        "man pages: {pages:?}"
    );
    pages
}

/// What `make install PREFIX=/usr` puts in every package: path -> mode.
fn payload() -> BTreeMap<String, u32> {
    let mut p: BTreeMap<String, u32> = [
        ("/etc/seedpart/seedpart.conf", 0o644),
        ("/usr/bin/seedpart", 0o755),
        (
            "/usr/lib/dracut/modules.d/90seedpart/module-setup.sh",
            0o755,
        ),
        (
            "/usr/lib/dracut/modules.d/90seedpart/seedpart-hook.sh",
            0o755,
        ),
        ("/usr/lib/systemd/system/seedpart.service", 0o644),
        ("/usr/lib/systemd/system/seedpart-user-data.service", 0o644),
        ("/usr/lib/systemd/system-preset/90-seedpart.preset", 0o644),
    ]
    .into_iter()
    .map(|(path, mode)| (path.to_string(), mode))
    .collect();
    for page in man_pages() {
        p.insert(format!("/usr/share/man/man8/{page}.gz"), 0o644);
    }
    p
}

/// One entry of `dpkg-deb --contents` (tar's verbose listing).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    path: String,
    kind: char,
    mode: u32,
    owner: String,
}

fn parse_perms(perms: &str) -> (char, u32) {
    let b = perms.as_bytes();
    assert_eq!(b.len(), 10, "permissions {perms}");
    let mut mode = 0;
    for (i, &c) in b[1..].iter().enumerate() {
        assert!(c == b'-' || b"rwxrwxrwx"[i] == c, "unexpected mode {perms}");
        if c != b'-' {
            mode |= 1 << (8 - i);
        }
    }
    (b[0] as char, mode)
}

fn deb_contents(deb: &Path) -> Vec<Entry> {
    stdout(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() >= 6, "dpkg-deb --contents: {line}");
            let (kind, mode) = parse_perms(f[0]);
            let path = f[5].trim_start_matches('.').trim_end_matches('/');
            Entry {
                path: if path.is_empty() { "/" } else { path }.to_string(),
                kind,
                mode,
                owner: f[1].to_string(),
            }
        })
        .collect()
}

/// Every ancestor directory of `paths`, "/" included.
fn ancestors<'a>(paths: impl Iterator<Item = &'a String>) -> BTreeSet<String> {
    let mut dirs = BTreeSet::new();
    for p in paths {
        for a in Path::new(p).ancestors().skip(1) {
            dirs.insert(a.to_str().unwrap().to_string());
        }
    }
    dirs
}

#[test]
fn deb_has_exactly_the_expected_files_modes_and_owners() {
    let deb = match deb() {
        Ok(d) => d,
        Err(skip) => return eprintln!("SKIP: {skip}"),
    };
    let mut files = payload();
    files.insert("/usr/share/doc/seedpart/copyright".into(), 0o644);
    files.insert("/usr/share/doc/seedpart/changelog.Debian.gz".into(), 0o644);
    files.insert("/usr/share/lintian/overrides/seedpart".into(), 0o644);
    let mut want: Vec<Entry> = ancestors(files.keys())
        .into_iter()
        .map(|path| Entry {
            path,
            kind: 'd',
            mode: 0o755,
            owner: "root/root".into(),
        })
        .chain(files.iter().map(|(path, &mode)| Entry {
            path: path.clone(),
            kind: '-',
            mode,
            owner: "root/root".into(),
        }))
        .collect();
    want.sort();
    let mut got = deb_contents(deb);
    got.sort();
    assert_eq!(got, want);

    let field = |name: &str| {
        stdout(
            Command::new("dpkg-deb")
                .args(["--field"])
                .arg(deb)
                .arg(name),
        )
        .trim()
        .to_string()
    };
    assert_eq!(field("Package"), "seedpart");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= "), "Depends: {depends}");
    assert!(!field("Installed-Size").is_empty());

    let control = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(control.path()));
    assert_eq!(
        fs::read_to_string(control.path().join("conffiles")).unwrap(),
        "/etc/seedpart/seedpart.conf\n"
    );
    for script in ["postinst", "prerm", "postrm"] {
        let text = fs::read_to_string(control.path().join(script)).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script}");
        assert!(!text.contains("#DEBHELPER#"), "{script}");
    }
    // Enabled, never started: seedpart.service would reclaim the installing machine's disk.
    let postinst = fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(postinst.contains("deb-systemd-helper enable \"$unit\""));
    assert!(!postinst.contains("deb-systemd-invoke start") && !postinst.contains("restart"));

    // The binary dpkg-shlibdeps saw is the one shipped; the copyright names every linked crate.
    let tree = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(tree.path()));
    let version = stdout(Command::new(tree.path().join("usr/bin/seedpart")).arg("--version"));
    assert_eq!(version.trim(), format!("seedpart {VERSION}"));
    let copyright =
        fs::read_to_string(tree.path().join("usr/share/doc/seedpart/copyright")).unwrap();
    let crates = stdout(cmd("packaging/crate-licenses.sh").arg("list"));
    for line in crates.lines() {
        let (name_version, _) = line.split_once(':').unwrap();
        let paragraph = format!("Files: vendor/{}/*", name_version.replace(' ', "-"));
        assert!(
            copyright.contains(&paragraph),
            "no {paragraph} in copyright"
        );
    }
}

#[test]
fn lintian_finds_no_error_and_no_warning() {
    let deb = match deb() {
        Ok(d) => d,
        Err(skip) => return eprintln!("SKIP: {skip}"),
    };
    if let Some(skip) = missing(&[("lintian", "lintian")]) {
        return eprintln!("SKIP: {skip}");
    }
    let t = Instant::now();
    let o = Command::new("lintian")
        .args(["--display-info", "--pedantic", "--color", "never"])
        .arg(deb)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!(
        "lintian ({:.1} s, {}):\n{out}{}",
        t.elapsed().as_secs_f64(),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let bad: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .collect();
    assert!(
        bad.is_empty(),
        "lintian errors and warnings (fix them, or override with a reason in packaging/deb/lintian-overrides): {bad:#?}"
    );
}

/// `rpm -qp` of the package's files: path -> (kind, mode, owner, sha256 of regular files).
fn rpm_files(rpm: &Path) -> BTreeMap<String, (char, u32, String, String)> {
    let algo = stdout(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{FILEDIGESTALGO}"])
            .arg(rpm),
    );
    assert_eq!(algo.trim(), "8", "file digests are SHA-256");
    stdout(
        Command::new("rpm")
            .args([
                "-qp",
                "--qf",
                "[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILEDIGESTS} %{FILENAMES}\\n]",
            ])
            .arg(rpm),
    )
    .lines()
    .map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "rpm -qp: {line}");
        let (kind, mode) = parse_perms(f[0]);
        (f[3].to_string(), (kind, mode, f[1].to_string(), f[2].to_string()))
    })
    .collect()
}

#[test]
fn rpm_has_the_debs_payload_and_the_systemd_scriptlets() {
    let (deb, rpm) = match (deb(), rpm()) {
        (Ok(d), Ok(r)) => (d, r),
        (Err(skip), _) | (_, Err(skip)) => return eprintln!("SKIP: {skip}"),
    };
    let files = rpm_files(rpm);
    let licenses: Vec<&String> = files
        .keys()
        .filter(|p| p.starts_with("/usr/share/licenses/"))
        .collect();
    assert_eq!(
        licenses,
        [
            "/usr/share/licenses/seedpart",
            "/usr/share/licenses/seedpart/LICENSE",
            "/usr/share/licenses/seedpart/copyright"
        ]
    );
    // The rpm owns only its own directories, and dracut's (dracut is optional).
    let dirs: Vec<&String> = files
        .iter()
        .filter(|(_, (kind, ..))| *kind == 'd')
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        dirs,
        [
            "/etc/seedpart",
            "/usr/lib/dracut",
            "/usr/lib/dracut/modules.d",
            "/usr/lib/dracut/modules.d/90seedpart",
            "/usr/share/licenses/seedpart"
        ]
    );
    assert!(files.values().all(|(.., owner, _)| owner == "root/root"));
    let common: BTreeMap<String, u32> = files
        .iter()
        .filter(|(p, (kind, ..))| *kind == '-' && !p.starts_with("/usr/share/licenses/"))
        .map(|(p, (_, mode, ..))| (p.clone(), *mode))
        .collect();
    assert_eq!(common, payload(), "rpm -qlp against make install's payload");
    let deb_common: BTreeMap<String, u32> = deb_contents(deb)
        .into_iter()
        .filter(|e| {
            e.kind == '-'
                && !e.path.starts_with("/usr/share/doc/")
                && !e.path.starts_with("/usr/share/lintian/")
        })
        .map(|e| (e.path, e.mode))
        .collect();
    assert_eq!(common, deb_common, "rpm -qlp against dpkg-deb --contents");

    // Both carry the same binary (the deb strips .comment as rpm's brp-strip-comment-note does).
    let tree = tempfile::tempdir().unwrap();
    run(Command::new("dpkg-deb")
        .arg("--extract")
        .arg(deb)
        .arg(tree.path()));
    let deb_sum = stdout(Command::new("sha256sum").arg(tree.path().join("usr/bin/seedpart")));
    assert_eq!(
        deb_sum.split_whitespace().next().unwrap(),
        files["/usr/bin/seedpart"].3,
        "the deb's and the rpm's /usr/bin/seedpart differ"
    );

    let config = stdout(Command::new("rpm").arg("-qcp").arg(rpm));
    assert_eq!(config, "/etc/seedpart/seedpart.conf\n");
    let fileflags = stdout(
        Command::new("rpm")
            .args(["-qp", "--qf", "[%{FILEFLAGS:fflags} %{FILENAMES}\\n]"])
            .arg(rpm),
    );
    assert!(
        fileflags
            .lines()
            .any(|l| l == "cn /etc/seedpart/seedpart.conf"),
        "seedpart.conf is not %config(noreplace):\n{fileflags}"
    );
    let scripts = stdout(Command::new("rpm").args(["-qp", "--scripts"]).arg(rpm));
    assert!(
        scripts
            .contains("systemctl --no-reload preset seedpart.service seedpart-user-data.service"),
        "{scripts}"
    );
    assert!(
        scripts.contains("systemctl --no-reload disable --now"),
        "{scripts}"
    );
    let license = stdout(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{LICENSE}"])
            .arg(rpm),
    );
    assert!(license.starts_with("Apache-2.0 AND "), "License: {license}");
    let requires = stdout(Command::new("rpm").args(["-qpR"]).arg(rpm));
    assert!(requires.contains("libc.so.6()(64bit)"), "{requires}");

    if let Some(skip) = missing(&[("rpmlint", "rpmlint")]) {
        return eprintln!("SKIP (part): {skip}");
    }
    let o = Command::new("rpmlint")
        .arg("-c")
        .arg(Path::new(TOP).join("packaging/rpm/rpmlint.toml"))
        .arg(rpm)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("rpmlint ({}):\n{out}", o.status);
    assert!(
        o.status.success()
            && !out
                .lines()
                .any(|l| l.contains(": E: ") || l.contains(": W: ")),
        "rpmlint complains (see above)"
    );
}

#[test]
fn make_install_tree_matches_the_packages() {
    if deb().is_err() && rpm().is_err() {
        // Without either, make install alone still has a meaning.
        if let Some(skip) = missing(&[("make", "make")]) {
            return eprintln!("SKIP: {skip}");
        }
    }
    let dest = tempfile::tempdir().unwrap();
    {
        let _guard = build_lock();
        run(cmd("make")
            .args(["--no-print-directory", "install", "PREFIX=/usr"])
            .arg(format!("DESTDIR={}", dest.path().display())));
    }
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    let mut stack = vec![dest.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            let rel = format!("/{}", e.path().strip_prefix(dest.path()).unwrap().display());
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                assert_eq!(mode, 0o755, "{rel}");
                dirs.insert(rel);
                stack.push(e.path());
            } else {
                assert!(meta.is_file(), "{rel} is neither a file nor a directory");
                files.insert(rel, mode);
            }
        }
    }
    assert_eq!(files, payload());
    dirs.insert("/".into());
    assert_eq!(dirs, ancestors(files.keys()));
    // Reproducible man pages: gzip -n keeps names and times out of the header.
    let page = fs::read(dest.path().join("usr/share/man/man8/seedpart.8.gz")).unwrap();
    assert_eq!(&page[..4], b"\x1f\x8b\x08\x00", "gzip header with no name");
    assert_eq!(&page[4..8], b"\0\0\0\0", "gzip header with no time");
}

#[test]
fn man_pages_render_without_warnings() {
    if deb().is_err() && rpm().is_err() {
        return eprintln!("SKIP: no package build (see the other tests' SKIP)");
    }
    if let Some(skip) = missing(&[("man", "man-db")]) {
        return eprintln!("SKIP: {skip}");
    }
    for page in man_pages() {
        let path = work().join("man").join(format!("{page}.gz"));
        let o = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "man --warnings -l {}: {}\n{}",
            path.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION"] {
            assert!(text.contains(section), "{page} has no {section}:\n{text}");
        }
    }
}

#[test]
fn packages_are_reproducible() {
    let (deb, rpm) = match (deb(), rpm()) {
        (Ok(d), Ok(r)) => (d, r),
        (Err(skip), _) | (_, Err(skip)) => return eprintln!("SKIP: {skip}"),
    };
    let again = work().join("packages-again");
    let deb2 = build_package("packaging/deb/build.sh", &again);
    let rpm2 = build_package("packaging/rpm/build.sh", &again);
    assert!(
        fs::read(deb).unwrap() == fs::read(&deb2).unwrap(),
        "two builds of the deb differ: diffoscope {} {}",
        deb.display(),
        deb2.display()
    );
    assert!(
        fs::read(rpm).unwrap() == fs::read(&rpm2).unwrap(),
        "two builds of the rpm differ: diffoscope {} {}",
        rpm.display(),
        rpm2.display()
    );
}

#[test]
fn shell_scripts_are_shellcheck_clean() {
    if let Some(skip) = missing(&[("shellcheck", "shellcheck")]) {
        return eprintln!("SKIP: {skip}");
    }
    let element = "packaging/diskimage-builder/seedpart";
    let mut scripts = vec![
        "packaging/deb/build.sh".to_string(),
        "packaging/rpm/build.sh".into(),
        "packaging/crate-licenses.sh".into(),
        "packaging/copyright.sh".into(),
        "tests/packaging/chroot.sh".into(),
        "tests/packaging/dib-element.sh".into(),
        "tests/packaging/rpm-scriptlets.sh".into(),
        "dracut/modules.d/90seedpart/module-setup.sh".into(),
    ];
    for phase in ["extra-data.d", "install.d", "finalise.d"] {
        for e in fs::read_dir(Path::new(TOP).join(element).join(phase)).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            scripts.push(format!("{element}/{phase}/{name}"));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    for s in &scripts {
        let mode = fs::metadata(Path::new(TOP).join(s))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "{s} is not executable");
    }
    run(Command::new("shellcheck").current_dir(TOP).args(&scripts));
    // Maintainer scripts and the hook run under /bin/sh (dash on Debian).
    run(Command::new("shellcheck").current_dir(TOP).args([
        "--shell=sh",
        "packaging/deb/postinst",
        "packaging/deb/prerm",
        "packaging/deb/postrm",
        "dracut/modules.d/90seedpart/seedpart-hook.sh",
    ]));
}

/// The cached Debian chroot (tests/packaging/chroot.sh), or why there is none.
fn chroot() -> Result<&'static Path, String> {
    static ROOT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    ROOT.get_or_init(|| {
        if !is_root() {
            return Err("needs root (mmdebstrap --mode=root, mounts in a chroot)".into());
        }
        if let Some(skip) = missing(&[("mmdebstrap", "mmdebstrap"), ("unshare", "util-linux")]) {
            return Err(skip);
        }
        let t = Instant::now();
        let o = Command::new(Path::new(TOP).join("tests/packaging/chroot.sh"))
            .arg(work().join("chroot"))
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        match o.status.code() {
            Some(0) => {}
            Some(3) => return Err("no Debian chroot: chroot.sh cannot run here (see above)".into()),
            _ => panic!("tests/packaging/chroot.sh failed ({})", o.status),
        }
        let root = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
        eprintln!(
            "packaging: chroot {} ready in {:.1} s",
            root.display(),
            t.elapsed().as_secs_f64()
        );
        Ok(root)
    })
    .as_deref()
    .map_err(Clone::clone)
}

/// Runs one of the tests/packaging/*.sh chroot scripts, showing its output.
fn chroot_script(script: &str, package: &Path, workdir: &str) {
    let root = match chroot() {
        Ok(r) => r,
        Err(skip) => return eprintln!("SKIP: {skip}"),
    };
    let t = Instant::now();
    let o = Command::new(Path::new(TOP).join(script))
        .arg(root)
        .arg(package)
        .arg(work().join(workdir))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!(
        "{script} ({:.1} s, {}):\n{out}",
        t.elapsed().as_secs_f64(),
        o.status
    );
    assert!(o.status.success(), "{script} failed:\n{out}\n{err}");
    let _ = fs::remove_dir_all(work().join(workdir));
}

#[test]
fn dib_element_and_deb_maintainer_scripts_in_a_debian_chroot() {
    let deb = match deb() {
        Ok(d) => d,
        Err(skip) => return eprintln!("SKIP: {skip}"),
    };
    chroot_script("tests/packaging/dib-element.sh", deb, "dib-element");
}

#[test]
fn rpm_scriptlets_in_a_chroot() {
    let rpm = match rpm() {
        Ok(r) => r,
        Err(skip) => return eprintln!("SKIP: {skip}"),
    };
    chroot_script("tests/packaging/rpm-scriptlets.sh", rpm, "rpm-scriptlets");
}

/// diskimage-builder's own element linter, bin/dib-lint from its source distribution (the
/// wheel leaves it out), fetched once with pip into `<target>/packaging/dib-lint`.
#[test]
fn dib_lint_passes_on_the_element() {
    let cache = work().join("dib-lint");
    let lint = cache.join("dib-lint");
    if !lint.is_file() {
        if let Some(skip) = missing(&[("pip3", "python3-pip"), ("python3", "python3")]) {
            return eprintln!("SKIP: {skip}");
        }
        fs::create_dir_all(&cache).unwrap();
        let dl = Command::new("pip3")
            .args(["download", "--quiet", "--no-deps", "--no-binary", ":all:"])
            .arg("--dest")
            .arg(&cache)
            .arg("diskimage-builder==3.43.0")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !dl.status.success() {
            return eprintln!(
                "SKIP: cannot fetch diskimage-builder's sdist from PyPI: {}",
                String::from_utf8_lossy(&dl.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
        }
        run(Command::new("tar").current_dir(&cache).args([
            "-xzf",
            "diskimage_builder-3.43.0.tar.gz",
            "--strip-components=2",
            "diskimage_builder-3.43.0/bin/dib-lint",
        ]));
    }
    // dib-lint runs `python` (tox.ini parsing): Debian has only python3.
    let shim = cache.join("shim");
    fs::create_dir_all(&shim).unwrap();
    let python = shim.join("python");
    if !python.exists() {
        let python3 = stdout(Command::new("sh").args(["-c", "command -v python3"]));
        std::os::unix::fs::symlink(python3.trim(), &python).unwrap();
    }
    let empty = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    let out = stdout(
        Command::new("bash")
            .arg(&lint)
            .current_dir(Path::new(TOP).join("packaging/diskimage-builder"))
            .env("ELEMENTS_DIR", ".")
            .env("LIB_DIR", empty.path())
            .env("PATH", path),
    );
    eprintln!("dib-lint:\n{out}");
    assert!(out.lines().any(|l| l == "PASS"), "{out}");
}
