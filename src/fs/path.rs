//! Validated relative paths inside a config drive.

use std::fmt;

/// A path relative to a drive's root: `/`-separated components, none of them empty, `.`, `..`,
/// or holding `/`, `\` or NUL. Made only through `join`/`parse`, so a `RelPath` can be joined
/// onto a target directory without escaping it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RelPath(String);

/// Longest name a component may have (the Linux `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;
/// Longest whole path (the Linux `PATH_MAX` less room for the target directory).
pub const MAX_PATH: usize = 3072;

impl RelPath {
    /// The drive's root (the empty path).
    pub fn root() -> Self {
        RelPath(String::new())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Checks one name as read from a directory. The `Err` is a reason fit for an error message.
    pub fn check_component(name: &str) -> Result<(), String> {
        if name.is_empty() {
            return Err("empty file name".into());
        }
        if name == "." || name == ".." {
            return Err(format!("file name {name:?} points outside its directory"));
        }
        if let Some(c) = name.chars().find(|c| matches!(c, '/' | '\\' | '\0')) {
            return Err(format!("file name contains {c:?}"));
        }
        if name.len() > MAX_COMPONENT {
            return Err(format!(
                "file name is {} bytes long (max {MAX_COMPONENT})",
                name.len()
            ));
        }
        Ok(())
    }

    /// This path with one more component.
    pub fn join(&self, name: &str) -> Result<RelPath, String> {
        Self::check_component(name)?;
        let joined = if self.0.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.0, name)
        };
        if joined.len() > MAX_PATH {
            return Err(format!(
                "path is {} bytes long (max {MAX_PATH})",
                joined.len()
            ));
        }
        Ok(RelPath(joined))
    }

    /// Parses `a/b/c` (a leading `/` or a trailing one is refused, as is any bad component).
    pub fn parse(s: &str) -> Result<RelPath, String> {
        if s.is_empty() {
            return Ok(RelPath::root());
        }
        s.split('/').try_fold(RelPath::root(), |p, c| p.join(c))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last component, or `""` for the root.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent directory (the root's parent is the root).
    pub fn parent(&self) -> RelPath {
        match self.0.rfind('/') {
            Some(i) => RelPath(self.0[..i].to_string()),
            None => RelPath::root(),
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_plain_paths() {
        let p = RelPath::parse("openstack/latest/meta_data.json").unwrap();
        assert_eq!(
            p.components().collect::<Vec<_>>(),
            ["openstack", "latest", "meta_data.json"]
        );
        assert_eq!(p.file_name(), "meta_data.json");
        assert_eq!(p.parent().as_str(), "openstack/latest");
        assert!(RelPath::parse("").unwrap().is_root());
    }

    #[test]
    fn parse_refuses_escapes() {
        for bad in [
            "../etc", "a/../b", "/abs", "a//b", "a/", "a/./b", "a\\b", "a\0b",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(RelPath::root().join(&"x".repeat(256)).is_err());
    }
}
