//! The growth planner: how far the root partition can grow once the config partition is gone.
//! `inspect` shows its answer and `run` carries it out, so both always agree.

use crate::disk::{PartKind, Table, TableKind};

/// Partition ends are aligned down to this, like every partitioner since 2010.
pub const ALIGN_BYTES: u64 = 1 << 20;

/// A planned growth of the root partition, in sectors of the table's sector size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrowPlan {
    pub number: u32,
    pub start: u64,
    pub old_sectors: u64,
    pub new_sectors: u64,
    /// GPT: the backup header must first move to the disk's real end.
    pub relocate_backup: bool,
    /// MBR: root is a logical partition and its extended container must grow first
    /// (the container's number and its new length in sectors).
    pub grow_extended: Option<(u32, u64)>,
}

/// Plans the growth of partition `root` after partition `delete` (if any) is removed.
/// `None` when root cannot gain at least one aligned MiB. The root's start never moves; it
/// grows only into space that directly follows it.
pub fn plan_growth(table: &Table, root: u32, delete: Option<u32>) -> Option<GrowPlan> {
    let r = table.get(root)?;
    if r.is_extended() {
        return None;
    }
    let ss = table.sector_size;
    let remaining = || {
        table
            .partitions
            .iter()
            .filter(move |p| Some(p.number) != delete && p.number != root)
    };
    // The first sector that stays taken after root: a partition (or a logical's EBR) that
    // starts at or after root's end.
    let blocker = |p: &crate::disk::Partition| p.ebr.unwrap_or(p.start);
    let mut limit = table.grow_limit + 1;
    let mut container = None;
    if r.is_logical() {
        let ext = table
            .partitions
            .iter()
            .find(|p| p.is_extended() && p.start <= r.start && r.end() <= p.end())?;
        // Inside the container, the next logical stops root; if there is none, the container
        // itself grows up to whatever follows it.
        // Anything not wholly before root blocks it; one that overlaps root (a corrupt table)
        // blocks it at once.
        let next_logical = remaining()
            .filter(|p| p.is_logical() && p.end() > r.start)
            .map(blocker)
            .min();
        match next_logical {
            Some(n) => limit = limit.min(n),
            None => {
                let after_ext = remaining()
                    .filter(|p| !p.is_logical() && p.number != ext.number && p.end() > ext.start)
                    .map(|p| p.start)
                    .min();
                if let Some(a) = after_ext {
                    limit = limit.min(a);
                }
                container = Some(ext);
            }
        }
    } else {
        let next = remaining().filter(|p| p.end() > r.start).map(blocker).min();
        if let Some(n) = next {
            limit = limit.min(n);
        }
    }
    if table.kind == TableKind::Mbr {
        limit = limit.min(1 << 32);
    }
    let align = (ALIGN_BYTES / ss).max(1);
    let new_end = limit / align * align;
    if new_end < r.end() + align {
        return None;
    }
    let grow_extended = match container {
        Some(ext) if new_end > ext.end() => Some((ext.number, new_end - ext.start)),
        _ => None,
    };
    Some(GrowPlan {
        number: root,
        start: r.start,
        old_sectors: r.sectors,
        new_sectors: new_end - r.start,
        // Also when the disk is smaller than the table says: the backup must come to its real end.
        relocate_backup: table.kind == TableKind::Gpt && table.last_usable != table.grow_limit,
        grow_extended,
    })
}

/// Whether a partition is the one seedpart's own proposal names: GPT `config-v2`, MBR `0x99`.
pub fn has_config_marker(kind: &PartKind) -> bool {
    match kind {
        PartKind::Gpt { name, .. } => name == "config-v2",
        PartKind::MbrPrimary { sys } | PartKind::MbrLogical { sys } => *sys == 0x99,
        PartKind::MbrExtended { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::{PartKind, Partition};

    fn part(number: u32, start: u64, sectors: u64, kind: PartKind) -> Partition {
        Partition {
            number,
            start,
            sectors,
            kind,
            uuid: String::new(),
            ebr: None,
        }
    }

    fn gpt_kind() -> PartKind {
        PartKind::Gpt {
            type_guid: [0; 16],
            name: String::new(),
            attributes: 0,
        }
    }

    fn table(kind: TableKind, disk_sectors: u64, grow_limit: u64, parts: Vec<Partition>) -> Table {
        Table {
            kind,
            sector_size: 512,
            disk_sectors,
            first_usable: 34,
            last_usable: grow_limit,
            grow_limit,
            partitions: parts,
            warnings: vec![],
        }
    }

    const MIB: u64 = 2048;

    #[test]
    fn ironic_layout_grows_to_the_aligned_end() {
        // 10 GiB disk: root 1 MiB..1 GiB, config drive in the last 64 MiB.
        let disk = 10 * 1024 * MIB;
        let t = table(
            TableKind::Gpt,
            disk,
            disk - 34,
            vec![
                part(1, MIB, 1023 * MIB, gpt_kind()),
                part(2, disk - 64 * MIB, 64 * MIB - 34, gpt_kind()),
            ],
        );
        let p = plan_growth(&t, 1, Some(2)).unwrap();
        assert_eq!(p.start, MIB);
        assert_eq!(p.start + p.new_sectors, disk - MIB); // aligned down below the backup GPT
        assert!(!p.relocate_backup);
        // Without deleting the drive, root can still grow up to it.
        let q = plan_growth(&t, 1, None).unwrap();
        assert_eq!(q.start + q.new_sectors, disk - 64 * MIB);
    }

    #[test]
    fn a_partition_right_after_root_blocks_growth() {
        let t = table(
            TableKind::Gpt,
            4096 * MIB,
            4096 * MIB - 34,
            vec![
                part(1, MIB, 100 * MIB, gpt_kind()),
                part(2, 101 * MIB, MIB, gpt_kind()),
            ],
        );
        assert_eq!(plan_growth(&t, 1, None), None);
        assert!(plan_growth(&t, 1, Some(2)).is_some());
    }

    #[test]
    fn backup_short_of_the_end_is_relocated_first() {
        let mut t = table(
            TableKind::Gpt,
            8192 * MIB,
            8192 * MIB - 34,
            vec![part(1, MIB, 100 * MIB, gpt_kind())],
        );
        t.last_usable = 1024 * MIB - 34;
        let p = plan_growth(&t, 1, None).unwrap();
        assert!(p.relocate_backup);
        assert_eq!(p.start + p.new_sectors, 8191 * MIB);
    }

    #[test]
    fn a_partition_overlapping_root_blocks_growth() {
        // Found by fuzzing: logical 6's EBR (sector 65) lies inside logical 5 (36..66).
        let mut l5 = part(5, 36, 30, PartKind::MbrLogical { sys: 0x83 });
        l5.ebr = Some(35);
        let mut l6 = part(6, 66, 60, PartKind::MbrLogical { sys: 0x83 });
        l6.ebr = Some(65);
        let t = table(
            TableKind::Mbr,
            32768,
            32767,
            vec![
                part(2, 35, 32733, PartKind::MbrExtended { sys: 0x05 }),
                l5,
                l6,
            ],
        );
        assert_eq!(plan_growth(&t, 5, None), None);
        // A primary overlapping a primary root blocks it too.
        let t = table(
            TableKind::Gpt,
            64 * MIB,
            64 * MIB - 34,
            vec![
                part(1, MIB, 4 * MIB, gpt_kind()),
                part(2, 4 * MIB, MIB, gpt_kind()),
            ],
        );
        assert_eq!(plan_growth(&t, 1, None), None);
    }

    #[test]
    fn mbr_stops_at_two_tib_and_logical_grows_its_container() {
        let disk = 3 * (1u64 << 32);
        let t = table(
            TableKind::Mbr,
            disk,
            disk - 1,
            vec![part(1, MIB, 1000 * MIB, PartKind::MbrPrimary { sys: 0x83 })],
        );
        let p = plan_growth(&t, 1, None).unwrap();
        assert_eq!(p.start + p.new_sectors, 1 << 32);

        let mut l = part(5, 2 * MIB, 100 * MIB, PartKind::MbrLogical { sys: 0x83 });
        l.ebr = Some(MIB);
        let t = table(
            TableKind::Mbr,
            1000 * MIB,
            1000 * MIB - 1,
            vec![
                part(2, MIB, 101 * MIB + 1, PartKind::MbrExtended { sys: 0x05 }),
                l,
                part(3, 500 * MIB, MIB, PartKind::MbrPrimary { sys: 0x99 }),
            ],
        );
        let p = plan_growth(&t, 5, Some(3)).unwrap();
        // MBR has no backup table: the disk's last sector is usable.
        assert_eq!(p.start + p.new_sectors, 1000 * MIB);
        assert_eq!(p.grow_extended, Some((2, 999 * MIB)));
        let p = plan_growth(&t, 5, None).unwrap();
        assert_eq!(p.start + p.new_sectors, 500 * MIB);
    }
}
