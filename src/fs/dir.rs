//! A config drive that is a plain directory on the host: the tests' fixtures and
//! `seedpart build --from DIR`. It obeys the same rules as the partition readers (no symlinks,
//! no special files, names that survive `RelPath`), so a tree that loads here also loads once it
//! has been written onto a partition.

use std::fs::{self, File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{DriveFs, DriveFsKind, Entry, EntryKind, FsError, RelPath};

const FS: &str = "dir";

/// A host directory read as if it were a config drive.
#[derive(Debug)]
pub struct DirFs {
    root: PathBuf,
}

impl DirFs {
    /// Opens `path`, which must be a directory. The root itself may be reached through a symlink
    /// (the caller named it); nothing below it may be.
    pub fn open(path: &Path) -> Result<DirFs, FsError> {
        let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
        if !meta.is_dir() {
            return Err(FsError::Hostile {
                fs: FS,
                path: path.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        Ok(DirFs {
            root: path.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn host_path(&self, rel: &RelPath) -> PathBuf {
        let mut p = self.root.clone();
        p.extend(rel.components());
        p
    }

    fn walk(&self, dir: &Path, rel: &RelPath, out: &mut Vec<Entry>) -> Result<(), FsError> {
        let mut children = Vec::new();
        for e in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let e = e.map_err(|e| io_err(dir, e))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                return Err(hostile(
                    &e.path().display().to_string(),
                    "file name is not UTF-8",
                ));
            };
            let path = rel
                .join(name)
                .map_err(|why| hostile(&format!("{rel}/{name}"), &why))?;
            // symlink_metadata: a symlink must be seen as one, never followed.
            let meta = fs::symlink_metadata(e.path()).map_err(|err| io_err(&e.path(), err))?;
            children.push((path, e.path(), meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        for (path, host, meta) in children {
            let ft = meta.file_type();
            if ft.is_dir() {
                out.push(Entry {
                    path: path.clone(),
                    kind: EntryKind::Dir,
                });
                self.walk(&host, &path, out)?;
            } else if ft.is_file() {
                out.push(Entry {
                    path,
                    kind: EntryKind::File { size: meta.len() },
                });
            } else {
                return Err(hostile(path.as_str(), &special_reason(&meta)));
            }
        }
        Ok(())
    }
}

impl DriveFs for DirFs {
    fn kind(&self) -> DriveFsKind {
        DriveFsKind::Dir
    }

    fn label(&self) -> &str {
        ""
    }

    fn entries(&mut self) -> Result<Vec<Entry>, FsError> {
        let mut out = Vec::new();
        let root = self.root.clone();
        self.walk(&root, &RelPath::root(), &mut out)?;
        Ok(out)
    }

    fn copy_file(&mut self, path: &RelPath, out: &mut dyn Write) -> Result<u64, FsError> {
        if path.is_root() {
            return Err(hostile("/", "the drive's root is not a file"));
        }
        // Every directory on the way must be a real directory, not a symlink: O_NOFOLLOW below
        // only guards the last component.
        let mut dir = self.root.clone();
        let mut walked = RelPath::root();
        let comps: Vec<&str> = path.components().collect();
        for c in &comps[..comps.len() - 1] {
            dir.push(c);
            walked = walked.join(c).map_err(|why| hostile(path.as_str(), &why))?;
            match fs::symlink_metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(hostile(walked.as_str(), "symlink"));
                }
                Ok(_) => return Err(not_found(path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(path)),
                Err(e) => return Err(io_err(&dir, e)),
            }
        }
        let host = self.host_path(path);
        let mut file = match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&host)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found(path)),
            // O_NOFOLLOW on a symlink fails with ELOOP.
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(hostile(path.as_str(), "symlink"));
            }
            Err(e) => return Err(io_err(&host, e)),
        };
        let meta = file.metadata().map_err(|e| io_err(&host, e))?;
        if meta.is_dir() {
            return Err(not_found(path));
        }
        if !meta.is_file() {
            return Err(hostile(path.as_str(), &special_reason(&meta)));
        }
        copy(&mut file, out, &host)
    }
}

fn copy(file: &mut File, out: &mut dyn Write, host: &Path) -> Result<u64, FsError> {
    io::copy(file, out).map_err(|e| io_err(host, e))
}

fn special_reason(meta: &Metadata) -> String {
    if meta.file_type().is_symlink() {
        "symlink".into()
    } else {
        "not a regular file or directory".into()
    }
}

fn io_err(path: &Path, source: io::Error) -> FsError {
    FsError::Io {
        fs: FS,
        what: path.display().to_string(),
        source,
    }
}

fn hostile(path: &str, reason: &str) -> FsError {
    FsError::Hostile {
        fs: FS,
        path: path.to_string(),
        reason: reason.to_string(),
    }
}

fn not_found(path: &RelPath) -> FsError {
    FsError::NotFound {
        fs: FS,
        path: path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("openstack/latest")).unwrap();
        fs::create_dir_all(t.path().join("ec2")).unwrap();
        fs::write(t.path().join("openstack/latest/meta_data.json"), b"{}").unwrap();
        fs::write(t.path().join("openstack/latest/a"), b"").unwrap();
        fs::write(t.path().join("b"), b"12345").unwrap();
        t
    }

    #[test]
    fn lists_depth_first_sorted() {
        let t = tree();
        let mut d = DirFs::open(t.path()).unwrap();
        let got: Vec<String> = d
            .entries()
            .unwrap()
            .iter()
            .map(|e| match e.kind {
                EntryKind::Dir => format!("{}/", e.path),
                EntryKind::File { size } => format!("{} {size}", e.path),
            })
            .collect();
        assert_eq!(
            got,
            [
                "b 5",
                "ec2/",
                "openstack/",
                "openstack/latest/",
                "openstack/latest/a 0",
                "openstack/latest/meta_data.json 2",
            ]
        );
    }

    #[test]
    fn copies_and_reports_missing() {
        let t = tree();
        let mut d = DirFs::open(t.path()).unwrap();
        let mut buf = Vec::new();
        let p = RelPath::parse("openstack/latest/meta_data.json").unwrap();
        assert_eq!(d.copy_file(&p, &mut buf).unwrap(), 2);
        assert_eq!(buf, b"{}");
        let missing = RelPath::parse("openstack/latest/nope").unwrap();
        assert!(matches!(
            d.copy_file(&missing, &mut buf),
            Err(FsError::NotFound { .. })
        ));
        let under_file = RelPath::parse("b/c").unwrap();
        assert!(matches!(
            d.copy_file(&under_file, &mut buf),
            Err(FsError::NotFound { .. })
        ));
        let dir = RelPath::parse("openstack/latest").unwrap();
        assert!(matches!(
            d.copy_file(&dir, &mut buf),
            Err(FsError::NotFound { .. })
        ));
    }

    #[test]
    fn refuses_symlinks_and_fifos() {
        let t = tree();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("openstack/latest/user_data"))
            .unwrap();
        let mut d = DirFs::open(t.path()).unwrap();
        let err = d.entries().unwrap_err().to_string();
        assert!(
            err.contains("openstack/latest/user_data") && err.contains("symlink"),
            "{err}"
        );
        let mut buf = Vec::new();
        let p = RelPath::parse("openstack/latest/user_data").unwrap();
        assert!(matches!(
            d.copy_file(&p, &mut buf),
            Err(FsError::Hostile { .. })
        ));
        assert!(buf.is_empty());

        // A symlinked directory on the way is refused too, not only the last component.
        let t = tree();
        std::os::unix::fs::symlink(t.path().join("openstack"), t.path().join("os2")).unwrap();
        let mut d = DirFs::open(t.path()).unwrap();
        let p = RelPath::parse("os2/latest/meta_data.json").unwrap();
        let err = d.copy_file(&p, &mut buf).unwrap_err().to_string();
        assert!(err.contains("os2") && err.contains("symlink"), "{err}");

        let t = tree();
        let fifo = t.path().join("fifo");
        // libc::mkfifo would need `unsafe`; the coreutils binary does not.
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            let mut d = DirFs::open(t.path()).unwrap();
            let err = d.entries().unwrap_err().to_string();
            assert!(err.contains("fifo"), "{err}");
            let p = RelPath::parse("fifo").unwrap();
            assert!(matches!(
                d.copy_file(&p, &mut buf),
                Err(FsError::Hostile { .. })
            ));
        }
    }

    #[test]
    fn refuses_a_file_as_root() {
        let t = tree();
        assert!(DirFs::open(&t.path().join("b")).is_err());
        assert!(DirFs::open(&t.path().join("nope")).is_err());
    }
}
