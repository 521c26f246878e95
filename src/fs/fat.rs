//! FAT12/16/32 (with VFAT long names) read straight from a partition, without mounting.
//!
//! This is a small reader of our own rather than a wrapper of `fatfs` 0.3.6: that crate panics on
//! hostile input we cannot screen from outside (a directory entry whose first cluster is 1
//! underflows `cluster - 2` in `FileSystem::offset_from_cluster`), and its public API hides the
//! first cluster of an entry, so directory loops could only be caught by a depth limit. Owning the
//! parser lets every cluster number be range-checked before it becomes an offset, and lets the
//! walk remember which clusters already hold a directory. It never writes: `D: Write` is only
//! required so that callers can hand the same read-only `Window` type to either reader.

use super::{DriveFs, DriveFsKind, Entry, EntryKind, FsError, RelPath};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Seek, SeekFrom, Write};

const FS: &str = "vfat";

pub(crate) const DIR_ENTRY_SIZE: usize = 32;
pub(crate) const ATTR_VOLUME_ID: u8 = 0x08;
pub(crate) const ATTR_DIRECTORY: u8 = 0x10;
pub(crate) const ATTR_ARCHIVE: u8 = 0x20;
pub(crate) const ATTR_LFN: u8 = 0x0F;
/// First byte of a deleted entry.
pub(crate) const DELETED: u8 = 0xE5;
/// Characters of a long name held by one LFN entry.
pub(crate) const LFN_CHARS_PER_ENTRY: usize = 13;
/// Byte offsets of the 13 UTF-16 units inside an LFN entry.
pub(crate) const LFN_OFFSETS: [usize; 13] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// Largest cluster counts of FAT12 and FAT16 (Microsoft's rule, as Linux and dosfstools apply it).
pub(crate) const FAT12_MAX_CLUSTERS: u32 = 4084;
pub(crate) const FAT16_MAX_CLUSTERS: u32 = 65524;
/// FAT32 cluster numbers are 28 bits and 0x0FFFFFF7 upwards are markers.
pub(crate) const FAT32_MAX_CLUSTERS: u32 = 0x0FFF_FFF5;

/// Depth beyond which a tree is taken for a loop: config drives are 3 or 4 levels deep.
const MAX_DEPTH: usize = 32;
/// Cap on entries of a whole drive, so a crafted volume cannot exhaust memory.
const MAX_ENTRIES: usize = 100_000;
/// The FAT specification's limit on the entries of one directory (2 MiB of entries).
const MAX_DIR_ENTRIES: u64 = 65_536;
const COPY_BUF: usize = 64 * 1024;
/// FAT bytes read at a time; chains are mostly sequential so one cached chunk serves many lookups.
const FAT_CHUNK: u64 = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FatType {
    Fat12,
    Fat16,
    Fat32,
}

impl FatType {
    /// Bytes a FAT needs for `entries` entries (clusters plus the two reserved ones).
    pub(crate) fn fat_bytes(self, entries: u64) -> u64 {
        match self {
            FatType::Fat12 => (entries * 3).div_ceil(2),
            FatType::Fat16 => entries * 2,
            FatType::Fat32 => entries * 4,
        }
    }

    fn end_of_chain_min(self) -> u32 {
        match self {
            FatType::Fat12 => 0xFF8,
            FatType::Fat16 => 0xFFF8,
            FatType::Fat32 => 0x0FFF_FFF8,
        }
    }

    fn bad_marker(self) -> u32 {
        self.end_of_chain_min() - 1
    }
}

/// The LFN checksum of an 8.3 name, binding long-name entries to their short entry.
pub(crate) fn lfn_checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// Upper half of code page 437, Linux's default `codepage=` for short names and labels.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐\
└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{A0}";

fn cp437(b: u8) -> char {
    if b < 0x80 {
        b as char
    } else {
        CP437_HIGH
            .chars()
            .nth(usize::from(b - 0x80))
            .unwrap_or('\u{FFFD}')
    }
}

/// Where the root directory lives: a fixed region on FAT12/16, a cluster chain on FAT32.
#[derive(Clone, Copy, Debug)]
enum RootDir {
    Fixed { offset: u64, entries: u32 },
    Chain(u32),
}

/// The layout a boot sector describes, checked for consistency before any of it is used.
#[derive(Clone, Debug)]
struct Geometry {
    fat_type: FatType,
    cluster_size: u64,
    fat_offset: u64,
    fat_bytes: u64,
    root: RootDir,
    data_offset: u64,
    clusters: u32,
    volume_bytes: u64,
    bpb_label: Option<[u8; 11]>,
}

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Geometry {
    /// Checks a boot sector the way the Linux driver does before trusting it; the `Err` says
    /// which field is wrong.
    fn parse(bs: &[u8; 512]) -> Result<Geometry, String> {
        if bs[510..512] != [0x55, 0xAA] {
            return Err("no 0x55AA boot-sector signature".into());
        }
        let bps = le16(bs, 11);
        if !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
            return Err(format!(
                "bytes per sector {bps} is not 512, 1024, 2048 or 4096"
            ));
        }
        let spc = u32::from(bs[13]);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(format!("sectors per cluster {spc} is not a power of two"));
        }
        let reserved = le16(bs, 14);
        if reserved == 0 {
            return Err("no reserved sectors".into());
        }
        let fats = u32::from(bs[16]);
        if !(1..=2).contains(&fats) {
            return Err(format!("{fats} FATs (expected 1 or 2)"));
        }
        let media = bs[21];
        if media != 0xF0 && media < 0xF8 {
            return Err(format!("media byte {media:#04x} is not a FAT media type"));
        }
        let root_entries = le16(bs, 17);
        let total16 = le16(bs, 19);
        let fat16_size = le16(bs, 22);
        let total32 = le32(bs, 32);
        // Like Linux, FAT32 is told by its 16-bit FAT size being zero, FAT12/16 by cluster count.
        let fat32 = fat16_size == 0;
        let fat_sectors = if fat32 { le32(bs, 36) } else { fat16_size };
        if fat_sectors == 0 {
            return Err("FAT size is zero".into());
        }
        let total = if total16 != 0 { total16 } else { total32 };
        if total == 0 {
            return Err("total sector count is zero".into());
        }
        if fat32 && root_entries != 0 {
            return Err("FAT32 boot sector with a fixed root directory".into());
        }
        if !fat32 && root_entries == 0 {
            return Err("FAT12/16 boot sector with no root directory entries".into());
        }
        let (bps, spc, reserved, fats, fat_sectors, total) = (
            u64::from(bps),
            u64::from(spc),
            u64::from(reserved),
            u64::from(fats),
            u64::from(fat_sectors),
            u64::from(total),
        );
        let root_sectors = (u64::from(root_entries) * DIR_ENTRY_SIZE as u64).div_ceil(bps);
        let meta = reserved + fats * fat_sectors + root_sectors;
        if meta >= total {
            return Err(format!(
                "{meta} sectors of boot sector, FATs and root directory leave no room for data in {total} sectors"
            ));
        }
        let clusters64 = (total - meta) / spc;
        if clusters64 == 0 {
            return Err("no data clusters".into());
        }
        let fat_type = if fat32 {
            FatType::Fat32
        } else if clusters64 <= u64::from(FAT12_MAX_CLUSTERS) {
            FatType::Fat12
        } else if clusters64 <= u64::from(FAT16_MAX_CLUSTERS) {
            FatType::Fat16
        } else {
            return Err(format!("{clusters64} clusters is too many for FAT16"));
        };
        if clusters64 > u64::from(FAT32_MAX_CLUSTERS) {
            return Err(format!("{clusters64} clusters is too many for FAT32"));
        }
        let clusters = clusters64 as u32;
        let fat_bytes = fat_sectors * bps;
        if fat_type.fat_bytes(clusters64 + 2) > fat_bytes {
            return Err(format!(
                "a {fat_bytes}-byte FAT cannot map {clusters} clusters"
            ));
        }
        let fat_offset = reserved * bps;
        let root = if fat32 {
            let c = le32(bs, 44) & 0x0FFF_FFFF;
            if c < 2 || c >= clusters + 2 {
                return Err(format!("root directory cluster {c} is outside the volume"));
            }
            RootDir::Chain(c)
        } else {
            RootDir::Fixed {
                offset: fat_offset + fats * fat_bytes,
                entries: root_entries,
            }
        };
        let sig_at = if fat32 { 66 } else { 38 };
        let bpb_label = (bs[sig_at] == 0x29).then(|| {
            let mut l = [0u8; 11];
            l.copy_from_slice(&bs[sig_at + 5..sig_at + 16]);
            l
        });
        Ok(Geometry {
            fat_type,
            cluster_size: bps * spc,
            fat_offset,
            fat_bytes,
            root,
            data_offset: meta * bps,
            clusters,
            volume_bytes: total * bps,
            bpb_label,
        })
    }

    fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + u64::from(c - 2) * self.cluster_size
    }

    fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c - 2 < self.clusters
    }

    fn data_bytes(&self) -> u64 {
        u64::from(self.clusters) * self.cluster_size
    }
}

/// What the FAT says follows a cluster.
enum Next {
    Cluster(u32),
    End,
    Broken(String),
}

/// One child of a directory, as read from its entries.
#[derive(Clone, Debug)]
struct Child {
    name: String,
    dir: bool,
    cluster: u32,
    size: u32,
}

/// State of one `entries()` walk.
#[derive(Default)]
struct Walk {
    out: Vec<Entry>,
    /// Clusters of every directory read so far: seeing one again means a loop.
    visited: HashSet<u32>,
    /// Clusters the files listed so far need.
    claimed: u64,
}

/// The reading machinery, over any `Read + Seek` (the probe only has that).
struct Volume<R> {
    dev: R,
    geo: Geometry,
    fat_cache: Option<(u64, Vec<u8>)>,
    /// Listings by first cluster, so copying many files does not re-read their directories.
    dir_cache: HashMap<Option<u32>, Vec<Child>>,
}

/// Directories whose listings `copy_file` keeps (a config drive has about a dozen).
const DIR_CACHE: usize = 256;

fn io_err(what: impl Into<String>, source: io::Error) -> FsError {
    FsError::Io {
        fs: FS,
        what: what.into(),
        source,
    }
}

fn corrupt(detail: impl Into<String>) -> FsError {
    FsError::Corrupt {
        fs: FS,
        detail: detail.into(),
    }
}

fn hostile(path: impl Into<String>, reason: impl Into<String>) -> FsError {
    FsError::Hostile {
        fs: FS,
        path: path.into(),
        reason: reason.into(),
    }
}

/// `dir/name` for error messages, also when `name` itself is what is wrong.
fn child_display(dir: &RelPath, name: &str) -> String {
    if dir.is_root() {
        name.to_string()
    } else {
        format!("{}/{}", dir.as_str(), name)
    }
}

fn dir_display(dir: &RelPath) -> String {
    if dir.is_root() {
        "/".into()
    } else {
        dir.as_str().to_string()
    }
}

impl<R: Read + Seek> Volume<R> {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.dev.seek(SeekFrom::Start(offset))?;
        self.dev.read_exact(buf)
    }

    fn fat_byte(&mut self, off: u64) -> io::Result<u8> {
        let chunk = off / FAT_CHUNK;
        if self.fat_cache.as_ref().is_none_or(|(c, _)| *c != chunk) {
            let start = chunk * FAT_CHUNK;
            let len = FAT_CHUNK.min(self.geo.fat_bytes - start);
            let mut buf = vec![0u8; len as usize];
            self.read_at(self.geo.fat_offset + start, &mut buf)?;
            self.fat_cache = Some((chunk, buf));
        }
        let (_, buf) = self.fat_cache.as_ref().expect("filled above");
        Ok(buf[(off % FAT_CHUNK) as usize])
    }

    /// Only called with a cluster already checked by `valid_cluster`, so the entry lies inside
    /// the FAT (`Geometry::parse` checked the FAT covers every cluster).
    fn next(&mut self, c: u32) -> Result<Next, FsError> {
        let geo_type = self.geo.fat_type;
        let raw = (|| -> io::Result<u32> {
            Ok(match geo_type {
                FatType::Fat12 => {
                    let off = u64::from(c) + u64::from(c / 2);
                    let v =
                        u32::from(self.fat_byte(off)?) | u32::from(self.fat_byte(off + 1)?) << 8;
                    if c & 1 == 1 { v >> 4 } else { v & 0xFFF }
                }
                FatType::Fat16 => {
                    let off = u64::from(c) * 2;
                    u32::from(self.fat_byte(off)?) | u32::from(self.fat_byte(off + 1)?) << 8
                }
                FatType::Fat32 => {
                    let off = u64::from(c) * 4;
                    let mut v = 0u32;
                    for i in 0..4 {
                        v |= u32::from(self.fat_byte(off + i)?) << (8 * i);
                    }
                    v & 0x0FFF_FFFF
                }
            })
        })()
        .map_err(|e| io_err(format!("the FAT entry of cluster {c}"), e))?;
        Ok(if raw >= geo_type.end_of_chain_min() {
            Next::End
        } else if raw == geo_type.bad_marker() {
            Next::Broken(format!("cluster {c} is marked bad"))
        } else if raw == 0 {
            Next::Broken(format!("cluster {c} of the chain is marked free"))
        } else if !self.geo.valid_cluster(raw) {
            Next::Broken(format!(
                "cluster {c} links to cluster {raw}, outside the volume's {} clusters",
                self.geo.clusters
            ))
        } else {
            Next::Cluster(raw)
        })
    }

    /// Reads a directory's entries up to its end marker. Every cluster is recorded in
    /// `visited`: a cluster seen before means the tree loops back on itself.
    fn read_dir(
        &mut self,
        first: Option<u32>,
        path: &RelPath,
        visited: &mut HashSet<u32>,
    ) -> Result<Vec<u8>, FsError> {
        let Some(first) = first else {
            let RootDir::Fixed { offset, entries } = self.geo.root else {
                return Err(hostile(
                    dir_display(path),
                    "directory at cluster 0 on FAT32",
                ));
            };
            let mut buf = vec![0u8; entries as usize * DIR_ENTRY_SIZE];
            self.read_at(offset, &mut buf)
                .map_err(|e| io_err("the root directory", e))?;
            return Ok(buf);
        };
        let cs = self.geo.cluster_size as usize;
        let max_clusters = (MAX_DIR_ENTRIES * DIR_ENTRY_SIZE as u64).div_ceil(cs as u64);
        let mut buf = Vec::new();
        let mut c = first;
        loop {
            if !self.geo.valid_cluster(c) {
                return Err(hostile(
                    dir_display(path),
                    format!("directory cluster {c} is outside the volume"),
                ));
            }
            if !visited.insert(c) {
                return Err(hostile(
                    dir_display(path),
                    format!(
                        "directory loop: cluster {c} already belongs to a directory read before"
                    ),
                ));
            }
            if buf.len() as u64 >= max_clusters * cs as u64 {
                return Err(corrupt(format!(
                    "{}: directory is longer than the 65536 entries FAT allows",
                    dir_display(path)
                )));
            }
            let start = buf.len();
            buf.resize(start + cs, 0);
            let off = self.geo.cluster_offset(c);
            self.read_at(off, &mut buf[start..])
                .map_err(|e| io_err(format!("directory {}", dir_display(path)), e))?;
            if buf[start..].chunks(DIR_ENTRY_SIZE).any(|e| e[0] == 0) {
                return Ok(buf);
            }
            match self.next(c)? {
                Next::Cluster(n) => c = n,
                Next::End => return Ok(buf),
                Next::Broken(why) => {
                    return Err(corrupt(format!("directory {}: {why}", dir_display(path))));
                }
            }
        }
    }

    /// A directory's children (dot entries, labels and deleted entries left out), sorted by
    /// name, every name validated.
    fn list(
        &mut self,
        first: Option<u32>,
        path: &RelPath,
        visited: &mut HashSet<u32>,
    ) -> Result<Vec<Child>, FsError> {
        let buf = self.read_dir(first, path, visited)?;
        let mut children = parse_dir(
            &buf,
            self.geo.fat_type,
            first.is_none_or(|c| Some(c) == self.root_cluster()),
            path,
        )?;
        children.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = children.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(hostile(
                child_display(path, &w[0].name),
                "two entries of the directory have this name",
            ));
        }
        Ok(children)
    }

    fn root_cluster(&self) -> Option<u32> {
        match self.geo.root {
            RootDir::Chain(c) => Some(c),
            RootDir::Fixed { .. } => None,
        }
    }

    /// The label as `blkid` reports it: the root directory's volume-label entry, else the BPB's.
    fn label(&mut self) -> Result<String, FsError> {
        let root = self.root_cluster();
        let mut visited = HashSet::new();
        let from_root = match self.read_dir(root, &RelPath::root(), &mut visited) {
            Ok(buf) => find_label(&buf),
            Err(e @ FsError::Io { .. }) => return Err(e),
            Err(_) => None,
        };
        Ok(from_root
            .or(self.geo.bpb_label)
            .map(|raw| decode_label(&raw))
            .unwrap_or_default())
    }

    /// Checks a file's size against the volume and its cluster chain, without reading data.
    fn check_file(&mut self, path: &str, c: &Child) -> Result<(), FsError> {
        self.file_runs(path, c, |_, _, _| Ok(()))
    }

    /// Walks a file's chain as runs of contiguous clusters, handing `(offset, bytes)` of each to
    /// `f`, and fails when the chain is shorter than the size or leaves the volume.
    fn file_runs(
        &mut self,
        path: &str,
        c: &Child,
        mut f: impl FnMut(&mut Self, u64, u64) -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let size = u64::from(c.size);
        if size > self.geo.data_bytes() {
            return Err(corrupt(format!(
                "{path}: size {size} bytes is more than the volume's {} bytes of data area",
                self.geo.data_bytes()
            )));
        }
        if size == 0 {
            return Ok(());
        }
        let cs = self.geo.cluster_size;
        let short = |have: u64| {
            corrupt(format!(
                "{path}: size is {size} bytes but its cluster chain holds only {have}"
            ))
        };
        if c.cluster == 0 {
            return Err(short(0));
        }
        if !self.geo.valid_cluster(c.cluster) {
            return Err(hostile(
                path,
                format!("first cluster {} is outside the volume", c.cluster),
            ));
        }
        let mut done = 0u64;
        let (mut run_start, mut run_len, mut cur) = (c.cluster, 1u64, c.cluster);
        loop {
            let covered = run_len * cs;
            if done + covered >= size {
                return f(self, self.geo.cluster_offset(run_start), size - done);
            }
            match self.next(cur)? {
                Next::Cluster(n) if n == cur + 1 => {
                    run_len += 1;
                    cur = n;
                }
                Next::Cluster(n) => {
                    f(self, self.geo.cluster_offset(run_start), covered)?;
                    done += covered;
                    (run_start, run_len, cur) = (n, 1, n);
                }
                Next::End => return Err(short(done + covered)),
                Next::Broken(why) => return Err(hostile(path, why)),
            }
        }
    }

    fn walk(
        &mut self,
        first: Option<u32>,
        path: &RelPath,
        depth: usize,
        w: &mut Walk,
    ) -> Result<(), FsError> {
        if depth > MAX_DEPTH {
            return Err(hostile(
                dir_display(path),
                format!("directories nested deeper than {MAX_DEPTH} levels (a loop?)"),
            ));
        }
        for child in self.list(first, path, &mut w.visited)? {
            if w.out.len() >= MAX_ENTRIES {
                return Err(corrupt(format!(
                    "more than {MAX_ENTRIES} entries: not a config drive"
                )));
            }
            let child_path = path
                .join(&child.name)
                .map_err(|why| hostile(child_display(path, &child.name), why))?;
            if child.dir {
                if child.cluster == 0 || Some(child.cluster) == self.root_cluster() {
                    return Err(hostile(
                        child_path.as_str(),
                        "directory loop: it points back at the root directory",
                    ));
                }
                w.out.push(Entry {
                    path: child_path.clone(),
                    kind: EntryKind::Dir,
                });
                self.walk(Some(child.cluster), &child_path, depth + 1, w)?;
            } else {
                // Files cannot share clusters, so together they claim at most the volume: this
                // also bounds the chain walking a crafted volume of cross-linked files can cause.
                w.claimed += u64::from(child.size).div_ceil(self.geo.cluster_size);
                if w.claimed > u64::from(self.geo.clusters) {
                    return Err(corrupt(format!(
                        "{child_path}: files up to here claim more than the volume's {} clusters",
                        self.geo.clusters
                    )));
                }
                self.check_file(child_path.as_str(), &child)?;
                w.out.push(Entry {
                    path: child_path,
                    kind: EntryKind::File {
                        size: u64::from(child.size),
                    },
                });
            }
        }
        Ok(())
    }

    /// Finds `path`, matching each name exactly or else case-insensitively as FAT does.
    fn lookup(&mut self, path: &RelPath) -> Result<Child, FsError> {
        let not_found = || FsError::NotFound {
            fs: FS,
            path: path.to_string(),
        };
        let mut dir = self.root_cluster();
        let mut dir_path = RelPath::root();
        let mut comps = path.components().peekable();
        while let Some(name) = comps.next() {
            if !self.dir_cache.contains_key(&dir) {
                let children = self.list(dir, &dir_path, &mut HashSet::new())?;
                if self.dir_cache.len() >= DIR_CACHE {
                    self.dir_cache.clear();
                }
                self.dir_cache.insert(dir, children);
            }
            let children = &self.dir_cache[&dir];
            let child = children
                .binary_search_by(|c| c.name.as_str().cmp(name))
                .ok()
                .map(|i| &children[i])
                .or_else(|| {
                    let lower = name.to_lowercase();
                    let mut m = children.iter().filter(|c| c.name.to_lowercase() == lower);
                    let first = m.next();
                    if m.next().is_some() { None } else { first }
                })
                .ok_or_else(not_found)?
                .clone();
            dir_path = dir_path
                .join(&child.name)
                .map_err(|why| hostile(child_display(&dir_path, &child.name), why))?;
            if comps.peek().is_none() {
                return if child.dir {
                    Err(not_found())
                } else {
                    Ok(child)
                };
            }
            if !child.dir {
                return Err(not_found());
            }
            if child.cluster == 0 || Some(child.cluster) == self.root_cluster() {
                return Err(hostile(
                    dir_path.as_str(),
                    "directory loop: it points back at the root directory",
                ));
            }
            dir = Some(child.cluster);
        }
        Err(not_found())
    }
}

/// The first volume-label entry of a root directory, whatever else the directory holds.
fn find_label(buf: &[u8]) -> Option<[u8; 11]> {
    buf.chunks_exact(DIR_ENTRY_SIZE)
        .take_while(|e| e[0] != 0)
        .find(|e| {
            e[0] != DELETED
                && e[11] & 0x3F != ATTR_LFN
                && e[11] & (ATTR_VOLUME_ID | ATTR_DIRECTORY) == ATTR_VOLUME_ID
        })
        .map(|e| e[..11].try_into().expect("11 bytes"))
}

fn decode_label(raw: &[u8; 11]) -> String {
    let s: String = raw.iter().map(|&b| cp437(b)).collect();
    let s = s.trim_end_matches(' ');
    if s == "NO NAME" {
        String::new()
    } else {
        s.to_string()
    }
}

/// The 8.3 name as Linux shows it: trailing spaces dropped, the NT lower-case flags honoured.
fn short_name(e: &[u8]) -> String {
    let mut raw = [0u8; 11];
    raw.copy_from_slice(&e[..11]);
    if raw[0] == 0x05 {
        raw[0] = DELETED;
    }
    let part = |bytes: &[u8], lower: bool| -> String {
        let end = bytes.iter().rposition(|&b| b != b' ').map_or(0, |p| p + 1);
        bytes[..end]
            .iter()
            .map(|&b| {
                let ch = cp437(b);
                if lower { ch.to_ascii_lowercase() } else { ch }
            })
            .collect()
    };
    let base = part(&raw[..8], e[12] & 0x08 != 0);
    let ext = part(&raw[8..], e[12] & 0x10 != 0);
    if ext.is_empty() {
        base
    } else {
        format!("{base}.{ext}")
    }
}

/// Gathers a long name from LFN entries; only a complete, in-order run whose checksum matches
/// the short entry that follows is used (anything else is ignored as Linux does).
#[derive(Default)]
struct LongName {
    units: Vec<u16>,
    checksum: u8,
    expect: u8,
    active: bool,
}

impl LongName {
    fn take(&mut self, e: &[u8]) {
        let ord = e[0];
        let seq = ord & 0x1F;
        if ord & 0x40 != 0 {
            self.active = (1..=20).contains(&seq);
            if !self.active {
                return;
            }
            self.units = vec![0xFFFF; usize::from(seq) * LFN_CHARS_PER_ENTRY];
            self.checksum = e[13];
            self.expect = seq;
        } else if !(self.active && seq == self.expect && seq != 0 && e[13] == self.checksum) {
            self.active = false;
            return;
        }
        let base = usize::from(seq - 1) * LFN_CHARS_PER_ENTRY;
        for (i, &o) in LFN_OFFSETS.iter().enumerate() {
            self.units[base + i] = u16::from_le_bytes([e[o], e[o + 1]]);
        }
        self.expect = seq - 1;
    }

    fn finish(&mut self, short: &[u8; 11]) -> Option<Vec<u16>> {
        let done = self.active && self.expect == 0 && self.checksum == lfn_checksum(short);
        self.active = false;
        if !done {
            return None;
        }
        let end = self
            .units
            .iter()
            .position(|&u| u == 0)
            .unwrap_or(self.units.len());
        (end > 0).then(|| self.units[..end].to_vec())
    }
}

/// Parses raw directory entries into children; `.` and `..` are expected only outside the root.
fn parse_dir(
    buf: &[u8],
    fat_type: FatType,
    is_root: bool,
    path: &RelPath,
) -> Result<Vec<Child>, FsError> {
    let mut children = Vec::new();
    let mut lfn = LongName::default();
    let (mut seen_dot, mut seen_dotdot) = (false, false);
    for e in buf.chunks_exact(DIR_ENTRY_SIZE) {
        if e[0] == 0 {
            break;
        }
        if e[0] == DELETED {
            lfn.active = false;
            continue;
        }
        let attr = e[11];
        if attr & 0x3F == ATTR_LFN {
            lfn.take(e);
            continue;
        }
        let mut raw = [0u8; 11];
        raw.copy_from_slice(&e[..11]);
        let long = lfn.finish(&raw);
        if attr & ATTR_VOLUME_ID != 0 {
            continue;
        }
        let dir = attr & ATTR_DIRECTORY != 0;
        if !is_root && long.is_none() && dir {
            // The usual `.` and `..` of a subdirectory, at most once each.
            if &raw == b".          " && !seen_dot {
                seen_dot = true;
                continue;
            }
            if &raw == b"..         " && !seen_dotdot {
                seen_dotdot = true;
                continue;
            }
        }
        let name = match long {
            Some(units) => String::from_utf16(&units).map_err(|_| {
                hostile(
                    child_display(path, &String::from_utf16_lossy(&units)),
                    "long file name is not valid UTF-16",
                )
            })?,
            None => short_name(e),
        };
        RelPath::check_component(&name).map_err(|why| hostile(child_display(path, &name), why))?;
        let hi = if fat_type == FatType::Fat32 {
            le16(e, 20)
        } else {
            0
        };
        children.push(Child {
            name,
            dir,
            cluster: hi << 16 | le16(e, 26),
            size: if dir { 0 } else { le32(e, 28) },
        });
    }
    Ok(children)
}

fn read_boot<R: Read + Seek>(dev: &mut R) -> io::Result<Option<[u8; 512]>> {
    dev.seek(SeekFrom::Start(0))?;
    let mut bs = [0u8; 512];
    match dev.read_exact(&mut bs) {
        Ok(()) => Ok(Some(bs)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Cheap probe for discovery: `Ok(Some(label))` when the device starts with a consistent FAT
/// boot sector, `Ok(None)` otherwise, `Err` only on an I/O error. The label is the root
/// directory's volume-label entry when there is one (what `mlabel`, `mkfs.vfat -n` and `blkid`
/// use), else the boot sector's; trailing spaces trimmed; `NO NAME` gives `""`.
///
/// A volume longer than the device still probes as FAT (its label is usually readable), so that
/// `Fat::open` can then refuse it with a clear "truncated" error instead of discovery missing it.
pub fn probe_label<D: Read + Seek>(dev: &mut D) -> io::Result<Option<String>> {
    let Some(bs) = read_boot(dev)? else {
        return Ok(None);
    };
    let geo = match Geometry::parse(&bs) {
        Ok(g) => g,
        Err(why) => {
            log::debug!("not FAT: {why}");
            return Ok(None);
        }
    };
    let mut vol = Volume {
        dev,
        geo,
        fat_cache: None,
        dir_cache: HashMap::new(),
    };
    match vol.label() {
        Ok(l) => Ok(Some(l)),
        Err(FsError::Io { source, .. }) if source.kind() == io::ErrorKind::UnexpectedEof => {
            Ok(Some(
                vol.geo
                    .bpb_label
                    .map(|l| decode_label(&l))
                    .unwrap_or_default(),
            ))
        }
        Err(FsError::Io { source, .. }) => Err(source),
        Err(e) => {
            log::debug!("FAT root directory unreadable for its label: {e}");
            Ok(Some(
                vol.geo
                    .bpb_label
                    .map(|l| decode_label(&l))
                    .unwrap_or_default(),
            ))
        }
    }
}

/// A FAT volume opened read-only on a partition window.
pub struct Fat<D: Read + Write + Seek> {
    vol: Volume<D>,
    label: String,
    /// `copy_file`'s buffer, kept: a fresh zeroed 64 KiB per file cost more than the copying on
    /// a drive of many small files.
    copy_buf: Vec<u8>,
}

impl<D: Read + Write + Seek> Fat<D> {
    /// Checks the boot sector and that the whole volume lies inside `dev`, and reads the label.
    pub fn open(mut dev: D) -> Result<Self, FsError> {
        let len = dev
            .seek(SeekFrom::End(0))
            .map_err(|e| io_err("the partition size", e))?;
        let bs = read_boot(&mut dev)
            .map_err(|e| io_err("the boot sector", e))?
            .ok_or_else(|| {
                corrupt(format!(
                    "partition of {len} bytes is too short for a boot sector"
                ))
            })?;
        let geo = Geometry::parse(&bs).map_err(|why| corrupt(format!("boot sector: {why}")))?;
        if geo.volume_bytes > len {
            return Err(corrupt(format!(
                "truncated volume: the boot sector describes {} bytes but the partition holds only {len}",
                geo.volume_bytes
            )));
        }
        log::debug!(
            "vfat: {:?}, {} clusters of {} bytes",
            geo.fat_type,
            geo.clusters,
            geo.cluster_size
        );
        let mut vol = Volume {
            dev,
            geo,
            fat_cache: None,
            dir_cache: HashMap::new(),
        };
        let label = vol.label()?;
        Ok(Fat {
            vol,
            label,
            copy_buf: Vec::new(),
        })
    }
}

impl<D: Read + Write + Seek> DriveFs for Fat<D> {
    fn kind(&self) -> DriveFsKind {
        DriveFsKind::Vfat
    }

    fn label(&self) -> &str {
        &self.label
    }

    fn entries(&mut self) -> Result<Vec<Entry>, FsError> {
        let mut w = Walk::default();
        let root = self.vol.root_cluster();
        self.vol.walk(root, &RelPath::root(), 0, &mut w)?;
        Ok(w.out)
    }

    fn copy_file(&mut self, path: &RelPath, out: &mut dyn Write) -> Result<u64, FsError> {
        let child = self.vol.lookup(path)?;
        let mut buf = std::mem::take(&mut self.copy_buf);
        buf.resize(COPY_BUF, 0);
        let mut written = 0u64;
        let name = path.as_str();
        let copied = self.vol.file_runs(name, &child, |vol, mut off, mut len| {
            while len > 0 {
                let n = len.min(COPY_BUF as u64) as usize;
                vol.read_at(off, &mut buf[..n])
                    .map_err(|e| io_err(name, e))?;
                out.write_all(&buf[..n])
                    .map_err(|e| io_err(format!("{name} (writing the copy)"), e))?;
                off += n as u64;
                len -= n as u64;
                written += n as u64;
            }
            Ok(())
        });
        self.copy_buf = buf;
        copied?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp437_table_is_complete() {
        assert_eq!(CP437_HIGH.chars().count(), 128);
        assert_eq!(cp437(0x80), 'Ç');
        assert_eq!(cp437(0xE1), 'ß');
        assert_eq!(cp437(0xFF), '\u{A0}');
    }

    #[test]
    fn labels_are_trimmed_and_no_name_is_empty() {
        assert_eq!(decode_label(b"CONFIG-2   "), "CONFIG-2");
        assert_eq!(decode_label(b"config-2   "), "config-2");
        assert_eq!(decode_label(b"NO NAME    "), "");
    }
}
