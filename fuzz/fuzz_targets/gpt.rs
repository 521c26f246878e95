//! GPT: the input is a disk (see `seedpart_fuzz::Disk`: a 5-byte prefix lets a small input
//! stand for a large disk). `read_table` with every sector-size choice, `Gpt::read` at 512 and
//! 4096 directly (past the signature check), the growth planner on every table read, and
//! `run`'s edit (relocate the backup, grow root) written back and read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::disk::gpt::{self, Gpt};
use seedpart::disk::{self, TableKind};
use seedpart_fuzz::{Disk, apply_gpt_plan, check_table, read_tables};

fuzz_target!(|data: &[u8]| {
    let image = Disk::from_input(data);
    read_tables(&image);
    let len = image.len();
    for ss in [512u64, 4096] {
        let _ = gpt::has_signature(&mut image.clone(), ss, len);
        let Ok(g) = Gpt::read(&mut image.clone(), ss) else {
            continue;
        };
        assert_eq!(g.table.kind, TableKind::Gpt);
        assert!(g.table.first_usable >= 2 && g.table.last_usable < g.disk_sectors);
        for p in &g.table.partitions {
            assert!(p.start >= g.table.first_usable && p.end() <= g.table.last_usable + 1);
            disk::guid_from_str(&p.uuid).expect("a partition UUID that does not parse");
        }
        let _ = g.backup_misplaced();
        check_table(&g.table, len);
        apply_gpt_plan(&image, &g);
    }
});
