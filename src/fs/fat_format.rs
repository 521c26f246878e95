//! Formats a partition as FAT and writes a tree into it in one pass (for `seedpart build`).
//!
//! Written here rather than with `fatfs`'s writer, whose directories `fsck.vfat` rejects. Every
//! file and directory is laid out contiguously, so the FAT is a list of runs, the data area one
//! sequential stream, and the whole volume a handful of large writes.
//!
//! The output is deterministic: timestamps are fixed at 2000-01-01 00:00:00 and the volume id is
//! a hash of the label, geometry and the tree's names and sizes (not the file contents).

use super::fat::{
    ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_LFN, ATTR_VOLUME_ID, DIR_ENTRY_SIZE, FAT12_MAX_CLUSTERS,
    FAT16_MAX_CLUSTERS, FAT32_MAX_CLUSTERS, FatType, LFN_CHARS_PER_ENTRY, LFN_OFFSETS,
    lfn_checksum,
};
use super::{FileData, InputTree, RelPath};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

#[derive(Debug, thiserror::Error)]
pub enum FatFormatError {
    #[error("bad FAT volume label {label:?}: {reason}")]
    BadLabel { label: String, reason: String },
    #[error("sector size {0} is not one FAT supports (512, 1024, 2048 or 4096)")]
    BadSectorSize(u32),
    #[error("cannot make a FAT filesystem on {len} bytes: {reason}")]
    BadSize { len: u64, reason: String },
    #[error("{path}: cannot be put on a FAT drive: {reason}")]
    BadName { path: String, reason: String },
    #[error(
        "the tree does not fit: it needs {needed} bytes of data area ({cluster_size}-byte clusters) \
         but the {len}-byte FAT volume has {available}"
    )]
    TooSmall {
        needed: u64,
        available: u64,
        cluster_size: u64,
        len: u64,
    },
    #[error("I/O error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{path} changed while the drive was written: expected {expected} bytes, got {got}")]
    Changed {
        path: String,
        expected: u64,
        got: u64,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FatFormatError {
    let what = what.into();
    move |source| FatFormatError::Io { what, source }
}

/// Cluster counts this close to a FAT type boundary are avoided: implementations disagree on
/// which side of the boundary they fall (Microsoft's FAT specification recommends this margin).
const BOUNDARY_MARGIN: u32 = 16;
/// FAT32 from this size up, like `mkfs.vfat`.
const FAT32_FROM: u64 = 512 << 20;
const MAX_CLUSTER: u64 = 32 * 1024;
const MEDIA: u8 = 0xF8;
/// 2000-01-01, 00:00:00 in FAT's date and time encoding.
const DATE: u16 = (20 << 9) | (1 << 5) | 1;
const TIME: u16 = 0;
const MAX_DIR_ENTRIES: u64 = 65_536;
const CHUNK: usize = 1 << 20;

/// Where each structure of the volume goes.
#[derive(Clone, Debug)]
struct Layout {
    fat_type: FatType,
    bps: u64,
    spc: u64,
    reserved: u64,
    root_entries: u64,
    fat_sectors: u64,
    total: u64,
    clusters: u64,
}

impl Layout {
    fn new(total: u64, bps: u64, fat_type: FatType, spc: u64, root_entries: u64) -> Option<Layout> {
        let fat32 = fat_type == FatType::Fat32;
        let reserved = if fat32 { 32 } else { 1 };
        let root_entries = if fat32 { 0 } else { root_entries };
        if root_entries > 0xFFFF {
            return None;
        }
        let root_sectors = (root_entries * DIR_ENTRY_SIZE as u64).div_ceil(bps);
        // Growing the FAT shrinks the cluster count, so this settles in at most two rounds.
        let mut fat_sectors = 1;
        let clusters = loop {
            let meta = reserved + 2 * fat_sectors + root_sectors;
            if meta >= total {
                return None;
            }
            let clusters = (total - meta) / spc;
            let need = fat_type.fat_bytes(clusters + 2).div_ceil(bps);
            if need <= fat_sectors {
                break clusters;
            }
            fat_sectors = need;
        };
        let m = u64::from(BOUNDARY_MARGIN);
        let ok = match fat_type {
            FatType::Fat12 => (1..=u64::from(FAT12_MAX_CLUSTERS) - m).contains(&clusters),
            FatType::Fat16 => (u64::from(FAT12_MAX_CLUSTERS) + 1 + m
                ..=u64::from(FAT16_MAX_CLUSTERS) - m)
                .contains(&clusters),
            FatType::Fat32 => (u64::from(FAT16_MAX_CLUSTERS) + 1 + m
                ..=u64::from(FAT32_MAX_CLUSTERS) - m)
                .contains(&clusters),
        };
        (ok && (!fat32 || fat_sectors <= u64::from(u32::MAX))).then_some(Layout {
            fat_type,
            bps,
            spc,
            reserved,
            root_entries,
            fat_sectors,
            total,
            clusters,
        })
    }

    fn cluster_size(&self) -> u64 {
        self.bps * self.spc
    }

    fn fat_offset(&self, copy: u64) -> u64 {
        (self.reserved + copy * self.fat_sectors) * self.bps
    }

    fn root_offset(&self) -> u64 {
        self.fat_offset(2)
    }

    fn data_offset(&self) -> u64 {
        self.root_offset()
            + (self.root_entries * DIR_ENTRY_SIZE as u64).div_ceil(self.bps) * self.bps
    }
}

/// `mkfs.vfat`'s choice: FAT32 with 4 KiB clusters from 512 MiB (larger clusters from 8 GiB, as
/// Microsoft's table has it), else FAT12/16 starting at 2 KiB clusters, doubled until the count
/// fits FAT16. Cluster sizes are taken in bytes so 4096-byte sectors get the same clusters.
fn preferred_layout(total: u64, bps: u64, root_entries: u64) -> Option<Layout> {
    let bytes = total * bps;
    if bytes >= FAT32_FROM {
        let cs = match bytes >> 30 {
            0..8 => 4096,
            8..16 => 8192,
            16..32 => 16384,
            _ => 32768,
        };
        return Layout::new(total, bps, FatType::Fat32, cs.max(bps) / bps, root_entries);
    }
    let mut cs = 2048.max(bps);
    while cs <= MAX_CLUSTER {
        for t in [FatType::Fat12, FatType::Fat16] {
            if let Some(l) = Layout::new(total, bps, t, cs / bps, root_entries) {
                return Some(l);
            }
        }
        cs *= 2;
    }
    None
}

/// Every workable layout, largest clusters first: tried when the preferred one cannot hold the
/// tree (many small files waste less with smaller clusters).
fn fallback_layouts(total: u64, bps: u64, root_entries: u64) -> Vec<Layout> {
    let mut out = Vec::new();
    let mut cs = MAX_CLUSTER;
    while cs >= bps {
        for t in [FatType::Fat32, FatType::Fat16, FatType::Fat12] {
            out.extend(Layout::new(total, bps, t, cs / bps, root_entries));
        }
        cs /= 2;
    }
    out
}

enum Kind {
    Dir(usize),
    File(usize),
}

struct ChildPlan {
    name: String,
    short: [u8; 11],
    lfn: Option<Vec<u16>>,
    kind: Kind,
}

struct DirPlan {
    path: RelPath,
    parent: usize,
    children: Vec<ChildPlan>,
    first_cluster: u32,
}

struct FilePlan<'a> {
    path: &'a RelPath,
    data: &'a FileData,
    size: u64,
    first_cluster: u32,
}

impl DirPlan {
    /// 32-byte slots: the label (root) or `.` and `..`, then each child's LFN entries and its
    /// short entry.
    fn slots(&self) -> u64 {
        let own = if self.path.is_root() { 1 } else { 2 };
        own + self
            .children
            .iter()
            .map(|c| {
                1 + c
                    .lfn
                    .as_ref()
                    .map_or(0, |u| u.len().div_ceil(LFN_CHARS_PER_ENTRY)) as u64
            })
            .sum::<u64>()
    }
}

fn is_short_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || b"!#$%&'()-@^_`{}~".contains(&c)
}

/// A name stored as a bare 8.3 entry: upper case, 1-8 characters, optionally a dot and 1-3 more.
fn is_plain_short(name: &str) -> bool {
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) => (b, Some(e)),
        None => (name, None),
    };
    (1..=8).contains(&base.len())
        && base.bytes().all(is_short_char)
        && ext.is_none_or(|e| (1..=3).contains(&e.len()) && e.bytes().all(is_short_char))
}

fn pack_short(base: &[u8], ext: &[u8]) -> [u8; 11] {
    let mut s = [b' '; 11];
    s[..base.len()].copy_from_slice(base);
    s[8..8 + ext.len()].copy_from_slice(ext);
    s
}

/// What a long name may not hold on FAT (beyond what `RelPath` already refuses).
fn check_long_name(name: &str) -> Result<Vec<u16>, String> {
    if let Some(c) = name
        .chars()
        .find(|&c| c < ' ' || matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '|'))
    {
        return Err(format!("FAT file names cannot contain {c:?}"));
    }
    if name.ends_with('.') || name.ends_with(' ') {
        return Err("FAT drops a file name's trailing dots and spaces".into());
    }
    let units: Vec<u16> = name.encode_utf16().collect();
    if units.len() > 255 {
        return Err(format!("{} UTF-16 units is over FAT's 255", units.len()));
    }
    Ok(units)
}

/// Short names for one directory's children, Windows style: exact 8.3 names kept, others
/// upper-cased and cut down to a basis name, with a `~N` tail when anything was lost or the
/// basis is taken.
fn assign_short_names(children: &mut [ChildPlan]) {
    let mut taken: HashSet<[u8; 11]> = HashSet::new();
    for c in children.iter_mut().filter(|c| c.lfn.is_none()) {
        let (b, e) = c.name.split_once('.').unwrap_or((&c.name, ""));
        c.short = pack_short(b.as_bytes(), e.as_bytes());
        taken.insert(c.short);
    }
    let mut next_tail: HashMap<(Vec<u8>, Vec<u8>), u32> = HashMap::new();
    for c in children.iter_mut().filter(|c| c.lfn.is_some()) {
        let stripped = c.name.trim_start_matches('.');
        let mut lossy = stripped.len() != c.name.len();
        let (b, e) = match stripped.rfind('.') {
            Some(i) => (&stripped[..i], &stripped[i + 1..]),
            None => (stripped, ""),
        };
        let mut conv = |s: &str, max: usize| -> Vec<u8> {
            let mut out = Vec::new();
            for ch in s.chars() {
                if ch == ' ' || ch == '.' {
                    lossy = true;
                    continue;
                }
                let u = if ch.is_ascii() {
                    ch.to_ascii_uppercase() as u8
                } else {
                    b'_'
                };
                if !is_short_char(u) || !ch.is_ascii() {
                    lossy = true;
                    out.push(b'_');
                } else {
                    out.push(u);
                }
            }
            if out.len() > max {
                lossy = true;
                out.truncate(max);
            }
            out
        };
        let mut base = conv(b, 8);
        let ext = conv(e, 3);
        if base.is_empty() {
            lossy = true;
            base.push(b'_');
        }
        if !lossy && taken.insert(pack_short(&base, &ext)) {
            c.short = pack_short(&base, &ext);
            continue;
        }
        let n = next_tail.entry((base.clone(), ext.clone())).or_insert(1);
        loop {
            let tail = format!("~{n}");
            *n += 1;
            let keep = base.len().min(8 - tail.len());
            let mut b2 = base[..keep].to_vec();
            b2.extend_from_slice(tail.as_bytes());
            let s = pack_short(&b2, &ext);
            if taken.insert(s) {
                c.short = s;
                break;
            }
        }
    }
}

/// The tree as directories with their children, checked and named for FAT.
fn plan<'a>(tree: &'a InputTree) -> Result<(Vec<DirPlan>, Vec<FilePlan<'a>>), FatFormatError> {
    let mut dirs = vec![DirPlan {
        path: RelPath::root(),
        parent: 0,
        children: Vec::new(),
        first_cluster: 0,
    }];
    let mut index: HashMap<RelPath, usize> = HashMap::new();
    fn ensure(dirs: &mut Vec<DirPlan>, index: &mut HashMap<RelPath, usize>, p: &RelPath) -> usize {
        if p.is_root() {
            return 0;
        }
        if let Some(&i) = index.get(p) {
            return i;
        }
        let parent = ensure(dirs, index, &p.parent());
        let i = dirs.len();
        dirs.push(DirPlan {
            path: p.clone(),
            parent,
            children: Vec::new(),
            first_cluster: 0,
        });
        dirs[parent].children.push(ChildPlan {
            name: p.file_name().to_string(),
            short: [0; 11],
            lfn: None,
            kind: Kind::Dir(i),
        });
        index.insert(p.clone(), i);
        i
    }
    for d in &tree.dirs {
        ensure(&mut dirs, &mut index, d);
    }
    let mut files = Vec::with_capacity(tree.files.len());
    for (p, data) in &tree.files {
        if p.is_root() {
            return Err(FatFormatError::BadName {
                path: "/".into(),
                reason: "a file cannot be the root".into(),
            });
        }
        let size = data.len().map_err(io_err(p.to_string()))?;
        if size > u64::from(u32::MAX) {
            return Err(FatFormatError::BadName {
                path: p.to_string(),
                reason: format!("{size} bytes is over FAT's 4 GiB - 1 file size limit"),
            });
        }
        let parent = ensure(&mut dirs, &mut index, &p.parent());
        dirs[parent].children.push(ChildPlan {
            name: p.file_name().to_string(),
            short: [0; 11],
            lfn: None,
            kind: Kind::File(files.len()),
        });
        files.push(FilePlan {
            path: p,
            data,
            size,
            first_cluster: 0,
        });
    }
    for d in &mut dirs {
        d.children.sort_by(|a, b| a.name.cmp(&b.name));
        let mut seen: HashMap<String, &str> = HashMap::new();
        for c in &mut d.children {
            let bad = |reason: String| FatFormatError::BadName {
                path: d
                    .path
                    .join(&c.name)
                    .map_or_else(|_| c.name.clone(), |p| p.to_string()),
                reason,
            };
            if let Some(other) = seen.insert(c.name.to_lowercase(), &c.name) {
                return Err(bad(if other == c.name {
                    "listed twice (or as both a file and a directory)".into()
                } else {
                    format!("FAT names ignore case, and {other:?} is in the same directory")
                }));
            }
            let units = check_long_name(&c.name).map_err(bad)?;
            c.lfn = (!is_plain_short(&c.name)).then_some(units);
        }
        assign_short_names(&mut d.children);
        if d.slots() > MAX_DIR_ENTRIES {
            return Err(FatFormatError::BadName {
                path: d.path.to_string(),
                reason: format!(
                    "{} directory entries is over FAT's {MAX_DIR_ENTRIES}",
                    d.slots()
                ),
            });
        }
    }
    Ok((dirs, files))
}

fn check_label(label: &str) -> Result<[u8; 11], FatFormatError> {
    let bad = |reason: &str| FatFormatError::BadLabel {
        label: label.into(),
        reason: reason.into(),
    };
    if label.is_empty() || label.len() > 11 {
        return Err(bad("must be 1 to 11 bytes"));
    }
    if label.starts_with(' ') {
        return Err(bad("cannot start with a space"));
    }
    if !label.bytes().all(|b| b == b' ' || is_short_char(b)) {
        return Err(bad(
            "only upper-case letters, digits, spaces and !#$%&'()-@^_`{}~ are allowed",
        ));
    }
    let mut raw = [b' '; 11];
    raw[..label.len()].copy_from_slice(label.as_bytes());
    Ok(raw)
}

fn dir_entry(name: &[u8; 11], attr: u8, cluster: u32, size: u32, fat32: bool) -> [u8; 32] {
    let mut e = [0u8; 32];
    e[..11].copy_from_slice(name);
    e[11] = attr;
    e[14..16].copy_from_slice(&TIME.to_le_bytes());
    e[16..18].copy_from_slice(&DATE.to_le_bytes());
    e[18..20].copy_from_slice(&DATE.to_le_bytes());
    if fat32 {
        e[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
    }
    e[22..24].copy_from_slice(&TIME.to_le_bytes());
    e[24..26].copy_from_slice(&DATE.to_le_bytes());
    e[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
    e[28..32].copy_from_slice(&size.to_le_bytes());
    e
}

fn lfn_entries(units: &[u16], short: &[u8; 11], out: &mut Vec<u8>) {
    let n = units.len().div_ceil(LFN_CHARS_PER_ENTRY);
    let sum = lfn_checksum(short);
    for seq in (1..=n).rev() {
        let mut e = [0u8; 32];
        e[0] = seq as u8 | if seq == n { 0x40 } else { 0 };
        e[11] = ATTR_LFN;
        e[13] = sum;
        for (i, &o) in LFN_OFFSETS.iter().enumerate() {
            let k = (seq - 1) * LFN_CHARS_PER_ENTRY + i;
            // The name ends with one NUL when there is room, then 0xFFFF padding.
            let u = match k.cmp(&units.len()) {
                std::cmp::Ordering::Less => units[k],
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 0xFFFF,
            };
            e[o..o + 2].copy_from_slice(&u.to_le_bytes());
        }
        out.extend_from_slice(&e);
    }
}

fn serialize_dir(
    d: &DirPlan,
    dirs: &[DirPlan],
    files: &[FilePlan],
    label: &[u8; 11],
    fat32: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(d.slots() as usize * DIR_ENTRY_SIZE);
    if d.path.is_root() {
        out.extend_from_slice(&dir_entry(label, ATTR_VOLUME_ID, 0, 0, fat32));
    } else {
        // `..` of a first-level directory is cluster 0 even on FAT32, where the root has one.
        let parent = if d.parent == 0 {
            0
        } else {
            dirs[d.parent].first_cluster
        };
        out.extend_from_slice(&dir_entry(
            b".          ",
            ATTR_DIRECTORY,
            d.first_cluster,
            0,
            fat32,
        ));
        out.extend_from_slice(&dir_entry(b"..         ", ATTR_DIRECTORY, parent, 0, fat32));
    }
    for c in &d.children {
        if let Some(units) = &c.lfn {
            lfn_entries(units, &c.short, &mut out);
        }
        let e = match c.kind {
            Kind::Dir(i) => dir_entry(&c.short, ATTR_DIRECTORY, dirs[i].first_cluster, 0, fat32),
            Kind::File(i) => dir_entry(
                &c.short,
                ATTR_ARCHIVE,
                files[i].first_cluster,
                files[i].size as u32,
                fat32,
            ),
        };
        out.extend_from_slice(&e);
    }
    out
}

fn boot_sector(l: &Layout, label: &[u8; 11], volume_id: u32) -> Vec<u8> {
    let mut b = vec![0u8; l.bps as usize];
    let fat32 = l.fat_type == FatType::Fat32;
    b[..3].copy_from_slice(if fat32 {
        &[0xEB, 0x58, 0x90]
    } else {
        &[0xEB, 0x3C, 0x90]
    });
    b[3..11].copy_from_slice(b"MSWIN4.1");
    b[11..13].copy_from_slice(&(l.bps as u16).to_le_bytes());
    b[13] = l.spc as u8;
    b[14..16].copy_from_slice(&(l.reserved as u16).to_le_bytes());
    b[16] = 2;
    b[17..19].copy_from_slice(&(l.root_entries as u16).to_le_bytes());
    if l.total <= 0xFFFF && !fat32 {
        b[19..21].copy_from_slice(&(l.total as u16).to_le_bytes());
    } else {
        b[32..36].copy_from_slice(&(l.total as u32).to_le_bytes());
    }
    b[21] = MEDIA;
    if !fat32 {
        b[22..24].copy_from_slice(&(l.fat_sectors as u16).to_le_bytes());
    }
    // CHS geometry is meaningless for a partition image; these are the usual LBA values.
    b[24..26].copy_from_slice(&63u16.to_le_bytes());
    b[26..28].copy_from_slice(&255u16.to_le_bytes());
    // Hidden sectors (the partition's start) stay 0: only DOS booting uses them.
    let ext = if fat32 {
        b[36..40].copy_from_slice(&(l.fat_sectors as u32).to_le_bytes());
        b[44..48].copy_from_slice(&2u32.to_le_bytes());
        b[48..50].copy_from_slice(&1u16.to_le_bytes());
        b[50..52].copy_from_slice(&6u16.to_le_bytes());
        64
    } else {
        36
    };
    b[ext] = 0x80;
    b[ext + 2] = 0x29;
    b[ext + 3..ext + 7].copy_from_slice(&volume_id.to_le_bytes());
    b[ext + 7..ext + 18].copy_from_slice(label);
    b[ext + 18..ext + 26].copy_from_slice(match l.fat_type {
        FatType::Fat12 => b"FAT12   ",
        FatType::Fat16 => b"FAT16   ",
        FatType::Fat32 => b"FAT32   ",
    });
    // Not bootable: `int 18h` hands the machine back to the BIOS, then halt.
    b[ext + 26..ext + 30].copy_from_slice(&[0xCD, 0x18, 0xEB, 0xFE]);
    b[510] = 0x55;
    b[511] = 0xAA;
    b
}

fn fs_info(l: &Layout, used: u64) -> Vec<u8> {
    let mut b = vec![0u8; l.bps as usize];
    b[0..4].copy_from_slice(&0x4161_5252u32.to_le_bytes());
    b[484..488].copy_from_slice(&0x6141_7272u32.to_le_bytes());
    b[488..492].copy_from_slice(&((l.clusters - used) as u32).to_le_bytes());
    let next = if used < l.clusters {
        2 + used as u32
    } else {
        u32::MAX
    };
    b[492..496].copy_from_slice(&next.to_le_bytes());
    b[508..512].copy_from_slice(&0xAA55_0000u32.to_le_bytes());
    b
}

/// Refuses bytes beyond a file's announced size, so a host file that grows cannot spill into
/// the next file's clusters.
struct Capped<'a, W: Write> {
    inner: &'a mut W,
    left: u64,
}

impl<W: Write> Write for Capped<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other("the file grew while being written"));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn volume_id(label: &str, l: &Layout, tree: &InputTree, files: &[FilePlan]) -> u32 {
    let mut h = Sha256::new();
    h.update(label.as_bytes());
    h.update(l.bps.to_le_bytes());
    h.update(l.total.to_le_bytes());
    for d in &tree.dirs {
        h.update(d.as_str().as_bytes());
        h.update([0]);
    }
    for f in files {
        h.update(f.path.as_str().as_bytes());
        h.update([0]);
        h.update(f.size.to_le_bytes());
    }
    let d = h.finalize();
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// Formats `dev` (len bytes, a writable partition Window) as FAT and writes `tree` into it, with
/// volume label `label` (uppercase ASCII, <= 11 bytes, e.g. "CONFIG-2") in both the BPB and a
/// root-directory volume-label entry. `sector_size` is the disk's logical sector size (512 or
/// 4096): it becomes the bytes-per-sector.
///
/// The first sector is zeroed before anything else is written and the boot sector written last,
/// so an interrupted build never leaves something that probes as a FAT drive.
pub fn format_and_fill<D: Read + Write + Seek>(
    mut dev: D,
    len: u64,
    sector_size: u32,
    label: &str,
    tree: &InputTree,
) -> Result<(), FatFormatError> {
    let label_raw = check_label(label)?;
    if !matches!(sector_size, 512 | 1024 | 2048 | 4096) {
        return Err(FatFormatError::BadSectorSize(sector_size));
    }
    let bps = u64::from(sector_size);
    let total = len / bps;
    if total > u64::from(u32::MAX) {
        return Err(FatFormatError::BadSize {
            len,
            reason: "more than 2^32 sectors".into(),
        });
    }
    let (mut dirs, mut files) = plan(tree)?;
    let root_slots = dirs[0].slots();
    let root_entries = (root_slots.max(512)).next_multiple_of(bps / DIR_ENTRY_SIZE as u64);

    let needed = |l: &Layout| -> u64 {
        let cs = l.cluster_size();
        let fat32 = l.fat_type == FatType::Fat32;
        dirs.iter()
            .filter(|d| fat32 || !d.path.is_root())
            .map(|d| (d.slots() * DIR_ENTRY_SIZE as u64).div_ceil(cs).max(1))
            .chain(files.iter().map(|f| f.size.div_ceil(cs)))
            .sum()
    };
    let preferred = preferred_layout(total, bps, root_entries);
    let layout = match &preferred {
        Some(l) if needed(l) <= l.clusters => l.clone(),
        _ => match fallback_layouts(total, bps, root_entries)
            .into_iter()
            .find(|l| needed(l) <= l.clusters)
        {
            Some(l) => l,
            None => {
                let Some(l) =
                    preferred.or_else(|| fallback_layouts(total, bps, root_entries).pop())
                else {
                    return Err(FatFormatError::BadSize {
                        len,
                        reason: format!("too small for any FAT layout with {bps}-byte sectors"),
                    });
                };
                return Err(FatFormatError::TooSmall {
                    needed: needed(&l) * l.cluster_size(),
                    available: l.clusters * l.cluster_size(),
                    cluster_size: l.cluster_size(),
                    len,
                });
            }
        },
    };
    let fat32 = layout.fat_type == FatType::Fat32;
    let cs = layout.cluster_size();
    log::debug!(
        "FAT layout: {:?}, {} clusters of {cs} bytes, {} sectors per FAT",
        layout.fat_type,
        layout.clusters,
        layout.fat_sectors
    );

    // Directories first (the FAT32 root at cluster 2), then files, each one contiguous run.
    let mut next = 2u64;
    let mut run_ends = Vec::new();
    let mut alloc = |count: u64| -> u32 {
        let first = next;
        next += count;
        if count > 0 {
            run_ends.push(next - 1);
        }
        if count == 0 { 0 } else { first as u32 }
    };
    let dir_clusters = |d: &DirPlan| (d.slots() * DIR_ENTRY_SIZE as u64).div_ceil(cs).max(1);
    for d in dirs.iter_mut().filter(|d| fat32 || !d.path.is_root()) {
        d.first_cluster = alloc(dir_clusters(d));
    }
    for f in &mut files {
        f.first_cluster = alloc(f.size.div_ceil(cs));
    }
    let used = next - 2;

    let vol_id = volume_id(label, &layout, tree, &files);
    let boot = boot_sector(&layout, &label_raw, vol_id);

    let write_at = |dev: &mut D, off: u64, buf: &[u8], what: &str| {
        dev.seek(SeekFrom::Start(off))
            .and_then(|_| dev.write_all(buf))
            .map_err(io_err(what))
    };

    let mut reserved = vec![0u8; (layout.reserved * bps) as usize];
    if fat32 {
        let info = fs_info(&layout, used);
        reserved[bps as usize..2 * bps as usize].copy_from_slice(&info);
        reserved[7 * bps as usize..8 * bps as usize].copy_from_slice(&info);
    }
    write_at(&mut dev, 0, &reserved, "the reserved sectors")?;

    write_fats(&mut dev, &layout, &run_ends, next)?;

    if !fat32 {
        let mut root = serialize_dir(&dirs[0], &dirs, &files, &label_raw, false);
        root.resize((layout.data_offset() - layout.root_offset()) as usize, 0);
        write_at(&mut dev, layout.root_offset(), &root, "the root directory")?;
    }

    dev.seek(SeekFrom::Start(layout.data_offset()))
        .map_err(io_err("the data area"))?;
    let mut out = BufWriter::with_capacity(CHUNK, &mut dev);
    let zeros = vec![0u8; cs as usize];
    for d in dirs.iter().filter(|d| fat32 || !d.path.is_root()) {
        let mut buf = serialize_dir(d, &dirs, &files, &label_raw, fat32);
        buf.resize((dir_clusters(d) * cs) as usize, 0);
        out.write_all(&buf)
            .map_err(io_err(format!("directory {}", d.path)))?;
    }
    for f in &files {
        let mut capped = Capped {
            inner: &mut out,
            left: f.size,
        };
        let got = f
            .data
            .write_to(&mut capped)
            .map_err(io_err(format!("{} (copying it onto the drive)", f.path)))?;
        if got != f.size {
            return Err(FatFormatError::Changed {
                path: f.path.to_string(),
                expected: f.size,
                got,
            });
        }
        let pad = (cs - f.size % cs) % cs;
        out.write_all(&zeros[..pad as usize])
            .map_err(io_err(f.path.to_string()))?;
    }
    out.flush().map_err(io_err("the data area"))?;
    drop(out);

    if fat32 {
        write_at(&mut dev, 6 * bps, &boot, "the backup boot sector")?;
    }
    write_at(&mut dev, 0, &boot, "the boot sector")?;
    dev.flush().map_err(io_err("the drive"))
}

/// Both FATs, generated chunk by chunk from the run list: every used cluster `c` links to
/// `c + 1` except the last of each run, which ends its chain.
fn write_fats<D: Write + Seek>(
    dev: &mut D,
    l: &Layout,
    run_ends: &[u64],
    end: u64,
) -> Result<(), FatFormatError> {
    let fat_bytes = l.fat_sectors * l.bps;
    let mut ends = run_ends.iter().peekable();
    let mut value = |c: u64| -> u32 {
        let eoc = match l.fat_type {
            FatType::Fat12 => 0xFFF,
            FatType::Fat16 => 0xFFFF,
            FatType::Fat32 => 0x0FFF_FFFF,
        };
        match c {
            0 => eoc & !0xFF | u32::from(MEDIA),
            1 => eoc,
            c if c < end => {
                while ends.peek().is_some_and(|&&e| e < c) {
                    ends.next();
                }
                if ends.peek() == Some(&&c) {
                    eoc
                } else {
                    c as u32 + 1
                }
            }
            _ => 0,
        }
    };
    let emit = |dev: &mut D, at: u64, buf: &[u8]| -> Result<(), FatFormatError> {
        for copy in 0..2 {
            dev.seek(SeekFrom::Start(l.fat_offset(copy) + at))
                .and_then(|_| dev.write_all(buf))
                .map_err(io_err("the FAT"))?;
        }
        Ok(())
    };
    if l.fat_type == FatType::Fat12 {
        // At most 6 KiB, and its 12-bit entries straddle bytes: built whole.
        let mut buf = vec![0u8; fat_bytes as usize];
        for c in 0..end {
            let v = value(c) as u16;
            let off = (c + c / 2) as usize;
            if c & 1 == 0 {
                buf[off] = v as u8;
                buf[off + 1] = (buf[off + 1] & 0xF0) | (v >> 8) as u8;
            } else {
                buf[off] = (buf[off] & 0x0F) | ((v << 4) as u8);
                buf[off + 1] = (v >> 4) as u8;
            }
        }
        return emit(dev, 0, &buf);
    }
    let width = if l.fat_type == FatType::Fat16 { 2 } else { 4 };
    let mut at = 0u64;
    let mut c = 0u64;
    while at < fat_bytes {
        let n = (fat_bytes - at).min(CHUNK as u64) as usize;
        let mut buf = vec![0u8; n];
        for e in buf.chunks_exact_mut(width) {
            if c >= end {
                break;
            }
            let v = value(c);
            e.copy_from_slice(&v.to_le_bytes()[..width]);
            c += 1;
        }
        emit(dev, at, &buf)?;
        at += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shorts(names: &[&str]) -> Vec<(String, bool)> {
        let mut children: Vec<ChildPlan> = names
            .iter()
            .map(|n| ChildPlan {
                name: n.to_string(),
                short: [0; 11],
                lfn: (!is_plain_short(n)).then(|| n.encode_utf16().collect()),
                kind: Kind::File(0),
            })
            .collect();
        assign_short_names(&mut children);
        children
            .iter()
            .map(|c| {
                (
                    String::from_utf8(c.short.to_vec()).unwrap(),
                    c.lfn.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn short_names_follow_the_windows_rules() {
        let names = [
            "UPPER.TXT",
            "latest",
            "meta_data.json",
            "meta_data.json2",
            "LONGFILENAME.TXT",
            ".hidden",
            "a.b.c.d",
            "café.txt",
            "x.tar.gz",
            "with space",
            "UPPER~1.TXT",
            "upper.txt.x",
        ];
        let want = [
            ("UPPER   TXT", false),
            ("LATEST     ", true),
            ("META_D~1JSO", true),
            ("META_D~2JSO", true),
            ("LONGFI~1TXT", true),
            ("HIDDEN~1   ", true),
            ("ABC~1   D  ", true),
            ("CAF_~1  TXT", true),
            ("XTAR~1  GZ ", true),
            ("WITHSP~1   ", true),
            ("UPPER~1 TXT", false),
            ("UPPERT~1X  ", true),
        ];
        let got = shorts(&names);
        for ((n, g), (s, l)) in names.iter().zip(&got).zip(want) {
            assert_eq!((g.0.as_str(), g.1), (s, l), "{n}");
        }
        // Tails grow past one digit and stay unique.
        let many: Vec<String> = (0..120).map(|i| format!("samebasis-{i}.json")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let got = shorts(&refs);
        assert_eq!(got[9].0, "SAMEB~10JSO");
        assert_eq!(got[99].0, "SAME~100JSO");
        let unique: HashSet<&String> = got.iter().map(|(s, _)| s).collect();
        assert_eq!(unique.len(), got.len());
    }

    #[test]
    fn lfn_entries_end_with_nul_then_padding() {
        let units: Vec<u16> = "exactly-13-ch".encode_utf16().collect();
        let mut out = Vec::new();
        lfn_entries(&units, b"EXACTL~1   ", &mut out);
        // 13 characters fill one entry exactly: no terminator is needed or written.
        assert_eq!(out.len(), 32);
        assert_eq!(out[0], 0x41);
        let units: Vec<u16> = "fourteen-chars".encode_utf16().collect();
        let mut out = Vec::new();
        lfn_entries(&units, b"FOURTE~1   ", &mut out);
        assert_eq!(out.len(), 64);
        assert_eq!(out[0], 0x42);
        assert_eq!(&out[1..5], &[b's', 0, 0, 0]);
        assert_eq!(&out[5..7], &[0xFF, 0xFF]);
        assert_eq!(out[32], 0x01);
    }

    #[test]
    fn layouts_match_mkfs_vfat_choices() {
        // mkfs.fat 4.2's picks for these sizes (512-byte sectors): type and cluster bytes.
        for (mib, t, cs) in [
            (1u64, FatType::Fat12, 2048),
            (16, FatType::Fat16, 2048),
            (64, FatType::Fat16, 2048),
            (256, FatType::Fat16, 4096),
            (300, FatType::Fat16, 8192),
            (600, FatType::Fat32, 4096),
            (2048, FatType::Fat32, 4096),
        ] {
            let l = preferred_layout((mib << 20) / 512, 512, 512).unwrap();
            assert_eq!((l.fat_type, l.cluster_size()), (t, cs), "{mib} MiB");
        }
        // Near a type boundary the cluster count is moved away from it: mkfs.fat gives 8 MiB
        // 4081 FAT12 clusters, 3 below the limit.
        let l = preferred_layout((8 << 20) / 512, 512, 512).unwrap();
        assert!(
            l.clusters <= u64::from(FAT12_MAX_CLUSTERS - BOUNDARY_MARGIN),
            "{l:?}"
        );
    }
}
