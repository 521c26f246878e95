//! SSH keys (SPEC section 4): every key of `public_keys` and `keys` (type `ssh`) appended once
//! to the configured user's `~/.ssh/authorized_keys`, the user's home, uid and gid taken from
//! the *target* root's passwd. `~/.ssh` is 0700 and the file 0600, both owned by the user;
//! existing lines are kept byte for byte, and a key already there (same type and blob, whatever
//! its comment or options) is not added again.
//!
//! A key text may hold several keys, one a line (vexxhost writes that, and Nova ends texts with
//! a newline), but each of those lines must then be a plain key (`type base64 [comment]`). A line
//! that is not (`command="..." ssh-ed25519 ...` after a newline), a carriage return inside a
//! line, or any other control character is refused as an injection, naming the key.

use std::os::unix::fs::MetadataExt;

use super::ApplyError;
use super::rootfs::{FileOpts, Root, rel};
use crate::configdrive::MetaData;
use crate::fs::RelPath;

/// Largest passwd and `authorized_keys` read.
const MAX_READ: u64 = 16 << 20;

/// A user as the target root's passwd describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// As written, e.g. `/home/debian`.
    pub home: String,
    /// Relative to the target root, e.g. `home/debian` (the root itself for `/`).
    pub home_rel: RelPath,
}

/// Looks `user` up in the target's `/etc/passwd`, then `/usr/lib/passwd` (nss-altfiles images).
pub fn lookup(root: &Root, user: &str) -> Result<Account, ApplyError> {
    let bad = |reason: String| ApplyError::User {
        user: user.to_string(),
        reason,
    };
    let mut searched = Vec::new();
    let mut any_passwd = false;
    for file in ["etc/passwd", "usr/lib/passwd"] {
        let path = rel(file);
        searched.push(root.host_path(&path).display().to_string());
        let Some(bytes) = root.read(&path, MAX_READ)? else {
            continue;
        };
        any_passwd = true;
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = String::from_utf8_lossy(line);
            let fields: Vec<&str> = line.trim_end_matches('\r').split(':').collect();
            if fields.first() != Some(&user) {
                continue;
            }
            let at = format!("{}:{}", root.host_path(&path).display(), i + 1);
            if fields.len() != 7 {
                return Err(bad(format!(
                    "{at}: expected 7 ':'-separated fields, found {}",
                    fields.len()
                )));
            }
            let num = |s: &str, what: &str| {
                s.parse::<u32>()
                    .map_err(|_| bad(format!("{at}: the {what} {s:?} is not a number")))
            };
            let home = fields[5].to_string();
            let home_rel =
                home_rel(&home).map_err(|why| bad(format!("{at}: home {home:?}: {why}")))?;
            return Ok(Account {
                name: user.to_string(),
                uid: num(fields[2], "uid")?,
                gid: num(fields[3], "gid")?,
                home,
                home_rel,
            });
        }
    }
    // A root with no passwd file at all (a minimal image) still has root, uid 0, in /root.
    if !any_passwd && user == "root" {
        return Ok(Account {
            name: "root".into(),
            uid: 0,
            gid: 0,
            home: "/root".into(),
            home_rel: rel("root"),
        });
    }
    Err(bad(format!(
        "not found in {} (set `user` in /etc/seedpart/seedpart.conf to a user the image has)",
        searched.join(" or ")
    )))
}

fn home_rel(home: &str) -> Result<RelPath, String> {
    if !home.starts_with('/') {
        return Err("not an absolute path".into());
    }
    let mut r = RelPath::root();
    for c in home.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return Err("holds '..'".into());
        }
        r = r.join(c)?;
    }
    Ok(r)
}

/// Every SSH key line of `md`, validated (see the module documentation), each once by type and
/// blob, in a stable order: `public_keys` by name, then `keys`. PEM blocks (x509 keypairs that
/// Nova lists too) and `keys` of another type are skipped.
pub fn collect(md: &MetaData) -> Result<Vec<String>, ApplyError> {
    let texts = md
        .public_keys
        .iter()
        .map(|(name, text)| (format!("public_keys[{name:?}]"), text.as_str()))
        .chain(
            md.keys
                .iter()
                .enumerate()
                .filter(|(_, k)| k.key_type.eq_ignore_ascii_case("ssh"))
                .map(|(i, k)| {
                    let label = match &k.name {
                        Some(n) => format!("keys[{i}] ({n:?})"),
                        None => format!("keys[{i}]"),
                    };
                    (label, k.data.as_str())
                }),
        );
    let mut out: Vec<String> = Vec::new();
    for (label, text) in texts {
        for line in key_lines(text).map_err(|reason| ApplyError::Key {
            key: label.clone(),
            reason,
        })? {
            if !out.iter().any(|o| same_key(o, &line)) {
                out.push(line);
            }
        }
    }
    Ok(out)
}

/// The key lines of one text.
fn key_lines(text: &str) -> Result<Vec<String>, String> {
    if text.trim_start().starts_with("-----BEGIN") {
        return Ok(Vec::new());
    }
    let mut lines = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
            return Err(format!(
                "line {} holds the control character {c:?}; refusing it (an authorized_keys injection?)",
                i + 1
            ));
        }
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        lines.push((i + 1, line));
    }
    let several = lines.len() > 1;
    let mut out = Vec::new();
    for (n, line) in lines {
        let toks: Vec<&str> = line.split_ascii_whitespace().collect();
        let at = toks.iter().position(|t| is_key_type(t));
        let ok = match at {
            Some(0) => true,
            // Options (`from="..."`) are taken on a one-line key only: after a newline they are
            // what an injection looks like.
            Some(_) => !several,
            None => false,
        } && at.and_then(|p| toks.get(p + 1)).is_some_and(|b| is_blob(b));
        if !ok {
            let shown = super::hostname::preview(line);
            return Err(if several {
                format!(
                    "line {n} ({shown}) is not an SSH public key (type, base64 blob, comment): a key text may hold several keys, one a line, and nothing else; refusing it as a newline injection"
                )
            } else {
                format!("{shown} is not an SSH public key (type, base64 blob, comment)")
            });
        }
        out.push(line.to_string());
    }
    Ok(out)
}

fn is_key_type(t: &str) -> bool {
    let known_prefix = ["ssh-", "ecdsa-", "sk-", "x509v3-", "rsa-sha2-"]
        .iter()
        .any(|p| t.starts_with(p));
    known_prefix
        && t.len() > 4
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@' | b'.' | b'_'))
}

fn is_blob(t: &str) -> bool {
    t.len() >= 4
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// The (type, blob) of an authorized_keys line, wherever its options end.
fn identity(line: &str) -> Option<(&str, &str)> {
    let toks: Vec<&str> = line.split_ascii_whitespace().collect();
    let p = toks.iter().position(|t| is_key_type(t))?;
    Some((toks[p], *toks.get(p + 1)?))
}

fn same_key(a: &str, b: &str) -> bool {
    match (identity(a), identity(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// `existing` (kept byte for byte) with the keys it lacks appended, one a line.
pub fn merged(existing: &[u8], keys: &[String]) -> (Vec<u8>, usize) {
    let text = String::from_utf8_lossy(existing);
    let have: Vec<&str> = text.lines().collect();
    let mut out = existing.to_vec();
    let mut added = 0;
    for k in keys {
        if have.iter().any(|h| same_key(h, k)) {
            continue;
        }
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'\n');
        added += 1;
    }
    (out, added)
}

/// Appends `keys` to `account`'s `~/.ssh/authorized_keys` in `root`. A missing home is created
/// 0700 and owned by the user (its missing parents 0755, root's); `~/.ssh` is made 0700 and the
/// user's. Returns how many keys were added (0: the file was not rewritten).
pub fn apply(root: &Root, account: &Account, keys: &[String]) -> Result<usize, ApplyError> {
    let owner = Some((account.uid, account.gid));
    let home = &account.home_rel;
    if !home.is_root() {
        root.create_dir_all(&home.parent(), 0o755, None)?;
        root.create_dir_all(home, 0o700, owner)?;
    }
    let ssh = home.join(".ssh").map_err(|why| ApplyError::User {
        user: account.name.clone(),
        reason: why,
    })?;
    root.create_dir_all(&ssh, 0o700, owner)?;
    root.set_dir_perms(&ssh, 0o700, owner)?;
    let file = ssh
        .join("authorized_keys")
        .map_err(|why| ApplyError::User {
            user: account.name.clone(),
            reason: why,
        })?;
    let existing = root.read(&file, MAX_READ)?.unwrap_or_default();
    let (content, added) = merged(&existing, keys);
    let opts = FileOpts { mode: 0o600, owner };
    let perms_ok = root.metadata(&file)?.is_some_and(|m| {
        m.mode() & 0o7777 == 0o600 && m.uid() == account.uid && m.gid() == account.gid
    });
    if added > 0 || !perms_ok {
        root.write_file(&file, &content, opts)?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_texts() {
        assert_eq!(
            key_lines("ssh-ed25519 AAAA one\r\n\nssh-rsa BBBB two\n").unwrap(),
            ["ssh-ed25519 AAAA one", "ssh-rsa BBBB two"]
        );
        assert_eq!(
            key_lines("from=\"10.0.0.0/8\" ssh-ed25519 AAAA x").unwrap(),
            ["from=\"10.0.0.0/8\" ssh-ed25519 AAAA x"]
        );
        assert!(
            key_lines("-----BEGIN CERTIFICATE-----\nMIIB\n")
                .unwrap()
                .is_empty()
        );
        for (bad, why) in [
            (
                "ssh-ed25519 AAAA a\ncommand=\"curl x|sh\" ssh-ed25519 BBBB b",
                "newline injection",
            ),
            (
                "ssh-ed25519 AAAA a\rcommand=\"x\" ssh-rsa B",
                "control character '\\r'",
            ),
            ("ssh-ed25519 AAAA a\u{1b}[2J", "control character"),
            ("not a key", "is not an SSH public key"),
            ("ssh-ed25519", "is not an SSH public key"),
        ] {
            let e = key_lines(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn merge_appends_missing_keys_once() {
        let keys = vec![
            "ssh-ed25519 AAAA new".to_string(),
            "ssh-rsa BBBB x".to_string(),
        ];
        let (out, n) = merged(b"# mine\nno-pty ssh-rsa BBBB other-comment", &keys);
        assert_eq!(n, 1);
        assert_eq!(
            out,
            b"# mine\nno-pty ssh-rsa BBBB other-comment\nssh-ed25519 AAAA new\n"
        );
        let (again, n) = merged(&out, &keys);
        assert_eq!((again, n), (out, 0));
    }
}
