//! Injected files (`meta_data.files`, `nova boot --file`): each `content_path`'s bytes written to
//! its `path` inside the target root (0644, missing parents 0755), through [`Root`] so that no
//! `..` and no symlink already in the root can put them outside it.
//!
//! Every content is read from the drive before anything is written: a missing one fails the
//! whole apply with nothing changed.

use super::ApplyError;
use super::rootfs::{FileOpts, Root};
use crate::configdrive::MetaData;
use crate::fs::{DriveFs, FsError, RelPath, read_small_file};

/// Largest injected file: the whole drive is 64 MiB by default, Nova allows a few KiB.
pub const MAX_FILE: u64 = 64 << 20;

/// One file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    pub target: RelPath,
    pub data: Vec<u8>,
}

/// Reads every file's content from the drive.
pub fn read_all(md: &MetaData, drive: &mut dyn DriveFs) -> Result<Vec<Injected>, ApplyError> {
    let mut out = Vec::with_capacity(md.files.len());
    for (index, f) in md.files.iter().enumerate() {
        let missing = |reason: String| ApplyError::Content {
            index,
            path: f.path.clone(),
            content_path: f.content_path.clone(),
            reason,
        };
        let data = match read_small_file(drive, &f.content, MAX_FILE) {
            Ok(Some(d)) => d,
            Ok(None) => {
                return Err(missing(format!("{} is not on the config drive", f.content)));
            }
            Err(e @ FsError::TooLarge { .. }) => return Err(missing(e.to_string())),
            Err(source) => {
                return Err(ApplyError::Drive {
                    what: f.content.to_string(),
                    source,
                });
            }
        };
        out.push(Injected {
            target: f.target.clone(),
            data,
        });
    }
    Ok(out)
}

/// Writes them (atomically, each only if it changes). Returns the paths written.
pub fn write_all(root: &Root, files: &[Injected]) -> Result<Vec<RelPath>, ApplyError> {
    let mut written = Vec::new();
    for f in files {
        root.create_dir_all(&f.target.parent(), 0o755, None)?;
        if root.write_file_if_changed(&f.target, &f.data, FileOpts::mode(0o644))? {
            written.push(f.target.clone());
        }
    }
    Ok(written)
}
