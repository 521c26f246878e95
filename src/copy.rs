//! The copy of the config drive on the root filesystem (SPEC sections 4 and 5, step 2): the whole
//! tree, root-only (directories 0700, files 0600: it can hold `admin_pass` and tokens), with a
//! `SHA256SUMS` manifest, made durable and verified before the drive's partition may go.
//!
//! The copy is built in `<dest>.tmp`, synced, re-read from disk and checked against the hashes
//! taken while streaming the drive, and only then put in place, so `dest` is always either absent
//! or a complete, verified copy. Replacing an older copy swaps the two atomically
//! (`renameat2(RENAME_EXCHANGE)`), or where the filesystem cannot, renames the old one aside to
//! `<dest>.old` first: at every instant a complete old or a complete new copy exists, and
//! [`recover`] puts `<dest>.old` back if a crash fell between the two renames.

use crate::fs::{DriveFs, Entry, EntryKind, FsError, RelPath};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CString, OsString};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// The manifest's name, at the top of the copy.
pub const SUMS: &str = "SHA256SUMS";
/// Streaming buffer: the copy and its checks never hold more of a file than this.
const BUF: usize = 64 * 1024;
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;
/// Mode of ancestors of `dest` that have to be created (`/var/lib/cloud` for the seed copy).
const ANCESTOR_MODE: u32 = 0o755;
/// Largest `SHA256SUMS` read back (about 300 000 files): keeps memory bounded on a damaged copy.
const MAX_SUMS: u64 = 32 << 20;

/// Where `run` keeps the copy: `<root>/var/lib/seedpart/config-drive`.
pub fn default_dest(root: &Path) -> PathBuf {
    root.join("var/lib/seedpart/config-drive")
}

/// Where cloud-init's ConfigDrive datasource looks for a seed: `<root>/var/lib/cloud/seed/config_drive`.
pub fn cloud_init_seed_dest(root: &Path) -> PathBuf {
    root.join("var/lib/cloud/seed/config_drive")
}

/// One file of a copy (or of a drive): its path, size and SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: RelPath,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// A tree's directories and files, each sorted by path. `SHA256SUMS` itself is not listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub dirs: Vec<RelPath>,
    pub files: Vec<ManifestEntry>,
}

impl Manifest {
    fn normalize(&mut self) {
        self.dirs.sort();
        self.dirs.dedup();
        self.files.sort_by(|a, b| a.path.cmp(&b.path));
    }

    pub fn file_count(&self) -> u64 {
        self.files.len() as u64
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    pub fn get(&self, path: &RelPath) -> Option<&ManifestEntry> {
        self.files
            .binary_search_by(|f| f.path.cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// The `SHA256SUMS` text, in `sha256sum` format (`<hex>  <path>\n`, sorted by path; a name
    /// holding a newline, CR or backslash is escaped and its line starts with `\`, as GNU
    /// coreutils does), so `sha256sum -c SHA256SUMS` run in the copy checks it.
    pub fn sums(&self) -> String {
        let mut files: Vec<&ManifestEntry> = self.files.iter().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out = String::new();
        for f in files {
            let name = f.path.as_str();
            if name.contains(['\n', '\r', '\\']) {
                out.push('\\');
                out.push_str(&hex(&f.sha256));
                out.push_str("  ");
                for c in name.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            } else {
                out.push_str(&hex(&f.sha256));
                out.push_str("  ");
                out.push_str(name);
            }
            out.push('\n');
        }
        out
    }

    /// SHA-256 of [`Manifest::sums`]: one value naming the whole content (for the state file).
    pub fn sums_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.sums().as_bytes()).into()
    }
}

/// Whether two manifests list the same directories and the same files with the same sizes and
/// hashes (so `run` can skip copying a drive it already holds).
pub fn same_as(manifest: &Manifest, other: &Manifest) -> bool {
    let mut a = manifest.clone();
    let mut b = other.clone();
    a.normalize();
    b.normalize();
    a == b
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

const REDO: &str = "`seedpart run` copies the drive again while its partition exists";

/// Errors of the copy and of its checks. Each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "copying {path} from the config drive: {source}; nothing was replaced, check the drive and run again"
    )]
    Drive {
        path: RelPath,
        #[source]
        source: FsError,
    },
    #[error(
        "config drive file {path} is listed as {listed} bytes but {read} were read; nothing was replaced, check the drive and run again"
    )]
    DriveSize {
        path: RelPath,
        listed: u64,
        read: u64,
    },
    #[error(
        "the config drive has a top-level {path:?}, a name the copy keeps for its manifest; rename it on the drive"
    )]
    Reserved { path: RelPath },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is a symlink: seedpart neither reads nor writes its files through one; replace it with a real directory (mode 0700) and run again"
    )]
    Symlink { path: PathBuf },
    #[error("{path} is not a directory; move it aside and run again")]
    NotADirectory { path: PathBuf },
    #[error("there is no copy of the config drive at {dest}{hint}")]
    NoCopy { dest: PathBuf, hint: String },
    #[error(
        "{dest}: no {SUMS}, so the copy cannot be checked; it is incomplete or not seedpart's: {REDO}"
    )]
    NoManifest { dest: PathBuf },
    #[error("{file}:{line}: {reason}; the manifest is damaged: {REDO}")]
    BadManifest {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{dest}: {path} is listed in {SUMS} but missing from the copy; {REDO}")]
    Missing { dest: PathBuf, path: RelPath },
    #[error("{dest}: {what} {path} is not listed in {SUMS}; move it out of the copy, or {REDO}")]
    Extra {
        dest: PathBuf,
        path: String,
        what: &'static str,
    },
    #[error(
        "{dest}: {path} ({size} bytes) does not match its SHA-256 in {SUMS}: it is truncated or damaged; {REDO}"
    )]
    Hash {
        dest: PathBuf,
        path: RelPath,
        size: u64,
    },
    #[error(
        "{dest}: {path} read back from disk differs from the config drive ({what}); the copy was not put in place: check the root filesystem's disk, then run again"
    )]
    ReadBack {
        dest: PathBuf,
        path: String,
        what: String,
    },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CopyError + use<> {
    let path = path.to_path_buf();
    move |source| CopyError::Io {
        action,
        path,
        source,
    }
}

/// Hashes every file of a drive without copying it (to compare with an existing copy).
pub fn hash_drive(fs: &mut dyn DriveFs, entries: &[Entry]) -> Result<Manifest, CopyError> {
    let mut m = Manifest::default();
    let mut dirs = BTreeSet::new();
    for e in entries {
        add_parents(&e.path, &mut dirs);
        match e.kind {
            EntryKind::Dir => {
                if !e.path.is_root() {
                    dirs.insert(e.path.clone());
                }
            }
            EntryKind::File { size } => {
                check_reserved(&e.path)?;
                let mut w = Hashing::new(io::sink());
                let (n, sha256) = stream(fs, &e.path, size, &mut w, Path::new("(hashing only)"))?;
                m.files.push(ManifestEntry {
                    path: e.path.clone(),
                    size: n,
                    sha256,
                });
            }
        }
    }
    m.dirs = dirs.into_iter().collect();
    m.normalize();
    Ok(m)
}

/// Copies the whole drive tree (`entries`, as `fs.entries()` lists them) to `dest`, verifies it
/// and makes it durable; see the module documentation. `dest`'s parent is created if missing
/// (0700; missing ancestors above it 0755) and must not be a symlink. Returns the drive's manifest.
pub fn copy_drive(
    fs: &mut dyn DriveFs,
    entries: &[Entry],
    dest: &Path,
) -> Result<Manifest, CopyError> {
    copy_drive_with(fs, entries, dest, true, &mut |_, _| {})
}

/// The steps of putting a verified temporary copy in place, reported to the test hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The copy written and synced in `tmp`, not yet re-read.
    Written,
    /// `tmp` and `dest` swapped: `tmp` holds the old copy.
    Exchanged,
    /// Fallback: the old copy renamed to `<dest>.old`.
    OldAside,
    /// `tmp` renamed to `dest`.
    Installed,
    /// The old copy removed.
    OldRemoved,
}

struct Siblings {
    parent: PathBuf,
    tmp: PathBuf,
    old: PathBuf,
}

fn siblings(dest: &Path) -> Result<Siblings, CopyError> {
    let bad = || CopyError::Io {
        action: "choosing where to copy the config drive:",
        path: dest.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a usable directory name"),
    };
    let name = dest.file_name().ok_or_else(bad)?;
    let parent = match dest.parent() {
        Some(p) if p.as_os_str().is_empty() => PathBuf::from("."),
        Some(p) => p.to_path_buf(),
        None => return Err(bad()),
    };
    let with = |suffix: &str| {
        let mut n = OsString::from(name);
        n.push(suffix);
        parent.join(n)
    };
    Ok(Siblings {
        tmp: with(".tmp"),
        old: with(".old"),
        parent,
    })
}

fn copy_drive_with(
    fs: &mut dyn DriveFs,
    entries: &[Entry],
    dest: &Path,
    exchange: bool,
    hook: &mut dyn FnMut(Step, &Siblings),
) -> Result<Manifest, CopyError> {
    let s = siblings(dest)?;
    ensure_real_dir(&s.parent, DIR_MODE)?;
    recover(dest)?;
    remove_any(&s.tmp)?;
    let parent = open_dir(&s.parent)?;
    let result = build_verified(fs, entries, &s, hook);
    let manifest = match result {
        Ok(m) => m,
        Err(e) => {
            // Best effort: a crash would have left it too, and the next copy removes it.
            let _ = remove_any(&s.tmp);
            let _ = parent.sync_all();
            return Err(e);
        }
    };
    install(&parent, dest, &s, exchange, hook)?;
    Ok(manifest)
}

/// Finishes a replacement that a crash interrupted: `<dest>.old` left beside a complete `dest`
/// is removed; `<dest>.old` with no `dest` (a crash between the fallback's two renames) is put
/// back as `dest`. A leftover `<dest>.tmp` is never trusted (the next copy removes it).
/// `copy_drive` calls it; `run` calls it before `verify_copy` on a later boot.
pub fn recover(dest: &Path) -> Result<(), CopyError> {
    let s = siblings(dest)?;
    let old = match fs::symlink_metadata(&s.old) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("checking", &s.old)(e)),
    };
    let parent = open_dir(&s.parent)?;
    match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(CopyError::Symlink {
                path: dest.to_path_buf(),
            });
        }
        Ok(_) => remove_any(&s.old)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if old.is_dir() {
                fs::rename(&s.old, dest).map_err(io_err("restoring the previous copy", &s.old))?;
            } else {
                remove_any(&s.old)?;
            }
        }
        Err(e) => return Err(io_err("checking", dest)(e)),
    }
    parent.sync_all().map_err(io_err("fsync", &s.parent))
}

/// Steps 1 to 4: the copy in `tmp`, durable and checked against the drive.
fn build_verified(
    fs: &mut dyn DriveFs,
    entries: &[Entry],
    s: &Siblings,
    hook: &mut dyn FnMut(Step, &Siblings),
) -> Result<Manifest, CopyError> {
    let tmp = s.tmp.as_path();
    make_dir(tmp)?;
    // Opened before anything is written, so that its syncfs below reports any writeback error
    // of the files written after it.
    let tmp_dir = open_dir(tmp)?;
    let mut made: BTreeSet<RelPath> = BTreeSet::new();
    // Two threads: this one reads the drive and takes the SHA-256, the other creates and
    // writes the copy's files; on one thread the hashing waited for the writing and the other
    // way round. On the benchmark's drive (1,000 files, 40 MiB) each side needs about 50 ms of
    // CPU, spent side by side on two cores (the copy took 55 ms).
    //
    // A first boot's drive (a few dozen files, tens of KB) is copied on this thread alone: a
    // thread costs more than it could save there.
    let bytes: u64 = entries
        .iter()
        .map(|e| match e.kind {
            EntryKind::File { size } => size,
            EntryKind::Dir => 0,
        })
        .sum();
    let (files, streamed) = if bytes < THREADED_COPY {
        let mut pipe = Pipe::new(Out::Inline {
            writer: Box::default(),
            failed: None,
            spare: None,
        });
        let read = read_drive(fs, entries, tmp, &mut made, &mut pipe);
        let Out::Inline { writer, failed, .. } = pipe.out else {
            unreachable!("made inline above")
        };
        failed.map_or(Ok(()), Err)?;
        (read?, writer.finish())
    } else {
        std::thread::scope(|sc| {
            let (jobs, to_write) = mpsc::sync_channel(2 * BUFS);
            let (give_back, spare) = mpsc::channel();
            let writer = sc.spawn(move || write_jobs(to_write, give_back));
            let mut pipe = Pipe::new(Out::Thread {
                jobs,
                spare,
                allocated: 1,
            });
            let read = read_drive(fs, entries, tmp, &mut made, &mut pipe);
            // Ends the writer's loop once it has written what was sent.
            drop(pipe);
            let wrote = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // When the writer failed, the reading side stopped because of it (or failed on its
            // own as well): the writer's error is the one that says what to do.
            let streamed = wrote?;
            Ok::<_, CopyError>((read?, streamed))
        })?
    };
    // What each file must read back as: its size and the XXH3-128 of the bytes handed to the
    // writer (one per file, in the order both sides saw them).
    let mut want: BTreeMap<RelPath, (u64, u128)> = files
        .iter()
        .zip(streamed)
        .map(|(f, x)| (f.path.clone(), (f.size, x)))
        .collect();
    let mut m = Manifest {
        files,
        ..Manifest::default()
    };
    m.dirs = made.into_iter().collect();
    m.normalize();

    let sums_path = tmp.join(SUMS);
    let mut sums = create_file(&sums_path)?;
    let text = m.sums();
    sums.write_all(text.as_bytes())
        .map_err(io_err("writing", &sums_path))?;
    drop(sums);
    want.insert(
        RelPath::parse(SUMS).expect("a valid name"),
        (text.len() as u64, xxh3_128(text.as_bytes())),
    );

    // One syncfs for the whole tree rather than an fsync per file and per directory: the same
    // guarantee (every file's data and every directory entry on stable storage, the disk's
    // write cache flushed) for one journal commit and one cache flush instead of one of each per
    // entry, which on a real disk was most of the copy's time (two flushes per file). A
    // writeback error is reported by syncfs (Linux >= 5.8, through the descriptor opened
    // before the writes); on any kernel the re-read below, with the page cache dropped, reads
    // what reached the disk, so a file that did not is caught there.
    syncfs(&tmp_dir).map_err(io_err("syncfs", tmp))?;
    hook(Step::Written, s);

    read_back(tmp, &m.dirs, &want)?;
    Ok(m)
}

/// Reads the synced copy in `tmp` back from disk (page cache dropped first) and checks it is
/// exactly what was streamed: the same directories, the same files (the manifest included),
/// each with its size and the XXH3-128 the writer took of the bytes it was given. XXH3, not
/// SHA-256 again: the read-back is there to catch what the disk and the filesystem did to the
/// bytes (a lost or torn write, a misdirected block), which a 128-bit checksum catches as
/// surely, and XXH3 hashes 11 GB/s here against SHA-256's 1.5 (with the CPU's SHA
/// extensions): on the benchmark's 40 MiB drive the read-back fell from about 30 ms to 15. The
/// SHA-256 in `SHA256SUMS` were taken of the drive's own bytes as they were streamed, so this
/// check binds the copy on disk to them, and `run` checks the copy against them again
/// ([`verify_copy`]) before the partition is deleted.
fn read_back(
    tmp: &Path,
    dirs: &[RelPath],
    want: &BTreeMap<RelPath, (u64, u128)>,
) -> Result<(), CopyError> {
    let err = |path: String, what: String| CopyError::ReadBack {
        dest: tmp.to_path_buf(),
        path,
        what,
    };
    let mut got_dirs = Vec::new();
    let mut got_files = BTreeSet::new();
    walk(tmp, &RelPath::root(), &mut got_dirs, &mut got_files)?;
    got_dirs.sort();
    if got_dirs != dirs {
        let want_dirs: BTreeSet<_> = dirs.iter().collect();
        let got_dirs: BTreeSet<_> = got_dirs.iter().collect();
        let d = want_dirs.symmetric_difference(&got_dirs).next();
        return Err(err(
            d.map_or_else(String::new, |d| d.to_string()),
            "directory missing or unexpected".into(),
        ));
    }
    // `walk` leaves the manifest out of what it found.
    got_files.insert(RelPath::parse(SUMS).expect("a valid name"));
    if let Some(p) = want.keys().find(|p| !got_files.contains(*p)) {
        return Err(err(p.to_string(), "missing".into()));
    }
    if let Some(p) = got_files.iter().find(|p| !want.contains_key(*p)) {
        return Err(err(p.to_string(), "unexpected file".into()));
    }
    let listed: Vec<_> = want.iter().map(|(p, (size, _))| (p, Some(*size))).collect();
    for (i, read) in check_files(tmp, &listed, true, Algo::Xxh3) {
        let (path, (size, xxh)) = (listed[i].0, want[listed[i].0]);
        match read? {
            (n, _) if n != size => {
                return Err(err(
                    path.to_string(),
                    format!("{n} bytes read back, {size} written"),
                ));
            }
            (_, Sum::Xxh3(x)) if x == xxh => {}
            _ => return Err(err(path.to_string(), format!("XXH3-128 of {size} bytes"))),
        }
    }
    Ok(())
}

/// Buffers in flight between the thread reading the drive and the one writing the copy: enough
/// to keep both busy, few enough to keep memory flat (`BUFS` x `BUF`).
const BUFS: usize = 8;

/// What the thread reading the drive asks the writing thread to do, in order.
enum Job {
    /// Create this file (see [`create_file`]); the `Data` that follows goes to it.
    Create(PathBuf),
    Data(Vec<u8>),
}

/// Below this many bytes the copy runs on one thread (see [`build_verified`]).
const THREADED_COPY: u64 = 1 << 20;

/// The writing side: creates and fills the copy's files in the order asked, and takes the
/// XXH3-128 of the bytes each was given: what the file must read back as (see [`read_back`]).
/// It takes the XXH3, not the reading side, which has the SHA-256 to compute. Data reaches the
/// disk through the `syncfs` that follows, and close(2) reports nothing that syncfs does not
/// (Linux reports writeback errors to both).
#[derive(Default)]
struct Writer {
    cur: Option<(File, PathBuf, Xxh3)>,
    sums: Vec<u128>,
}

impl Writer {
    fn create(&mut self, path: PathBuf) -> Result<(), CopyError> {
        if let Some((_, _, x)) = self.cur.take() {
            self.sums.push(x.digest128());
        }
        self.cur = Some((create_file(&path)?, path, Xxh3::new()));
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> Result<(), CopyError> {
        let (f, path, x) = self
            .cur
            .as_mut()
            .expect("the reading side sends Create before Data");
        f.write_all(buf).map_err(io_err("writing", path))?;
        x.update(buf);
        Ok(())
    }

    /// Per file, in the order created: the XXH3-128 of what it was given.
    fn finish(mut self) -> Vec<u128> {
        if let Some((_, _, x)) = self.cur.take() {
            self.sums.push(x.digest128());
        }
        self.sums
    }
}

/// The writing thread: a [`Writer`] fed in order, giving each buffer back once written. Its
/// first error stops it, which stops the reading side's sends.
fn write_jobs(jobs: Receiver<Job>, spare: Sender<Vec<u8>>) -> Result<Vec<u128>, CopyError> {
    let mut w = Writer::default();
    for job in jobs {
        match job {
            Job::Create(path) => w.create(path)?,
            Job::Data(mut buf) => {
                w.write(&buf)?;
                buf.clear();
                // The reading side may have finished and gone: nothing to give back to.
                let _ = spare.send(buf);
            }
        }
    }
    Ok(w.finish())
}

/// Where the reading side's jobs go.
enum Out {
    /// To the writing thread, which gives the buffers back through `spare`.
    Thread {
        jobs: SyncSender<Job>,
        spare: Receiver<Vec<u8>>,
        allocated: usize,
    },
    /// Done at once, on this thread; the first error is kept for the caller.
    Inline {
        // Boxed: an XXH3 state is 600-odd bytes.
        writer: Box<Writer>,
        failed: Option<CopyError>,
        spare: Option<Vec<u8>>,
    },
}

/// The reading side's end: hashes and counts what the drive gives and passes it on to the
/// writer in `BUF`-sized buffers, reusing them.
struct Pipe {
    out: Out,
    buf: Vec<u8>,
    hasher: Sha256,
    n: u64,
    /// The writer has stopped: its error is the one to report.
    writer_gone: bool,
}

impl Pipe {
    fn new(out: Out) -> Self {
        Pipe {
            out,
            buf: Vec::with_capacity(BUF),
            hasher: Sha256::new(),
            n: 0,
            writer_gone: false,
        }
    }

    fn send(&mut self, job: Job) -> io::Result<()> {
        let gone = match &mut self.out {
            Out::Thread { jobs, .. } => jobs.send(job).is_err(),
            Out::Inline {
                writer,
                failed,
                spare,
            } => {
                let done = match job {
                    Job::Create(path) => writer.create(path),
                    Job::Data(mut buf) => {
                        let r = writer.write(&buf);
                        buf.clear();
                        *spare = Some(buf);
                        r
                    }
                };
                done.map_err(|e| *failed = Some(e)).is_err()
            }
        };
        if gone {
            self.writer_gone = true;
            return Err(io::Error::other("the copy's writer stopped"));
        }
        Ok(())
    }

    /// A buffer to fill: one given back, a new one while fewer than `BUFS` exist, or else the
    /// next one given back.
    fn empty_buffer(&mut self) -> Vec<u8> {
        match &mut self.out {
            Out::Thread {
                spare, allocated, ..
            } => {
                if let Ok(b) = spare.try_recv() {
                    return b;
                }
                if *allocated < BUFS {
                    *allocated += 1;
                    return Vec::with_capacity(BUF);
                }
                // Err: the writer is gone, and the next send says so.
                spare.recv().unwrap_or_default()
            }
            Out::Inline { spare, .. } => spare.take().unwrap_or_default(),
        }
    }

    /// Sends what the buffer holds.
    fn pass_on(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self.empty_buffer();
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Job::Data(full))
    }
}

impl Write for Pipe {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= BUF {
            self.pass_on()?;
        }
        let k = data.len().min(BUF - self.buf.len());
        self.buf.extend_from_slice(&data[..k]);
        self.hasher.update(&data[..k]);
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.pass_on()
    }
}

/// The reading side of the copy: creates the directories itself (before any file in them is
/// sent), streams every file through `pipe`, and returns the files' manifest entries.
fn read_drive(
    fs: &mut dyn DriveFs,
    entries: &[Entry],
    tmp: &Path,
    made: &mut BTreeSet<RelPath>,
    pipe: &mut Pipe,
) -> Result<Vec<ManifestEntry>, CopyError> {
    // The writer's own error is returned in place of this one.
    let gone = || CopyError::Io {
        action: "writing",
        path: tmp.to_path_buf(),
        source: io::Error::other("the thread writing the copy stopped"),
    };
    let mut files = Vec::new();
    for e in entries {
        if e.path.is_root() {
            continue;
        }
        check_reserved(&e.path)?;
        let mut missing = BTreeSet::new();
        add_parents(&e.path, &mut missing);
        for d in missing {
            if made.insert(d.clone()) {
                make_dir(&host(tmp, &d))?;
            }
        }
        let EntryKind::File { size } = e.kind else {
            if made.insert(e.path.clone()) {
                make_dir(&host(tmp, &e.path))?;
            }
            continue;
        };
        pipe.send(Job::Create(host(tmp, &e.path)))
            .map_err(|_| gone())?;
        pipe.n = 0;
        let copied = fs.copy_file(&e.path, pipe);
        let passed = pipe.pass_on();
        if pipe.writer_gone {
            return Err(gone());
        }
        let n = copied.map_err(|source| CopyError::Drive {
            path: e.path.clone(),
            source,
        })?;
        passed.map_err(|_| gone())?;
        if n != size || pipe.n != size {
            return Err(CopyError::DriveSize {
                path: e.path.clone(),
                listed: size,
                read: pipe.n,
            });
        }
        files.push(ManifestEntry {
            path: e.path.clone(),
            size,
            sha256: pipe.hasher.finalize_reset().into(),
        });
    }
    Ok(files)
}

/// Step 5: puts the verified `tmp` at `dest`, never leaving neither a complete old nor new copy.
fn install(
    parent: &File,
    dest: &Path,
    s: &Siblings,
    exchange: bool,
    hook: &mut dyn FnMut(Step, &Siblings),
) -> Result<(), CopyError> {
    let sync = || parent.sync_all().map_err(io_err("fsync", &s.parent));
    let exists = match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(CopyError::Symlink {
                path: dest.to_path_buf(),
            });
        }
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err("checking", dest)(e)),
    };
    if !exists {
        fs::rename(&s.tmp, dest).map_err(io_err("putting the copy in place at", dest))?;
        sync()?;
        hook(Step::Installed, s);
        return Ok(());
    }
    let swapped = if exchange {
        match rename_exchange(parent, &s.tmp, dest) {
            Ok(()) => true,
            // The filesystem (or an old kernel, or a seccomp filter) cannot: fall back.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EPERM)
                ) =>
            {
                false
            }
            Err(e) => return Err(io_err("swapping in the new copy at", dest)(e)),
        }
    } else {
        false
    };
    if swapped {
        sync()?;
        hook(Step::Exchanged, s);
        // `tmp` now holds the old copy.
        remove_any(&s.tmp)?;
        sync()?;
        hook(Step::OldRemoved, s);
    } else {
        remove_any(&s.old)?;
        fs::rename(dest, &s.old).map_err(io_err("moving the previous copy aside:", dest))?;
        hook(Step::OldAside, s);
        fs::rename(&s.tmp, dest).map_err(io_err("putting the copy in place at", dest))?;
        sync()?;
        hook(Step::Installed, s);
        remove_any(&s.old)?;
        sync()?;
        hook(Step::OldRemoved, s);
    }
    Ok(())
}

fn rename_exchange(parent: &File, a: &Path, b: &Path) -> io::Result<()> {
    let name = |p: &Path| {
        let n = p.file_name().ok_or(io::ErrorKind::InvalidInput)?;
        CString::new(n.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (a, b) = (name(a)?, name(b)?);
    let fd = parent.as_raw_fd();
    // SAFETY: renameat2 reads two NUL-terminated names that outlive the call, relative to a
    // directory descriptor borrowed from `parent`, open for the whole call; it touches no memory
    // of ours otherwise. A raw syscall, because glibc < 2.28 and musl lack a wrapper.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            fd,
            a.as_ptr(),
            fd,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Checks a copy against its own `SHA256SUMS`: every listed file present with its size and hash,
/// nothing else there (no extra file, no symlink, no special file). Returns the copy's manifest.
/// Only reads.
pub fn verify_copy(dest: &Path) -> Result<Manifest, CopyError> {
    match fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(CopyError::Symlink {
                path: dest.to_path_buf(),
            });
        }
        Ok(m) if !m.is_dir() => {
            return Err(CopyError::NotADirectory {
                path: dest.to_path_buf(),
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let hint = match siblings(dest) {
                Ok(s) if s.old.exists() => format!(
                    "; a replacement was interrupted and left the previous copy at {}: `seedpart run` puts it back",
                    s.old.display()
                ),
                _ => String::new(),
            };
            return Err(CopyError::NoCopy {
                dest: dest.to_path_buf(),
                hint,
            });
        }
        Err(e) => return Err(io_err("checking", dest)(e)),
    }
    let listed = read_sums(dest)?;

    let mut dirs = Vec::new();
    let mut files = BTreeSet::new();
    walk(dest, &RelPath::root(), &mut dirs, &mut files)?;

    if let Some(path) = listed.keys().find(|p| !files.contains(*p)) {
        return Err(CopyError::Missing {
            dest: dest.to_path_buf(),
            path: path.clone(),
        });
    }
    if let Some(path) = files.iter().find(|p| !listed.contains_key(*p)) {
        return Err(CopyError::Extra {
            dest: dest.to_path_buf(),
            path: path.to_string(),
            what: "file",
        });
    }
    let listed: Vec<(RelPath, [u8; 32])> = listed.into_iter().collect();
    let paths: Vec<_> = listed.iter().map(|(p, _)| (p, None)).collect();
    let mut m = Manifest {
        dirs,
        files: Vec::with_capacity(listed.len()),
    };
    for (i, read) in check_files(dest, &paths, false, Algo::Sha256) {
        let (path, want) = &listed[i];
        match read? {
            (size, Sum::Sha256(sha256)) if sha256 == *want => m.files.push(ManifestEntry {
                path: path.clone(),
                size,
                sha256,
            }),
            (size, _) => {
                return Err(CopyError::Hash {
                    dest: dest.to_path_buf(),
                    path: path.clone(),
                    size,
                });
            }
        }
    }
    m.normalize();
    Ok(m)
}

/// Below this many files the check runs on the calling thread alone: a thread costs more than
/// it saves on a first boot's few dozen small files.
const THREADED_CHECK: usize = 64;

/// Which checksum [`check_files`] takes.
#[derive(Clone, Copy)]
enum Algo {
    Sha256,
    Xxh3,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sum {
    Sha256([u8; 32]),
    Xxh3(u128),
}

/// One file read back: its size and checksum.
type Checked = Result<(u64, Sum), CopyError>;

/// Reads back the files `paths` of the copy at `dest` and takes each one's size and checksum,
/// on up to four threads (the hashing, not the reading, is most of the time). The results come
/// in the order of `paths`, each with its index; a thread stops at its first error, so the
/// results stop at the first file that could not be read: whoever walks them in order and stops
/// at the first failure (unreadable or wrong) reports the same file whatever the threads' timing.
fn check_files(
    dest: &Path,
    paths: &[(&RelPath, Option<u64>)],
    drop_cache: bool,
    algo: Algo,
) -> Vec<(usize, Checked)> {
    let threads = if paths.len() < THREADED_CHECK {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    // Thread t checks files t, t + threads, ...: sizes even out without knowing them.
    let check_share = |t: usize| {
        // One buffer per thread for all its files: a fresh zeroed 64 KiB per file cost more
        // than the hashing of small files (valgrind: two thirds of a first boot's instructions).
        let mut buf = vec![0u8; BUF];
        let mut out = Vec::new();
        for (i, (path, size)) in paths.iter().enumerate().skip(t).step_by(threads) {
            let read = hash_file(&host(dest, path), &mut buf, drop_cache, algo, *size);
            let failed = read.is_err();
            out.push((i, read));
            if failed {
                break;
            }
        }
        out
    };
    let mut results = if threads == 1 {
        check_share(0)
    } else {
        std::thread::scope(|sc| {
            let others: Vec<_> = (1..threads)
                .map(|t| sc.spawn(move || check_share(t)))
                .collect();
            let mut all = check_share(0);
            for h in others {
                all.extend(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            all
        })
    };
    results.sort_unstable_by_key(|(i, _)| *i);
    // A thread that stopped early leaves later indices out; cut the list at the first gap so
    // that nothing past an unread file is taken as checked.
    let upto = results
        .iter()
        .enumerate()
        .position(|(k, (i, _))| k != *i)
        .unwrap_or(results.len());
    results.truncate(upto);
    results
}

/// Reads and parses `<dest>/SHA256SUMS`.
fn read_sums(dest: &Path) -> Result<BTreeMap<RelPath, [u8; 32]>, CopyError> {
    let path = dest.join(SUMS);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(CopyError::NoManifest {
                dest: dest.to_path_buf(),
            });
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(CopyError::Symlink { path });
        }
        Err(e) => return Err(io_err("opening", &path)(e)),
    };
    let bad = |line: usize, reason: String| CopyError::BadManifest {
        file: path.clone(),
        line,
        reason,
    };
    if !file
        .metadata()
        .map_err(io_err("checking", &path))?
        .is_file()
    {
        return Err(bad(0, "not a regular file".into()));
    }
    let mut raw = Vec::new();
    file.take(MAX_SUMS + 1)
        .read_to_end(&mut raw)
        .map_err(io_err("reading", &path))?;
    if raw.len() as u64 > MAX_SUMS {
        return Err(bad(0, format!("larger than {MAX_SUMS} bytes")));
    }
    let text = std::str::from_utf8(&raw).map_err(|e| {
        let line = raw[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        bad(line, "not UTF-8".into())
    })?;
    let mut out = BTreeMap::new();
    if text.is_empty() {
        return Ok(out);
    }
    let Some(body) = text.strip_suffix('\n') else {
        let line = text.split('\n').count();
        return Err(bad(
            line,
            "no newline at the end: the file was cut short".into(),
        ));
    };
    for (i, line) in body.split('\n').enumerate() {
        let n = i + 1;
        let (path, sha) = parse_sums_line(line).map_err(|r| bad(n, r))?;
        if path.as_str() == SUMS {
            return Err(bad(n, format!("lists {SUMS} itself")));
        }
        if out.insert(path.clone(), sha).is_some() {
            return Err(bad(n, format!("lists {path} twice")));
        }
    }
    Ok(out)
}

/// One `sha256sum` line: `<64 hex>  <name>` (or ` *<name>`), `\`-prefixed when escaped.
fn parse_sums_line(line: &str) -> Result<(RelPath, [u8; 32]), String> {
    const FORM: &str = "not `<sha256>  <path>`";
    let (escaped, line) = match line.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let hex_part = line.get(..64).ok_or(FORM)?;
    let mut sha = [0u8; 32];
    for (i, b) in sha.iter_mut().enumerate() {
        let pair = &hex_part.as_bytes()[2 * i..2 * i + 2];
        *b = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .filter(|_| pair.iter().all(u8::is_ascii_hexdigit))
            .ok_or("the SHA-256 is not 64 hex digits")?;
    }
    let rest = &line[64..];
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))
        .ok_or(FORM)?;
    let name = if escaped {
        let mut out = String::with_capacity(name.len());
        let mut chars = name.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                _ => return Err("bad escape in the path".into()),
            }
        }
        out
    } else {
        name.to_string()
    };
    if name.is_empty() {
        return Err("empty path".into());
    }
    let path = RelPath::parse(&name).map_err(|why| format!("path {name:?}: {why}"))?;
    Ok((path, sha))
}

/// Lists a copy rooted at `root` without following anything: directories and regular files;
/// anything else is an error naming it. The top-level `SHA256SUMS` is left out.
fn walk(
    root: &Path,
    rel: &RelPath,
    dirs: &mut Vec<RelPath>,
    files: &mut BTreeSet<RelPath>,
) -> Result<(), CopyError> {
    let dir = host(root, rel);
    for e in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
        let e = e.map_err(io_err("listing", &dir))?;
        let name = e.file_name();
        let extra = |what| CopyError::Extra {
            dest: root.to_path_buf(),
            path: e.path().to_string_lossy().into_owned(),
            what,
        };
        let Some(name_str) = name.to_str() else {
            return Err(extra("file with a non-UTF-8 name"));
        };
        let path = rel
            .join(name_str)
            .map_err(|_| extra("entry with an unusable name"))?;
        // From the directory entry itself (d_type): no stat per file.
        let ft = e.file_type().map_err(io_err("checking", &e.path()))?;
        if ft.is_dir() {
            dirs.push(path.clone());
            walk(root, &path, dirs, files)?;
        } else if ft.is_file() {
            if !(rel.is_root() && name_str == SUMS) {
                files.insert(path);
            }
        } else {
            return Err(CopyError::Extra {
                dest: root.to_path_buf(),
                path: path.to_string(),
                what: if ft.is_symlink() {
                    "symlink"
                } else {
                    "special file"
                },
            });
        }
    }
    Ok(())
}

/// Size and checksum of a file of a copy, read through `buf`, symlinks not followed; with
/// `drop_cache`, its pages are dropped from the page cache first (see [`drop_cached`]).
fn hash_file(
    path: &Path,
    buf: &mut [u8],
    drop_cache: bool,
    algo: Algo,
    expect: Option<u64>,
) -> Result<(u64, Sum), CopyError> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("opening", path))?;
    if drop_cache {
        drop_cached(&f, path);
    }
    enum H {
        Sha256(Sha256),
        Xxh3(Box<Xxh3>),
    }
    let mut h = match algo {
        Algo::Sha256 => H::Sha256(Sha256::new()),
        Algo::Xxh3 => H::Xxh3(Box::new(Xxh3::new())),
    };
    let mut n = 0u64;
    loop {
        // Asking for one byte more than the expected rest: a short read that brings the total
        // to exactly the expected size is the end of the file (a regular file's read returns
        // less than asked only at its end), which saves the read that would return 0. A longer
        // file fills the request and is caught by its size.
        let ask = match expect {
            Some(size) if size >= n && size - n < buf.len() as u64 => (size - n) as usize + 1,
            _ => buf.len(),
        };
        let k = match f.read(&mut buf[..ask]) {
            Ok(0) => break,
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err("reading", path)(e)),
        };
        let end = k < ask && expect == Some(n + k as u64);
        match &mut h {
            H::Sha256(h) => h.update(&buf[..k]),
            H::Xxh3(h) => h.update(&buf[..k]),
        }
        n += k as u64;
        if end {
            break;
        }
    }
    let sum = match h {
        H::Sha256(h) => Sum::Sha256(h.finalize().into()),
        H::Xxh3(h) => Sum::Xxh3(h.digest128()),
    };
    Ok((n, sum))
}

fn host(base: &Path, rel: &RelPath) -> PathBuf {
    let mut p = base.to_path_buf();
    p.extend(rel.components());
    p
}

/// Every proper ancestor of `path` but the root.
fn add_parents(path: &RelPath, set: &mut BTreeSet<RelPath>) {
    let mut p = path.parent();
    while !p.is_root() {
        let next = p.parent();
        set.insert(p);
        p = next;
    }
}

fn check_reserved(path: &RelPath) -> Result<(), CopyError> {
    if path.components().next() == Some(SUMS) {
        return Err(CopyError::Reserved {
            path: RelPath::parse(SUMS).expect("a valid name"),
        });
    }
    Ok(())
}

/// A writer that hashes and counts what it passes on, remembering its own write errors so they
/// are not blamed on the drive.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    n: u64,
    failed: Option<io::Error>,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            n: 0,
            failed: None,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.write(buf) {
            Ok(k) => {
                self.hasher.update(&buf[..k]);
                self.n += k as u64;
                Ok(k)
            }
            Err(e) => {
                let copy = io::Error::new(e.kind(), e.to_string());
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = Some(e);
                }
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams one drive file through `w`, checking its length against the listing. `target` names
/// where the bytes go, for write errors.
fn stream<W: Write>(
    fs: &mut dyn DriveFs,
    path: &RelPath,
    listed: u64,
    w: &mut Hashing<W>,
    target: &Path,
) -> Result<(u64, [u8; 32]), CopyError> {
    let result = fs.copy_file(path, w);
    if let Some(e) = w.failed.take() {
        return Err(io_err("writing", target)(e));
    }
    let n = result.map_err(|source| CopyError::Drive {
        path: path.clone(),
        source,
    })?;
    if n != listed || w.n != listed {
        return Err(CopyError::DriveSize {
            path: path.clone(),
            listed,
            read: w.n,
        });
    }
    Ok((w.n, w.hasher.finalize_reset().into()))
}

/// Creates a new file, 0600 from its first instant, never through a symlink.
fn create_file(path: &Path) -> Result<File, CopyError> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err("creating", path))?;
    exact_mode_and_owner(&f, path, FILE_MODE)?;
    Ok(f)
}

/// Creates a new directory, 0700 from its first instant.
fn make_dir(path: &Path) -> Result<(), CopyError> {
    DirBuilder::new()
        .mode(DIR_MODE)
        .create(path)
        .map_err(io_err("creating directory", path))?;
    let d = open_dir(path)?;
    exact_mode_and_owner(&d, path, DIR_MODE)
}

/// The umask can only have narrowed a new entry's mode, and a setgid directory can have given
/// it a group: make both exact, with a system call only when needed (one fstat per file, not
/// three calls: it counts on a 1,000-file drive).
fn exact_mode_and_owner(f: &File, path: &Path, mode: u32) -> Result<(), CopyError> {
    let meta = f.metadata().map_err(io_err("checking", path))?;
    if meta.mode() & 0o7777 != mode {
        f.set_permissions(Permissions::from_mode(mode))
            .map_err(io_err("setting the mode of", path))?;
    }
    own_root(f, path, &meta)
}

/// Root's files are owned by uid 0 already; a setgid directory could still give them a group.
fn own_root(f: &File, path: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
    if meta.uid() == 0 && meta.gid() != 0 {
        std::os::unix::fs::fchown(f, Some(0), Some(0)).map_err(io_err("chown root", path))?;
    }
    Ok(())
}

/// Drops a synced file's pages from the page cache so that reading it reads the disk.
fn drop_cached(f: &File, path: &Path) {
    // SAFETY: posix_fadvise takes plain integers and a descriptor borrowed from `f`, open for
    // the whole call; it reads or writes no memory of ours.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        // Only advice: the re-read is then served from the cache, a weaker but valid check.
        log::debug!(
            "{}: posix_fadvise(DONTNEED): {}",
            path.display(),
            io::Error::from_raw_os_error(rc)
        );
    }
}

/// syncfs(2): writes back and flushes the whole filesystem holding `dir`.
fn syncfs(dir: &File) -> io::Result<()> {
    // SAFETY: syncfs takes a descriptor borrowed from `dir`, open for the whole call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a directory (never through a symlink), for fsync.
fn open_dir(path: &Path) -> Result<File, CopyError> {
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => Ok(f),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
            match fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => Err(CopyError::Symlink {
                    path: path.to_path_buf(),
                }),
                _ => Err(CopyError::NotADirectory {
                    path: path.to_path_buf(),
                }),
            }
        }
        Err(e) => Err(io_err("opening directory", path)(e)),
    }
}

pub(crate) fn fsync_dir(path: &Path) -> Result<(), CopyError> {
    open_dir(path)?.sync_all().map_err(io_err("fsync", path))
}

/// Removes a file, a symlink (not what it points to) or a whole directory tree.
fn remove_any(path: &Path) -> Result<(), CopyError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("checking", path)(e)),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(io_err("removing", path)),
        Ok(_) => fs::remove_file(path).map_err(io_err("removing", path)),
    }
}

/// Makes sure `path` is a real directory, not a symlink: creates it (exactly `mode`) and any
/// missing ancestors (0755, as the umask allows) if needed, each made durable in its parent. An
/// existing directory is left as it is.
pub(crate) fn ensure_real_dir(path: &Path, mode: u32) -> Result<(), CopyError> {
    let mut missing = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur.filter(|p| !p.as_os_str().is_empty()) {
        match fs::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p),
            Err(e) => return Err(io_err("checking", p)(e)),
        }
        cur = p.parent();
    }
    for d in missing.into_iter().rev() {
        let m = if d == path { mode } else { ANCESTOR_MODE };
        match DirBuilder::new().mode(m).create(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("creating directory", d)(e)),
        }
        if d == path {
            open_dir(d)?
                .set_permissions(Permissions::from_mode(mode))
                .map_err(io_err("setting the mode of", d))?;
        }
        match d.parent() {
            Some(p) if !p.as_os_str().is_empty() => fsync_dir(p)?,
            _ => fsync_dir(Path::new("."))?,
        }
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(CopyError::Symlink {
            path: path.to_path_buf(),
        }),
        Ok(m) if !m.is_dir() => Err(CopyError::NotADirectory {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) => Err(io_err("checking", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::dir::DirFs;

    fn drive(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, data) in files {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, data).unwrap();
        }
        t
    }

    fn copy_from(
        dir: &Path,
        dest: &Path,
        exchange: bool,
        hook: &mut dyn FnMut(Step, &Siblings),
    ) -> Manifest {
        let mut d = DirFs::open(dir).unwrap();
        let entries = d.entries().unwrap();
        copy_drive_with(&mut d, &entries, dest, exchange, hook).unwrap()
    }

    /// Replacing a copy, with RENAME_EXCHANGE and with the two-rename fallback: after every step
    /// `dest` is a complete copy (old or new), or, in the fallback's one gap, `<dest>.old` is.
    #[test]
    fn replacing_keeps_a_complete_copy_at_every_step() {
        let a = drive(&[
            ("openstack/latest/meta_data.json", b"{\"uuid\":\"a\"}"),
            ("x", b"old"),
        ]);
        let b = drive(&[
            ("openstack/latest/meta_data.json", b"{\"uuid\":\"b\"}"),
            ("y/z", b"new"),
        ]);
        for exchange in [true, false] {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("seedpart/config-drive");
            let old_m = copy_from(a.path(), &dest, exchange, &mut |_, _| {});
            let mut bd = DirFs::open(b.path()).unwrap();
            let b_entries = bd.entries().unwrap();
            let want_new = hash_drive(&mut bd, &b_entries).unwrap();
            assert!(!same_as(&old_m, &want_new));
            let mut steps = Vec::new();
            let mut hook = |step: Step, s: &Siblings| {
                if step == Step::Written {
                    return;
                }
                steps.push(step);
                match (step, verify_copy(&dest)) {
                    (Step::Exchanged, Ok(m)) => {
                        assert_eq!(m, want_new);
                        assert_eq!(
                            verify_copy(&s.tmp).unwrap(),
                            old_m,
                            "tmp holds the old copy"
                        );
                    }
                    (Step::Installed | Step::OldRemoved, Ok(m)) => assert_eq!(m, want_new),
                    (Step::OldAside, Err(CopyError::NoCopy { .. })) => {
                        assert_eq!(verify_copy(&s.old).unwrap(), old_m);
                        assert_eq!(verify_copy(&s.tmp).unwrap(), want_new);
                    }
                    (step, other) => panic!("{step:?}: {other:?}"),
                }
            };
            let new_m = copy_from(b.path(), &dest, exchange, &mut hook);
            assert_eq!(new_m, want_new);
            if exchange {
                // tmpfs, ext4, xfs and btrfs support it; a filesystem that does not falls back.
                if steps != [Step::Exchanged, Step::OldRemoved] {
                    eprintln!("RENAME_EXCHANGE unsupported here; the fallback was used");
                    assert_eq!(steps, [Step::OldAside, Step::Installed, Step::OldRemoved]);
                }
            } else {
                assert_eq!(steps, [Step::OldAside, Step::Installed, Step::OldRemoved]);
            }
            assert_eq!(verify_copy(&dest).unwrap(), new_m);
            let names: Vec<_> = fs::read_dir(dest.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["config-drive"], "no .tmp or .old left");
        }
    }

    #[test]
    fn first_copy_reports_installed() {
        let a = drive(&[("a", b"1")]);
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("c");
        let mut steps = Vec::new();
        copy_from(a.path(), &dest, true, &mut |s, _| steps.push(s));
        assert_eq!(steps, [Step::Written, Step::Installed]);
    }

    /// A crash between the fallback's two renames leaves only `<dest>.old`: `verify_copy` says
    /// so, and `recover` puts it back; a `.old` beside a complete `dest` is removed.
    #[test]
    fn recover_finishes_an_interrupted_replacement() {
        let a = drive(&[("a", b"1"), ("d/b", b"2")]);
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("c");
        let m = copy_from(a.path(), &dest, true, &mut |_, _| {});
        let s = siblings(&dest).unwrap();
        fs::rename(&dest, &s.old).unwrap();
        let err = verify_copy(&dest).unwrap_err().to_string();
        assert!(
            err.contains("c.old") && err.contains("puts it back"),
            "{err}"
        );
        recover(&dest).unwrap();
        assert_eq!(verify_copy(&dest).unwrap(), m);
        assert!(!s.old.exists());

        copy_from(a.path(), &s.old, true, &mut |_, _| {});
        recover(&dest).unwrap();
        assert!(!s.old.exists());
        assert_eq!(verify_copy(&dest).unwrap(), m);
    }

    /// What the disk returns is checked against what was streamed from the drive: damage between
    /// the write and the re-read (simulated after the fsync) stops the copy before it is put in
    /// place, naming the file; an older copy stays.
    #[test]
    fn read_back_damage_is_caught_before_install() {
        let a = drive(&[
            ("openstack/latest/meta_data.json", b"{}"),
            ("big", &[7u8; 100_000]),
        ]);
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("c");
        let old = copy_from(a.path(), &dest, true, &mut |_, _| {});
        type Damage = fn(&Path);
        let damages: [(Damage, &str); 7] = [
            (|t| fs::write(t.join("big"), [7u8; 99_999]).unwrap(), "big"),
            // Same size, one byte different: only the checksum can tell.
            (
                |t| {
                    let mut b = [7u8; 100_000];
                    b[65_536] = 8;
                    fs::write(t.join("big"), b).unwrap();
                },
                "big",
            ),
            // Longer: the read that asks for one byte more than expected gets it.
            (|t| fs::write(t.join("big"), [7u8; 100_001]).unwrap(), "big"),
            // The manifest is read back like the files.
            (
                |t| {
                    let p = t.join(SUMS);
                    let mut b = fs::read(&p).unwrap();
                    b[0] = if b[0] == b'0' { b'1' } else { b'0' };
                    fs::write(p, b).unwrap();
                },
                SUMS,
            ),
            (
                |t| fs::remove_file(t.join("openstack/latest/meta_data.json")).unwrap(),
                "openstack/latest/meta_data.json",
            ),
            (|t| fs::write(t.join("stray"), b"").unwrap(), "stray"),
            (
                |t| fs::create_dir(t.join("stray_dir")).unwrap(),
                "stray_dir",
            ),
        ];
        for (damage, name) in damages {
            let mut d = DirFs::open(a.path()).unwrap();
            let entries = d.entries().unwrap();
            let err = copy_drive_with(&mut d, &entries, &dest, true, &mut |step, s| {
                if step == Step::Written {
                    damage(&s.tmp);
                }
            })
            .unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(name), "{name}: {msg}");
            assert!(msg.contains("not put in place"), "{msg}");
            assert_eq!(verify_copy(&dest).unwrap(), old);
            assert!(!siblings(&dest).unwrap().tmp.exists());
        }
    }

    /// With enough files for the threaded copy and check (2 MB in 200 files), damage to two of
    /// them is reported as the first in listing order, every time, by the read-back and by
    /// `verify_copy`.
    #[test]
    fn threaded_checks_report_the_first_damaged_file() {
        let names: Vec<String> = (0..200).map(|i| format!("d{}/f{i:03}", i % 7)).collect();
        let files: Vec<(&str, Vec<u8>)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), vec![i as u8; 1 + i * 97]))
            .collect();
        let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        let a = drive(&refs);
        let root = tempfile::tempdir().unwrap();
        let dest = root.path().join("c");
        let m = copy_from(a.path(), &dest, true, &mut |_, _| {});
        assert_eq!(m.files.len(), 200);
        assert!(m.total_bytes() >= THREADED_COPY);
        assert_eq!(verify_copy(&dest).unwrap(), m);
        // Listing order is by path: d0/f000 < d0/f007 < ... < d6/f195.
        for _ in 0..5 {
            let mut d = DirFs::open(a.path()).unwrap();
            let entries = d.entries().unwrap();
            let err = copy_drive_with(&mut d, &entries, &dest, true, &mut |step, s| {
                if step == Step::Written {
                    fs::write(s.tmp.join("d6/f195"), b"x").unwrap();
                    fs::write(s.tmp.join("d3/f003"), b"y").unwrap();
                }
            })
            .unwrap_err();
            assert!(err.to_string().contains("d3/f003"), "{err}");
        }
        for (n, data) in [("d6/f195", b"x"), ("d3/f003", b"y")] {
            fs::write(dest.join(n), data).unwrap();
        }
        for _ in 0..5 {
            let err = verify_copy(&dest).unwrap_err();
            assert!(err.to_string().contains("d3/f003"), "{err}");
        }
    }

    /// A failure of the writer, on its own thread or not, stops the copy with the writer's
    /// error (not the reading side's "stopped"), and nothing is put in place.
    #[test]
    fn a_write_failure_is_reported_as_such() {
        struct Twice(u64);
        impl DriveFs for Twice {
            fn kind(&self) -> crate::fs::DriveFsKind {
                crate::fs::DriveFsKind::Dir
            }
            fn label(&self) -> &str {
                "config-2"
            }
            fn entries(&mut self) -> Result<Vec<Entry>, FsError> {
                // The same file twice: the writer's second create_new fails.
                let e = Entry {
                    path: RelPath::parse("a").unwrap(),
                    kind: EntryKind::File { size: self.0 },
                };
                Ok(vec![e.clone(), e])
            }
            fn copy_file(&mut self, _: &RelPath, out: &mut dyn Write) -> Result<u64, FsError> {
                // As the real readers do: a failed write ends the file with an error.
                out.write_all(&vec![1u8; self.0 as usize])
                    .map_err(|source| FsError::Io {
                        fs: "test",
                        what: "a (writing its copy failed)".into(),
                        source,
                    })?;
                Ok(self.0)
            }
        }
        // Inline (under THREADED_COPY in all) and threaded.
        for size in [300_000, THREADED_COPY] {
            let root = tempfile::tempdir().unwrap();
            let dest = root.path().join("c");
            let mut fs = Twice(size);
            let entries = fs.entries().unwrap();
            let err = copy_drive(&mut fs, &entries, &dest).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("creating "), "{size}: {msg}");
            assert!(msg.contains("c.tmp/a"), "{msg}");
            assert!(!dest.exists());
            assert!(!siblings(&dest).unwrap().tmp.exists());
        }
    }

    #[test]
    fn sums_escape_like_coreutils_and_parse_back() {
        let m = Manifest {
            dirs: vec![],
            files: vec![
                ManifestEntry {
                    path: RelPath::parse("b\nc").unwrap(),
                    size: 1,
                    sha256: [0xab; 32],
                },
                ManifestEntry {
                    path: RelPath::parse("a b/c\rd").unwrap(),
                    size: 1,
                    sha256: [1; 32],
                },
            ],
        };
        let text = m.sums();
        assert_eq!(
            text,
            format!(
                "\\{}  a b/c\\rd\n\\{}  b\\nc\n",
                "01".repeat(32),
                "ab".repeat(32)
            )
        );
        for (line, want) in text.lines().zip([&m.files[1], &m.files[0]]) {
            let (p, sha) = parse_sums_line(line).unwrap();
            assert_eq!((&p, sha), (&want.path, want.sha256));
        }
        let bin = format!("{} *x", "00".repeat(32));
        assert_eq!(parse_sums_line(&bin).unwrap().0.as_str(), "x");
        for bad in [
            "",
            "abc  x",
            &format!("{}  ../x", "00".repeat(32)),
            &format!("{}  /x", "00".repeat(32)),
            &format!("{} x", "00".repeat(32)),
            &format!("{}  ", "00".repeat(32)),
            &format!("+{}  x", "0".repeat(63)),
            &format!("\\{}  a\\qb", "00".repeat(32)),
        ] {
            assert!(parse_sums_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn same_as_ignores_order_only() {
        let e = |p: &str, b: u8| ManifestEntry {
            path: RelPath::parse(p).unwrap(),
            size: 1,
            sha256: [b; 32],
        };
        let a = Manifest {
            dirs: vec![RelPath::parse("d").unwrap()],
            files: vec![e("a", 1), e("d/b", 2)],
        };
        let mut b = a.clone();
        b.files.reverse();
        assert!(same_as(&a, &b));
        b.files[0].sha256[0] ^= 1;
        assert!(!same_as(&a, &b));
        let mut c = a.clone();
        c.dirs.clear();
        assert!(!same_as(&a, &c));
        let mut d = a.clone();
        d.files[0].size = 2;
        assert!(!same_as(&a, &d));
    }
}
