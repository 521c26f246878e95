//! Filesystems read straight from a partition, with no mount and no kernel module: the config
//! drive's vfat or ISO 9660, and the superblock probes that name the root filesystem's type.

pub mod dir;
pub mod fat;
pub mod fat_format;
pub mod iso9660;
pub mod path;
pub mod probe;

pub use path::RelPath;

use std::io::{self, Write};

/// The filesystems a config drive can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriveFsKind {
    Vfat,
    Iso9660,
    /// A config-drive tree in a host directory (`build --from DIR`, tests).
    Dir,
}

impl DriveFsKind {
    pub fn name(self) -> &'static str {
        match self {
            DriveFsKind::Vfat => "vfat",
            DriveFsKind::Iso9660 => "iso9660",
            DriveFsKind::Dir => "dir",
        }
    }
}

/// Errors of the drive readers. Each names the filesystem and, where there is one, the file.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{fs}: I/O error reading {what}: {source}")]
    Io {
        fs: &'static str,
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{fs}: corrupt filesystem: {detail}")]
    Corrupt { fs: &'static str, detail: String },
    #[error("{fs}: refusing {path:?}: {reason}")]
    Hostile {
        fs: &'static str,
        path: String,
        reason: String,
    },
    #[error("{fs}: no such file {path:?}")]
    NotFound { fs: &'static str, path: String },
    #[error("{fs}: {path:?} is at least {size} bytes, over the {limit}-byte limit for this file")]
    TooLarge {
        fs: &'static str,
        path: String,
        size: u64,
        limit: u64,
    },
}

/// What an entry of a drive is. Symlinks and devices are refused while walking, never listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64 },
}

/// One entry of a drive's tree, with a validated path relative to the drive's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: RelPath,
    pub kind: EntryKind,
}

/// A config drive's filesystem, opened read-only on a partition window.
pub trait DriveFs {
    fn kind(&self) -> DriveFsKind;

    /// The volume label (`config-2` / `CONFIG-2` on a config drive), trailing spaces removed.
    fn label(&self) -> &str;

    /// The whole tree, depth first, each directory listed before its contents, sorted by name
    /// within a directory. Every name is validated: a hostile entry (`..`, `/` in a name, a
    /// symlink, a directory loop, an extent beyond the partition) fails the whole walk with
    /// `FsError::Hostile` naming it.
    fn entries(&mut self) -> Result<Vec<Entry>, FsError>;

    /// Streams a regular file's bytes to `out`, returning how many were written.
    fn copy_file(&mut self, path: &RelPath, out: &mut dyn Write) -> Result<u64, FsError>;
}

/// Reads a whole small file (JSON, user-data) into memory; `Ok(None)` when it does not exist.
/// `limit` guards memory against a drive that claims a huge file.
pub fn read_small_file(
    fs: &mut dyn DriveFs,
    path: &RelPath,
    limit: u64,
) -> Result<Option<Vec<u8>>, FsError> {
    struct Capped<'a> {
        buf: &'a mut Vec<u8>,
        limit: u64,
        over: bool,
    }
    impl Write for Capped<'_> {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.buf.len() as u64 + b.len() as u64 > self.limit {
                self.over = true;
                return Err(io::Error::other("file over its size limit"));
            }
            self.buf.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut buf = Vec::new();
    let mut capped = Capped {
        buf: &mut buf,
        limit,
        over: false,
    };
    match fs.copy_file(path, &mut capped) {
        Ok(_) => Ok(Some(buf)),
        Err(FsError::NotFound { .. }) => Ok(None),
        Err(_) if capped.over => Err(FsError::TooLarge {
            fs: fs.kind().name(),
            path: path.to_string(),
            size: limit.saturating_add(1),
            limit,
        }),
        Err(e) => Err(e),
    }
}

/// Where the bytes of a file to be written onto a new drive come from (`build`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileData {
    Bytes(Vec<u8>),
    /// A regular file on the host, read when it is written (keeps `build` lean on big trees).
    Host(std::path::PathBuf),
}

impl FileData {
    pub fn len(&self) -> io::Result<u64> {
        match self {
            FileData::Bytes(b) => Ok(b.len() as u64),
            FileData::Host(p) => Ok(std::fs::metadata(p)?.len()),
        }
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Streams the bytes to `out`.
    pub fn write_to(&self, out: &mut dyn Write) -> io::Result<u64> {
        match self {
            FileData::Bytes(b) => {
                out.write_all(b)?;
                Ok(b.len() as u64)
            }
            FileData::Host(p) => io::copy(&mut std::fs::File::open(p)?, out),
        }
    }
}

/// A tree to put on a new drive: every directory (parents before children) and every file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputTree {
    pub dirs: Vec<RelPath>,
    pub files: Vec<(RelPath, FileData)>,
}

impl InputTree {
    /// Adds a file, and any parent directories not yet listed.
    pub fn add_file(&mut self, path: RelPath, data: FileData) {
        self.add_dir_all(&path.parent());
        self.files.push((path, data));
    }

    /// Adds a directory and its missing parents, parents first.
    pub fn add_dir_all(&mut self, dir: &RelPath) {
        if dir.is_root() || self.dirs.contains(dir) {
            return;
        }
        self.add_dir_all(&dir.parent());
        self.dirs.push(dir.clone());
    }

    /// Reads a host directory (a config-drive tree such as `openstack/latest/...`). Symlinks and
    /// special files are refused rather than followed: a drive holds plain files only.
    pub fn from_host_dir(root: &std::path::Path) -> io::Result<InputTree> {
        fn walk(dir: &std::path::Path, rel: &RelPath, tree: &mut InputTree) -> io::Result<()> {
            let mut names: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
            names.sort_by_key(|e| e.file_name());
            for e in names {
                let name = e.file_name();
                let name = name.to_str().ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: file name is not UTF-8", e.path().display()),
                    )
                })?;
                let path = rel.join(name).map_err(|why| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: {why}", e.path().display()),
                    )
                })?;
                let ft = e.file_type()?;
                if ft.is_dir() {
                    tree.add_dir_all(&path);
                    walk(&e.path(), &path, tree)?;
                } else if ft.is_file() {
                    tree.files.push((path, FileData::Host(e.path())));
                } else {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: not a regular file or directory (symlinks are not copied onto a drive)",
                            e.path().display()
                        ),
                    ));
                }
            }
            Ok(())
        }
        let mut tree = InputTree::default();
        walk(root, &RelPath::root(), &mut tree)?;
        Ok(tree)
    }
}
