//! MBR/DOS tables: the input is a whole disk image whose sector 0 is given the 0x55AA signature
//! (so the fuzzer spends its time on the entries and the EBR chain, not on finding the magic).
//! `read_table` with every sector-size choice, `Mbr::read` at 512 and 4096, the sector-size
//! probe, the growth planner on every table read, and `build`'s added primary read back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::disk::TableKind;
use seedpart::disk::mbr::{self, Mbr};
use seedpart_fuzz::{add_mbr_primary, check_table, read_tables};
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let mut image = data.to_vec();
    if image.len() >= 512 {
        image[510] = 0x55;
        image[511] = 0xaa;
    }
    let image = &image[..];
    read_tables(image);
    if let Ok(ss) = mbr::probe_sector_size(&mut Cursor::new(image)) {
        assert!(ss == 512 || ss == 4096);
    }
    for ss in [512u64, 4096] {
        let Ok(m) = Mbr::read(&mut Cursor::new(image), ss) else {
            continue;
        };
        assert_eq!(m.table.kind, TableKind::Mbr);
        assert!(m.table.partitions.iter().filter(|p| p.is_extended()).count() <= 1);
        for l in &m.logicals {
            let _ = (l.ebr_lba, l.entry);
        }
        check_table(&m.table, image.len() as u64);
        add_mbr_primary(image, &m);
    }
});
