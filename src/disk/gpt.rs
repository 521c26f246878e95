//! GPT: read with an explicit fallback to the backup header, edit, and write in an order that
//! leaves at least one valid copy of the table on disk at every instant.
//!
//! `gptman` provides the on-disk structures, their CRCs and encoding. Its reader silently falls
//! back to the backup header, reads any entry count a corrupt header claims, and its writer writes
//! primary then backup with no flush in between; so reading (with validation and an operator
//! warning on fallback) and the write order live here.

use super::{
    DiskError, PartKind, Partition, Table, TableKind, device::Device, device_len, guid_to_string,
    io_err, read_at,
};
use gptman::{GPTHeader, GPTPartitionEntry};
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Most partition entries a header may claim before it is taken as corrupt. The UEFI minimum
/// is 128; nothing real uses more than a few hundred.
const MAX_ENTRIES: u32 = 4096;
const ENTRY_SIZE: u32 = 128;

/// `0FC63DAF-8483-4772-8E79-3D69D8477DE4`, the Linux filesystem data type (`sgdisk` code 8300).
pub const LINUX_DATA: [u8; 16] = [
    0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4,
];

/// Whether a GPT header signature sits at LBA 1 for this sector size.
pub fn has_signature<D: Read + Seek + ?Sized>(
    dev: &mut D,
    sector_size: u64,
    len: u64,
) -> Result<bool, DiskError> {
    if len < 2 * sector_size {
        return Ok(false);
    }
    let mut sig = [0u8; 8];
    read_at(dev, sector_size, &mut sig).map_err(io_err("reading the GPT signature"))?;
    Ok(&sig == b"EFI PART")
}

/// A GPT as read, ready to be edited and written back.
#[derive(Clone, Debug)]
pub struct Gpt {
    pub sector_size: u64,
    pub disk_sectors: u64,
    /// The header in its primary form (at LBA 1, array at LBA 2), whichever copy it came from.
    pub header: GPTHeader,
    pub entries: Vec<GPTPartitionEntry>,
    /// Where the backup header was when read (`header.backup_lba` may be changed since).
    pub read_backup_lba: u64,
    /// The derived, table-independent view; kept in step by every edit.
    pub table: Table,
}

fn header_problem(
    dev: &mut (impl Read + Seek + ?Sized),
    ss: u64,
    lba: u64,
    disk_sectors: u64,
) -> Result<(GPTHeader, Vec<GPTPartitionEntry>), String> {
    if lba >= disk_sectors {
        return Err(format!(
            "LBA {lba} is beyond the disk's end (LBA {})",
            disk_sectors - 1
        ));
    }
    dev.seek(SeekFrom::Start(lba * ss))
        .map_err(|e| format!("seek to LBA {lba}: {e}"))?;
    let h = GPTHeader::read_from(dev).map_err(|e| match e {
        gptman::Error::InvalidChecksum(stored, computed) => {
            format!("header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")
        }
        gptman::Error::InvalidSignature => "no \"EFI PART\" signature".to_string(),
        other => other.to_string(),
    })?;
    if h.primary_lba != lba {
        return Err(format!(
            "header at LBA {lba} says it is at LBA {}",
            h.primary_lba
        ));
    }
    if h.size_of_partition_entry != ENTRY_SIZE {
        return Err(format!(
            "partition entry size {} (only {ENTRY_SIZE} is supported)",
            h.size_of_partition_entry
        ));
    }
    if h.number_of_partition_entries == 0 || h.number_of_partition_entries > MAX_ENTRIES {
        return Err(format!(
            "implausible entry count {}",
            h.number_of_partition_entries
        ));
    }
    let array_sectors = array_sectors(&h, ss);
    if h.partition_entry_lba < 2
        || h.partition_entry_lba.saturating_add(array_sectors) > disk_sectors
    {
        return Err(format!(
            "partition array at LBA {} ({array_sectors} sectors) lies outside the disk",
            h.partition_entry_lba
        ));
    }
    if h.first_usable_lba > h.last_usable_lba.saturating_add(1)
        || h.last_usable_lba >= disk_sectors
        || h.first_usable_lba < 2
    {
        return Err(format!(
            "usable range LBA {}..={} does not fit a disk of {disk_sectors} sectors",
            h.first_usable_lba, h.last_usable_lba
        ));
    }
    // The tables must lie outside the usable range, or rewriting them would overwrite
    // partitions: the primary array before it and the other header after it; the backup array
    // between the usable range and the backup header.
    let array_end = h.partition_entry_lba.saturating_add(array_sectors);
    let misplaced = if lba == 1 {
        array_end > h.first_usable_lba || h.backup_lba <= h.last_usable_lba
    } else {
        h.partition_entry_lba <= h.last_usable_lba || array_end > lba
    };
    if misplaced {
        return Err(format!(
            "partition array at LBA {} ({array_sectors} sectors) or the other header (LBA {}) lies inside the usable range LBA {}..={}",
            h.partition_entry_lba, h.backup_lba, h.first_usable_lba, h.last_usable_lba
        ));
    }
    // The whole array in one read: gptman seeks and reads entry by entry, which is two system
    // calls per entry (256 for the usual 128) on every table read; `run` reads the table
    // several times. The size is bounded by the checks above (MAX_ENTRIES entries).
    let len = (array_sectors * ss) as usize;
    // gptman reads `size_of::<GPTPartitionEntry>()` bytes (more than the 128 it decodes) at each
    // entry: zeros after the array let it read the last one.
    let mut array = vec![0u8; len + std::mem::size_of::<GPTPartitionEntry>()];
    read_at(dev, h.partition_entry_lba * ss, &mut array[..len])
        .map_err(|e| format!("reading the partition array: {e}"))?;
    let mut array = At {
        base: h.partition_entry_lba * ss,
        buf: io::Cursor::new(array),
    };
    let entries = h.read_partitions(&mut array, ss).map_err(|e| match e {
        gptman::Error::InvalidPartitionEntryArrayChecksum(stored, computed) => format!(
            "partition array CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
        ),
        other => format!("reading the partition array: {other}"),
    })?;
    Ok((h, entries))
}

/// A buffer that reads as the device bytes it was read from, starting at `base`.
struct At {
    base: u64,
    buf: io::Cursor<Vec<u8>>,
}

impl Read for At {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.buf.read(out)
    }
}

impl Seek for At {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Start(p) if p >= self.base => {
                self.buf.set_position(p - self.base);
                Ok(p)
            }
            _ => Err(io::Error::other("seek outside the partition array read")),
        }
    }
}

/// The backup LBA a primary header records, if that header (not its array) is intact.
fn intact_header_pointer(dev: &mut (impl Read + Seek + ?Sized), ss: u64) -> Option<u64> {
    dev.seek(SeekFrom::Start(ss)).ok()?;
    let h = GPTHeader::read_from(dev).ok()?;
    (h.primary_lba == 1).then_some(h.backup_lba)
}

fn array_sectors(h: &GPTHeader, ss: u64) -> u64 {
    (u64::from(h.number_of_partition_entries) * u64::from(h.size_of_partition_entry)).div_ceil(ss)
}

impl Gpt {
    /// Reads the GPT. A bad primary copy is replaced by a good backup, with a warning in
    /// `table.warnings`; both bad is an error that names both problems.
    pub fn read<D: Read + Seek + ?Sized>(dev: &mut D, ss: u64) -> Result<Gpt, DiskError> {
        let len = device_len(dev)?;
        let disk_sectors = len / ss;
        if disk_sectors < 3 {
            return Err(DiskError::CorruptGpt(format!(
                "disk of {len} bytes is too small"
            )));
        }
        let mut warnings = Vec::new();
        let last = disk_sectors - 1;
        let (header, entries, read_backup_lba) = match header_problem(dev, ss, 1, disk_sectors) {
            Ok((h, e)) => {
                let backup_lba = h.backup_lba;
                match header_problem(dev, ss, backup_lba, disk_sectors) {
                    Ok((_, be)) if be != e => warnings.push(format!(
                        "the backup GPT at LBA {backup_lba} lists other partitions than the primary; the primary is used and the backup will be rewritten on the next table write"
                    )),
                    Ok(_) => {}
                    Err(why) => warnings.push(format!(
                        "the backup GPT header at LBA {backup_lba} is bad ({why}); the primary is used and the backup will be rewritten on the next table write"
                    )),
                }
                if backup_lba != last {
                    warnings.push(format!(
                        "the backup GPT header is at LBA {backup_lba}, not at the disk's last LBA {last}: {}", size_note(backup_lba, last)
                    ));
                }
                (h, e, backup_lba)
            }
            Err(primary_why) => {
                // Where the backup is: where the primary header says, if that header itself
                // is intact (only its array is bad, as after a torn array write; gdisk does
                // the same), else the disk's last LBA.
                let mut candidates = Vec::new();
                if let Some(alt) = intact_header_pointer(dev, ss)
                    && alt > 1
                    && alt < last
                {
                    candidates.push(alt);
                }
                candidates.push(last);
                let mut whys = Vec::new();
                let mut found = None;
                for lba in candidates {
                    match header_problem(dev, ss, lba, disk_sectors) {
                        Ok(he) => {
                            found = Some((lba, he));
                            break;
                        }
                        Err(why) => whys.push(format!("backup header at LBA {lba}: {why}")),
                    }
                }
                let Some((lba, (mut h, e))) = found else {
                    return Err(DiskError::CorruptGpt(format!(
                        "primary header: {primary_why}; {}",
                        whys.join("; ")
                    )));
                };
                warnings.push(format!(
                    "the primary GPT header is bad ({primary_why}); using the backup at LBA {lba}, and the primary will be rewritten on the next table write"
                ));
                if lba != last {
                    warnings.push(format!(
                        "the backup GPT header is at LBA {lba}, not at the disk's last LBA {last}: {}", size_note(lba, last)
                    ));
                }
                h.backup_lba = h.primary_lba;
                h.primary_lba = 1;
                h.partition_entry_lba = 2;
                (h, e, lba)
            }
        };
        let mut gpt = Gpt {
            sector_size: ss,
            disk_sectors,
            header,
            entries,
            read_backup_lba,
            table: Table {
                kind: TableKind::Gpt,
                sector_size: ss,
                disk_sectors,
                first_usable: 0,
                last_usable: 0,
                grow_limit: 0,
                partitions: Vec::new(),
                warnings,
            },
        };
        gpt.check_entries()?;
        gpt.refresh_table();
        Ok(gpt)
    }

    fn check_entries(&self) -> Result<(), DiskError> {
        let h = &self.header;
        let mut used: Vec<(u32, u64, u64)> = Vec::new();
        for (i, e) in self.entries.iter().enumerate().filter(|(_, e)| e.is_used()) {
            let n = i as u32 + 1;
            if e.starting_lba > e.ending_lba
                || e.starting_lba < h.first_usable_lba
                || e.ending_lba > h.last_usable_lba
            {
                return Err(DiskError::CorruptGpt(format!(
                    "partition {n} (LBA {}..={}) lies outside the usable range LBA {}..={}",
                    e.starting_lba, e.ending_lba, h.first_usable_lba, h.last_usable_lba
                )));
            }
            used.push((n, e.starting_lba, e.ending_lba));
        }
        used.sort_by_key(|u| u.1);
        for w in used.windows(2) {
            if w[1].1 <= w[0].2 {
                return Err(DiskError::CorruptGpt(format!(
                    "partitions {} and {} overlap",
                    w[0].0, w[1].0
                )));
            }
        }
        Ok(())
    }

    fn refresh_table(&mut self) {
        self.table.first_usable = self.header.first_usable_lba;
        self.table.last_usable = self.header.last_usable_lba;
        self.table.grow_limit = self.disk_sectors - 1 - self.array_sectors() - 1;
        self.table.partitions = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_used())
            .map(|(i, e)| Partition {
                number: i as u32 + 1,
                start: e.starting_lba,
                sectors: e.ending_lba - e.starting_lba + 1,
                kind: PartKind::Gpt {
                    type_guid: e.partition_type_guid,
                    name: e.partition_name.as_str().to_string(),
                    attributes: e.attribute_bits,
                },
                uuid: guid_to_string(&e.unique_partition_guid),
                ebr: None,
            })
            .collect();
    }

    fn array_sectors(&self) -> u64 {
        array_sectors(&self.header, self.sector_size)
    }

    /// Whether the primary copy on `dev` (header at LBA 1 and its array) is valid, that is
    /// whether it is the copy readers use, rather than the backup.
    pub fn primary_valid<D: Read + Seek + ?Sized>(&self, dev: &mut D) -> bool {
        header_problem(dev, self.sector_size, 1, self.disk_sectors).is_ok()
    }

    /// Whether both copies on `dev` are valid and list exactly the partitions of `self`. False
    /// after a `write` interrupted inside or between the copies (the table then reads from the
    /// complete copy, but the kernel reads only the primary): a `write` of `self` completes it.
    pub fn copies_intact<D: Read + Seek + ?Sized>(&self, dev: &mut D) -> bool {
        let (ss, n) = (self.sector_size, self.disk_sectors);
        [1, self.header.backup_lba]
            .into_iter()
            .all(|lba| matches!(header_problem(dev, ss, lba, n), Ok((_, e)) if e == self.entries))
    }

    /// Whether the backup header sits short of the disk's end (a small image on a big disk).
    pub fn backup_misplaced(&self) -> bool {
        self.header.backup_lba != self.disk_sectors - 1
    }

    /// Moves the backup header and array to the disk's real end and extends the usable range
    /// to match (`sgdisk -e`). The first usable LBA is kept as it is.
    pub fn relocate_backup(&mut self) {
        let last = self.disk_sectors - 1;
        self.header.backup_lba = last;
        self.header.last_usable_lba = last - self.array_sectors() - 1;
        self.refresh_table();
    }

    /// Adds a partition in the first free entry slot; returns its number.
    pub fn add(
        &mut self,
        start: u64,
        end_inclusive: u64,
        type_guid: [u8; 16],
        unique_guid: [u8; 16],
        name: &str,
    ) -> Result<u32, DiskError> {
        if name.encode_utf16().count() > 36 {
            return Err(DiskError::Refused(format!(
                "GPT partition name {name:?} is longer than 36 UTF-16 units"
            )));
        }
        let slot = self
            .entries
            .iter()
            .position(|e| e.is_unused())
            .ok_or_else(|| {
                DiskError::Refused(format!(
                    "all {} GPT partition entries are in use",
                    self.entries.len()
                ))
            })?;
        self.entries[slot] = GPTPartitionEntry {
            partition_type_guid: type_guid,
            unique_partition_guid: unique_guid,
            starting_lba: start,
            ending_lba: end_inclusive,
            attribute_bits: 0,
            partition_name: name.into(),
        };
        if let Err(e) = self.check_entries() {
            self.entries[slot] = GPTPartitionEntry::empty();
            return Err(e);
        }
        self.refresh_table();
        Ok(slot as u32 + 1)
    }

    /// Clears a partition's entry; the other partitions keep their numbers.
    pub fn remove(&mut self, number: u32) -> Result<(), DiskError> {
        let e = self.entry_mut(number)?;
        *e = GPTPartitionEntry::empty();
        self.refresh_table();
        Ok(())
    }

    /// Moves a partition's last sector; its start never moves.
    pub fn set_end(&mut self, number: u32, end_inclusive: u64) -> Result<(), DiskError> {
        let old = self.entry_mut(number)?.ending_lba;
        self.entry_mut(number)?.ending_lba = end_inclusive;
        if let Err(e) = self.check_entries() {
            self.entry_mut(number)?.ending_lba = old;
            return Err(e);
        }
        self.refresh_table();
        Ok(())
    }

    fn entry_mut(&mut self, number: u32) -> Result<&mut GPTPartitionEntry, DiskError> {
        self.entries
            .get_mut((number as usize).wrapping_sub(1))
            .filter(|e| e.is_used())
            .ok_or_else(|| DiskError::Refused(format!("there is no GPT partition {number}")))
    }

    /// Encodes one copy (header sector and array sectors) of the table.
    fn encode(&self, primary: bool) -> Result<(Vec<u8>, u64, Vec<u8>, u64), DiskError> {
        let ss = self.sector_size;
        let mut h = self.header.clone();
        // The primary array stays where the header has it (LBA 2 but for tables moved with
        // `sgdisk -j`, whose LBA 2.. may hold a boot loader).
        h.primary_lba = 1;
        if !primary {
            h.primary_lba = self.header.backup_lba;
            h.backup_lba = 1;
            h.partition_entry_lba = self.header.last_usable_lba + 1;
        }
        let mut rec = Recorder::default();
        h.write_into(&mut rec, ss, &self.entries)
            .map_err(|e| DiskError::Refused(format!("encoding the GPT: {e}")))?;
        let mut header_sector = vec![0u8; ss as usize];
        let mut array = vec![0u8; (self.array_sectors() * ss) as usize];
        for (off, bytes) in rec.chunks {
            let (buf, base) = if off == h.primary_lba * ss {
                (&mut header_sector, h.primary_lba * ss)
            } else {
                (&mut array, h.partition_entry_lba * ss)
            };
            let at = (off - base) as usize;
            buf[at..at + bytes.len()].copy_from_slice(&bytes);
        }
        Ok((header_sector, h.primary_lba, array, h.partition_entry_lba))
    }

    /// Whether both copies of the table fit the disk outside the usable range, as `write` puts
    /// them: primary array before it, backup array right after it, backup header after that.
    fn check_layout(&self) -> Result<(), DiskError> {
        let h = &self.header;
        let arr = self.array_sectors();
        let fits = h.partition_entry_lba >= 2
            && h.partition_entry_lba.saturating_add(arr) <= h.first_usable_lba
            && h.first_usable_lba <= h.last_usable_lba.saturating_add(1)
            && h.last_usable_lba.saturating_add(arr) < h.backup_lba
            && h.backup_lba < self.disk_sectors;
        if fits {
            return Ok(());
        }
        Err(DiskError::Refused(format!(
            "the GPT does not fit the disk's {} sectors: primary array at LBA {}, usable LBA {}..={}, {arr}-sector backup array and backup header at LBA {}",
            self.disk_sectors,
            h.partition_entry_lba,
            h.first_usable_lba,
            h.last_usable_lba,
            h.backup_lba
        )))
    }

    /// Writes the table back. Order, so that a power cut at any instant leaves a valid table
    /// that is either the old or the new one:
    /// 1. the copy readers do not use now, array then header, each followed by a flush: the
    ///    backup when the primary on disk is valid (readers use the primary), else the primary
    ///    (readers use the backup). Until that header lands, the copy in use is untouched; an
    ///    array torn under an old header fails its CRC;
    /// 2. the other copy, the same way: while it is torn the first one, complete, is used;
    /// 3. the protective MBR's size, when the backup moved and the MBR is a plain protective one;
    /// 4. a stale backup header left at the image's old end is zeroed, if it lies outside every
    ///    partition, so no tool mistakes it for a table later.
    ///
    /// The crash point `gpt-between-copies` lies between 1 and 2: one copy new, the other old.
    ///
    /// Each header is a single sector, which a disk writes whole or not at all. "Readers" are
    /// `read_table` and gdisk, which fall back to the backup (found through an intact primary
    /// header, else at the last LBA). The kernel reads the backup only when booted with `gpt`:
    /// otherwise, while the primary is being rewritten, it would see no partitions.
    pub fn write<D: Device + ?Sized>(&mut self, dev: &mut D) -> Result<(), DiskError> {
        self.check_entries()?;
        self.check_layout()?;
        let ss = self.sector_size;
        let backup = self.encode(false)?;
        let primary = self.encode(true)?;
        let w = |dev: &mut D, lba: u64, bytes: &[u8], what: &str| -> Result<(), DiskError> {
            dev.seek(SeekFrom::Start(lba * ss))
                .and_then(|_| dev.write_all(bytes))
                .map_err(io_err(format!("writing the {what} at LBA {lba}")))
        };
        let sync = |dev: &mut D| dev.sync().map_err(io_err("flushing the partition table"));
        let copy = |dev: &mut D, c: &(Vec<u8>, u64, Vec<u8>, u64), which: &str| {
            let (header, h_lba, array, a_lba) = c;
            w(dev, *a_lba, array, &format!("{which} GPT partition array"))?;
            sync(dev)?;
            w(dev, *h_lba, header, &format!("{which} GPT header"))?;
            sync(dev)
        };
        let primary_in_use = header_problem(dev, ss, 1, self.disk_sectors).is_ok();
        let (first, second) = if primary_in_use {
            ((&backup, "backup"), (&primary, "primary"))
        } else {
            ((&primary, "primary"), (&backup, "backup"))
        };
        copy(dev, first.0, first.1)?;
        crate::fault::point("gpt-between-copies");
        copy(dev, second.0, second.1)?;
        self.fix_protective_mbr(dev)?;
        let stale = self.read_backup_lba;
        if stale != self.header.backup_lba
            && stale > 1
            && stale < self.disk_sectors
            && !self
                .table
                .partitions
                .iter()
                .any(|p| (p.start..p.end()).contains(&stale))
        {
            let mut old = [0u8; 8];
            read_at(dev, stale * ss, &mut old).map_err(io_err("reading the old backup header"))?;
            if &old == b"EFI PART" {
                w(
                    dev,
                    stale,
                    &vec![0u8; ss as usize],
                    "stale backup GPT header",
                )?;
                sync(dev)?;
            }
        }
        self.read_backup_lba = self.header.backup_lba;
        self.table.warnings.clear();
        if self.backup_misplaced() {
            self.table.warnings.push(format!(
                "the backup GPT header is at LBA {}, not at the disk's last LBA {}: {}",
                self.header.backup_lba,
                self.disk_sectors - 1,
                size_note(self.header.backup_lba, self.disk_sectors - 1)
            ));
        }
        Ok(())
    }

    fn fix_protective_mbr<D: Device + ?Sized>(&self, dev: &mut D) -> Result<(), DiskError> {
        let mut mbr = [0u8; 512];
        read_at(dev, 0, &mut mbr).map_err(io_err("reading the protective MBR"))?;
        if mbr[510..512] != [0x55, 0xaa] {
            return Ok(());
        }
        let entry = |i: usize| &mbr[446 + 16 * i..446 + 16 * (i + 1)];
        let others_empty = (1..4).all(|i| entry(i).iter().all(|b| *b == 0));
        let e0 = entry(0);
        if e0[4] != 0xee || !others_empty || u32::from_le_bytes(e0[8..12].try_into().unwrap()) != 1
        {
            // A hybrid MBR is the operator's own business.
            return Ok(());
        }
        let want = u32::try_from(self.disk_sectors - 1).unwrap_or(u32::MAX);
        if u32::from_le_bytes(e0[12..16].try_into().unwrap()) == want {
            return Ok(());
        }
        mbr[446 + 12..446 + 16].copy_from_slice(&want.to_le_bytes());
        // The ending CHS of a protective MBR that covers the disk is the "beyond CHS" marker.
        mbr[446 + 5..446 + 8].copy_from_slice(&[0xff, 0xff, 0xff]);
        dev.seek(SeekFrom::Start(0))
            .and_then(|_| dev.write_all(&mbr))
            .and_then(|_| dev.sync())
            .map_err(io_err("updating the protective MBR's size"))
    }
}

/// A `Write + Seek` sink that keeps what was written where, so the encoded table can be put on
/// disk in an order of our choosing.
#[derive(Default)]
struct Recorder {
    pos: u64,
    chunks: Vec<(u64, Vec<u8>)>,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.chunks.last_mut() {
            Some((off, bytes)) if *off + bytes.len() as u64 == self.pos => {
                bytes.extend_from_slice(buf)
            }
            _ => self.chunks.push((self.pos, buf.to_vec())),
        }
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Recorder {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match pos {
            SeekFrom::Start(p) => self.pos = p,
            _ => return Err(io::Error::other("recorder seeks only from the start")),
        }
        Ok(self.pos)
    }
}

/// A device of which only the length is known: what `GPTHeader::new_from` needs to size a table.
struct Len(u64);

impl Read for Len {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("nothing to read"))
    }
}

impl Seek for Len {
    fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
        match p {
            SeekFrom::End(0) => Ok(self.0),
            _ => Err(io::Error::other("only the end is known")),
        }
    }
}

/// A fresh, empty GPT for a device of `dev_len` bytes (demo and test images). Write it with
/// `write` after `write_protective_mbr`.
pub fn create(dev_len: u64, sector_size: u64, disk_guid: [u8; 16]) -> Result<Gpt, DiskError> {
    let disk_sectors = dev_len / sector_size;
    // Protective MBR, two headers, two 128-entry arrays and at least one usable sector.
    let array = (128 * u64::from(ENTRY_SIZE)).div_ceil(sector_size.max(1));
    if sector_size == 0 || disk_sectors < 2 * array + 4 {
        return Err(DiskError::Refused(format!(
            "a device of {dev_len} bytes is too small for a GPT with {sector_size}-byte sectors"
        )));
    }
    let header = GPTHeader::new_from(&mut Len(dev_len), sector_size, disk_guid)
        .map_err(|e| DiskError::Refused(format!("making a GPT header: {e}")))?;
    let entries = vec![GPTPartitionEntry::empty(); header.number_of_partition_entries as usize];
    let mut gpt = Gpt {
        sector_size,
        disk_sectors,
        read_backup_lba: header.backup_lba,
        header,
        entries,
        table: Table {
            kind: TableKind::Gpt,
            sector_size,
            disk_sectors,
            first_usable: 0,
            last_usable: 0,
            grow_limit: 0,
            partitions: Vec::new(),
            warnings: Vec::new(),
        },
    };
    gpt.refresh_table();
    Ok(gpt)
}

/// Writes a protective MBR covering the device (for a freshly created GPT).
pub fn write_protective_mbr<D: Device + ?Sized>(
    dev: &mut D,
    sector_size: u64,
) -> Result<(), DiskError> {
    gptman::GPT::write_protective_mbr_into(dev, sector_size)
        .map_err(|e| DiskError::Refused(format!("writing the protective MBR: {e}")))
}

/// Why a backup header is not on the disk's last LBA.
fn size_note(backup_lba: u64, last: u64) -> &'static str {
    if backup_lba < last {
        "the disk is larger than the image written to it"
    } else {
        "the disk is smaller than the image written to it"
    }
}
