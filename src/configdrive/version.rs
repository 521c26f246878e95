//! Which `openstack/<version>/` directory to read: `latest` when there is one (Nova, Ironic and
//! openstacksdk always write it), else the newest `YYYY-MM-DD` (a producer that writes only
//! dated directories, such as the afterburn sample with only `2012-08-10`). Other names
//! (`content`, stray files, `LATEST.BAK`) are not versions.

use crate::fs::{Entry, EntryKind};

/// The chosen version directory's name (`latest` or a date), as it is spelled on the drive.
pub fn select(entries: &[Entry]) -> Option<String> {
    let names = version_dirs(entries);
    if let Some(l) = names.iter().find(|n| n.eq_ignore_ascii_case("latest")) {
        return Some(l.clone());
    }
    names.into_iter().filter(|n| is_date(n)).max()
}

/// The names of the directories directly under `openstack/`.
pub fn version_dirs(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.kind == EntryKind::Dir)
        .filter_map(|e| {
            let mut c = e.path.components();
            match (c.next(), c.next(), c.next()) {
                (Some(top), Some(name), None) if top.eq_ignore_ascii_case("openstack") => {
                    Some(name.to_string())
                }
                _ => None,
            }
        })
        .collect()
}

/// `YYYY-MM-DD` with a plausible month and day. Lexical order of such names is date order.
pub fn is_date(name: &str) -> bool {
    let b = name.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &name[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    matches!(
        (num(0..4), num(5..7), num(8..10)),
        (Some(_), Some(1..=12), Some(1..=31))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RelPath;

    fn dirs(names: &[&str]) -> Vec<Entry> {
        let mut v = vec![Entry {
            path: RelPath::parse("openstack").unwrap(),
            kind: EntryKind::Dir,
        }];
        for n in names {
            v.push(Entry {
                path: RelPath::parse(&format!("openstack/{n}")).unwrap(),
                kind: EntryKind::Dir,
            });
        }
        v
    }

    #[test]
    fn picks_latest_then_newest_date() {
        assert_eq!(
            select(&dirs(&["2012-08-10", "2015-10-15"])).as_deref(),
            Some("2015-10-15")
        );
        assert_eq!(
            select(&dirs(&["2012-08-10", "latest", "2025-04-04"])).as_deref(),
            Some("latest")
        );
        assert_eq!(
            select(&dirs(&[
                "content",
                "2013-04-04",
                "2013-13-01",
                "9999-99-99",
                "notes"
            ]))
            .as_deref(),
            Some("2013-04-04")
        );
        assert_eq!(select(&dirs(&["content"])), None);
        assert_eq!(select(&[]), None);
    }

    #[test]
    fn a_file_named_latest_is_not_a_version() {
        let mut e = dirs(&["2012-08-10"]);
        e.push(Entry {
            path: RelPath::parse("openstack/latest").unwrap(),
            kind: EntryKind::File { size: 3 },
        });
        assert_eq!(select(&e).as_deref(), Some("2012-08-10"));
    }

    #[test]
    fn dates() {
        for good in ["2012-08-10", "2025-04-04", "2016-06-30"] {
            assert!(is_date(good), "{good}");
        }
        for bad in [
            "2012-8-10",
            "2012-08-10x",
            "2012_08_10",
            "2012-00-10",
            "2012-08-32",
            "+012-08-10",
            "latest",
        ] {
            assert!(!is_date(bad), "{bad}");
        }
    }
}
