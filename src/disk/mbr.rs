//! MBR/DOS partition tables: primaries and the chain of logical partitions.
//!
//! Parsed here rather than with `mbrman`: its chain walker adds untrusted 32-bit LBAs without
//! overflow checks and follows chains of any length, and every edit seedpart makes is a single
//! 512-byte sector write whose place in the crash-safe order must be ours to choose.

use super::{
    DiskError, PartKind, Partition, Table, TableKind, device::Device, device_len, io_err, read_at,
};
use std::io::{Read, Seek, SeekFrom};

/// Longest EBR chain accepted; the kernel itself stops far earlier in practice.
const MAX_LOGICALS: usize = 256;

/// Type bytes of an extended container.
pub fn is_extended_type(sys: u8) -> bool {
    matches!(sys, 0x05 | 0x0f | 0x85)
}

/// One 16-byte slot of an MBR or EBR sector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub boot: u8,
    pub sys: u8,
    pub start: u32,
    pub sectors: u32,
}

impl Entry {
    fn parse(b: &[u8]) -> Entry {
        Entry {
            boot: b[0],
            sys: b[4],
            start: u32::from_le_bytes(b[8..12].try_into().unwrap()),
            sectors: u32::from_le_bytes(b[12..16].try_into().unwrap()),
        }
    }

    fn is_used(&self) -> bool {
        self.sys != 0 && self.sectors != 0
    }

    /// Encodes the entry, with the CHS fields set the way current partitioners do for LBA-only
    /// disks (the values are ignored by Linux and every modern loader).
    fn encode(&self, out: &mut [u8]) {
        out[0] = self.boot;
        out[1..4].copy_from_slice(&lba_to_chs(self.start));
        out[4] = self.sys;
        out[5..8].copy_from_slice(&lba_to_chs(
            self.start.saturating_add(self.sectors.saturating_sub(1)),
        ));
        out[8..12].copy_from_slice(&self.start.to_le_bytes());
        out[12..16].copy_from_slice(&self.sectors.to_le_bytes());
        if !self.is_used() {
            out.fill(0);
        }
    }

    /// Encodes the entry with its CHS fields computed from absolute LBAs (`base` + start), as
    /// fdisk and sfdisk write them, `base` being what the start is relative to (0 in sector 0,
    /// the EBR's LBA for a logical, the container's start for a link).
    fn encode_at(&self, out: &mut [u8], base: u64) {
        if !self.is_used() {
            out.fill(0);
            return;
        }
        let abs = |lba: u64| lba_to_chs(u32::try_from(lba).unwrap_or(u32::MAX));
        let first = base + u64::from(self.start);
        out[0] = self.boot;
        out[1..4].copy_from_slice(&abs(first));
        out[4] = self.sys;
        out[5..8].copy_from_slice(&abs(first + u64::from(self.sectors) - 1));
        out[8..12].copy_from_slice(&self.start.to_le_bytes());
        out[12..16].copy_from_slice(&self.sectors.to_le_bytes());
    }
}

/// CHS for 255 heads and 63 sectors per track, saturating at the "beyond CHS" marker.
fn lba_to_chs(lba: u32) -> [u8; 3] {
    let (heads, spt) = (255u32, 63u32);
    let c = lba / (heads * spt);
    if c > 1023 {
        return [0xfe, 0xff, 0xff];
    }
    let h = (lba / spt) % heads;
    let s = lba % spt + 1;
    [h as u8, (s as u8) | (((c >> 8) as u8) << 6), c as u8]
}

/// A logical partition and the EBR that describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logical {
    /// Absolute LBA of its EBR.
    pub ebr_lba: u64,
    /// The EBR's first entry (start relative to `ebr_lba`).
    pub entry: Entry,
}

/// An MBR as read, with the sector it came from so edits rewrite it faithfully.
#[derive(Clone, Debug)]
pub struct Mbr {
    pub sector_size: u64,
    pub disk_sectors: u64,
    pub sector0: Vec<u8>,
    pub primaries: [Entry; 4],
    pub logicals: Vec<Logical>,
    pub table: Table,
}

fn corrupt(s: String) -> DiskError {
    DiskError::CorruptMbr(s)
}

/// Whether a sector 0 looks like an MBR table rather than a filesystem's boot sector.
fn plausible(sector0: &[u8]) -> bool {
    sector0[510..512] == [0x55, 0xaa]
        && (0..4).all(|i| matches!(sector0[446 + 16 * i], 0x00 | 0x80))
        && (0..4).any(|i| sector0[446 + 16 * i + 4] != 0)
}

/// Whether sector 0 holds a DOS partition table of its own, not a GPT's protective (or
/// hybrid) MBR: a table with no 0xEE entry.
pub(crate) fn is_dos_mbr(sector0: &[u8]) -> bool {
    plausible(sector0) && (0..4).all(|i| sector0[446 + 16 * i + 4] != 0xee)
}

impl Mbr {
    pub fn read<D: Read + Seek + ?Sized>(dev: &mut D, ss: u64) -> Result<Mbr, DiskError> {
        let len = device_len(dev)?;
        let disk_sectors = len / ss;
        if len < 512 {
            return Err(DiskError::NoTable);
        }
        let mut sector0 = vec![0u8; 512];
        read_at(dev, 0, &mut sector0).map_err(io_err("reading the MBR"))?;
        if !plausible(&sector0) {
            return Err(DiskError::NoTable);
        }
        let mut primaries = [Entry::default(); 4];
        for (i, p) in primaries.iter_mut().enumerate() {
            *p = Entry::parse(&sector0[446 + 16 * i..462 + 16 * i]);
        }
        if primaries.iter().any(|p| p.sys == 0xee) {
            return Err(DiskError::CorruptGpt(
                "the MBR is a GPT protective MBR, but no valid GPT header was found at LBA 1"
                    .into(),
            ));
        }
        let mut parts = Vec::new();
        let disk_id = u32::from_le_bytes(sector0[440..444].try_into().unwrap());
        let uuid = |n: u32| format!("{disk_id:08x}-{n:02x}");
        let mut extended = None;
        for (i, p) in primaries.iter().enumerate().filter(|(_, p)| p.is_used()) {
            let n = i as u32 + 1;
            let (start, end) = (
                u64::from(p.start),
                u64::from(p.start) + u64::from(p.sectors),
            );
            if start == 0 || end > disk_sectors {
                return Err(corrupt(format!(
                    "partition {n} (sectors {start}..{end}) does not fit the disk ({disk_sectors} sectors)"
                )));
            }
            let kind = if is_extended_type(p.sys) {
                if extended.is_some() {
                    return Err(corrupt("more than one extended partition".into()));
                }
                extended = Some((start, end));
                PartKind::MbrExtended { sys: p.sys }
            } else {
                PartKind::MbrPrimary { sys: p.sys }
            };
            parts.push(Partition {
                number: n,
                start,
                sectors: end - start,
                kind,
                uuid: uuid(n),
                ebr: None,
            });
        }
        let mut logicals = Vec::new();
        if let Some((ext_start, ext_end)) = extended {
            let mut ebr = ext_start;
            let mut n = 5u32;
            loop {
                if logicals.len() >= MAX_LOGICALS {
                    return Err(corrupt(format!(
                        "EBR chain longer than {MAX_LOGICALS} links"
                    )));
                }
                let mut s = vec![0u8; 512];
                read_at(dev, ebr * ss, &mut s)
                    .map_err(io_err(format!("reading the EBR at LBA {ebr}")))?;
                if s[510..512] != [0x55, 0xaa] {
                    if ebr == ext_start {
                        break; // An empty extended partition needs no EBR.
                    }
                    return Err(corrupt(format!("EBR at LBA {ebr} has no 0x55AA signature")));
                }
                let this = Entry::parse(&s[446..462]);
                let next = Entry::parse(&s[462..478]);
                if this.is_used() {
                    let start = ebr + u64::from(this.start);
                    let end = start + u64::from(this.sectors);
                    if this.start == 0 || end > ext_end {
                        return Err(corrupt(format!(
                            "logical partition {n} (sectors {start}..{end}) lies outside its extended partition (sectors {ext_start}..{ext_end})"
                        )));
                    }
                    parts.push(Partition {
                        number: n,
                        start,
                        sectors: end - start,
                        kind: PartKind::MbrLogical { sys: this.sys },
                        uuid: uuid(n),
                        ebr: Some(ebr),
                    });
                    n += 1;
                }
                logicals.push(Logical {
                    ebr_lba: ebr,
                    entry: this,
                });
                if !next.is_used() {
                    break;
                }
                let next_lba = ext_start + u64::from(next.start);
                if next_lba <= ebr || next_lba >= ext_end {
                    return Err(corrupt(format!(
                        "EBR at LBA {ebr} links to LBA {next_lba}, which is not after it inside the extended partition"
                    )));
                }
                ebr = next_lba;
            }
        }
        let mut table = Table {
            kind: TableKind::Mbr,
            sector_size: ss,
            disk_sectors,
            first_usable: 1,
            last_usable: disk_sectors.min(1 << 32).saturating_sub(1),
            grow_limit: disk_sectors.min(1 << 32).saturating_sub(1),
            partitions: parts,
            warnings: Vec::new(),
        };
        table.partitions.sort_by_key(|p| p.number);
        check_overlaps(&table)?;
        Ok(Mbr {
            sector_size: ss,
            disk_sectors,
            sector0,
            primaries,
            logicals,
            table,
        })
    }

    /// Adds a primary partition in the first free slot; returns its number. A disk whose four
    /// primary slots are taken gets a clear refusal (an MBR holds four primaries).
    pub fn add_primary(&mut self, start: u64, sectors: u64, sys: u8) -> Result<u32, DiskError> {
        let slot = self.primaries.iter().position(|p| !p.is_used()).ok_or_else(|| {
            DiskError::Refused(
                "all four MBR primary partition slots are in use; an MBR disk cannot take a 5th primary partition (use a GPT image, or free a slot)".into(),
            )
        })?;
        let end = start + sectors;
        if start == 0 || end > (1u64 << 32) || end > self.disk_sectors {
            return Err(DiskError::Refused(format!(
                "sectors {start}..{end} cannot be addressed by an MBR on this disk ({} sectors; MBR stops at 2^32)",
                self.disk_sectors
            )));
        }
        let before = self.clone();
        self.primaries[slot] = Entry {
            boot: 0,
            sys,
            start: start as u32,
            sectors: sectors as u32,
        };
        let n = slot as u32 + 1;
        let disk_id = u32::from_le_bytes(self.sector0[440..444].try_into().unwrap());
        self.table.partitions.push(Partition {
            number: n,
            start,
            sectors,
            kind: PartKind::MbrPrimary { sys },
            uuid: format!("{disk_id:08x}-{n:02x}"),
            ebr: None,
        });
        self.table.partitions.sort_by_key(|p| p.number);
        if let Err(e) = check_overlaps(&self.table) {
            *self = before;
            return Err(e);
        }
        Ok(n)
    }

    /// Writes sector 0 (a single-sector write: it lands whole or not at all) and flushes it.
    pub fn write_sector0<D: Device + ?Sized>(&mut self, dev: &mut D) -> Result<(), DiskError> {
        for (i, p) in self.primaries.iter().enumerate() {
            p.encode(&mut self.sector0[446 + 16 * i..462 + 16 * i]);
        }
        dev.seek(SeekFrom::Start(0))
            .and_then(|_| dev.write_all(&self.sector0))
            .and_then(|_| dev.sync())
            .map_err(io_err("writing the MBR"))
    }

    // -----------------------------------------------------------------------------------------
    // Single-sector edits for reclaiming space. Each validates the whole change first, then
    // writes exactly one sector (sector 0 or one EBR) and flushes it, then updates `self`: a
    // sector is written whole or not at all, so before and after the call the disk holds a
    // valid table. Only the 16-byte entry being changed is re-encoded; the rest of the sector
    // (boot code, disk signature, the other entries byte for byte) is written back as it is.

    /// The kernel's number of the logical at `idx` in `logicals` (empty EBRs take no number).
    fn logical_index(&self, number: u32) -> Option<usize> {
        let mut n = 5u32;
        for (i, l) in self.logicals.iter().enumerate() {
            if l.entry.is_used() {
                if n == number {
                    return Some(i);
                }
                n += 1;
            }
        }
        None
    }

    /// The extended container: its slot and extent.
    fn extended(&self) -> Option<(usize, u64, u64)> {
        self.primaries
            .iter()
            .enumerate()
            .find(|(_, p)| p.is_used() && is_extended_type(p.sys))
            .map(|(i, p)| {
                let s = u64::from(p.start);
                (i, s, s + u64::from(p.sectors))
            })
    }

    fn write_one<D: Device + ?Sized>(
        &self,
        dev: &mut D,
        lba: u64,
        sector: &[u8],
        what: &str,
    ) -> Result<(), DiskError> {
        dev.seek(SeekFrom::Start(lba * self.sector_size))
            .and_then(|_| dev.write_all(sector))
            .and_then(|_| dev.sync())
            .map_err(io_err(format!("writing the {what} at LBA {lba}")))
    }

    /// The EBR at `lba` as it is on disk now (its first 512 bytes, where the table is).
    fn read_ebr<D: Read + Seek + ?Sized>(
        &self,
        dev: &mut D,
        lba: u64,
    ) -> Result<Vec<u8>, DiskError> {
        let mut s = vec![0u8; 512];
        read_at(dev, lba * self.sector_size, &mut s)
            .map_err(io_err(format!("reading the EBR at LBA {lba}")))?;
        if s[510..512] != [0x55, 0xaa] {
            return Err(corrupt(format!("EBR at LBA {lba} has no 0x55AA signature")));
        }
        Ok(s)
    }

    fn table_part_mut(&mut self, number: u32) -> Option<&mut Partition> {
        self.table
            .partitions
            .iter_mut()
            .find(|p| p.number == number)
    }

    /// Clears primary slot `number` (1-4): one write of sector 0, flushed. The extended
    /// container is refused: its logicals would vanish with it.
    pub fn remove_primary<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
    ) -> Result<(), DiskError> {
        let slot = self.primary_slot(number)?;
        if is_extended_type(self.primaries[slot].sys) {
            return Err(DiskError::Refused(format!(
                "partition {number} is the extended container; removing it would remove every logical partition"
            )));
        }
        let mut sector0 = self.sector0.clone();
        Entry::default().encode_at(&mut sector0[446 + 16 * slot..462 + 16 * slot], 0);
        self.write_one(dev, 0, &sector0, "MBR")?;
        self.sector0 = sector0;
        self.primaries[slot] = Entry::default();
        self.table.partitions.retain(|p| p.number != number);
        Ok(())
    }

    fn primary_slot(&self, number: u32) -> Result<usize, DiskError> {
        (1..=4)
            .contains(&number)
            .then(|| number as usize - 1)
            .filter(|&s| self.primaries[s].is_used())
            .ok_or_else(|| {
                DiskError::Refused(format!("there is no MBR primary partition {number}"))
            })
    }

    /// Sets the length of primary slot `number` (a primary partition or the extended container;
    /// its start never moves): one write of sector 0, flushed. Refused when the new extent
    /// leaves the disk or the 2^32 sectors an MBR addresses, overlaps another partition, or
    /// (for the container) no longer holds every logical.
    pub fn set_primary_sectors<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
        sectors: u64,
    ) -> Result<(), DiskError> {
        let slot = self.primary_slot(number)?;
        let start = u64::from(self.primaries[slot].start);
        let end = start.saturating_add(sectors);
        if sectors == 0 || end > self.disk_sectors || end > 1 << 32 {
            return Err(DiskError::Refused(format!(
                "partition {number} cannot end at sector {end}: the disk has {} sectors and an MBR addresses at most 2^32",
                self.disk_sectors
            )));
        }
        let mut table = self.table.clone();
        if let Some(p) = table.partitions.iter_mut().find(|p| p.number == number) {
            p.sectors = sectors;
        }
        check_overlaps(&table).map_err(|e| {
            let why = match e {
                DiskError::CorruptMbr(why) => why,
                other => other.to_string(),
            };
            DiskError::Refused(format!(
                "partition {number} cannot end at sector {end}: {why}"
            ))
        })?;
        if is_extended_type(self.primaries[slot].sys)
            && let Some(l) = table
                .partitions
                .iter()
                .filter(|p| p.is_logical())
                .find(|p| p.end() > end)
        {
            return Err(DiskError::Refused(format!(
                "the extended container {number} cannot end at sector {end}: logical partition {} ends at {}",
                l.number,
                l.end()
            )));
        }
        let mut e = self.primaries[slot];
        e.sectors = sectors as u32;
        let mut sector0 = self.sector0.clone();
        e.encode_at(&mut sector0[446 + 16 * slot..462 + 16 * slot], 0);
        self.write_one(dev, 0, &sector0, "MBR")?;
        self.sector0 = sector0;
        self.primaries[slot] = e;
        self.table = table;
        Ok(())
    }

    /// Sets the extended container's length (see `set_primary_sectors`); refused for a slot
    /// that is not the container.
    pub fn set_extended_sectors<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
        sectors: u64,
    ) -> Result<(), DiskError> {
        match self.extended() {
            Some((slot, _, _)) if slot as u32 + 1 == number => {
                self.set_primary_sectors(dev, number, sectors)
            }
            _ => Err(DiskError::Refused(format!(
                "partition {number} is not the extended container"
            ))),
        }
    }

    /// Sets the length of logical `number` (its start never moves) in its own EBR's first
    /// entry: one write of that EBR, flushed. The logical must stay inside its container and
    /// short of the next logical's EBR, so grow the container first.
    pub fn set_logical_sectors<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
        sectors: u64,
    ) -> Result<(), DiskError> {
        let idx = self.logical_index(number).ok_or_else(|| {
            DiskError::Refused(format!("there is no MBR logical partition {number}"))
        })?;
        let (_, _, ext_end) = self
            .extended()
            .ok_or_else(|| corrupt("logicals without an extended partition".into()))?;
        let l = &self.logicals[idx];
        let start = l.ebr_lba + u64::from(l.entry.start);
        let end = start.saturating_add(sectors);
        let next_ebr = self.logicals.get(idx + 1).map_or(ext_end, |n| n.ebr_lba);
        if sectors == 0 || end > next_ebr || sectors > u64::from(u32::MAX) {
            return Err(DiskError::Refused(format!(
                "logical partition {number} cannot end at sector {end}: its container or the next EBR ends it at sector {next_ebr}"
            )));
        }
        let ebr_lba = l.ebr_lba;
        let mut e = l.entry;
        e.sectors = sectors as u32;
        let mut s = self.read_ebr(dev, ebr_lba)?;
        if Entry::parse(&s[446..462]) != l.entry {
            return Err(DiskError::Refused(format!(
                "the EBR at LBA {ebr_lba} changed on disk since it was read"
            )));
        }
        e.encode_at(&mut s[446..462], ebr_lba);
        self.write_one(dev, ebr_lba, &s, "EBR")?;
        self.logicals[idx].entry = e;
        if let Some(p) = self.table_part_mut(number) {
            p.sectors = sectors;
        }
        Ok(())
    }

    /// Makes the link to logical `number`'s EBR (in the previous EBR; for the first logical
    /// that is the container's own entry, and nothing is written) cover that EBR up to `end`,
    /// the convention fdisk and sfdisk follow. One write of the previous EBR, flushed; `false`
    /// when the link already reaches `end` and nothing was written. The kernel reads only the
    /// start of a link, so a link longer than the logical it leads to is harmless: grow the
    /// link before the logical.
    pub fn set_link_end<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
        end: u64,
    ) -> Result<bool, DiskError> {
        let idx = self.logical_index(number).ok_or_else(|| {
            DiskError::Refused(format!("there is no MBR logical partition {number}"))
        })?;
        if idx == 0 {
            return Ok(false);
        }
        let (_, ext_start, ext_end) = self
            .extended()
            .ok_or_else(|| corrupt("logicals without an extended partition".into()))?;
        let (prev, this) = (self.logicals[idx - 1].ebr_lba, self.logicals[idx].ebr_lba);
        let next_ebr = self.logicals.get(idx + 1).map_or(ext_end, |n| n.ebr_lba);
        if end <= this || end > next_ebr {
            return Err(DiskError::Refused(format!(
                "the link to the EBR at LBA {this} cannot end at sector {end} (the next EBR or the container ends at {next_ebr})"
            )));
        }
        let mut s = self.read_ebr(dev, prev)?;
        let link = Entry::parse(&s[462..478]);
        if !link.is_used() || ext_start + u64::from(link.start) != this {
            return Err(DiskError::Refused(format!(
                "the EBR at LBA {prev} no longer links to the EBR at LBA {this}"
            )));
        }
        let want = Entry {
            sectors: (end - this) as u32,
            ..link
        };
        if want == link {
            return Ok(false);
        }
        want.encode_at(&mut s[462..478], ext_start);
        self.write_one(dev, prev, &s, "EBR")?;
        Ok(true)
    }

    /// Takes the last logical partition out of the EBR chain in one sector write, flushed: the
    /// previous EBR's link is replaced by the removed EBR's own link (empty, for the last one),
    /// or, for the first logical, whose EBR the chain starts at, that EBR's first entry is
    /// cleared. The removed EBR's sector is left as it is: nothing links to it any more.
    ///
    /// The kernel numbers logicals by their place in the chain, so removing one that has a
    /// logical after it would renumber that one (6 becomes 5) while the kernel, and whatever
    /// is mounted from it, still know it by its old number: that layout is refused.
    pub fn unlink_logical<D: Device + ?Sized>(
        &mut self,
        dev: &mut D,
        number: u32,
    ) -> Result<(), DiskError> {
        let idx = self.logical_index(number).ok_or_else(|| {
            DiskError::Refused(format!("there is no MBR logical partition {number}"))
        })?;
        if let Some(later) = self
            .table
            .partitions
            .iter()
            .find(|p| p.is_logical() && p.number > number)
        {
            return Err(DiskError::Refused(format!(
                "deleting logical partition {number} would renumber logical partition {} after it (the kernel numbers logicals by their place in the chain); a config partition that is not the last logical partition is not supported",
                later.number
            )));
        }
        let this = self.logicals[idx].clone();
        if idx == 0 {
            let mut s = self.read_ebr(dev, this.ebr_lba)?;
            if Entry::parse(&s[446..462]) != this.entry {
                return Err(DiskError::Refused(format!(
                    "the EBR at LBA {} changed on disk since it was read",
                    this.ebr_lba
                )));
            }
            Entry::default().encode_at(&mut s[446..462], 0);
            self.write_one(dev, this.ebr_lba, &s, "EBR")?;
            self.logicals[0].entry = Entry::default();
        } else {
            let (_, ext_start, _) = self
                .extended()
                .ok_or_else(|| corrupt("logicals without an extended partition".into()))?;
            let prev = self.logicals[idx - 1].ebr_lba;
            let own = self.read_ebr(dev, this.ebr_lba)?;
            let mut s = self.read_ebr(dev, prev)?;
            let link = Entry::parse(&s[462..478]);
            if !link.is_used() || ext_start + u64::from(link.start) != this.ebr_lba {
                return Err(DiskError::Refused(format!(
                    "the EBR at LBA {prev} no longer links to the EBR at LBA {}",
                    this.ebr_lba
                )));
            }
            // The removed EBR's own link, verbatim: its start is relative to the container,
            // as the previous EBR's is.
            s[462..478].copy_from_slice(&own[462..478]);
            self.write_one(dev, prev, &s, "EBR")?;
            self.logicals.remove(idx);
        }
        self.table.partitions.retain(|p| p.number != number);
        Ok(())
    }
}

fn check_overlaps(t: &Table) -> Result<(), DiskError> {
    // Logicals are checked against their container when read; here data partitions must not
    // overlap each other, and primaries must not overlap the extended container.
    let mut spans: Vec<&Partition> = t.partitions.iter().filter(|p| !p.is_logical()).collect();
    spans.sort_by_key(|p| p.start);
    for w in spans.windows(2) {
        if w[1].start < w[0].end() {
            return Err(corrupt(format!(
                "partitions {} and {} overlap",
                w[0].number, w[1].number
            )));
        }
    }
    let mut logicals: Vec<&Partition> = t.partitions.iter().filter(|p| p.is_logical()).collect();
    logicals.sort_by_key(|p| p.start);
    for w in logicals.windows(2) {
        if w[1].start < w[0].end() {
            return Err(corrupt(format!(
                "partitions {} and {} overlap",
                w[0].number, w[1].number
            )));
        }
    }
    Ok(())
}

/// The logical sector size an MBR disk image was made for. An MBR does not record it, so the
/// partitions' contents decide: a filesystem signature found where the 4096-byte reading puts a
/// partition, and not where the 512-byte reading does, means a 4Kn image.
pub fn probe_sector_size<D: Read + Seek + ?Sized>(dev: &mut D) -> Result<u64, DiskError> {
    let mut s0 = [0u8; 512];
    if read_at(dev, 0, &mut s0).is_err() || !plausible(&s0) {
        return Ok(512);
    }
    let len = device_len(dev)?;
    let mut score = [0usize; 2];
    for i in 0..4 {
        let e = Entry::parse(&s0[446 + 16 * i..462 + 16 * i]);
        if !e.is_used() {
            continue;
        }
        for (k, ss) in [512u64, 4096].into_iter().enumerate() {
            let off = u64::from(e.start) * ss;
            if off < len && crate::fs::probe::has_known_signature(dev, off, is_extended_type(e.sys))
            {
                score[k] += 1;
            }
        }
    }
    Ok(if score[1] > score[0] { 4096 } else { 512 })
}
