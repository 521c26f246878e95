//! The host name (SPEC section 4): `/etc/hostname`, the `127.0.1.1` line of `/etc/hosts`, and
//! the live host name when the target root is the running system.
//!
//! A name longer than 64 bytes (the kernel's `HOST_NAME_MAX`) is cut at its first dot; one that
//! is still too long, or that is not made of RFC 1123 labels (letters, digits and `-`, 1 to 63
//! bytes each, no `-` at either end), is refused: it would break DHCP, DNS and `/etc/hosts`.

use std::io;

use super::rootfs::{FileOpts, Root, RootError, rel};

/// The kernel's `HOST_NAME_MAX`.
pub const MAX_LEN: usize = 64;
/// Largest `/etc/hosts` read.
const MAX_HOSTS: u64 = 4 << 20;

/// A validated host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname {
    /// What `/etc/hostname` holds, e.g. `web1.example.org` (at most 64 bytes).
    pub name: String,
    /// Its first label, e.g. `web1`.
    pub short: String,
}

/// Validates `given` (shortening it when it is over 64 bytes). The `Err` is a reason for a
/// message; the caller names the value with [`preview`].
pub fn validate(given: &str) -> Result<Hostname, String> {
    let trimmed = given.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut name = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_LEN {
        let first = name.split('.').next().unwrap_or(name);
        if first.len() > MAX_LEN || first.len() == name.len() {
            return Err(format!(
                "it is {} bytes long, over the {MAX_LEN}-byte limit for a host name, and has no shorter first label to cut it to",
                name.len()
            ));
        }
        log::warn!(
            "host name {} is over {MAX_LEN} bytes: using its first label {first:?}",
            preview(name)
        );
        name = first;
    }
    for label in name.split('.') {
        check_label(label)?;
    }
    Ok(Hostname {
        name: name.to_string(),
        short: name.split('.').next().unwrap_or(name).to_string(),
    })
}

fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("it has an empty label (two dots in a row, or a leading dot)".into());
    }
    if label.len() > 63 {
        return Err(format!("its label {} is over 63 bytes", preview(label)));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "it contains {c:?}: a host name holds only letters, digits, '-' and '.'"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("its label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

/// A value for an error message: quoted, escaped, and cut if long (a 10 MiB "host name" must
/// not become a 10 MiB log line).
pub fn preview(s: &str) -> String {
    const SHOW: usize = 48;
    if s.len() <= SHOW + 16 {
        return format!("{s:?}");
    }
    let mut cut = SHOW;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..cut], s.len())
}

/// `/etc/hosts` with its `127.0.1.1` line for `h`: the first such line replaced (keeping its
/// line ending), any later ones dropped, every other byte kept as it was. With none, the line
/// goes after the first `127.0.0.1` line, else at the end. A missing file gets a minimal one.
pub fn hosts_with(old: Option<&[u8]>, h: &Hostname) -> Vec<u8> {
    let entry = if h.name == h.short {
        format!("127.0.1.1\t{}", h.name)
    } else {
        format!("127.0.1.1\t{} {}", h.name, h.short)
    };
    let Some(old) = old else {
        return format!("127.0.0.1\tlocalhost\n{entry}\n").into_bytes();
    };
    let first_field = |line: &[u8]| -> Vec<u8> {
        line.iter()
            .copied()
            .skip_while(|b| *b == b' ' || *b == b'\t')
            .take_while(|b| !b.is_ascii_whitespace() && *b != b'#')
            .collect()
    };
    let mut out = Vec::with_capacity(old.len() + entry.len() + 1);
    let mut placed = false;
    for line in old.split_inclusive(|b| *b == b'\n') {
        if first_field(line) == b"127.0.1.1" {
            if !placed {
                out.extend_from_slice(entry.as_bytes());
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                match (line.ends_with(b"\n"), body.ends_with(b"\r")) {
                    (true, true) => out.extend_from_slice(b"\r\n"),
                    (true, false) => out.push(b'\n'),
                    _ => {}
                }
                placed = true;
            }
            continue;
        }
        out.extend_from_slice(line);
    }
    if placed {
        return out;
    }
    // Not there: after the first 127.0.0.1 line, else at the end.
    let mut out = Vec::with_capacity(old.len() + entry.len() + 2);
    let mut inserted = false;
    for line in old.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(line);
        if !inserted && first_field(line) == b"127.0.0.1" {
            if !line.ends_with(b"\n") {
                out.push(b'\n');
            }
            out.extend_from_slice(entry.as_bytes());
            out.push(b'\n');
            inserted = true;
        }
    }
    if !inserted {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(entry.as_bytes());
        out.push(b'\n');
    }
    out
}

/// What [`apply`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    pub hostname_file: bool,
    pub hosts_file: bool,
    pub live: bool,
}

/// Writes `/etc/hostname` and `/etc/hosts` (each only if it changes; an existing file keeps its
/// mode and owner), and sets the live host name when `root` is the running system.
pub fn apply(root: &Root, h: &Hostname) -> Result<Changed, RootError> {
    let etc = rel("etc");
    root.create_dir_all(&etc, 0o755, None)?;
    let keep = |path| -> Result<FileOpts, RootError> {
        Ok(match root.metadata(path)? {
            Some(m) if m.is_file() => {
                use std::os::unix::fs::MetadataExt;
                FileOpts {
                    mode: m.mode() & 0o7777,
                    owner: Some((m.uid(), m.gid())),
                }
            }
            _ => FileOpts::mode(0o644),
        })
    };
    let mut changed = Changed::default();
    let hostname = rel("etc/hostname");
    changed.hostname_file = root.write_file_if_changed(
        &hostname,
        format!("{}\n", h.name).as_bytes(),
        keep(&hostname)?,
    )?;
    let hosts = rel("etc/hosts");
    let old = root.read(&hosts, MAX_HOSTS)?;
    let new = hosts_with(old.as_deref(), h);
    if old.as_deref() != Some(&new[..]) {
        root.write_file(&hosts, &new, keep(&hosts)?)?;
        changed.hosts_file = true;
    }
    if root.is_running_system() {
        changed.live = set_live(&h.name).map_err(|source| RootError {
            action: "setting the live host name (sethostname) to".into(),
            path: h.name.clone().into(),
            source,
        })?;
    }
    Ok(changed)
}

/// `sethostname`, when the running system's name differs.
fn set_live(name: &str) -> io::Result<bool> {
    let current = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    if current.trim_end() == name {
        return Ok(false);
    }
    // SAFETY: sethostname reads `name.len()` bytes from `name`, which is alive for the call.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_and_shortening() {
        let h = validate("web1.example.org.").unwrap();
        assert_eq!(
            (h.name.as_str(), h.short.as_str()),
            ("web1.example.org", "web1")
        );
        let long = format!("node-1.{}.example", "sub".repeat(30));
        assert!(long.len() > 64);
        assert_eq!(validate(&long).unwrap().name, "node-1");
        let max = format!("{}.{}", "a".repeat(31), "b".repeat(32));
        assert_eq!(validate(&max).unwrap().name, max);
        assert!(
            validate(&"a".repeat(64))
                .unwrap_err()
                .contains("over 63 bytes")
        );
        assert_eq!(validate("x.").unwrap().name, "x");
        for (bad, why) in [
            ("", "empty"),
            ("a b", "contains ' '"),
            ("a\nb", "contains '\\n'"),
            ("a_b", "contains '_'"),
            ("-a", "starts or ends"),
            ("a..b", "empty label"),
            (&"a".repeat(65), "no shorter first label"),
            (&format!("{}.b", "a".repeat(65)), "no shorter first label"),
        ] {
            let e = validate(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let huge = "a".repeat(10 << 20);
        let p = preview(&huge);
        assert!(p.len() < 80 && p.contains("10485760 bytes"), "{p}");
    }

    #[test]
    fn hosts_keeps_every_other_byte() {
        let h = validate("web1.example.org").unwrap();
        let old = b"127.0.0.1 localhost\r\n# 127.0.1.1 commented\n  127.0.1.1\told # x\r\n::1 ip6-localhost\n127.0.1.1 dup\nlast-no-newline";
        let new = hosts_with(Some(old), &h);
        assert_eq!(
            new,
            b"127.0.0.1 localhost\r\n# 127.0.1.1 commented\n127.0.1.1\tweb1.example.org web1\r\n::1 ip6-localhost\nlast-no-newline"
        );
        assert_eq!(hosts_with(Some(&new), &h), new, "idempotent");
        let added = hosts_with(Some(b"10.0.0.1 a\n127.0.0.1 localhost\n::1 b\n"), &h);
        assert_eq!(
            added,
            b"10.0.0.1 a\n127.0.0.1 localhost\n127.0.1.1\tweb1.example.org web1\n::1 b\n"
        );
        assert_eq!(
            hosts_with(Some(b"x"), &validate("n").unwrap()),
            b"x\n127.0.1.1\tn\n"
        );
        assert_eq!(
            hosts_with(None, &validate("n").unwrap()),
            b"127.0.0.1\tlocalhost\n127.0.1.1\tn\n"
        );
    }
}
