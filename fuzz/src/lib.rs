//! What the fuzz targets share: a disk image type whose unstored tail reads as zeros, and the
//! checks run on every partition table and every drive a reader accepts.
//!
//! A panic anywhere here is a finding: either a reader panicked on hostile input, or one of the
//! documented properties asserted below (the planner's promises, a written table reading back,
//! a file streaming the size it was listed with) does not hold.

use std::collections::HashSet;
use std::io::{self, Read, Seek, SeekFrom, Write};

use seedpart::configdrive::ConfigDrive;
use seedpart::disk::{self, Partition, Table, TableKind, gpt::Gpt, mbr::Mbr};
use seedpart::fs::{DriveFs, EntryKind};
use seedpart::plan::{ALIGN_BYTES, GrowPlan, plan_growth};

/// Largest image a target makes of its input (by zero-extending it): Ironic's config partition
/// is at most 64 MiB, and streaming more than that per run only slows the fuzzer down.
pub const MAX_VIRTUAL: u64 = 64 << 20;

/// A read-only image of `len` bytes: `head` zero bytes, then `data`, then zeros up to `len`.
/// Lets a corpus entry hold only the bytes that matter (an ISO without its empty 32 KiB system
/// area, a FAT volume without its empty data clusters) while the reader sees a whole volume.
#[derive(Clone, Debug)]
pub struct ZeroTail<'a> {
    head: u64,
    data: &'a [u8],
    len: u64,
    pos: u64,
}

impl<'a> ZeroTail<'a> {
    pub fn new(head: u64, data: &'a [u8], len: u64) -> Self {
        ZeroTail {
            head,
            data,
            len: len.max(head + data.len() as u64),
            pos: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for ZeroTail<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len {
            return Ok(0);
        }
        let n = buf
            .len()
            .min((self.len - self.pos).min(usize::MAX as u64) as usize);
        let out = &mut buf[..n];
        out.fill(0);
        let data_start = self.head;
        let data_end = self.head + self.data.len() as u64;
        let (from, to) = (
            self.pos.max(data_start),
            (self.pos + n as u64).min(data_end),
        );
        if from < to {
            let src = &self.data[(from - data_start) as usize..(to - data_start) as usize];
            out[(from - self.pos) as usize..(to - self.pos) as usize].copy_from_slice(src);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ZeroTail<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (base, off) = match pos {
            SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            SeekFrom::End(o) => (self.len, o),
            SeekFrom::Current(o) => (self.pos, o),
        };
        match base.checked_add_signed(off) {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start or past u64",
            )),
        }
    }
}

/// A sink that counts what is written to it.
#[derive(Default)]
pub struct Count(pub u64);

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A whole disk built from a fuzz input, so that a small input can stand for a large disk:
///
/// `gap: u32 LE (4 KiB units) | tail_kib: u8 | data` is the disk `data[..n - tail] ++ gap zero
/// bytes ++ data[n - tail..]` with `tail = min(tail_kib KiB, n)`. A gap with no tail is an image
/// written to a larger disk (the GPT backup header short of the end); a gap before the tail is a
/// disk whose backup header is at its end with free space before it. Inputs shorter than the
/// 5-byte prefix are the disk as they are.
///
/// Writes are kept in memory over the input, and a write past the disk's end fails as it would
/// on a block device.
#[derive(Clone, Debug)]
pub struct Disk<'a> {
    head: &'a [u8],
    gap: u64,
    tail: &'a [u8],
    writes: Vec<(u64, Vec<u8>)>,
    pos: u64,
}

impl<'a> Disk<'a> {
    pub fn from_input(data: &'a [u8]) -> Self {
        let (head, gap, tail): (&[u8], u64, &[u8]) = if data.len() < 5 {
            (data, 0, &[])
        } else {
            let gap = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]])) * 4096;
            let rest = &data[5..];
            let tail = (usize::from(data[4]) * 1024).min(rest.len());
            let (h, t) = rest.split_at(rest.len() - tail);
            (h, gap, t)
        };
        Disk {
            head,
            gap,
            tail,
            writes: Vec::new(),
            pos: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.head.len() as u64 + self.gap + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites bytes of the disk (kept in memory like a write, without the size check).
    pub fn poke(&mut self, off: u64, bytes: &[u8]) {
        self.writes.push((off, bytes.to_vec()));
    }

    /// The disk's bytes `[off, off + buf.len())`, zeros past its end.
    pub fn read_into(&self, off: u64, buf: &mut [u8]) {
        buf.fill(0);
        let tail_at = self.head.len() as u64 + self.gap;
        for (at, bytes) in [(0, self.head), (tail_at, self.tail)]
            .into_iter()
            .chain(self.writes.iter().map(|(a, b)| (*a, &b[..])))
        {
            let from = off.max(at);
            let to = (off + buf.len() as u64).min(at + bytes.len() as u64);
            if from < to {
                buf[(from - off) as usize..(to - off) as usize]
                    .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
            }
        }
    }
}

impl Read for Disk<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.len().saturating_sub(self.pos).min(1 << 20) as usize);
        self.read_into(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Disk<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos.saturating_add(buf.len() as u64) > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "write of {} bytes at {} past the disk's end ({})",
                    buf.len(),
                    self.pos,
                    self.len()
                ),
            ));
        }
        self.writes.push((self.pos, buf.to_vec()));
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Disk<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (base, off) = match pos {
            SeekFrom::Start(p) => (p, 0),
            SeekFrom::End(o) => (self.len(), o),
            SeekFrom::Current(o) => (self.pos, o),
        };
        let p = base
            .checked_add_signed(off)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "invalid seek"))?;
        self.pos = p;
        Ok(p)
    }
}

impl disk::Device for Disk<'_> {
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Every sector-size choice `read_table` knows (probe, 512, 4096), plus one it must refuse.
pub const SECTOR_SIZES: [Option<u64>; 4] = [None, Some(512), Some(4096), Some(1024)];

/// Reads the table of `image` with every sector-size choice, and checks each table read.
pub fn read_tables(image: &Disk) {
    for ss in SECTOR_SIZES {
        let res = disk::read_table(&mut image.clone(), ss);
        if ss == Some(1024) {
            assert!(res.is_err(), "a 1024-byte sector size was accepted");
            continue;
        }
        if let Ok(t) = res {
            if let Some(want) = ss {
                assert_eq!(t.sector_size, want);
            }
            check_table(&t, image.len());
        }
    }
}

/// Roots (and deletions) planned per table; a GPT may hold 4096 partitions and the planner is
/// linear in them, so all pairs of a huge table would only make the fuzzer time out.
const MAX_PLANNED: usize = 24;

/// Checks a table as read: its own consistency, and every growth plan the planner makes on it.
pub fn check_table(t: &Table, image_len: u64) {
    assert!(t.sector_size == 512 || t.sector_size == 4096);
    assert_eq!(t.disk_sectors, image_len / t.sector_size);
    for p in &t.partitions {
        let _ = (
            p.name(),
            p.mbr_type(),
            p.is_extended(),
            p.is_logical(),
            &p.uuid,
        );
        assert!(p.sectors > 0, "partition {} is empty: {p:?}", p.number);
        assert!(
            p.end() <= t.disk_sectors,
            "partition {} ends past the disk ({} sectors): {p:?}",
            p.number,
            t.disk_sectors
        );
        assert_eq!(t.get(p.number).map(|q| q.start), Some(p.start));
        let _ = t.bytes(p.sectors);
    }
    let _ = t.data_partitions().count();
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    for &root in numbers.iter().take(MAX_PLANNED) {
        for delete in
            std::iter::once(None).chain(numbers.iter().take(MAX_PLANNED).map(|&d| Some(d)))
        {
            if let Some(plan) = plan_growth(t, root, delete) {
                check_plan(t, &plan, delete);
            }
        }
        // A partition number that does not exist must give no plan (and not panic).
        assert!(plan_growth(t, root, Some(0)).is_some() == plan_growth(t, root, None).is_some());
    }
    assert!(plan_growth(t, 0, None).is_none());
    assert!(plan_growth(t, u32::MAX, Some(u32::MAX)).is_none());
}

/// What `plan_growth` promises (src/plan.rs): the root keeps its start, gains at least one
/// aligned MiB, ends aligned, and grows only into space that no remaining partition (or EBR)
/// holds and that the table can address.
pub fn check_plan(t: &Table, plan: &GrowPlan, delete: Option<u32>) {
    let r = t
        .get(plan.number)
        .expect("a plan for a partition that is not in the table");
    assert!(!r.is_extended());
    assert_eq!(plan.start, r.start);
    assert_eq!(plan.old_sectors, r.sectors);
    let align = (ALIGN_BYTES / t.sector_size).max(1);
    let new_end = plan.start + plan.new_sectors;
    assert!(
        new_end >= r.end() + align,
        "plan gains less than one aligned MiB: {plan:?}"
    );
    assert_eq!(new_end % align, 0, "unaligned end: {plan:?}");
    assert!(
        new_end <= t.grow_limit + 1,
        "plan grows past the grow limit {}: {plan:?}",
        t.grow_limit
    );
    if t.kind == TableKind::Mbr {
        assert!(new_end <= 1 << 32, "MBR plan past 2^32 sectors: {plan:?}");
    }
    let container = |p: &Partition| p.is_extended() && p.start <= r.start && r.end() <= p.end();
    for p in &t.partitions {
        if p.number == plan.number || Some(p.number) == delete || (r.is_logical() && container(p)) {
            continue;
        }
        // The grown range must hold no sector of a partition that stays, nor its EBR.
        assert!(
            p.end() <= plan.start || p.start >= new_end,
            "plan {plan:?} (delete {delete:?}) grows root over partition {p:?}"
        );
        if let Some(ebr) = p.ebr {
            assert!(
                !(plan.start..new_end).contains(&ebr),
                "plan {plan:?} (delete {delete:?}) grows root over the EBR of {p:?}"
            );
        }
    }
    match plan.grow_extended {
        Some((n, len)) => {
            let ext = t.get(n).expect("grow_extended names no partition");
            assert!(r.is_logical() && container(ext));
            assert_eq!(ext.start + len, new_end);
        }
        None => {
            if r.is_logical() {
                let ext = t.partitions.iter().find(|p| container(p)).unwrap();
                assert!(
                    new_end <= ext.end(),
                    "logical grows out of its container: {plan:?}"
                );
            }
        }
    }
    if t.kind == TableKind::Mbr {
        assert!(!plan.relocate_backup);
    }
}

/// The GPT half of `run` (SPEC §5 step 5): for the first plan the table allows, delete the
/// partition the plan assumes gone, move the backup header to the disk's end when it is not
/// there (or the plan says so), grow root, write the table onto a copy of the disk and read it
/// back: it must read, with the root grown and every other remaining partition unchanged.
///
/// A write may fail only when the same table without the growth cannot be written either (a
/// disk smaller than its table says is refused as it is, with nothing changed); a growth the
/// planner offered that the writer then refuses is a disagreement between `inspect` and `run`.
pub fn apply_gpt_plan(image: &Disk, g: &Gpt) {
    let numbers: Vec<u32> = g.table.partitions.iter().map(|p| p.number).collect();
    let Some((plan, delete)) = numbers.iter().take(MAX_PLANNED).find_map(|&root| {
        std::iter::once(None)
            .chain(numbers.iter().map(|&d| Some(d)))
            .take(MAX_PLANNED)
            .find_map(|d| plan_growth(&g.table, root, d).map(|p| (p, d)))
    }) else {
        return;
    };
    let mut g = g.clone();
    if let Some(d) = delete {
        g.remove(d).expect("removing a partition the table lists");
    }
    if plan.relocate_backup || g.backup_misplaced() {
        g.relocate_backup();
    }
    let unplanned_writes = g.clone().write(&mut image.clone()).is_ok();
    let end = plan.start + plan.new_sectors - 1;
    if let Err(e) = g.set_end(plan.number, end) {
        if unplanned_writes {
            panic!("set_end refused the planned growth {plan:?} (delete {delete:?}): {e}");
        }
        return;
    }
    let mut disk = image.clone();
    if let Err(e) = g.write(&mut disk) {
        if unplanned_writes {
            panic!("writing the GPT grown as planned ({plan:?}, delete {delete:?}) failed: {e}");
        }
        return;
    }
    let back = match Gpt::read(&mut disk, g.sector_size) {
        Ok(b) => b,
        Err(e) => panic!("the GPT written for {plan:?} does not read back: {e}"),
    };
    assert!(
        back.table.warnings.is_empty(),
        "warnings after a write: {:?}",
        back.table.warnings
    );
    assert_eq!(back.table.partitions, g.table.partitions);
    assert_eq!(back.table.get(plan.number).map(|p| p.end()), Some(end + 1));
}

/// The MBR half of `build`: a primary partition added after the last one, written onto a copy,
/// must read back with every old partition as it was.
pub fn add_mbr_primary(image: &Disk, m: &Mbr) {
    let used_end = m
        .table
        .partitions
        .iter()
        .filter(|p| !p.is_logical())
        .map(|p| p.end())
        .max()
        .unwrap_or(1)
        .max(1);
    let room = m.disk_sectors.min(1 << 32).saturating_sub(used_end);
    if room == 0 {
        return;
    }
    let mut m = m.clone();
    let before = m.table.partitions.clone();
    let Ok(n) = m.add_primary(used_end, room.min(2048), 0x99) else {
        return;
    };
    let mut disk = image.clone();
    if let Err(e) = m.write_sector0(&mut disk) {
        panic!("writing sector 0 failed: {e}");
    }
    let back = match Mbr::read(&mut disk, m.sector_size) {
        Ok(b) => b,
        Err(e) => panic!("the MBR written with new partition {n} does not read back: {e}"),
    };
    let mut want = before;
    want.push(m.table.get(n).unwrap().clone());
    want.sort_by_key(|p| p.number);
    assert_eq!(back.table.partitions, want);
}

/// Files streamed per drive; a crafted drive may list 100 000 and copying each is what makes
/// a run slow, not what finds bugs.
const MAX_COPIED: usize = 2000;

/// Walks a drive the way `run` does: the tree, every file's bytes, then the config-drive model.
pub fn exercise_drive(fs: &mut dyn DriveFs) {
    let _ = (fs.kind().name(), fs.label().to_string());
    let Ok(entries) = fs.entries() else {
        return;
    };
    let mut dirs: HashSet<&str> = HashSet::new();
    for e in &entries {
        assert!(!e.path.is_root(), "the root is listed as an entry");
        let parent = e.path.parent();
        assert!(
            parent.is_root() || dirs.contains(parent.as_str()),
            "{} is listed before its directory",
            e.path
        );
        if e.kind == EntryKind::Dir {
            dirs.insert(e.path.as_str());
        }
    }
    for e in entries.iter().take(MAX_COPIED) {
        if let EntryKind::File { size } = e.kind {
            let mut out = Count::default();
            if let Ok(n) = fs.copy_file(&e.path, &mut out) {
                assert_eq!(
                    n, out.0,
                    "copy_file of {} says {n} bytes, wrote {}",
                    e.path, out.0
                );
                assert_eq!(
                    n, size,
                    "{} is listed with {size} bytes but streams {n}",
                    e.path
                );
            }
        }
    }
    let _ = fs.copy_file(&seedpart::fs::RelPath::root(), &mut io::sink());
    if let Ok(cd) = ConfigDrive::load_with(fs, &entries) {
        let _ = (cd.uuid(), cd.hostname(), cd.network(), cd.summary());
        let _ = cd.meta_data.authorized_keys();
        let _ = cd.meta_data.random_seed_bytes();
        serde_json::to_string(&cd).expect("a loaded config drive serializes");
    }
}
