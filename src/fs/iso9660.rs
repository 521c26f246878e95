//! ISO 9660 (ECMA-119) read straight from a partition, with Rock Ridge (SUSP/RRIP) and Joliet
//! names: the config drive as Ironic and Nova write it (`genisoimage -J -r -V config-2`).
//!
//! Which names are used, in order of preference:
//! - Rock Ridge `NM` names from the primary tree, when the root's `.` record carries the SUSP `SP`
//!   entry and Rock Ridge is announced (an `ER` entry naming RRIP, or `RR`/`PX`/`NM` entries);
//! - Joliet names (UCS-2/UTF-16 big-endian) from the supplementary tree, when there is one;
//! - the plain ISO names, with the `;1` version suffix and a lone trailing `.` removed but the
//!   case kept as recorded. Plain `genisoimage` (no `-r`/`-J`) records upper-case 8.3 names
//!   (`OPENSTAC/LATEST/META_DAT.JSO`), so such a drive is listed faithfully but does not carry
//!   the names a config drive needs; that is the producer's fault and is left visible.
//!
//! Everything read from the medium is untrusted: every extent is checked against both the
//! volume size and the device length before it is read, directory reads are capped, file data
//! is streamed in fixed chunks, and the walk is bounded in depth, entries and bytes.
//!
//! Refusals: `FsError::Hostile` for whatever could escape the target, loop, read outside the
//! volume or device, or exhaust memory or time (bad names, symlinks, devices, loops, extents or
//! CE areas out of bounds, records overrunning their sector, caps exceeded); `FsError::Corrupt`
//! for inconsistencies that are merely wrong (both-endian halves that differ, a System Use entry
//! overrunning its area, a PX mode contradicting the directory flag, a bad descriptor) and for
//! layouts a config drive never uses (multi-extent and interleaved files).

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::{DriveFs, DriveFsKind, Entry, EntryKind, FsError, RelPath};

const FS: &str = "iso9660";
/// ISO 9660 logical sectors are 2048 bytes whatever the disk's sector size.
const SECTOR: u64 = 2048;
const SECTOR_USIZE: usize = 2048;
/// The volume descriptor set starts at logical sector 16.
const VD_START: u64 = 16 * SECTOR;
const PVD_MAGIC: &[u8; 7] = b"\x01CD001\x01";
/// How many descriptors after the PVD are looked at for a Joliet SVD before giving up.
const MAX_DESCRIPTORS: u64 = 64;
/// Largest directory extent read into memory (a config drive's are a few KiB).
const MAX_DIR_BYTES: u32 = 16 << 20;
/// Total directory records accepted over the whole walk.
const MAX_ENTRIES: usize = 100_000;
/// Deepest directory nesting accepted (a config drive needs 3 levels).
const MAX_DEPTH: usize = 32;
/// SUSP continuation areas followed for one record, and over the whole walk: a CE chain that
/// points back at itself must not spin forever.
const MAX_CE_PER_RECORD: usize = 32;
const MAX_CE_TOTAL: usize = 100_000;
/// Longest Rock Ridge name assembled from `NM` pieces (RelPath refuses over 255 anyway).
const MAX_NM_BYTES: usize = 1024;
const COPY_CHUNK: usize = 64 << 10;

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;

const FLAG_DIR: u8 = 0x02;
const FLAG_ASSOCIATED: u8 = 0x04;
const FLAG_MULTI_EXTENT: u8 = 0x80;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Names {
    /// Rock Ridge on the primary tree; `skip` is the SP entry's LEN_SKP.
    RockRidge {
        skip: usize,
    },
    Joliet,
    Plain,
}

/// Where a file's or directory's bytes are: `block` is the extent's first logical block, `ear`
/// the extended attribute record that precedes the data, in blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Extent {
    block: u32,
    ear: u8,
    size: u32,
}

impl Extent {
    fn start(self) -> u64 {
        (u64::from(self.block) + u64::from(self.ear)) * SECTOR
    }

    /// Cannot overflow: (2^32 + 2^8) * 2^11 + 2^32 is far below 2^64.
    fn end(self) -> u64 {
        self.start() + u64::from(self.size)
    }
}

#[derive(Debug)]
enum Node {
    Dir,
    File(Extent),
}

/// The result of one walk, kept so that `copy_file` finds files without reading directories
/// again.
struct Tree {
    entries: Vec<Entry>,
    nodes: HashMap<RelPath, Node>,
}

/// Bookkeeping of one walk, against loops and resource exhaustion.
#[derive(Default)]
struct Walk {
    entries: Vec<Entry>,
    nodes: HashMap<RelPath, Node>,
    visited: HashSet<u64>,
    records: usize,
    dir_bytes: u64,
}

enum ChildKind {
    Dir(Extent),
    File(Extent),
}

struct Child {
    path: RelPath,
    kind: ChildKind,
}

/// What the System Use entries of one directory record say.
#[derive(Default)]
struct Susp {
    sp_skip: Option<usize>,
    rrip_er: bool,
    rr_seen: bool,
    has_nm: bool,
    nm: Vec<u8>,
    nm_dot: Option<&'static str>,
    nm_too_long: bool,
    mode: Option<u32>,
    symlink: bool,
    device: bool,
    child_link: Option<u32>,
    relocated: bool,
    zisofs: bool,
}

/// A SUSP `CE` entry: where the System Use entries of a record go on.
#[derive(Clone, Copy)]
struct Continuation {
    block: u32,
    offset: u32,
    length: u32,
}

/// An ISO 9660 volume opened read-only on a partition window (or any `Read + Seek`).
pub struct Iso9660<D> {
    dev: D,
    dev_len: u64,
    vol_blocks: u32,
    label: String,
    names: Names,
    root: Extent,
    tree: Option<Tree>,
    ce_reads: usize,
    /// `copy_file`'s buffer, kept: a fresh zeroed one per file cost more than the copying on a
    /// drive of many small files.
    copy_buf: Vec<u8>,
}

fn corrupt(detail: String) -> FsError {
    FsError::Corrupt { fs: FS, detail }
}

fn hostile(path: impl Into<String>, reason: String) -> FsError {
    FsError::Hostile {
        fs: FS,
        path: path.into(),
        reason,
    }
}

fn io_err(what: String, source: io::Error) -> FsError {
    FsError::Io {
        fs: FS,
        what,
        source,
    }
}

/// A both-endian 32-bit field (little-endian half first); `None` when the halves differ, which
/// no correct writer produces.
fn both32(b: &[u8], off: usize) -> Option<u32> {
    let f = b.get(off..off.checked_add(8)?)?;
    let le = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
    let be = u32::from_be_bytes([f[4], f[5], f[6], f[7]]);
    (le == be).then_some(le)
}

fn both16(b: &[u8], off: usize) -> Option<u16> {
    let f = b.get(off..off.checked_add(4)?)?;
    let le = u16::from_le_bytes([f[0], f[1]]);
    let be = u16::from_be_bytes([f[2], f[3]]);
    (le == be).then_some(le)
}

/// A child's path for an error message, before (or without) validation of its name.
fn child_label(dir: &RelPath, name: &str) -> String {
    if dir.is_root() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn label_from(field: &[u8]) -> String {
    let end = field
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// Plain ISO identifiers are ASCII by the standard; anything else is taken as UTF-8 when it is,
/// else as Latin-1, so that a name is never lost to decoding.
fn decode_narrow(id: &[u8]) -> String {
    match std::str::from_utf8(id) {
        Ok(s) => s.to_string(),
        Err(_) => id.iter().map(|&b| char::from(b)).collect(),
    }
}

/// Removes a `;<digits>` version suffix; true when there was one.
fn strip_version(s: &mut String) -> bool {
    match s.rfind(';') {
        Some(i) if s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            s.truncate(i);
            true
        }
        _ => false,
    }
}

/// `META_DAT.JSO;1` -> `META_DAT.JSO`, `USER_DAT.;1` -> `USER_DAT` (the dot only separates an
/// empty extension). Case is kept.
fn iso_name(id: &[u8]) -> String {
    let mut s = decode_narrow(id);
    strip_version(&mut s);
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s
}

/// Joliet names are UCS-2 big-endian (UTF-16 in practice). Some writers add `;1` like plain
/// ISO names; genisoimage and xorriso do not.
fn joliet_name(id: &[u8]) -> Result<String, String> {
    if !id.len().is_multiple_of(2) {
        return Err(format!(
            "Joliet name has an odd length ({} bytes)",
            id.len()
        ));
    }
    let units = id.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]));
    let mut s = char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|e| format!("Joliet name is not valid UTF-16 ({e})"))?;
    if strip_version(&mut s) && s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    Ok(s)
}

/// An `ER` entry naming Rock Ridge (1.09 `RRIP_1991A`, 1.10 `IEEE_P1282`, 1.12 `IEEE_1282`).
fn is_rrip_er(body: &[u8]) -> bool {
    let Some(&id_len) = body.first() else {
        return false;
    };
    body.get(4..4 + usize::from(id_len))
        .is_some_and(|id| id.starts_with(b"RRIP_") || id == b"IEEE_P1282" || id == b"IEEE_1282")
}

/// Scans one System Use area (or continuation area); a CE entry found is left in `next`.
fn scan_susp(
    owner: &str,
    area: &[u8],
    out: &mut Susp,
    next: &mut Option<Continuation>,
) -> Result<(), FsError> {
    let mut p = 0usize;
    while area.len().saturating_sub(p) >= 4 {
        let e = &area[p..];
        let sig = [e[0], e[1]];
        let len = usize::from(e[2]);
        // Writers pad the System Use field with zero bytes.
        if sig == [0, 0] {
            break;
        }
        if len < 4 || len > e.len() {
            return Err(corrupt(format!(
                "{owner:?}: System Use entry {:?} at byte {p} of its area claims {len} bytes, \
                 overrunning the {}-byte area",
                String::from_utf8_lossy(&sig),
                area.len()
            )));
        }
        let body = &e[4..len];
        let bad_field = |what: &str| {
            corrupt(format!(
                "{owner:?}: System Use entry {:?} has a bad {what}",
                String::from_utf8_lossy(&sig)
            ))
        };
        match &sig {
            b"ST" => break,
            b"CE" => {
                let block = both32(body, 0).ok_or_else(|| bad_field("continuation block"))?;
                let offset = both32(body, 8).ok_or_else(|| bad_field("continuation offset"))?;
                let length = both32(body, 16).ok_or_else(|| bad_field("continuation length"))?;
                *next = Some(Continuation {
                    block,
                    offset,
                    length,
                });
            }
            b"SP" if body.len() >= 3 && body[0] == 0xBE && body[1] == 0xEF => {
                out.sp_skip = Some(usize::from(body[2]));
            }
            b"ER" if is_rrip_er(body) => out.rrip_er = true,
            b"RR" => out.rr_seen = true,
            b"PX" => {
                out.rr_seen = true;
                out.mode = Some(both32(body, 0).ok_or_else(|| bad_field("file mode"))?);
            }
            b"NM" => {
                out.rr_seen = true;
                out.has_nm = true;
                let flags = body.first().copied().unwrap_or(0);
                if flags & 0x02 != 0 {
                    out.nm_dot = Some(".");
                } else if flags & 0x04 != 0 {
                    out.nm_dot = Some("..");
                } else if let Some(part) = body.get(1..) {
                    if out.nm.len() + part.len() > MAX_NM_BYTES {
                        out.nm_too_long = true;
                    } else {
                        out.nm.extend_from_slice(part);
                    }
                }
            }
            b"SL" => out.symlink = true,
            b"PN" => out.device = true,
            b"CL" => {
                out.child_link = Some(both32(body, 0).ok_or_else(|| bad_field("child link"))?);
            }
            b"RE" => out.relocated = true,
            b"ZF" => out.zisofs = true,
            _ => {}
        }
        p += len;
    }
    Ok(())
}

impl<D: Read + Seek> Iso9660<D> {
    /// Opens the volume: the PVD at byte 32768, a Joliet SVD if any, and Rock Ridge detection on
    /// the root's `.` record. Nothing else is read until `entries` or `copy_file`.
    pub fn open(mut dev: D) -> Result<Self, FsError> {
        let dev_len = dev
            .seek(SeekFrom::End(0))
            .map_err(|e| io_err("the device length".into(), e))?;
        if dev_len < VD_START + SECTOR {
            return Err(corrupt(format!(
                "device is {dev_len} bytes, too short to hold the primary volume descriptor at \
                 byte {VD_START}"
            )));
        }
        let pvd = read_exact_at(&mut dev, VD_START, SECTOR_USIZE, || {
            "the primary volume descriptor".into()
        })?;
        if pvd[..7] != PVD_MAGIC[..] {
            return Err(corrupt(format!(
                "no primary volume descriptor at byte {VD_START} (found {:?})",
                String::from_utf8_lossy(&pvd[..7])
            )));
        }
        let vol_blocks = both32(&pvd, 80).ok_or_else(|| {
            corrupt(
                "primary volume descriptor: the two halves of the volume space size differ".into(),
            )
        })?;
        check_block_size(&pvd, "primary")?;
        let label = label_from(&pvd[40..72]);
        let root = root_record(&pvd, "primary")?;

        let mut joliet_root = None;
        for i in 1..MAX_DESCRIPTORS {
            let at = VD_START + i * SECTOR;
            if at + SECTOR > dev_len {
                break;
            }
            let vd = read_exact_at(&mut dev, at, SECTOR_USIZE, || {
                format!("volume descriptor {} at byte {at}", i + 16)
            })?;
            if &vd[1..6] != b"CD001" || vd[0] == 255 {
                break;
            }
            let joliet = vd[0] == 2
                && vd[88] == b'%'
                && vd[89] == b'/'
                && matches!(vd[90], b'@' | b'C' | b'E');
            if joliet && joliet_root.is_none() {
                check_block_size(&vd, "Joliet supplementary")?;
                joliet_root = Some(root_record(&vd, "Joliet supplementary")?);
            }
        }

        let mut fs = Iso9660 {
            dev,
            dev_len,
            vol_blocks,
            label,
            names: Names::Plain,
            root,
            tree: None,
            ce_reads: 0,
            copy_buf: Vec::new(),
        };
        if let Some(skip) = fs.rock_ridge_skip()? {
            fs.names = Names::RockRidge { skip };
        } else if let Some(j) = joliet_root {
            fs.names = Names::Joliet;
            fs.root = j;
        }
        log::debug!(
            "iso9660: volume {:?}, {} blocks, names from {:?}",
            fs.label,
            fs.vol_blocks,
            fs.names
        );
        Ok(fs)
    }

    /// Rock Ridge is in use when the root's `.` record starts its System Use field with `SP`
    /// and Rock Ridge itself is announced; returns the SP's LEN_SKP.
    fn rock_ridge_skip(&mut self) -> Result<Option<usize>, FsError> {
        let root = self.root;
        self.check_extent("directory", "/", root)?;
        let len = root.size.min(SECTOR as u32) as usize;
        let first = self.read_at(root.start(), len, || "the root directory".into())?;
        let Some(&rec_len) = first.first() else {
            return Ok(None);
        };
        let rec_len = usize::from(rec_len);
        if rec_len < 34 || rec_len > first.len() || first[32] != 1 || first[33] != 0 {
            return Err(hostile(
                "/",
                "the root directory does not start with a valid \".\" record".into(),
            ));
        }
        let area = &first[34..rec_len];
        if !area.starts_with(b"SP") {
            return Ok(None);
        }
        let mut susp = Susp::default();
        self.read_susp("/", area, &mut susp)?;
        match susp.sp_skip {
            Some(skip) if susp.rrip_er || susp.rr_seen => Ok(Some(skip)),
            _ => Ok(None),
        }
    }

    /// Reads a System Use area and the continuation areas it chains to.
    fn read_susp(&mut self, owner: &str, area: &[u8], out: &mut Susp) -> Result<(), FsError> {
        let mut next = None;
        scan_susp(owner, area, out, &mut next)?;
        let mut hops = 0;
        while let Some(ce) = next.take() {
            hops += 1;
            self.ce_reads += 1;
            if hops > MAX_CE_PER_RECORD || self.ce_reads > MAX_CE_TOTAL {
                return Err(hostile(
                    owner,
                    format!(
                        "too many System Use continuation areas (a CE loop?): {hops} for this \
                         entry, {} in all",
                        self.ce_reads
                    ),
                ));
            }
            // SUSP keeps a continuation area inside one logical block.
            if u64::from(ce.offset) + u64::from(ce.length) > SECTOR {
                return Err(hostile(
                    owner,
                    format!(
                        "System Use continuation area at block {} (offset {}, {} bytes) crosses \
                         its block",
                        ce.block, ce.offset, ce.length
                    ),
                ));
            }
            let start = u64::from(ce.block) * SECTOR + u64::from(ce.offset);
            let area_ext = Extent {
                block: ce.block,
                ear: 0,
                size: ce.length,
            };
            self.check_range(
                "System Use continuation area",
                owner,
                area_ext,
                start + u64::from(ce.length),
            )?;
            let data = self.read_at(start, ce.length as usize, || {
                format!(
                    "the System Use continuation area of {owner:?} at block {}",
                    ce.block
                )
            })?;
            scan_susp(owner, &data, out, &mut next)?;
        }
        Ok(())
    }

    fn check_extent(&self, what: &str, path: &str, ext: Extent) -> Result<(), FsError> {
        self.check_range(what, path, ext, ext.end())
    }

    /// Refuses an extent (or area) ending beyond the volume or the device: a producer never
    /// writes one, and following it would read another partition's bytes or garbage.
    fn check_range(&self, what: &str, path: &str, ext: Extent, end: u64) -> Result<(), FsError> {
        if end > u64::from(self.vol_blocks) * SECTOR {
            return Err(hostile(
                path,
                format!(
                    "{what} extent at block {} ({} bytes) ends beyond the volume ({} blocks)",
                    ext.block, ext.size, self.vol_blocks
                ),
            ));
        }
        if end > self.dev_len {
            return Err(hostile(
                path,
                format!(
                    "{what} extent at block {} ({} bytes) ends beyond the end of the device \
                     ({} bytes): the image is truncated or the partition too small",
                    ext.block, ext.size, self.dev_len
                ),
            ));
        }
        Ok(())
    }

    fn read_at(
        &mut self,
        at: u64,
        len: usize,
        what: impl FnOnce() -> String,
    ) -> Result<Vec<u8>, FsError> {
        read_exact_at(&mut self.dev, at, len, what)
    }

    fn tree(&mut self) -> Result<&Tree, FsError> {
        let tree = match self.tree.take() {
            Some(t) => t,
            None => self.walk()?,
        };
        Ok(self.tree.insert(tree))
    }

    fn walk(&mut self) -> Result<Tree, FsError> {
        let mut w = Walk::default();
        self.ce_reads = 0;
        let root = self.root;
        self.walk_dir(&RelPath::root(), root, 0, &mut w)?;
        Ok(Tree {
            entries: w.entries,
            nodes: w.nodes,
        })
    }

    fn walk_dir(
        &mut self,
        path: &RelPath,
        ext: Extent,
        depth: usize,
        w: &mut Walk,
    ) -> Result<(), FsError> {
        let label = path.to_string();
        if depth > MAX_DEPTH {
            return Err(hostile(
                label,
                format!("directories nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        if !w.visited.insert(ext.start()) {
            return Err(hostile(
                label,
                format!(
                    "directory extent at block {} is already part of the tree (a directory loop)",
                    ext.block
                ),
            ));
        }
        if ext.size > MAX_DIR_BYTES {
            return Err(hostile(
                label,
                format!(
                    "directory extent at block {} is {} bytes, over the {MAX_DIR_BYTES}-byte limit",
                    ext.block, ext.size
                ),
            ));
        }
        self.check_extent("directory", &label, ext)?;
        w.dir_bytes += u64::from(ext.size);
        if w.dir_bytes > u64::from(self.vol_blocks) * SECTOR {
            return Err(hostile(
                label,
                "directories add up to more bytes than the volume holds (overlapping directory \
                 extents)"
                    .into(),
            ));
        }
        let buf = self.read_at(ext.start(), ext.size as usize, || {
            format!("directory {label:?}")
        })?;
        let mut children = self.parse_dir(path, ext, &buf, w)?;
        drop(buf);

        children.sort_by(|a, b| a.path.cmp(&b.path));
        if let Some(dup) = children.windows(2).find(|p| p[0].path == p[1].path) {
            return Err(hostile(
                dup[0].path.to_string(),
                "two entries of the directory have this name (after name translation)".into(),
            ));
        }
        for child in children {
            match child.kind {
                ChildKind::Dir(sub) => {
                    w.entries.push(Entry {
                        path: child.path.clone(),
                        kind: EntryKind::Dir,
                    });
                    w.nodes.insert(child.path.clone(), Node::Dir);
                    self.walk_dir(&child.path, sub, depth + 1, w)?;
                }
                ChildKind::File(f) => {
                    w.entries.push(Entry {
                        path: child.path.clone(),
                        kind: EntryKind::File {
                            size: u64::from(f.size),
                        },
                    });
                    w.nodes.insert(child.path, Node::File(f));
                }
            }
        }
        Ok(())
    }

    fn parse_dir(
        &mut self,
        dir: &RelPath,
        ext: Extent,
        buf: &[u8],
        w: &mut Walk,
    ) -> Result<Vec<Child>, FsError> {
        let mut children = Vec::new();
        let mut pos = 0usize;
        while pos < buf.len() {
            let sector_end = (pos / SECTOR_USIZE + 1) * SECTOR_USIZE;
            let len = usize::from(buf[pos]);
            // A zero length byte ends the records of this sector: they never cross one.
            if len == 0 {
                pos = sector_end;
                continue;
            }
            if len < 34 || pos + len > sector_end.min(buf.len()) {
                return Err(hostile(
                    dir.to_string(),
                    format!(
                        "directory record at byte {pos} of the directory extent (block {}) claims \
                         {len} bytes, {}",
                        ext.block,
                        if len < 34 {
                            "shorter than a record can be"
                        } else {
                            "overrunning its sector"
                        }
                    ),
                ));
            }
            let rec = &buf[pos..pos + len];
            pos += len;
            w.records += 1;
            if w.records > MAX_ENTRIES {
                return Err(hostile(
                    dir.to_string(),
                    format!("the volume has more than {MAX_ENTRIES} directory records"),
                ));
            }
            if let Some(child) = self.parse_record(dir, ext, rec)? {
                children.push(child);
            }
        }
        Ok(children)
    }

    fn parse_record(
        &mut self,
        dir: &RelPath,
        dir_ext: Extent,
        rec: &[u8],
    ) -> Result<Option<Child>, FsError> {
        let len = rec.len();
        let id_len = usize::from(rec[32]);
        if id_len == 0 || 33 + id_len > len {
            return Err(hostile(
                dir.to_string(),
                format!(
                    "a directory record in the extent at block {} has a {id_len}-byte name that \
                     does not fit its {len}-byte record",
                    dir_ext.block
                ),
            ));
        }
        let id = &rec[33..33 + id_len];
        if id == [0] || id == [1] {
            return Ok(None);
        }
        let flags = rec[25];
        let names = self.names;
        let raw_label = || {
            child_label(
                dir,
                &match names {
                    Names::Joliet => joliet_name(id).unwrap_or_else(|_| decode_narrow(id)),
                    _ => iso_name(id),
                },
            )
        };
        if flags & FLAG_ASSOCIATED != 0 {
            log::debug!("iso9660: skipping associated file {:?}", raw_label());
            return Ok(None);
        }

        let is_dir = flags & FLAG_DIR != 0;
        let mut susp = Susp::default();
        let name = match names {
            Names::RockRidge { skip } => {
                // The pad byte follows an even-length identifier.
                let su_start = 33 + id_len + usize::from(id_len.is_multiple_of(2)) + skip;
                let area = rec.get(su_start..).unwrap_or(&[]);
                self.read_susp(&raw_label(), area, &mut susp)?;
                if susp.relocated {
                    // A directory moved under rr_moved: it is listed where its CL entry is.
                    return Ok(None);
                }
                if let Some(dot) = susp.nm_dot {
                    return Err(hostile(
                        child_label(dir, dot),
                        format!("Rock Ridge name of {:?} is {dot:?}", raw_label()),
                    ));
                }
                if susp.nm_too_long {
                    return Err(hostile(
                        raw_label(),
                        format!("Rock Ridge name is longer than {MAX_NM_BYTES} bytes"),
                    ));
                }
                if susp.has_nm {
                    String::from_utf8(std::mem::take(&mut susp.nm)).map_err(|e| {
                        hostile(
                            child_label(dir, &String::from_utf8_lossy(e.as_bytes())),
                            "Rock Ridge name is not valid UTF-8".into(),
                        )
                    })?
                } else {
                    iso_name(id)
                }
            }
            Names::Joliet => {
                joliet_name(id).map_err(|why| corrupt(format!("{:?}: {why}", raw_label())))?
            }
            Names::Plain => iso_name(id),
        };
        let path = dir
            .join(&name)
            .map_err(|why| hostile(child_label(dir, &name), why))?;
        let label = path.to_string();

        if susp.symlink {
            return Err(hostile(label, "symbolic link (Rock Ridge SL entry)".into()));
        }
        if susp.device {
            return Err(hostile(label, "device file (Rock Ridge PN entry)".into()));
        }
        if susp.zisofs {
            return Err(hostile(
                label,
                "zisofs-compressed file (Rock Ridge ZF entry), which is not supported".into(),
            ));
        }
        if let Some(block) = susp.child_link {
            let dot = self.relocated_dir(&label, block)?;
            return Ok(Some(Child {
                path,
                kind: ChildKind::Dir(dot),
            }));
        }
        if let Some(mode) = susp.mode {
            let kind = match mode & S_IFMT {
                S_IFDIR => Some(true),
                S_IFREG => Some(false),
                S_IFLNK => return Err(hostile(label, "symbolic link (Rock Ridge PX mode)".into())),
                S_IFCHR | S_IFBLK => {
                    return Err(hostile(label, "device file (Rock Ridge PX mode)".into()));
                }
                S_IFIFO | S_IFSOCK => {
                    return Err(hostile(label, "FIFO or socket (Rock Ridge PX mode)".into()));
                }
                0 => None,
                other => {
                    return Err(corrupt(format!(
                        "{label:?}: unknown file type {other:o} in Rock Ridge mode"
                    )));
                }
            };
            if kind.is_some_and(|d| d != is_dir) {
                return Err(corrupt(format!(
                    "{label:?}: Rock Ridge mode {mode:o} disagrees with the directory flag of the record"
                )));
            }
        }
        if flags & FLAG_MULTI_EXTENT != 0 {
            return Err(corrupt(format!(
                "{label:?} is recorded in several extents (multi-extent file), which a config \
                 drive never needs and seedpart does not read"
            )));
        }
        if rec[26] != 0 || rec[27] != 0 {
            return Err(corrupt(format!(
                "{label:?} is recorded in interleaved mode (unit size {}, gap {}), which seedpart \
                 does not read",
                rec[26], rec[27]
            )));
        }
        let block = both32(rec, 2).ok_or_else(|| {
            corrupt(format!(
                "{label:?}: the two halves of the extent location differ"
            ))
        })?;
        let size = both32(rec, 10).ok_or_else(|| {
            corrupt(format!(
                "{label:?}: the two halves of the data length differ"
            ))
        })?;
        let ext = Extent {
            block,
            ear: rec[1],
            size,
        };
        if is_dir {
            return Ok(Some(Child {
                path,
                kind: ChildKind::Dir(ext),
            }));
        }
        // An empty file's location is meaningless (writers put anything there).
        if size > 0 {
            self.check_extent("file", &label, ext)?;
        }
        Ok(Some(Child {
            path,
            kind: ChildKind::File(ext),
        }))
    }

    /// The extent of a relocated directory, from the `.` record at the start of its block.
    fn relocated_dir(&mut self, label: &str, block: u32) -> Result<Extent, FsError> {
        let first = Extent {
            block,
            ear: 0,
            size: SECTOR as u32,
        };
        self.check_extent("relocated directory", label, first)?;
        let sec = self.read_at(first.start(), SECTOR_USIZE, || {
            format!("the relocated directory {label:?} at block {block}")
        })?;
        let len = usize::from(sec[0]);
        if len < 34 || sec[32] != 1 || sec[33] != 0 {
            return Err(hostile(
                label,
                format!("Rock Ridge child link points at block {block}, which holds no directory"),
            ));
        }
        let size = both32(&sec, 10).ok_or_else(|| {
            corrupt(format!(
                "{label:?}: the two halves of the directory length differ"
            ))
        })?;
        Ok(Extent {
            block,
            ear: sec[1],
            size,
        })
    }
}

fn check_block_size(vd: &[u8], which: &str) -> Result<(), FsError> {
    match both16(vd, 128) {
        Some(2048) => Ok(()),
        Some(n) => Err(corrupt(format!(
            "{which} volume descriptor: logical block size {n}, only 2048 is supported"
        ))),
        None => Err(corrupt(format!(
            "{which} volume descriptor: the two halves of the logical block size differ"
        ))),
    }
}

/// The root directory record embedded in a volume descriptor.
fn root_record(vd: &[u8], which: &str) -> Result<Extent, FsError> {
    let rec = &vd[156..190];
    let bad = |what: &str| {
        corrupt(format!(
            "{which} volume descriptor: root directory record {what}"
        ))
    };
    if rec[0] != 34 || rec[32] != 1 || rec[25] & FLAG_DIR == 0 {
        return Err(bad("is malformed"));
    }
    let block = both32(rec, 2).ok_or_else(|| bad("has differing halves of its location"))?;
    let size = both32(rec, 10).ok_or_else(|| bad("has differing halves of its length"))?;
    if size == 0 {
        return Err(bad("has length 0"));
    }
    Ok(Extent {
        block,
        ear: rec[1],
        size,
    })
}

fn read_exact_at<D: Read + Seek>(
    dev: &mut D,
    at: u64,
    len: usize,
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, FsError> {
    let mut buf = vec![0u8; len];
    dev.seek(SeekFrom::Start(at))
        .and_then(|_| dev.read_exact(&mut buf))
        .map_err(|e| io_err(what(), e))?;
    Ok(buf)
}

impl<D: Read + Seek> DriveFs for Iso9660<D> {
    fn kind(&self) -> DriveFsKind {
        DriveFsKind::Iso9660
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn entries(&mut self) -> Result<Vec<Entry>, FsError> {
        Ok(self.tree()?.entries.clone())
    }

    fn copy_file(&mut self, path: &RelPath, out: &mut dyn Write) -> Result<u64, FsError> {
        let ext = match self.tree()?.nodes.get(path) {
            Some(Node::File(ext)) => *ext,
            Some(Node::Dir) => {
                return Err(hostile(
                    path.to_string(),
                    "is a directory, not a regular file".into(),
                ));
            }
            None if path.is_root() => {
                return Err(hostile(
                    "/",
                    "is the root directory, not a regular file".into(),
                ));
            }
            None => {
                return Err(FsError::NotFound {
                    fs: FS,
                    path: path.to_string(),
                });
            }
        };
        let total = u64::from(ext.size);
        if total == 0 {
            return Ok(0);
        }
        let mut buf = std::mem::take(&mut self.copy_buf);
        buf.resize(COPY_CHUNK, 0);
        let result = self.copy_extent(path, ext, &mut buf, out);
        self.copy_buf = buf;
        result
    }
}

impl<D: Read + Seek> Iso9660<D> {
    fn copy_extent(
        &mut self,
        path: &RelPath,
        ext: Extent,
        buf: &mut [u8],
        out: &mut dyn Write,
    ) -> Result<u64, FsError> {
        let total = u64::from(ext.size);
        let what = || {
            format!(
                "file {:?} (extent at block {}, {total} bytes)",
                path.as_str(),
                ext.block
            )
        };
        self.dev
            .seek(SeekFrom::Start(ext.start()))
            .map_err(|e| io_err(what(), e))?;
        let mut done = 0u64;
        while done < total {
            let want = (total - done).min(buf.len() as u64) as usize;
            let n = match self.dev.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(hostile(
                        path.to_string(),
                        format!(
                            "the device ended after {done} of the file's {total} bytes (extent at \
                             block {})",
                            ext.block
                        ),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(what(), e)),
            };
            out.write_all(&buf[..n]).map_err(|e| {
                io_err(
                    format!("file {:?}: writing its copy failed", path.as_str()),
                    e,
                )
            })?;
            done += n as u64;
        }
        Ok(done)
    }
}

/// Cheap probe for discovery: `Ok(Some(label))` when the bytes at 32768 are an ISO 9660 primary
/// volume descriptor, `Ok(None)` when they are not (or the device is too short), `Err` only on
/// an I/O error.
pub fn probe_label<D: Read + Seek>(dev: &mut D) -> io::Result<Option<String>> {
    dev.seek(SeekFrom::Start(VD_START))?;
    let mut buf = [0u8; 72];
    let mut got = 0;
    while got < buf.len() {
        match dev.read(&mut buf[got..]) {
            Ok(0) => return Ok(None),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if buf[..7] != PVD_MAGIC[..] {
        return Ok(None);
    }
    Ok(Some(label_from(&buf[40..72])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const B: usize = 2048;
    const ROOT: u32 = 18;
    const BLOCKS: u32 = 40;

    fn put32(buf: &mut [u8], off: usize, v: u32) {
        buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
        buf[off + 4..off + 8].copy_from_slice(&v.to_be_bytes());
    }

    fn put16(buf: &mut [u8], off: usize, v: u16) {
        buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
        buf[off + 2..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn both(v: u32) -> Vec<u8> {
        let mut b = vec![0; 8];
        put32(&mut b, 0, v);
        b
    }

    /// A directory record with identifier `id` and System Use bytes `su`.
    fn rec(id: &[u8], block: u32, size: u32, flags: u8, su: &[u8]) -> Vec<u8> {
        let pad = usize::from(id.len().is_multiple_of(2));
        let mut len = 33 + id.len() + pad + su.len();
        len += len % 2;
        let mut r = vec![0u8; len];
        r[0] = len as u8;
        put32(&mut r, 2, block);
        put32(&mut r, 10, size);
        r[25] = flags;
        put16(&mut r, 28, 1);
        r[32] = id.len() as u8;
        r[33..33 + id.len()].copy_from_slice(id);
        r[33 + id.len() + pad..][..su.len()].copy_from_slice(su);
        r
    }

    fn file(id: &str, block: u32, size: u32, su: &[u8]) -> Vec<u8> {
        rec(id.as_bytes(), block, size, 0, su)
    }

    fn dir(id: &str, block: u32, su: &[u8]) -> Vec<u8> {
        rec(id.as_bytes(), block, B as u32, FLAG_DIR, su)
    }

    fn su(sig: &[u8; 2], body: &[u8]) -> Vec<u8> {
        let mut e = vec![sig[0], sig[1], (4 + body.len()) as u8, 1];
        e.extend_from_slice(body);
        e
    }

    fn nm(name: &str) -> Vec<u8> {
        let mut body = vec![0];
        body.extend_from_slice(name.as_bytes());
        su(b"NM", &body)
    }

    fn px(mode: u32) -> Vec<u8> {
        let body: Vec<u8> = [both(mode), both(1), both(0), both(0)].concat();
        su(b"PX", &body)
    }

    fn ce(block: u32, offset: u32, len: u32) -> Vec<u8> {
        su(b"CE", &[both(block), both(offset), both(len)].concat())
    }

    fn rr_file(name: &str, block: u32, size: u32) -> Vec<u8> {
        file(
            &format!("{};1", name.to_uppercase()),
            block,
            size,
            &[nm(name), px(S_IFREG | 0o644)].concat(),
        )
    }

    fn rr_dir(name: &str, block: u32) -> Vec<u8> {
        dir(
            &name.to_uppercase(),
            block,
            &[nm(name), px(S_IFDIR | 0o755)].concat(),
        )
    }

    /// A small volume: PVD at 16, terminator at 17, root directory at block 18.
    struct Img {
        d: Vec<u8>,
    }

    impl Img {
        fn new() -> Img {
            let mut d = vec![0u8; BLOCKS as usize * B];
            let p = &mut d[16 * B..17 * B];
            p[..7].copy_from_slice(PVD_MAGIC);
            p[40..72].fill(b' ');
            p[40..48].copy_from_slice(b"config-2");
            put32(p, 80, BLOCKS);
            put16(p, 128, 2048);
            let root = rec(&[0], ROOT, B as u32, FLAG_DIR, &[]);
            p[156..190].copy_from_slice(&root);
            d[17 * B..17 * B + 7].copy_from_slice(b"\xffCD001\x01");
            Img { d }
        }

        /// Writes a directory (`.`, `..`, then `kids`) into `block`; with `rr`, a root's `.`
        /// announces Rock Ridge.
        fn dir(&mut self, block: u32, parent: u32, rr: bool, kids: &[Vec<u8>]) {
            let dot_su = match (rr, block == ROOT) {
                (true, true) => [
                    su(b"SP", &[0xBE, 0xEF, 0]),
                    px(S_IFDIR | 0o755),
                    su(b"ER", &[[10, 0, 0, 1].as_slice(), b"IEEE_P1282"].concat()),
                ]
                .concat(),
                (true, false) => px(S_IFDIR | 0o755),
                _ => Vec::new(),
            };
            let mut recs = vec![
                rec(&[0], block, B as u32, FLAG_DIR, &dot_su),
                rec(&[1], parent, B as u32, FLAG_DIR, &[]),
            ];
            recs.extend_from_slice(kids);
            let at = block as usize * B;
            self.d[at..at + B].fill(0);
            let mut pos = at;
            for r in recs {
                self.d[pos..pos + r.len()].copy_from_slice(&r);
                pos += r.len();
            }
            assert!(pos <= at + B, "test directory overflows its block");
        }

        fn data(&mut self, block: u32, bytes: &[u8]) {
            let at = block as usize * B;
            self.d[at..at + bytes.len()].copy_from_slice(bytes);
        }

        fn open(self) -> Result<Iso9660<Cursor<Vec<u8>>>, FsError> {
            Iso9660::open(Cursor::new(self.d))
        }

        fn entries(self) -> Result<Vec<Entry>, FsError> {
            self.open()?.entries()
        }
    }

    /// A valid Rock Ridge volume: `hello.txt`, `sub/`, `sub/deep`, an empty file.
    fn rr_image() -> Img {
        let mut img = Img::new();
        img.dir(
            ROOT,
            ROOT,
            true,
            &[
                rr_file("hello.txt", 30, 5),
                rr_file("empty", u32::MAX, 0),
                rr_dir("sub", 19),
            ],
        );
        img.dir(19, ROOT, true, &[rr_file("deep", 31, 4)]);
        img.data(30, b"hello");
        img.data(31, b"deep");
        img
    }

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[track_caller]
    fn assert_hostile(r: Result<Vec<Entry>, FsError>, want_path: &str, want_reason: &str) {
        match r {
            Err(e @ FsError::Hostile { .. }) => {
                let FsError::Hostile {
                    ref path,
                    ref reason,
                    ..
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(path, want_path, "{e}");
                assert!(reason.contains(want_reason), "{e}");
                assert!(e.to_string().contains(&format!("{want_path:?}")), "{e}");
            }
            other => panic!("expected Hostile {want_path:?}, got {other:?}"),
        }
    }

    #[track_caller]
    fn assert_corrupt(r: Result<Vec<Entry>, FsError>, want: &[&str]) {
        match r {
            Err(e @ FsError::Corrupt { .. }) => {
                for w in want {
                    assert!(e.to_string().contains(w), "{e} lacks {w:?}");
                }
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    fn read(fs: &mut Iso9660<Cursor<Vec<u8>>>, p: &str) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        fs.copy_file(&RelPath::parse(p).unwrap(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn rock_ridge_volume_lists_and_reads() {
        let mut fs = rr_image().open().unwrap();
        assert_eq!(fs.label(), "config-2");
        assert_eq!(fs.names, Names::RockRidge { skip: 0 });
        let e = fs.entries().unwrap();
        assert_eq!(paths(&e), ["empty", "hello.txt", "sub", "sub/deep"]);
        assert_eq!(e[1].kind, EntryKind::File { size: 5 });
        assert_eq!(e[2].kind, EntryKind::Dir);
        assert_eq!(read(&mut fs, "hello.txt").unwrap(), b"hello");
        assert_eq!(read(&mut fs, "sub/deep").unwrap(), b"deep");
        assert_eq!(read(&mut fs, "empty").unwrap(), b"");
        assert!(matches!(
            read(&mut fs, "nope"),
            Err(FsError::NotFound { .. })
        ));
        assert!(matches!(read(&mut fs, "sub"), Err(FsError::Hostile { .. })));
        assert!(matches!(read(&mut fs, ""), Err(FsError::Hostile { .. })));
    }

    #[test]
    fn plain_names_drop_version_and_empty_extension_but_keep_case() {
        let mut img = Img::new();
        img.dir(
            ROOT,
            ROOT,
            false,
            &[
                file("META_DAT.JSO;1", 30, 2, &[]),
                file("USER_DAT.;1", 31, 1, &[]),
                dir("OPENSTAC", 19, &[]),
            ],
        );
        img.dir(19, ROOT, false, &[]);
        let mut fs = img.open().unwrap();
        assert_eq!(fs.names, Names::Plain);
        assert_eq!(
            paths(&fs.entries().unwrap()),
            ["META_DAT.JSO", "OPENSTAC", "USER_DAT"]
        );
    }

    #[test]
    fn name_translation() {
        assert_eq!(iso_name(b"A.B;1"), "A.B");
        assert_eq!(iso_name(b"NOEXT."), "NOEXT");
        assert_eq!(iso_name(b"KEEP;X"), "KEEP;X");
        assert_eq!(iso_name(b"\xe9T\xe9"), "\u{e9}T\u{e9}");
        let utf16 = |s: &str| {
            s.encode_utf16()
                .flat_map(u16::to_be_bytes)
                .collect::<Vec<u8>>()
        };
        assert_eq!(
            joliet_name(&utf16("méta_data.json")).unwrap(),
            "méta_data.json"
        );
        assert_eq!(joliet_name(&utf16("a.b;1")).unwrap(), "a.b");
        assert_eq!(joliet_name(&utf16("noext.;1")).unwrap(), "noext");
        assert_eq!(joliet_name(&utf16("😀")).unwrap(), "😀");
        assert!(joliet_name(&[0, b'a', 0]).is_err());
        assert!(joliet_name(&[0xD8, 0x00]).is_err());
        assert_eq!(label_from(b"config-2      \0\0"), "config-2");
    }

    /// Adds a Joliet SVD at 17 (terminator moves to 20) whose root is at block 21.
    fn add_joliet(img: &mut Img, names: &[&str]) {
        let mut svd = img.d[16 * B..17 * B].to_vec();
        svd[0] = 2;
        svd[88..91].copy_from_slice(b"%/E");
        let root = rec(&[0], 21, B as u32, FLAG_DIR, &[]);
        svd[156..190].copy_from_slice(&root);
        img.d[17 * B..18 * B].copy_from_slice(&svd);
        img.d[20 * B..20 * B + 7].copy_from_slice(b"\xffCD001\x01");
        let kids: Vec<Vec<u8>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let id: Vec<u8> = n.encode_utf16().flat_map(u16::to_be_bytes).collect();
                rec(&id, 30 + i as u32, 1, 0, &[])
            })
            .collect();
        img.dir(21, 21, false, &kids);
    }

    #[test]
    fn joliet_names_beat_plain_and_rock_ridge_beats_joliet() {
        let mut img = Img::new();
        img.dir(ROOT, ROOT, false, &[file("META_DAT.JSO;1", 30, 1, &[])]);
        add_joliet(&mut img, &["meta_data.json", "Mixed.Case.json"]);
        let mut fs = img.open().unwrap();
        assert_eq!(fs.names, Names::Joliet);
        assert_eq!(
            paths(&fs.entries().unwrap()),
            ["Mixed.Case.json", "meta_data.json"]
        );

        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_file("from_rr", 30, 1)]);
        add_joliet(&mut img, &["from_joliet"]);
        assert_eq!(paths(&img.entries().unwrap()), ["from_rr"]);
    }

    #[test]
    fn rock_ridge_dot_names_are_refused() {
        for (entry, path) in [
            (su(b"NM", &[0x04]), ".."),
            (su(b"NM", &[0x02]), "."),
            (nm(".."), ".."),
        ] {
            let mut img = Img::new();
            img.dir(ROOT, ROOT, true, &[file("EVIL;1", 30, 1, &entry)]);
            assert_hostile(img.entries(), path, "");
        }
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("sub", 19)]);
        img.dir(19, ROOT, true, &[file("X;1", 30, 1, &nm("a/b"))]);
        assert_hostile(img.entries(), "sub/a/b", "contains '/'");
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[file("X;1", 30, 1, &nm("nul\0"))]);
        assert_hostile(img.entries(), "nul\0", "contains '\\0'");
    }

    #[test]
    fn symlinks_and_special_files_are_refused() {
        let sl = su(b"SL", &[0, 0, 3, b'e', b't', b'c']);
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("sub", 19)]);
        img.dir(
            19,
            ROOT,
            true,
            &[file(
                "LINK;1",
                30,
                0,
                // SL alone must be enough, whatever PX (if any) says.
                &[nm("link"), sl].concat(),
            )],
        );
        assert_hostile(img.entries(), "sub/link", "symbolic link");

        for (mode, why) in [
            (S_IFLNK | 0o777, "symbolic link"),
            (S_IFCHR | 0o600, "device"),
            (S_IFBLK | 0o600, "device"),
            (S_IFIFO | 0o600, "FIFO"),
            (S_IFSOCK | 0o600, "socket"),
        ] {
            let mut img = Img::new();
            img.dir(
                ROOT,
                ROOT,
                true,
                &[file("ODD;1", 30, 0, &[nm("odd"), px(mode)].concat())],
            );
            assert_hostile(img.entries(), "odd", why);
        }
        let mut img = Img::new();
        img.dir(
            ROOT,
            ROOT,
            true,
            &[file(
                "DIRISH;1",
                30,
                0,
                &[nm("dirish"), px(S_IFDIR | 0o755)].concat(),
            )],
        );
        assert_corrupt(img.entries(), &["\"dirish\"", "disagrees"]);

        let mut img = Img::new();
        let pn = su(b"PN", &[both(1), both(3)].concat());
        img.dir(
            ROOT,
            ROOT,
            true,
            &[file("NULL;1", 30, 0, &[nm("null"), pn].concat())],
        );
        assert_hostile(img.entries(), "null", "device");
    }

    #[test]
    fn extents_beyond_the_volume_or_device_are_refused() {
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("d", 19)]);
        img.dir(19, ROOT, true, &[rr_file("big", 39, 4096)]);
        let e = img.entries();
        assert_hostile(
            e,
            "d/big",
            "file extent at block 39 (4096 bytes) ends beyond the volume (40 blocks)",
        );

        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("far", 1000)]);
        assert_hostile(img.entries(), "far", "directory extent at block 1000");

        // The volume claims 40 blocks but the device (a truncated image) holds 35.
        let mut img = rr_image();
        img.dir(ROOT, ROOT, true, &[rr_file("tail", 36, 10)]);
        img.d.truncate(35 * B);
        assert_hostile(
            img.entries(),
            "tail",
            "beyond the end of the device (71680 bytes)",
        );

        // Truncated inside the root directory: refused when opening.
        let mut img = rr_image();
        img.d.truncate(18 * B + 100);
        assert!(matches!(img.open(), Err(FsError::Hostile { path, .. }) if path == "/"));

        let mut img = rr_image();
        img.d.truncate(16 * B + 1000);
        assert!(matches!(img.open(), Err(FsError::Corrupt { .. })));
    }

    #[test]
    fn directory_loops_and_deep_nesting_are_refused() {
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("a", 19)]);
        img.dir(19, ROOT, true, &[rr_dir("back", ROOT)]);
        assert_hostile(img.entries(), "a/back", "directory loop");

        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("a", 19), rr_dir("b", 19)]);
        img.dir(19, ROOT, true, &[]);
        assert_hostile(img.entries(), "b", "directory loop");

        // A directory whose extent overlaps its parent's, reached under another start.
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("self", 19)]);
        img.dir(19, ROOT, true, &[rr_dir("again", 19)]);
        assert_hostile(img.entries(), "self/again", "directory loop");
    }

    #[test]
    fn nesting_deeper_than_the_cap_is_refused() {
        // 40 nested directories need more blocks than the standard test volume holds.
        let levels = 40u32;
        let blocks = 19 + levels + 1;
        let mut img = Img::new();
        img.d.resize(blocks as usize * B, 0);
        put32(&mut img.d[16 * B..], 80, blocks);
        img.dir(ROOT, ROOT, true, &[rr_dir("d", 19)]);
        for b in 19..19 + levels {
            img.dir(b, b - 1, true, &[rr_dir("d", b + 1)]);
        }
        img.dir(19 + levels, 18 + levels, true, &[]);
        let want = vec!["d"; MAX_DEPTH + 1].join("/");
        assert_hostile(img.entries(), &want, "deeper than 32 levels");
    }

    #[test]
    fn bad_records_are_refused() {
        // A record running over the end of its sector: 59 records of 34 bytes, then one of 60
        // at byte 2006.
        let mut img = Img::new();
        let filler: Vec<Vec<u8>> = (0..57).map(|_| rec(b"A", 30, 0, 0, &[])).collect();
        img.dir(ROOT, ROOT, false, &filler);
        img.d[18 * B + 2006] = 60;
        match img.entries() {
            Err(e @ FsError::Hostile { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("\"/\""), "{msg}");
                assert!(msg.contains("byte 2006"), "{msg}");
                assert!(msg.contains("overrunning its sector"), "{msg}");
            }
            other => panic!("{other:?}"),
        }

        // A record too short to hold its fixed fields.
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[rr_dir("sub", 19)]);
        img.dir(19, ROOT, true, &[vec![20u8; 20]]);
        assert_hostile(img.entries(), "sub", "shorter than a record");

        // A name longer than its record.
        let mut img = Img::new();
        let mut r = rr_file("x", 30, 1);
        r[32] = 200;
        img.dir(ROOT, ROOT, true, &[r]);
        assert_hostile(img.entries(), "/", "does not fit");

        // A System Use entry claiming more bytes than its area.
        let mut img = Img::new();
        let mut bad = nm("x");
        bad[2] = 250;
        img.dir(ROOT, ROOT, true, &[file("X;1", 30, 1, &bad)]);
        assert_corrupt(img.entries(), &["\"X\"", "overrunning"]);
    }

    #[test]
    fn multi_extent_and_interleaved_files_are_refused() {
        let mut img = Img::new();
        let mut r = rr_file("part", 30, 1);
        r[25] |= FLAG_MULTI_EXTENT;
        img.dir(ROOT, ROOT, true, &[r]);
        assert_corrupt(img.entries(), &["\"part\"", "multi-extent"]);

        let mut img = Img::new();
        let mut r = rr_file("woven", 30, 1);
        r[26] = 1;
        r[27] = 1;
        img.dir(ROOT, ROOT, true, &[r]);
        assert_corrupt(img.entries(), &["\"woven\"", "interleaved"]);
    }

    #[test]
    fn both_endian_mismatches_are_corrupt() {
        let mut img = Img::new();
        let mut r = rr_file("size", 30, 1);
        r[17] = 9;
        img.dir(ROOT, ROOT, true, &[r]);
        assert_corrupt(img.entries(), &["\"size\"", "data length"]);

        let mut img = rr_image();
        img.d[16 * B + 87] ^= 1;
        assert!(
            matches!(img.open(), Err(FsError::Corrupt { detail, .. }) if detail.contains("volume space size"))
        );
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut img = Img::new();
        img.dir(
            ROOT,
            ROOT,
            true,
            &[rr_file("same", 30, 1), file("OTHER;1", 31, 1, &nm("same"))],
        );
        assert_hostile(img.entries(), "same", "two entries");
    }

    #[test]
    fn continuation_areas_are_followed_and_checked() {
        // The name is in a CE area at block 25, offset 100.
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[file("LONG;1", 30, 2, &ce(25, 100, 20))]);
        let name = nm("continued_name");
        img.d[25 * B + 100..25 * B + 100 + name.len()].copy_from_slice(&name);
        img.data(30, b"ok");
        let mut fs = img.open().unwrap();
        assert_eq!(paths(&fs.entries().unwrap()), ["continued_name"]);
        assert_eq!(read(&mut fs, "continued_name").unwrap(), b"ok");

        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[file("FAR;1", 30, 2, &ce(5000, 0, 20))]);
        assert_hostile(
            img.entries(),
            "FAR",
            "continuation area extent at block 5000",
        );

        let mut img = Img::new();
        img.dir(
            ROOT,
            ROOT,
            true,
            &[file("CROSS;1", 30, 2, &ce(25, 2040, 20))],
        );
        assert_hostile(img.entries(), "CROSS", "crosses its block");

        // A CE that points at itself.
        let mut img = Img::new();
        img.dir(ROOT, ROOT, true, &[file("LOOP;1", 30, 2, &ce(25, 0, 28))]);
        img.data(25, &ce(25, 0, 28));
        assert_hostile(
            img.entries(),
            "LOOP",
            "too many System Use continuation areas",
        );
    }

    #[test]
    fn too_many_entries_are_refused() {
        let per_sector = B / 34;
        let n = MAX_ENTRIES + 1;
        let sectors = n.div_ceil(per_sector);
        let blocks = 19 + sectors as u32;
        let mut img = Img::new();
        img.d.resize(blocks as usize * B, 0);
        put32(&mut img.d[16 * B..], 80, blocks);
        img.dir(ROOT, ROOT, false, &[dir("BIG", 19, &[])]);
        // Rewrite BIG's length to cover all sectors.
        let at = 18 * B + 34 + 34;
        put32(&mut img.d[at..], 10, (sectors * B) as u32);
        let r = rec(b"A", 0, 0, 0, &[]);
        for i in 0..n {
            let at = 19 * B + (i / per_sector) * B + (i % per_sector) * 34;
            img.d[at..at + 34].copy_from_slice(&r);
        }
        assert_hostile(img.entries(), "BIG", "more than 100000 directory records");
    }

    #[test]
    fn huge_directories_are_refused_before_reading() {
        let mut img = Img::new();
        let mut r = rr_dir("huge", 19);
        put32(&mut r, 10, MAX_DIR_BYTES + 1);
        img.dir(ROOT, ROOT, true, &[r]);
        assert_hostile(img.entries(), "huge", "over the 16777216-byte limit");
    }

    #[test]
    fn relocated_directories_appear_at_their_child_link() {
        let mut img = Img::new();
        let cl = su(b"CL", &both(20));
        let re = su(b"RE", &[]);
        img.dir(
            ROOT,
            ROOT,
            true,
            &[
                file(
                    "DEEP;1",
                    0,
                    0,
                    &[nm("deep"), px(S_IFDIR | 0o755), cl].concat(),
                ),
                rr_dir("rr_moved", 19),
            ],
        );
        img.dir(
            19,
            ROOT,
            true,
            &[dir(
                "DEEP",
                20,
                &[nm("deep"), px(S_IFDIR | 0o755), re].concat(),
            )],
        );
        img.dir(20, 19, true, &[rr_file("inside", 30, 3)]);
        img.data(30, b"in!");
        let mut fs = img.open().unwrap();
        assert_eq!(
            paths(&fs.entries().unwrap()),
            ["deep", "deep/inside", "rr_moved"]
        );
        assert_eq!(read(&mut fs, "deep/inside").unwrap(), b"in!");
    }

    #[test]
    fn zisofs_files_are_refused() {
        let mut img = Img::new();
        let zf = su(b"ZF", &[b'p', b'z', 16, 15, 0, 0, 0, 0, 0, 0, 0, 0]);
        img.dir(
            ROOT,
            ROOT,
            true,
            &[file("Z;1", 30, 1, &[nm("z"), zf].concat())],
        );
        assert_hostile(img.entries(), "z", "zisofs");
    }

    #[test]
    fn probe_reads_the_label_only_from_a_pvd() {
        let img = rr_image();
        assert_eq!(
            probe_label(&mut Cursor::new(img.d.clone())).unwrap(),
            Some("config-2".into())
        );
        let mut other = img.d.clone();
        other[16 * B] = 2;
        assert_eq!(probe_label(&mut Cursor::new(other)).unwrap(), None);
        assert_eq!(
            probe_label(&mut Cursor::new(img.d[..16 * B + 50].to_vec())).unwrap(),
            None
        );
    }

    /// Tiny deterministic generator: the mutation test must be reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn mutated_images_never_panic() {
        let mut base = rr_image();
        base.dir(
            ROOT,
            ROOT,
            true,
            &[
                rr_file("hello.txt", 30, 5),
                file("LONG;1", 31, 4, &ce(25, 0, 20)),
                rr_dir("sub", 19),
            ],
        );
        let name = nm("continued");
        base.d[25 * B..25 * B + name.len()].copy_from_slice(&name);
        add_joliet(&mut base, &["j1", "j2"]);
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        // Only the descriptor and directory blocks matter; file data cannot hurt.
        let hot: Vec<usize> = (16 * B..26 * B).collect();
        for round in 0..3000 {
            let mut d = base.d.clone();
            for _ in 0..1 + rng.below(8) {
                let at = hot[rng.below(hot.len())];
                d[at] = rng.next() as u8;
            }
            if round % 10 == 0 {
                d.truncate(rng.below(d.len()));
            }
            if let Ok(mut fs) = Iso9660::open(Cursor::new(d))
                && let Ok(entries) = fs.entries()
            {
                for e in entries {
                    let _ = fs.copy_file(&e.path, &mut io::sink());
                }
            }
        }
    }
}
