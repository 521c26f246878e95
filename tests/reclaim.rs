//! Reclaiming the config partition's space in the table (`seedpart::reclaim`): delete + plan +
//! grow on images made by sgdisk and sfdisk, checked with `sgdisk -v`, `sfdisk -V` and
//! `sfdisk --json`, and against the bytes sfdisk itself writes for the resulting layout; the
//! refusals that keep every other partition safe; and crash replay: every prefix of the writes
//! (and every torn version of the next one) reads as one of the expected tables, and running
//! delete + grow again from there ends in exactly the image of the uninterrupted run.

mod common;

use common::*;
use seedpart::disk::{Device, DiskError, Table, TableKind, read_table};
use seedpart::plan::{GrowPlan, plan_growth};
use seedpart::reclaim::{delete_partition, grow_partition};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

// ---------------------------------------------------------------------------------------------
// A sparse disk in memory that records what is written to it.

const BLK: u64 = 4096;

/// A disk image that keeps only its non-zero 4 KiB blocks: a 3 TiB disk costs what its tables
/// cost. Two images are equal exactly when every byte is.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sparse {
    len: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl Sparse {
    /// Reads an image file, visiting only its data extents (SEEK_DATA / SEEK_HOLE).
    fn load(path: &Path) -> Sparse {
        let mut f = File::open(path).unwrap();
        let len = f.metadata().unwrap().len();
        let fd = f.as_raw_fd();
        let mut s = Sparse {
            len,
            blocks: BTreeMap::new(),
        };
        let mut off = 0i64;
        while (off as u64) < len {
            // SAFETY: lseek on an open descriptor; failure (ENXIO: no more data) is checked.
            let data = unsafe { libc::lseek(fd, off, libc::SEEK_DATA) };
            if data < 0 {
                break;
            }
            // SAFETY: as above.
            let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
            let end = if hole < 0 { len } else { hole as u64 };
            let mut at = data as u64;
            let mut buf = vec![0u8; 1 << 20];
            while at < end {
                let n = ((end - at) as usize).min(buf.len());
                f.seek(SeekFrom::Start(at)).unwrap();
                f.read_exact(&mut buf[..n]).unwrap();
                s.write_at(at, &buf[..n]);
                at += n as u64;
            }
            off = end as i64;
        }
        s
    }

    /// Writes the image to `path` (sparse).
    fn save(&self, path: &Path) {
        let mut f = File::create(path).unwrap();
        f.set_len(self.len).unwrap();
        for (b, data) in &self.blocks {
            let at = b * BLK;
            let n = ((self.len - at) as usize).min(data.len());
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&data[..n]).unwrap();
        }
    }

    fn read_at(&self, off: u64, buf: &mut [u8]) {
        let mut done = 0usize;
        while done < buf.len() {
            let at = off + done as u64;
            let (b, o) = (at / BLK, (at % BLK) as usize);
            let n = (BLK as usize - o).min(buf.len() - done);
            match self.blocks.get(&b) {
                Some(d) => buf[done..done + n].copy_from_slice(&d[o..o + n]),
                None => buf[done..done + n].fill(0),
            }
            done += n;
        }
    }

    fn bytes(&self, off: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.read_at(off, &mut v);
        v
    }

    fn write_at(&mut self, off: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let at = off + done as u64;
            let (b, o) = (at / BLK, (at % BLK) as usize);
            let n = (BLK as usize - o).min(data.len() - done);
            let blk = self
                .blocks
                .entry(b)
                .or_insert_with(|| vec![0u8; BLK as usize]);
            blk[o..o + n].copy_from_slice(&data[done..done + n]);
            if blk.iter().all(|x| *x == 0) {
                self.blocks.remove(&b);
            }
            done += n;
        }
    }

    /// Byte offsets of the first blocks where two images differ.
    fn diff(&self, other: &Sparse) -> Vec<u64> {
        let keys: std::collections::BTreeSet<u64> = self
            .blocks
            .keys()
            .chain(other.blocks.keys())
            .copied()
            .collect();
        keys.into_iter()
            .filter(|k| self.blocks.get(k) != other.blocks.get(k))
            .map(|k| k * BLK)
            .take(8)
            .collect()
    }
}

/// A `Device` over a `Sparse` image that records every write and flush and, like a disk,
/// refuses writes past its end.
struct Disk {
    img: Sparse,
    pos: u64,
    ops: Vec<Op>,
}

impl Disk {
    fn new(img: Sparse) -> Disk {
        Disk {
            img,
            pos: 0,
            ops: Vec::new(),
        }
    }

    fn writes(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o, Op::Write(..)))
            .count()
    }
}

impl Read for Disk {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.img.len.saturating_sub(self.pos) as usize).min(buf.len());
        self.img.read_at(self.pos, &mut buf[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Disk {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let p = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.img.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = p.ok_or_else(|| io::Error::other("seek before the start"))?;
        Ok(self.pos)
    }
}

impl Write for Disk {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.pos + buf.len() as u64 > self.img.len {
            return Err(io::Error::other(format!(
                "write of {} bytes at {} past the device's end ({})",
                buf.len(),
                self.pos,
                self.img.len
            )));
        }
        self.ops.push(Op::Write(self.pos, buf.to_vec()));
        self.img.write_at(self.pos, buf);
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Device for Disk {
    fn sync(&mut self) -> io::Result<()> {
        self.ops.push(Op::Sync);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// An MBR image made by sfdisk from `script`, in which `IMG` stands for the image's path.
fn sfdisk_image(size: u64, script: &str) -> TempImage {
    let img = TempImage::new(size);
    sfdisk_script(img.path_str(), &script.replace("IMG", img.path_str()));
    img
}

/// The Ironic layout: root (1) from 1 MiB, the config drive in the last 64 MiB.
const IRONIC: &[&str] = &[
    "-n",
    "1:2048:+1G",
    "-c",
    "1:root",
    "-n",
    "0:-64M:0",
    "-t",
    "0:0700",
];

/// A table with its warnings dropped: what a crash must leave in one of the expected states.
fn view(t: &Table) -> Table {
    let mut t = t.clone();
    t.warnings.clear();
    t
}

fn read_file(img: &TempImage, ss: Option<u64>) -> Table {
    read_table(&mut img.open_ro(), ss).unwrap()
}

// ---------------------------------------------------------------------------------------------
// One reclaim, checked end to end.

/// What to reclaim: the config partition `drive` and the root partition `root` of `img`.
struct Case<'a> {
    label: &'a str,
    img: &'a TempImage,
    /// The sector size given to the engine (`None`: probed, as for an image file).
    ss: Option<u64>,
    root: u32,
    drive: u32,
}

struct Outcome {
    before: Table,
    after_delete: Table,
    after: Table,
    plan: GrowPlan,
    before_img: Sparse,
    after_img: Sparse,
}

/// Runs delete + plan + grow on the image file, and checks: the result is exactly the planned
/// layout; root kept its start; every other partition's table entry is byte-identical; running
/// both again changes nothing and returns false; the same run on a recording device gives the
/// same image, with every write flushed before the next; and crash replay of those writes.
fn reclaim(c: &Case) -> Outcome {
    let l = c.label;
    let before = read_file(c.img, c.ss);
    let before_img = Sparse::load(&c.img.path);
    let d = before.get(c.drive).unwrap().clone();
    let expect = (d.start, d.sectors);
    let plan = plan_growth(&before, c.root, Some(c.drive))
        .unwrap_or_else(|| panic!("{l}: no plan for {before:#?}"));

    // On the image file, as on a disk.
    let mut f = c.img.open_rw();
    assert!(
        delete_partition(&mut f, c.ss, c.drive, expect).unwrap(),
        "{l}"
    );
    let after_delete = read_table(&mut f, c.ss).unwrap();
    assert!(grow_partition(&mut f, c.ss, &plan).unwrap(), "{l}");
    let after = read_table(&mut f, c.ss).unwrap();
    drop(f);
    assert!(after.warnings.is_empty(), "{l}: {:?}", after.warnings);

    // Exactly the planned layout.
    let mut want = before.clone();
    want.partitions.retain(|p| p.number != c.drive);
    for p in &mut want.partitions {
        if p.number == c.root {
            p.sectors = plan.new_sectors;
        }
        if let Some((e, len)) = plan.grow_extended
            && p.number == e
        {
            p.sectors = len;
        }
    }
    assert_eq!(
        after.partitions, want.partitions,
        "{l}: not the planned layout"
    );
    assert_eq!(
        after.get(c.root).unwrap().start,
        before.get(c.root).unwrap().start
    );
    let after_img = Sparse::load(&c.img.path);
    assert_other_entries_identical(l, &before, &before_img, &after, &after_img, c);

    // Idempotent: nothing left to do, nothing written.
    let mut dev = Disk::new(after_img.clone());
    assert!(
        !delete_partition(&mut dev, c.ss, c.drive, expect).unwrap(),
        "{l}"
    );
    assert!(!grow_partition(&mut dev, c.ss, &plan).unwrap(), "{l}");
    assert_eq!(dev.ops.len(), 0, "{l}: a second run wrote {:?}", dev.ops);
    assert_eq!(
        plan_growth(&after, c.root, None),
        None,
        "{l}: root could grow further"
    );

    // The same on a recording device: same image, every write flushed before the next.
    let mut dev = Disk::new(before_img.clone());
    assert!(delete_partition(&mut dev, c.ss, c.drive, expect).unwrap());
    assert_eq!(
        view(&read_table(&mut dev, c.ss).unwrap()),
        view(&after_delete)
    );
    assert!(grow_partition(&mut dev, c.ss, &plan).unwrap());
    assert_eq!(
        dev.img, after_img,
        "{l}: a device and a file end differently"
    );
    let mut pending = false;
    for op in &dev.ops {
        match op {
            Op::Write(off, _) => {
                assert!(
                    !pending,
                    "{l}: write at {off} issued before the previous one was flushed"
                );
                pending = true;
            }
            Op::Sync => pending = false,
        }
    }
    assert!(!pending, "{l}: the last write is not flushed");

    let out = Outcome {
        before,
        after_delete,
        after,
        plan,
        before_img,
        after_img,
    };
    let n = crash_replay(c, &out, &dev.ops, expect);
    eprintln!("{l}: {} writes, {n} crash states checked", dev.writes());
    out
}

/// The on-disk bytes of every partition's own table entry: GPT, the 128-byte entry in the
/// primary and in the backup array; MBR, the 16-byte slot in sector 0 or in the logical's EBR.
fn entry_bytes(t: &Table, img: &Sparse, n: u32) -> Vec<Vec<u8>> {
    let ss = t.sector_size;
    let p = t.get(n).unwrap();
    let le64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    match t.kind {
        TableKind::Gpt => {
            let h = img.bytes(ss, 92);
            let backup = img.bytes(le64(&h, 32) * ss, 92);
            [le64(&h, 72), le64(&backup, 72)]
                .iter()
                .map(|a| img.bytes(a * ss + 128 * u64::from(n - 1), 128))
                .collect()
        }
        TableKind::Mbr => match p.ebr {
            Some(ebr) => vec![img.bytes(ebr * ss + 446, 16)],
            None => vec![img.bytes(446 + 16 * u64::from(n - 1), 16)],
        },
    }
}

/// Every partition but root, the drive and root's container: byte-identical table entries.
fn assert_other_entries_identical(
    l: &str,
    before: &Table,
    before_img: &Sparse,
    after: &Table,
    after_img: &Sparse,
    c: &Case,
) {
    let mut others = 0;
    for p in &before.partitions {
        let holds_root = p.is_extended() && after.get(c.root).unwrap().ebr.is_some();
        if p.number == c.root || p.number == c.drive || holds_root {
            continue;
        }
        others += 1;
        assert_eq!(
            after.get(p.number),
            Some(p),
            "{l}: partition {} changed",
            p.number
        );
        assert_eq!(
            entry_bytes(before, before_img, p.number),
            entry_bytes(after, after_img, p.number),
            "{l}: the table entry of partition {} changed",
            p.number
        );
    }
    eprintln!("{l}: {others} other partitions byte-identical");
}

// ---------------------------------------------------------------------------------------------
// Crash replay.

/// The tears after which the operations are also re-run (re-running is the slow part): one of
/// each kind, since any tear of an array leaves it failing its CRC the same way.
fn representative(how: &str, sectors: usize) -> bool {
    let last = sectors.saturating_sub(1);
    how == "first half of its bytes"
        || how == "first 1 sectors"
        || how == "all but the first 1 sectors"
        || how == format!("only sector {last}")
        || how == format!("all but sector {last}")
}

/// The tables a power cut may leave: before; after the delete; for GPT, after the backup moved;
/// for an MBR logical root, after its container grew; after the growth.
fn expected_states(o: &Outcome) -> Vec<(&'static str, Table)> {
    let mut v = vec![
        ("before", view(&o.before)),
        ("after delete", view(&o.after_delete)),
    ];
    if o.after.kind == TableKind::Gpt && o.after.last_usable != o.after_delete.last_usable {
        let mut r = view(&o.after_delete);
        r.last_usable = o.after.last_usable;
        v.push(("after relocation", r));
    }
    if let Some((e, len)) = o.plan.grow_extended {
        let mut r = view(&o.after_delete);
        r.partitions
            .iter_mut()
            .filter(|p| p.number == e)
            .for_each(|p| p.sectors = len);
        v.push(("after the container grew", r));
    }
    v.push(("after grow", view(&o.after)));
    v
}

/// Replays every prefix of `ops`, and every torn version of the next write, onto the original
/// image. At each such cut the table must read (sector size probed for GPT, as after a reboot)
/// as one of the expected states; and at every prefix and one tear of each kind (see
/// `representative`), re-running the operations must end in exactly the final image, both as a caller with the plan in its state file would (delete with the extent read
/// at first, grow with the first plan) and as one that re-reads and re-plans. Independent
/// readers (sgdisk for 512-byte GPT, sfdisk for MBR) must also see an expected table after
/// every write and half-way through the next. Every expected state must be seen at some cut.
fn crash_replay(c: &Case, o: &Outcome, ops: &[Op], expect: (u64, u64)) -> usize {
    let l = c.label;
    let states = expected_states(o);
    let ss = o.before.sector_size as usize;
    let read_ss = if o.before.kind == TableKind::Gpt {
        None
    } else {
        c.ss
    };
    let writes: Vec<(u64, &[u8])> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Write(off, d) => Some((*off, d.as_slice())),
            Op::Sync => None,
        })
        .collect();
    let mut failures: Vec<String> = Vec::new();
    let mut seen = vec![false; states.len()];
    let mut checked = 0usize;

    let check = |img: &Sparse,
                 what: &str,
                 seen: &mut [bool],
                 prefix: bool,
                 rerun: bool|
     -> Vec<String> {
        let mut problems = Vec::new();
        let t = match read_table(&mut Disk::new(img.clone()), read_ss) {
            Ok(t) => t,
            Err(e) => return vec![format!("{what}: the table does not read: {e}")],
        };
        match states.iter().position(|(_, s)| *s == view(&t)) {
            Some(i) if prefix => seen[i] = true,
            Some(_) => {}
            None => {
                return vec![format!(
                    "{what}: a table in none of the expected states: {t:#?}"
                )];
            }
        }
        if !rerun {
            return problems;
        }
        // As a caller that kept the first reading and plan (the state file).
        let mut dev = Disk::new(img.clone());
        let rerun = delete_partition(&mut dev, c.ss, c.drive, expect)
            .and_then(|_| grow_partition(&mut dev, c.ss, &o.plan));
        match rerun {
            Err(e) => problems.push(format!("{what}: re-running with the first plan: {e}")),
            Ok(_) if dev.img != o.after_img => problems.push(format!(
                "{what}: re-running with the first plan ends in another image (blocks at {:?} differ)",
                dev.img.diff(&o.after_img)
            )),
            Ok(_) => {}
        }
        // As a caller that trusts only the disk: read, delete, read again, plan, grow.
        let mut dev = Disk::new(img.clone());
        let rerun = (|| -> Result<(), DiskError> {
            let t = read_table(&mut dev, c.ss)?;
            let d = t.get(c.drive).map_or(expect, |d| (d.start, d.sectors));
            delete_partition(&mut dev, c.ss, c.drive, d)?;
            let t = read_table(&mut dev, c.ss)?;
            if let Some(p) = plan_growth(&t, c.root, None) {
                grow_partition(&mut dev, c.ss, &p)?;
            }
            Ok(())
        })();
        match rerun {
            Err(e) => problems.push(format!("{what}: re-reading and re-planning: {e}")),
            Ok(()) if dev.img != o.after_img => problems.push(format!(
                "{what}: re-reading and re-planning ends in another image (blocks at {:?} differ)",
                dev.img.diff(&o.after_img)
            )),
            Ok(()) => {}
        }
        problems
    };

    let mut img = o.before_img.clone();
    let tmp = TempImage::new(0);
    for k in 0..=writes.len() {
        checked += 1;
        failures.extend(check(
            &img,
            &format!("after {k} of {} writes", writes.len()),
            &mut seen,
            true,
            true,
        ));
        let mut external = vec![(format!("after {k} writes"), img.clone())];
        if let Some(&(off, data)) = writes.get(k) {
            for (how, pieces) in torn_writes(off, data, ss) {
                let mut torn = img.clone();
                for (o, d) in pieces {
                    torn.write_at(o, d);
                }
                checked += 1;
                failures.extend(check(
                    &torn,
                    &format!("write {k} (at byte {off}) torn: {how}"),
                    &mut seen,
                    false,
                    representative(&how, data.len().div_ceil(ss)),
                ));
                if how == "first half of its bytes" {
                    external.push((format!("after {k} writes and half of the next"), torn));
                }
            }
            img.write_at(off, data);
        }
        for (what, state) in external {
            if let Some(why) = external_reader_problem(&o.before, &state, &tmp, &states) {
                failures.push(format!("{what}: {why}"));
            }
        }
    }
    assert_eq!(
        img, o.after_img,
        "{l}: replaying the writes does not give the final image"
    );
    assert!(
        failures.is_empty(),
        "{l}: {} of {checked} crash states fail; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (i, (name, _)) in states.iter().enumerate() {
        assert!(
            seen[i],
            "{l}: the state {name:?} is never on disk between two writes"
        );
    }
    checked
}

/// For a 512-byte GPT, `sgdisk -p`; for an MBR, `sfdisk --json`: the partitions they list must
/// be those of one of the expected states.
fn external_reader_problem(
    before: &Table,
    img: &Sparse,
    tmp: &TempImage,
    states: &[(&str, Table)],
) -> Option<String> {
    let rows = |t: &Table| -> Vec<(u32, u64, u64)> {
        t.partitions
            .iter()
            .map(|p| (p.number, p.start, p.sectors))
            .collect()
    };
    let got = match (before.kind, before.sector_size) {
        (TableKind::Gpt, 512) if have_tool("sgdisk") => {
            img.save(&tmp.path);
            match sgdisk_rows(tmp.path_str()) {
                Ok(rows) => rows
                    .into_iter()
                    .map(|(n, s, e)| (n, s, e - s + 1))
                    .collect(),
                Err(why) => return Some(why),
            }
        }
        (TableKind::Mbr, 512) if have_tool("sfdisk") => {
            img.save(&tmp.path);
            let mut r: Vec<_> = sfdisk_json(tmp.path_str())
                .partitions
                .iter()
                .map(|p| (p.number, p.start, p.size))
                .collect();
            r.sort();
            r
        }
        _ => return None,
    };
    if states.iter().any(|(_, s)| rows(s) == got) {
        None
    } else {
        Some(format!(
            "an independent reader sees none of the expected tables: {got:?}"
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// What the tools say of the result.

/// Our table is what `sfdisk --json` reports of `dev` (numbers, extents, PARTUUIDs, names).
#[track_caller]
fn assert_sfdisk_agrees(dev: &str, t: &Table) {
    let sf = sfdisk_json(dev);
    assert_eq!(sf.sector_size, t.sector_size);
    let mut theirs: Vec<_> = sf
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.size, p.name.clone()))
        .collect();
    theirs.sort();
    let ours: Vec<_> = t
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.sectors, p.name().map(str::to_string)))
        .collect();
    assert_eq!(ours, theirs, "sfdisk --json {dev}");
    if t.kind == TableKind::Gpt {
        for p in &t.partitions {
            let q = sf.partitions.iter().find(|q| q.number == p.number).unwrap();
            assert_eq!(q.uuid.as_deref(), Some(p.uuid.as_str()));
        }
    }
}

#[track_caller]
fn assert_sfdisk_verifies(dev: &str) {
    let out = run_raw("sfdisk", &["-V", dev]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("No errors detected"),
        "sfdisk -V {dev}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The table bytes (the four slots of sector 0, and of each EBR the two entries) are those
/// sfdisk writes when it makes the resulting layout from scratch with `script`.
#[track_caller]
fn assert_mbr_bytes_as_sfdisk_writes(img: &TempImage, t: &Table, script: &str) {
    let reference = sfdisk_image(img.len(), script);
    let (ours, theirs) = (Sparse::load(&img.path), Sparse::load(&reference.path));
    assert_eq!(ours.bytes(446, 64), theirs.bytes(446, 64), "sector 0 slots");
    for p in t.partitions.iter().filter(|p| p.is_logical()) {
        let ebr = p.ebr.unwrap() * t.sector_size;
        assert_eq!(
            ours.bytes(ebr + 446, 32),
            theirs.bytes(ebr + 446, 32),
            "EBR of logical {} at LBA {}",
            p.number,
            p.ebr.unwrap()
        );
    }
}

/// `sgdisk -v` finds nothing wrong with `dev` and `sfdisk --json` lists our table `t`.
#[track_caller]
fn assert_gpt_tools_agree(dev: &str, t: &Table) {
    assert_sgdisk_clean(dev);
    assert_sfdisk_agrees(dev, t);
}

/// sfdisk agrees with the MBR result `t`: `sfdisk -V` passes, `sfdisk --json` lists `t`, and
/// the table bytes are those sfdisk writes for `script` (see
/// `assert_mbr_bytes_as_sfdisk_writes`).
#[track_caller]
fn assert_sfdisk_makes_it(img: &TempImage, t: &Table, script: &str) {
    assert_sfdisk_verifies(img.path_str());
    assert_sfdisk_agrees(img.path_str(), t);
    assert_mbr_bytes_as_sfdisk_writes(img, t, script);
}

// ---------------------------------------------------------------------------------------------
// GPT.

#[test]
fn gpt_512_ironic_layout_grows_root_to_the_aligned_end() {
    require_tools!("sgdisk", "sfdisk");
    let img = sgdisk_image(1100 * MIB, IRONIC);
    let o = reclaim(&Case {
        label: "gpt 512 ironic",
        img: &img,
        ss: None,
        root: 1,
        drive: 2,
    });
    assert!(!o.plan.relocate_backup);
    assert_eq!(o.after.partitions.len(), 1);
    assert_eq!(
        o.after.get(1).unwrap().end(),
        (o.before.last_usable + 1) / 2048 * 2048
    );
    assert_gpt_tools_agree(img.path_str(), &o.after);
}

#[test]
fn gpt_512_drive_right_after_root_grows_root_up_to_the_next_partition() {
    require_tools!("sgdisk", "sfdisk");
    // EFI (1), root (2), config-v2 (3) right after root, free space, a data partition (4)
    // in the last 128 MiB: root grows over the drive and the free space, up to 4.
    let img = sgdisk_image(
        2048 * MIB,
        &[
            "-n",
            "1:2048:+32M",
            "-t",
            "1:ef00",
            "-c",
            "1:efi",
            "-n",
            "2:0:+512M",
            "-c",
            "2:root",
            "-n",
            "3:0:+64M",
            "-c",
            "3:config-v2",
            "-n",
            "4:-128M:0",
            "-c",
            "4:data",
        ],
    );
    let o = reclaim(&Case {
        label: "gpt 512 after root",
        img: &img,
        ss: None,
        root: 2,
        drive: 3,
    });
    let p4 = o.before.get(4).unwrap();
    assert_eq!(o.after.get(2).unwrap().end(), p4.start / 2048 * 2048);
    assert_eq!(o.after.get(4), Some(p4));
    assert_gpt_tools_agree(img.path_str(), &o.after);
}

#[test]
fn gpt_512_image_on_a_larger_disk_moves_the_backup_before_growing() {
    require_tools!("sgdisk", "sfdisk");
    let img = sgdisk_image(1100 * MIB, IRONIC);
    let old_backup = 1100 * MIB / 512 - 1;
    img.set_len(1600 * MIB);
    let o = reclaim(&Case {
        label: "gpt 512 larger disk",
        img: &img,
        ss: None,
        root: 1,
        drive: 2,
    });
    assert!(o.plan.relocate_backup);
    let disk = 1600 * MIB / 512;
    assert_eq!(o.after.last_usable, disk - 34);
    assert_eq!(o.after.get(1).unwrap().end(), (disk - 33) / 2048 * 2048);
    // The backup header left at the image's old end is gone, the protective MBR covers the disk.
    assert!(
        o.after_img
            .bytes(old_backup * 512, 512)
            .iter()
            .all(|b| *b == 0)
    );
    assert_eq!(&o.before_img.bytes(old_backup * 512, 8), b"EFI PART");
    let mbr = o.after_img.bytes(446, 16);
    assert_eq!(mbr[4], 0xee);
    assert_eq!(
        u32::from_le_bytes(mbr[12..16].try_into().unwrap()),
        (disk - 1) as u32
    );
    assert_gpt_tools_agree(img.path_str(), &o.after);
}

#[test]
fn gpt_4096_on_a_4kn_loop_device() {
    require_loop!("sgdisk", "sfdisk");
    let _g = loop_lock();
    // Ironic on a larger disk (backup relocation), and the drive right after root:
    // (label, MiB the image is made with, MiB of the disk, sgdisk arguments, root, drive).
    type Layout<'a> = (&'a str, u64, u64, &'a [&'a str], u32, u32);
    let layouts: [Layout; 2] = [
        (
            "gpt 4096 ironic, larger disk",
            192,
            320,
            &["-n", "1:256:+128M", "-n", "0:-16M:0", "-t", "0:0700"],
            1,
            2,
        ),
        (
            "gpt 4096 after root",
            256,
            256,
            &[
                "-n",
                "1:256:+16M",
                "-c",
                "1:efi",
                "-n",
                "2:0:+64M",
                "-c",
                "2:root",
                "-n",
                "3:0:+16M",
                "-c",
                "3:config-v2",
            ],
            2,
            3,
        ),
    ];
    for (label, made, size, args, root, drive) in layouts {
        let img = TempImage::new(made * MIB);
        {
            let lo = LoopDev::attach(&img.path, 4096);
            sgdisk(&lo.dev, args);
        }
        img.set_len(size * MIB);
        let o = reclaim(&Case {
            label,
            img: &img,
            ss: None,
            root,
            drive,
        });
        assert_eq!(o.before.sector_size, 4096);
        assert_eq!(o.plan.relocate_backup, made != size, "{label}");
        let disk = size * MIB / 4096;
        assert_eq!(
            o.after.get(root).unwrap().end(),
            (disk - 5) / 256 * 256,
            "{label}"
        );
        let lo = LoopDev::attach(&img.path, 4096);
        assert_gpt_tools_agree(&lo.dev, &o.after);
        // The engine given the sector size reads the same and has nothing left to do.
        let mut f = lo.open_rw();
        assert!(!grow_partition(&mut f, Some(4096), &o.plan).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// MBR.

/// `reclaim` (with 512-byte sectors) on an MBR image of `size` bytes made by sfdisk from
/// `script` (see `sfdisk_image`).
fn reclaim_mbr(
    label: &str,
    size: u64,
    script: &str,
    root: u32,
    drive: u32,
) -> (TempImage, Outcome) {
    let img = sfdisk_image(size, script);
    let o = reclaim(&Case {
        label,
        img: &img,
        ss: Some(512),
        root,
        drive,
    });
    (img, o)
}

/// The layout both logical-root tests end in on a disk of `disk` sectors: boot (1), the
/// container (2) and root (5) grown to the disk's end.
fn logical_root_grown_to_the_end(disk: u64) -> String {
    format!(
        "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size={}, type=5\nIMG5 : start=12288, size={}, type=83\n",
        disk - 10240,
        disk - 12288
    )
}

#[test]
fn mbr_primary_root_with_the_drive_right_after_it() {
    require_tools!("sfdisk");
    // root (1), config drive (2, 0x99) right after it, free space, swap (3) in the last 64 MiB.
    let script = "label: dos\nlabel-id: 0x5eed0001\nIMG1 : start=2048, size=1048576, type=83\nIMG2 : start=1050624, size=131072, type=99\nIMG3 : start=1966080, size=131072, type=82\n";
    let (img, o) = reclaim_mbr("mbr primary after root", 1024 * MIB, script, 1, 2);
    assert_eq!(o.after.get(1).unwrap().end(), 1966080);
    assert_sfdisk_makes_it(
        &img,
        &o.after,
        "label: dos\nIMG1 : start=2048, size=1964032, type=83\nIMG3 : start=1966080, size=131072, type=82\n",
    );
}

#[test]
fn mbr_ironic_layout_grows_root_to_the_disks_end() {
    require_tools!("sfdisk");
    let script = "label: dos\nIMG1 : start=2048, size=1048576, type=83\nIMG2 : start=2121728, size=131072, type=c\n";
    let (img, o) = reclaim_mbr("mbr ironic", 1100 * MIB, script, 1, 2);
    // No backup table on MBR: the disk's last sector is usable.
    assert_eq!(o.after.get(1).unwrap().end(), 1100 * MIB / 512);
    assert_sfdisk_makes_it(
        &img,
        &o.after,
        "label: dos\nIMG1 : start=2048, size=2250752, type=83\n",
    );
}

#[test]
fn mbr_logical_root_with_the_drive_as_the_next_logical() {
    require_tools!("sfdisk");
    // boot (1), extended (2) holding root (5) and the drive (6, 0x99) right after it;
    // free space after the container.
    let script = "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size=75776, type=5\nIMG5 : start=12288, size=65536, type=83\nIMG6 : start=79872, size=6144, type=99\n";
    let (img, o) = reclaim_mbr("mbr logical, drive next logical", 128 * MIB, script, 5, 6);
    let disk = 128 * MIB / 512;
    assert_eq!(o.plan.grow_extended, Some((2, disk - 10240)));
    assert_eq!(o.after.get(5).unwrap().end(), disk);
    assert_eq!(o.after.get(2).unwrap().end(), disk);
    assert_sfdisk_makes_it(&img, &o.after, &logical_root_grown_to_the_end(disk));
}

#[test]
fn mbr_logical_root_with_the_drive_as_a_primary_after_the_container() {
    require_tools!("sfdisk");
    let script = "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size=71680, type=5\nIMG3 : start=81920, size=8192, type=99\nIMG5 : start=12288, size=69632, type=83\n";
    let (img, o) = reclaim_mbr("mbr logical, drive primary", 128 * MIB, script, 5, 3);
    let disk = 128 * MIB / 512;
    assert_eq!(o.after.get(5).unwrap().end(), disk);
    assert_eq!(o.after.get(2).unwrap().end(), disk);
    assert_sfdisk_makes_it(&img, &o.after, &logical_root_grown_to_the_end(disk));
}

/// Root as the second logical: the link to its EBR in the first logical's EBR is lengthened
/// too (as fdisk and sfdisk keep it), and the drive, the third logical, is unlinked from the
/// second's EBR.
#[test]
fn mbr_second_logical_root_with_the_drive_as_the_last_logical() {
    require_tools!("sfdisk");
    let script = "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size=75776, type=5\nIMG5 : start=12288, size=8192, type=82\nIMG6 : start=22528, size=49152, type=83\nIMG7 : start=73728, size=12288, type=99\n";
    let (img, o) = reclaim_mbr("mbr second logical", 128 * MIB, script, 6, 7);
    let disk = 128 * MIB / 512;
    assert_eq!(o.after.get(6).unwrap().end(), disk);
    assert_sfdisk_makes_it(
        &img,
        &o.after,
        &format!(
            "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size={}, type=5\nIMG5 : start=12288, size=8192, type=82\nIMG6 : start=22528, size={}, type=83\n",
            disk - 10240,
            disk - 22528
        ),
    );
}

#[test]
fn mbr_disk_larger_than_2tib_grows_root_up_to_sector_2_pow_32() {
    require_tools!("sfdisk");
    let script = "label: dos\nIMG1 : start=2048, size=2097152, type=83\nIMG2 : start=2099200, size=131072, type=99\n";
    let (img, o) = reclaim_mbr("mbr 3 TiB", 3 << 40, script, 1, 2);
    assert_eq!(o.after.get(1).unwrap().end(), 1 << 32);
    assert_eq!(o.after.get(1).unwrap().sectors, (1 << 32) - 2048);
    assert_sfdisk_agrees(img.path_str(), &o.after);
    assert_mbr_bytes_as_sfdisk_writes(
        &img,
        &o.after,
        "label: dos\nIMG1 : start=2048, size=4294965248, type=83\n",
    );
}

// ---------------------------------------------------------------------------------------------
// Refusals: nothing but the partition that was read is deleted, nothing but free space is
// grown into, and a refusal writes nothing.

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(r: Result<T, DiskError>, words: &str) {
    match r {
        Err(DiskError::Refused(why)) => assert!(why.contains(words), "{why}"),
        other => panic!("expected a refusal mentioning {words:?}, got {other:?}"),
    }
}

#[test]
fn refusals_write_nothing() {
    require_tools!("sgdisk", "sfdisk");
    // GPT: root (1), a data partition (2) right after it, the drive (3) at the end.
    let img = sgdisk_image(
        256 * MIB,
        &[
            "-n",
            "1:2048:+64M",
            "-n",
            "2:0:+16M",
            "-c",
            "2:data",
            "-n",
            "3:-16M:0",
            "-c",
            "3:config-v2",
        ],
    );
    let gpt = Sparse::load(&img.path);
    let t = read_file(&img, None);
    let (p1, p2, p3) = (
        t.get(1).unwrap().clone(),
        t.get(2).unwrap().clone(),
        t.get(3).unwrap().clone(),
    );
    let mut dev = Disk::new(gpt.clone());
    // The extent the caller read is not the table's.
    assert_refused(
        delete_partition(&mut dev, None, 3, (p3.start + 1, p3.sectors)),
        "not at",
    );
    assert_refused(
        delete_partition(&mut dev, None, 3, (p3.start, p3.sectors - 1)),
        "nothing was deleted",
    );
    // The drive is not root's neighbour: root may not grow at all.
    assert_eq!(plan_growth(&t, 1, Some(3)), None);
    let into_p2 = GrowPlan {
        number: 1,
        start: p1.start,
        old_sectors: p1.sectors,
        new_sectors: p1.sectors + 4096,
        relocate_backup: false,
        grow_extended: None,
    };
    assert_refused(grow_partition(&mut dev, None, &into_p2), "partition 2");
    // A plan made for a partition at another start; a partition that does not exist; growth
    // past the end.
    let moved = GrowPlan {
        start: p1.start + 2048,
        ..into_p2.clone()
    };
    assert_refused(grow_partition(&mut dev, None, &moved), "not at sector");
    let missing = GrowPlan {
        number: 9,
        ..into_p2.clone()
    };
    assert_refused(grow_partition(&mut dev, None, &missing), "no partition 9");
    let beyond = GrowPlan {
        number: 3,
        start: p3.start,
        old_sectors: p3.sectors,
        new_sectors: p3.sectors + 2048,
        ..into_p2.clone()
    };
    assert_refused(grow_partition(&mut dev, None, &beyond), "last sector");
    assert_eq!(dev.ops.len(), 0, "a refusal wrote {} ops", dev.ops.len());
    assert_eq!(dev.img, gpt);
    // Deleting the drive leaves partition 2, which blocks root, byte for byte as it was.
    assert!(delete_partition(&mut dev, None, 3, (p3.start, p3.sectors)).unwrap());
    let after = read_table(&mut dev, None).unwrap();
    assert_eq!(after.get(2), Some(&p2));
    assert_eq!(entry_bytes(&t, &gpt, 2), entry_bytes(&after, &dev.img, 2));
    assert_eq!(entry_bytes(&t, &gpt, 1), entry_bytes(&after, &dev.img, 1));
    assert_eq!(plan_growth(&after, 1, None), None);
    let ops = dev.ops.len();
    assert_refused(grow_partition(&mut dev, None, &into_p2), "only free space");
    assert_eq!(dev.ops.len(), ops);

    // MBR: root (1), the extended container (2) after it holding logicals 5, 6 and 7 (drive).
    let mbr_img = sfdisk_image(
        128 * MIB,
        "label: dos\nIMG1 : start=2048, size=65536, type=83\nIMG2 : start=69632, size=40960, type=5\nIMG5 : start=71680, size=4096, type=99\nIMG6 : start=77824, size=4096, type=83\nIMG7 : start=83968, size=4096, type=99\n",
    );
    let mbr = Sparse::load(&mbr_img.path);
    let t = read_file(&mbr_img, Some(512));
    let ext = |n: u32| {
        let p = t.get(n).unwrap();
        (p.start, p.sectors)
    };
    let mut dev = Disk::new(mbr.clone());
    // A logical with logicals after it would renumber them.
    assert_refused(
        delete_partition(&mut dev, Some(512), 5, ext(5)),
        "not supported",
    );
    assert_refused(
        delete_partition(&mut dev, Some(512), 6, ext(6)),
        "renumber logical partition 7",
    );
    // The container itself.
    assert_refused(
        delete_partition(&mut dev, Some(512), 2, ext(2)),
        "extended container",
    );
    assert_refused(
        delete_partition(&mut dev, Some(512), 7, (ext(7).0, ext(7).1 + 1)),
        "not at",
    );
    // Root growing into the container that follows it.
    let into_ext = GrowPlan {
        number: 1,
        start: 2048,
        old_sectors: 65536,
        new_sectors: 65536 + 4096,
        relocate_backup: false,
        grow_extended: None,
    };
    assert_refused(
        grow_partition(&mut dev, Some(512), &into_ext),
        "partition 2",
    );
    // Logical 6 growing over logical 7's EBR.
    let p6 = t.get(6).unwrap();
    let into_ebr = GrowPlan {
        number: 6,
        start: p6.start,
        old_sectors: p6.sectors,
        new_sectors: p6.sectors + 4096,
        ..into_ext.clone()
    };
    assert_refused(
        grow_partition(&mut dev, Some(512), &into_ebr),
        "partition 7",
    );
    assert_eq!(dev.ops.len(), 0);
    assert_eq!(dev.img, mbr);
    // The last logical goes in one write, 5 and 6 are untouched.
    assert!(delete_partition(&mut dev, Some(512), 7, ext(7)).unwrap());
    assert_eq!(dev.writes(), 1);
    let after = read_table(&mut dev, Some(512)).unwrap();
    for n in [1, 2, 5, 6] {
        assert_eq!(after.get(n), t.get(n));
        assert_eq!(entry_bytes(&t, &mbr, n), entry_bytes(&after, &dev.img, n));
    }
    assert_eq!(after.partitions.len(), 4);
    assert!(!delete_partition(&mut dev, Some(512), 7, ext(7)).unwrap());
    assert_eq!(dev.writes(), 1);
}

/// The only logical partition: its EBR is the one the chain starts at, so its entry there is
/// cleared (one write) and the container is left empty, as sfdisk reads it.
#[test]
fn mbr_only_logical_is_cleared_in_the_ebr_at_the_container_start() {
    require_tools!("sfdisk");
    let img = sfdisk_image(
        64 * MIB,
        "label: dos\nIMG1 : start=2048, size=65536, type=83\nIMG2 : start=67584, size=32768, type=5\nIMG5 : start=69632, size=8192, type=99\n",
    );
    let before = Sparse::load(&img.path);
    let t = read_file(&img, Some(512));
    let p5 = t.get(5).unwrap().clone();
    let mut dev = Disk::new(before.clone());
    assert!(delete_partition(&mut dev, Some(512), 5, (p5.start, p5.sectors)).unwrap());
    assert_eq!(dev.writes(), 1);
    let Some(Op::Write(off, _)) = dev.ops.first() else {
        panic!("{:?}", dev.ops)
    };
    assert_eq!(
        *off,
        67584 * 512,
        "the write is the EBR at the container's start"
    );
    let after = read_table(&mut dev, Some(512)).unwrap();
    assert_eq!(after.partitions, t.partitions[..2]);
    assert!(!delete_partition(&mut dev, Some(512), 5, (p5.start, p5.sectors)).unwrap());
    assert_eq!(dev.writes(), 1);
    dev.img.save(&img.path);
    assert_sfdisk_verifies(img.path_str());
    assert_sfdisk_agrees(img.path_str(), &after);
    // Root is blocked by the container that stays: no plan, nothing grows.
    assert_eq!(plan_growth(&after, 1, None), None);
}
