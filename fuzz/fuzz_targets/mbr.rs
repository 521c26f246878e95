//! MBR/DOS tables: the input is a disk (see `seedpart_fuzz::Disk`: a 5-byte prefix lets a small
//! input stand for a large disk) whose sector 0 is given the 0x55AA signature, so the fuzzer
//! spends its time on the entries and the EBR chain rather than on finding the magic.
//! `read_table` with every sector-size choice, `Mbr::read` at 512 and 4096, the sector-size
//! probe, the growth planner on every table read, and `build`'s added primary read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::disk::TableKind;
use seedpart::disk::mbr::{self, Mbr};
use seedpart_fuzz::{Disk, add_mbr_primary, check_table, read_tables};

fuzz_target!(|data: &[u8]| {
    let mut image = Disk::from_input(data);
    if image.len() >= 512 {
        image.poke(510, &[0x55, 0xaa]);
    }
    read_tables(&image);
    if let Ok(ss) = mbr::probe_sector_size(&mut image.clone()) {
        assert!(ss == 512 || ss == 4096);
    }
    for ss in [512u64, 4096] {
        let Ok(m) = Mbr::read(&mut image.clone(), ss) else {
            continue;
        };
        assert_eq!(m.table.kind, TableKind::Mbr);
        assert!(
            m.table
                .partitions
                .iter()
                .filter(|p| p.is_extended())
                .count()
                <= 1
        );
        let logicals = m.table.partitions.iter().filter(|p| p.is_logical()).count();
        assert!(logicals <= m.logicals.len());
        check_table(&m.table, image.len());
        add_mbr_primary(&image, &m);
    }
});
