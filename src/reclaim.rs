//! The table half of reclaiming the config partition's space (spec §5 steps 4 and 5): delete
//! the config partition from the on-disk table, then grow the root partition into the space
//! after it. Generic over `disk::Device`, so a disk image and a block device take the same path;
//! the kernel is told by the caller (BLKPG), never here.
//!
//! Every operation reads the table from the disk and compares it with what it was asked to do,
//! so it is idempotent and converges after a power cut at any instant: deleting a partition that
//! is gone and growing one that has its planned size return `false`, and an interrupted step is
//! finished by running it again. On GPT those `false` paths still complete a table write that
//! was cut between or inside its two copies (the table then reads from the complete copy, but
//! the kernel reads only the primary), so both copies end whole and identical; on a table that
//! is in order they write nothing.
//!
//! Write orders (each write is flushed before the next one is issued; a header, sector 0 and an
//! EBR are each one sector, which a disk writes whole or not at all):
//!
//! * GPT delete: the entry is cleared and the table written by `Gpt::write`: the copy readers do
//!   not use (array, flush, header, flush), crash point `gpt-between-copies`, then the other
//!   copy the same way. While the second copy is torn the first, complete, is used. Other
//!   entries keep their slots and numbers.
//! * GPT grow with the backup header short of the disk's end (an image on a larger disk):
//!   1. the stale backup header is zeroed, if the primary copy is valid (it is then the copy
//!      every reader uses, and stays valid), so nothing stale is left behind at any cut;
//!   2. the backup moves to the disk's end in its own complete `Gpt::write` (new backup copy
//!      first, then the primary that points to it, then the protective MBR's size); crash
//!      point `after-relocate`;
//!   3. the partition's end moves and the table is written again by `Gpt::write`.
//! * MBR primary delete or grow: sector 0 with that one entry changed: one write.
//! * MBR logical delete: the logical's EBR is unlinked in one write: the previous EBR's link
//!   takes the removed EBR's own link, or for the first logical the EBR at the container's
//!   start has its entry cleared.
//! * MBR logical grow: 1. the extended container grows (sector 0), crash point
//!   `mbr-after-extended`; 2. the link to the logical's EBR in the previous EBR is lengthened
//!   (not for the first logical); 3. the logical's own entry in its EBR. A container or link
//!   larger than what it holds is valid, so every prefix of this order is a valid table.

use crate::disk::{
    self, Device, DiskError, PartKind, Partition, Table, TableKind, gpt::Gpt, mbr::Mbr,
};
use crate::plan::GrowPlan;
use std::io::SeekFrom;

/// A table read for editing.
enum Editor {
    Gpt(Gpt),
    Mbr(Mbr),
}

fn open<D: Device + ?Sized>(dev: &mut D, sector_size: Option<u64>) -> Result<Editor, DiskError> {
    let t = disk::read_table(dev, sector_size)?;
    Ok(match t.kind {
        TableKind::Gpt => Editor::Gpt(Gpt::read(dev, t.sector_size)?),
        TableKind::Mbr => Editor::Mbr(Mbr::read(dev, t.sector_size)?),
    })
}

/// Removes partition `number` from the on-disk table. GPT: its entry is cleared in both arrays
/// (the other partitions keep their numbers) through `Gpt::write`'s crash-safe order. MBR
/// primary: its slot in sector 0 is cleared (one sector write). MBR logical: its EBR is unlinked
/// from the chain in one sector write; only the last logical can be deleted, because the kernel
/// numbers logicals by their place in the chain and deleting an earlier one would renumber the
/// ones after it (refused, saying so). The extended container itself is refused.
///
/// `expect` is the extent (start, sectors) the caller read the partition at: if the table says
/// otherwise nothing is written and the call is refused, so a partition other than the one that
/// was read is never deleted. Returns `Ok(false)` when the partition is already gone (writing
/// nothing unless a GPT write was left unfinished, see the module doc); `Ok(true)` when it was
/// removed.
pub fn delete_partition<D: Device + ?Sized>(
    dev: &mut D,
    sector_size: Option<u64>,
    number: u32,
    expect: (u64, u64),
) -> Result<bool, DiskError> {
    match open(dev, sector_size)? {
        Editor::Gpt(mut g) => {
            let Some(p) = g.table.get(number) else {
                finish_interrupted_write(dev, &mut g)?;
                return Ok(false);
            };
            check_expect(p, expect)?;
            g.remove(number)?;
            g.write(dev)?;
        }
        Editor::Mbr(mut m) => {
            let Some(p) = m.table.get(number) else {
                return Ok(false);
            };
            check_expect(p, expect)?;
            match p.kind {
                PartKind::MbrPrimary { .. } => m.remove_primary(dev, number)?,
                PartKind::MbrLogical { .. } => m.unlink_logical(dev, number)?,
                _ => {
                    return Err(DiskError::Refused(format!(
                        "partition {number} is the extended container, which is never deleted"
                    )));
                }
            }
        }
    }
    Ok(true)
}

fn check_expect(p: &Partition, (start, sectors): (u64, u64)) -> Result<(), DiskError> {
    if (p.start, p.sectors) == (start, sectors) {
        return Ok(());
    }
    Err(DiskError::Refused(format!(
        "partition {} is at sectors {}..{} ({} sectors), not at {start}..{} ({sectors} sectors) as it was read: the table changed, nothing was deleted",
        p.number,
        p.start,
        p.end(),
        p.sectors,
        start.saturating_add(sectors)
    )))
}

/// Grows partition `plan.number` to `plan.new_sectors`; its start never moves. GPT: when the
/// backup header must move to the disk's end (`plan.relocate_backup`, or the new end lies past
/// the last usable sector), that happens first in its own complete crash-safe write (crash point
/// `after-relocate` after it), then the end moves in a second write. MBR primary: one write of
/// sector 0. MBR logical: the extended container grows first (crash point `mbr-after-extended`),
/// then the link to the logical's EBR, then the logical's own entry.
///
/// Returns `Ok(false)` when the partition already has (or exceeds) the planned size (writing
/// nothing unless a GPT write was left unfinished, see the module doc). Refused, before any write, when the partition is missing or an extended container, its
/// start differs from `plan.start`, the new end lies beyond what the table can address, or
/// anything but free space (a partition, a logical's EBR) lies in the range it would grow into.
pub fn grow_partition<D: Device + ?Sized>(
    dev: &mut D,
    sector_size: Option<u64>,
    plan: &GrowPlan,
) -> Result<bool, DiskError> {
    match open(dev, sector_size)? {
        Editor::Gpt(g) => grow_gpt(dev, g, plan),
        Editor::Mbr(m) => grow_mbr(dev, m, plan),
    }
}

/// Checks the partition and the range it grows into; `None` when it is already grown, else
/// the new end (exclusive).
fn check_growth(t: &Table, plan: &GrowPlan) -> Result<Option<u64>, DiskError> {
    let n = plan.number;
    let r = t
        .get(n)
        .filter(|p| !p.is_extended())
        .ok_or_else(|| DiskError::Refused(format!("there is no partition {n} to grow")))?;
    if r.start != plan.start {
        return Err(DiskError::Refused(format!(
            "partition {n} starts at sector {}, not at sector {} as planned: it is not the partition that was read",
            r.start, plan.start
        )));
    }
    if r.sectors >= plan.new_sectors {
        return Ok(None);
    }
    let new_end = plan
        .start
        .checked_add(plan.new_sectors)
        .ok_or_else(|| DiskError::Refused(format!("planned size of partition {n} overflows")))?;
    if new_end > t.grow_limit + 1 {
        return Err(DiskError::Refused(format!(
            "partition {n} cannot end at sector {new_end}: the last sector it can reach is {}",
            t.grow_limit
        )));
    }
    let holds_root = |p: &Partition| p.is_extended() && p.start <= r.start && r.end() <= p.end();
    if let Some(p) = t.partitions.iter().find(|p| {
        p.number != n && !holds_root(p) && p.ebr.unwrap_or(p.start) < new_end && p.end() > r.end()
    }) {
        return Err(DiskError::Refused(format!(
            "partition {} (sectors {}..{}) lies in the range partition {n} would grow into (sectors {}..{new_end}); only free space is grown into",
            p.number,
            p.ebr.unwrap_or(p.start),
            p.end(),
            r.end()
        )));
    }
    Ok(Some(new_end))
}

fn grow_gpt<D: Device + ?Sized>(
    dev: &mut D,
    mut g: Gpt,
    plan: &GrowPlan,
) -> Result<bool, DiskError> {
    let Some(new_end) = check_growth(&g.table, plan)? else {
        finish_interrupted_write(dev, &mut g)?;
        return Ok(false);
    };
    let last = new_end - 1;
    if last > g.header.last_usable_lba || (plan.relocate_backup && g.backup_misplaced()) {
        relocate_backup(dev, &mut g)?;
        crate::fault::point("after-relocate");
    }
    g.set_end(plan.number, last)?;
    g.write(dev)?;
    Ok(true)
}

/// When the work is already done as the table reads, but one copy of the GPT is torn or stale
/// (a power cut inside the write that did it: the table read from the other, complete copy),
/// writes the table again so both copies, and the primary the kernel reads, are whole.
fn finish_interrupted_write<D: Device + ?Sized>(dev: &mut D, g: &mut Gpt) -> Result<(), DiskError> {
    if g.copies_intact(dev) {
        return Ok(());
    }
    g.write(dev)
}

/// Moves the backup header and array to the disk's end in a complete write of its own.
///
/// `Gpt::write` zeroes the header left at the old place once both copies are written; but if
/// the power fails after the primary header points to the new backup and before that zeroing,
/// nothing on disk says where the stale header is any more. So it is zeroed first, when that is
/// safe: the primary copy is valid. It is then the copy every reader uses, the kernel included;
/// should the primary be torn later in this write, `read_table` finds the new backup at the
/// disk's last sector (and gdisk still lists the table, as the crash tests check). A table read
/// from its backup keeps that backup until the write, which zeroes it afterwards.
fn relocate_backup<D: Device + ?Sized>(dev: &mut D, g: &mut Gpt) -> Result<(), DiskError> {
    let ss = g.sector_size;
    let old = g.header.backup_lba;
    let inside = g
        .table
        .partitions
        .iter()
        .any(|p| (p.start..p.end()).contains(&old));
    if g.backup_misplaced() && old > 1 && !inside && g.primary_valid(dev) {
        let mut sig = [0u8; 8];
        disk::read_at(dev, old * ss, &mut sig)
            .map_err(disk::io_err("reading the old backup GPT header"))?;
        if &sig == b"EFI PART" {
            dev.seek(SeekFrom::Start(old * ss))
                .and_then(|_| dev.write_all(&vec![0u8; ss as usize]))
                .and_then(|_| dev.sync())
                .map_err(disk::io_err(format!(
                    "zeroing the old backup GPT header at LBA {old}"
                )))?;
        }
    }
    g.relocate_backup();
    g.write(dev)
}

fn grow_mbr<D: Device + ?Sized>(
    dev: &mut D,
    mut m: Mbr,
    plan: &GrowPlan,
) -> Result<bool, DiskError> {
    let Some(new_end) = check_growth(&m.table, plan)? else {
        return Ok(false);
    };
    let n = plan.number;
    let root = m.table.get(n).cloned().expect("checked by check_growth");
    if !root.is_logical() {
        m.set_primary_sectors(dev, n, plan.new_sectors)?;
        return Ok(true);
    }
    let ext = m
        .table
        .partitions
        .iter()
        .find(|p| p.is_extended() && p.start <= root.start && root.end() <= p.end())
        .cloned()
        .ok_or_else(|| DiskError::CorruptMbr(format!("logical partition {n} has no container")))?;
    if let Some((e, _)) = plan.grow_extended
        && e != ext.number
    {
        return Err(DiskError::Refused(format!(
            "the plan grows partition {e} as the extended container, but partition {n}'s container is {}",
            ext.number
        )));
    }
    if new_end > ext.end() {
        m.set_extended_sectors(dev, ext.number, new_end - ext.start)?;
        crate::fault::point("mbr-after-extended");
    }
    m.set_link_end(dev, n, new_end)?;
    m.set_logical_sectors(dev, n, plan.new_sectors)?;
    Ok(true)
}
