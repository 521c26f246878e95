//! The partition-table layer (`seedpart::disk`) and the growth planner (`seedpart::plan`)
//! checked against independent tools: tables made by sgdisk/sfdisk are read back and compared
//! with what `sfdisk --json`, `partx` (libblkid) and the kernel (loop devices, sysfs) report;
//! tables we write are checked with `sgdisk -v` and sfdisk; the GPT write order is checked by
//! replaying every crash point; corrupt and randomly mutated tables must give errors, not panics.

mod common;

use common::*;
use seedpart::disk::gpt::{self, Gpt, LINUX_DATA, has_signature};
use seedpart::disk::mbr::{Mbr, probe_sector_size};
use seedpart::disk::{
    Device, DiskError, PartKind, Partition, Table, TableKind, guid_to_string, read_table,
};
use seedpart::plan::{GrowPlan, plan_growth};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

// ---------------------------------------------------------------------------------------------
// An allocator that can report the largest single allocation a piece of code asked for, so
// "a header claiming a million entries is refused before anything is allocated" is checkable.

struct PeakAlloc;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn peak_alloc_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|p| p.set(0));
    TRACKING.with(|t| t.set(true));
    let r = f();
    TRACKING.with(|t| t.set(false));
    (r, PEAK.with(|p| p.get()))
}

// ---------------------------------------------------------------------------------------------
// Fixtures and comparisons.

fn read_img(img: &TempImage, ss: Option<u64>) -> Result<Table, DiskError> {
    read_table(&mut img.open_ro(), ss)
}

fn read_buf(buf: &[u8], ss: Option<u64>) -> Result<Table, DiskError> {
    read_table(&mut Cursor::new(buf), ss)
}

/// Asserts that our table is exactly what `sfdisk --json` reports.
#[track_caller]
fn assert_same_as_sfdisk(t: &Table, sf: &SfTable) {
    assert_eq!(t.sector_size, sf.sector_size, "sector size");
    let mut theirs: Vec<u32> = sf.partitions.iter().map(|p| p.number).collect();
    theirs.sort();
    let ours: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    assert_eq!(ours, theirs, "partition numbers (ours {t:#?})");
    for s in &sf.partitions {
        let p = t.get(s.number).unwrap();
        assert_eq!(
            (p.start, p.sectors),
            (s.start, s.size),
            "extent of partition {}",
            s.number
        );
        match &p.kind {
            PartKind::Gpt {
                type_guid, name, ..
            } => {
                assert_eq!(t.kind, TableKind::Gpt);
                assert_eq!(guid_to_string(type_guid), s.type_, "type of {}", s.number);
                assert_eq!(Some(&p.uuid), s.uuid.as_ref(), "PARTUUID of {}", s.number);
                assert_eq!(
                    name,
                    s.name.as_deref().unwrap_or(""),
                    "name of {}",
                    s.number
                );
            }
            _ => {
                assert_eq!(t.kind, TableKind::Mbr);
                let sys = p.mbr_type().unwrap();
                assert_eq!(format!("{sys:x}"), s.type_, "type of {}", s.number);
                let id = u32::from_str_radix(sf.id.trim_start_matches("0x"), 16).unwrap();
                assert_eq!(p.uuid, format!("{id:08x}-{:02x}", s.number));
            }
        }
    }
    match t.kind {
        TableKind::Gpt => {
            assert_eq!(sf.label, "gpt");
            assert_eq!(Some(t.first_usable), sf.first_lba, "first usable LBA");
            assert_eq!(Some(t.last_usable), sf.last_lba, "last usable LBA");
        }
        TableKind::Mbr => assert_eq!(sf.label, "dos"),
    }
}

/// Asserts that our table is what libblkid's prober (`partx`) reports, PARTUUIDs included.
#[track_caller]
fn assert_same_as_partx(t: &Table, dev: &str) {
    let rows = partx_list(dev);
    let ours: Vec<(u32, u64, u64, String)> = t
        .partitions
        .iter()
        .map(|p| (p.number, p.start, p.sectors, p.uuid.clone()))
        .collect();
    let mut rows = rows;
    rows.sort();
    assert_eq!(ours, rows, "partx {dev}");
}

/// What must survive a crash: the partition list and the usable range.
type View = (Vec<Partition>, u64, u64);

fn view(t: &Table) -> View {
    (t.partitions.clone(), t.first_usable, t.last_usable)
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}
fn put32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], o: usize, v: u64) {
    b[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

// GPT header field offsets.
const H_CRC: usize = 16;
const H_MY_LBA: usize = 24;
const H_ALT_LBA: usize = 32;
const H_FIRST: usize = 40;
const H_LAST: usize = 48;
const H_ARRAY_LBA: usize = 72;
const H_COUNT: usize = 80;
const H_ENTRY_SIZE: usize = 84;
const H_ARRAY_CRC: usize = 88;
// Partition entry field offsets.
const E_START: usize = 32;
const E_END: usize = 40;

/// Recomputes the header CRC of the GPT header at byte `hdr`.
fn fix_header_crc(img: &mut [u8], hdr: usize) {
    if hdr + 92 > img.len() {
        return;
    }
    put32(img, hdr + H_CRC, 0);
    let c = crc32(&img[hdr..hdr + 92]);
    put32(img, hdr + H_CRC, c);
}

/// Recomputes both CRCs of the GPT copy whose header is at `hdr_lba` (when its array fits).
fn fix_gpt_copy(img: &mut [u8], ss: usize, hdr_lba: u64) {
    let hdr = hdr_lba as usize * ss;
    if hdr + 92 > img.len() {
        return;
    }
    let array = le64(img, hdr + H_ARRAY_LBA) as u128 * ss as u128;
    let len = u128::from(le32(img, hdr + H_COUNT)) * u128::from(le32(img, hdr + H_ENTRY_SIZE));
    if array + len <= img.len() as u128 {
        let c = crc32(&img[array as usize..(array + len) as usize]);
        put32(img, hdr + H_ARRAY_CRC, c);
    }
    fix_header_crc(img, hdr);
}

/// Both copies of a GPT whose backup is at the image's last sector.
fn fix_gpt(img: &mut [u8], ss: usize) {
    let last = (img.len() / ss - 1) as u64;
    fix_gpt_copy(img, ss, 1);
    fix_gpt_copy(img, ss, last);
}

/// Byte offsets of the primary and the backup partition arrays (entry `n` is 128 * (n - 1) in).
fn entry_offsets(img: &[u8], ss: usize) -> [usize; 2] {
    let last = img.len() / ss - 1;
    let backup_array = le64(img, last * ss + H_ARRAY_LBA) as usize * ss;
    [2 * ss, backup_array]
}

/// The test image made by `sgdisk` for most GPT tests: 3 partitions with a gap in numbering.
/// Made once per size (sgdisk sleeps a second after every write) and copied.
fn standard_gpt(size: u64) -> TempImage {
    static CACHE: std::sync::Mutex<Vec<(u64, Vec<u8>)>> = std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, bytes)) = cache.iter().find(|c| c.0 == size) {
        return TempImage::from_bytes(bytes);
    }
    let img = sgdisk_image(
        size,
        &[
            "-n",
            "1:2048:+1M",
            "-c",
            "1:root",
            "-t",
            "1:8300",
            "-n",
            "2:0:+512K",
            "-c",
            "2:swap",
            "-t",
            "2:8200",
            "-n",
            "4:0:+512K",
            "-c",
            "4:config-v2",
            "-t",
            "4:0700",
        ],
    );
    cache.push((size, img.bytes()));
    img
}

// ---------------------------------------------------------------------------------------------
// 1. GPT tables made by sgdisk read exactly as sfdisk and libblkid report them.

#[test]
fn gpt_512_made_by_sgdisk_reads_as_sfdisk_and_partx_report_it() {
    require_tools!("sgdisk", "sfdisk", "partx");
    let img = sgdisk_image(
        16 * MIB,
        &[
            "-n",
            "1:2048:+4M",
            "-c",
            "1:root",
            "-t",
            "1:8300",
            "-A",
            "1:set:2",
            "-n",
            "3:0:+2M",
            "-c",
            "3:config-v2",
            "-t",
            "3:0700",
            "-n",
            "5:0:+1M",
            "-c",
            "5:EFI System",
            "-t",
            "5:ef00",
            "-n",
            "7:0:+1M",
            "-c",
            "7:données-ü",
            "-t",
            "7:8200",
        ],
    );
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.kind, TableKind::Gpt);
    assert_eq!(t.sector_size, 512);
    assert_eq!(t.disk_sectors, 16 * MIB / 512);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    // Numbers with gaps are the kernel's numbers: entry slot + 1.
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 3, 5, 7]
    );
    assert_same_as_sfdisk(&t, &sfdisk_json(img.path_str()));
    assert_same_as_partx(&t, img.path_str());
    assert_eq!(t.get(3).unwrap().name(), Some("config-v2"));
    assert_eq!(t.get(7).unwrap().name(), Some("données-ü"));
    match t.get(1).unwrap().kind {
        PartKind::Gpt {
            type_guid,
            attributes,
            ..
        } => {
            assert_eq!(type_guid, LINUX_DATA);
            assert_eq!(attributes, 1 << 2, "legacy BIOS bootable attribute");
        }
        ref k => panic!("{k:?}"),
    }
    // No backup relocation is needed: the backup header is at the end already.
    assert_eq!(t.grow_limit, t.last_usable);
    let mut f = img.open_ro();
    assert!(has_signature(&mut f, 512, img.len()).unwrap());
    assert!(!has_signature(&mut f, 4096, img.len()).unwrap());
    // Giving the sector size explicitly reads the same table; the wrong one finds no GPT.
    assert_eq!(read_img(&img, Some(512)).unwrap(), t);
    assert!(read_img(&img, Some(4096)).is_err());
}

#[test]
fn gpt_4096_made_on_a_4kn_loop_device_is_probed_from_the_image_file() {
    require_loop!("sgdisk", "sfdisk");
    let _g = loop_lock();
    let img = TempImage::new(32 * MIB);
    let sf = {
        let lo = LoopDev::attach(&img.path, 4096);
        sgdisk(
            &lo.dev,
            &[
                "-n",
                "1:256:+8M",
                "-c",
                "1:root",
                "-t",
                "1:8300",
                "-n",
                "3:0:+2M",
                "-c",
                "3:config-v2",
                "-t",
                "3:0700",
            ],
        );
        let sf = sfdisk_json(&lo.dev);
        assert_eq!(sf.sector_size, 4096);
        sf
    };
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.sector_size, 4096);
    assert_eq!(t.disk_sectors, 32 * MIB / 4096);
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    assert_same_as_sfdisk(&t, &sf);
    assert_eq!(t.get(3).unwrap().name(), Some("config-v2"));
    let mut f = img.open_ro();
    assert!(has_signature(&mut f, 4096, img.len()).unwrap());
    assert!(!has_signature(&mut f, 512, img.len()).unwrap());
}

/// An MBR disk that once held a GPT keeps the old "EFI PART" header at LBA 1 unless it was
/// wiped. With no 0xEE entry in sector 0 the kernel, libblkid and sfdisk all read the MBR; so
/// must we, or seedpart would edit a stale GPT that the kernel does not use.
#[test]
fn stale_gpt_header_under_a_real_mbr_is_ignored_like_the_kernel_does() {
    require_tools!("sgdisk", "sfdisk", "partx");
    let img = sgdisk_image(16 * MIB, &["-n", "1:2048:+4M", "-n", "2:0:+4M"]);
    run_stdin(
        "sfdisk",
        &["--wipe", "never", img.path_str()],
        "label: dos\nlabel-id: 0x0badcafe\n2048,2048,83\n,4096,99\n",
    );
    assert_eq!(
        &img.read_at(512, 8),
        b"EFI PART",
        "the fixture keeps the GPT"
    );
    let sf = sfdisk_json(img.path_str());
    assert_eq!(sf.label, "dos");
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.kind, TableKind::Mbr);
    assert_same_as_sfdisk(&t, &sf);
    assert_same_as_partx(&t, img.path_str());
    assert_eq!(read_img(&img, Some(512)).unwrap(), t);
}

// ---------------------------------------------------------------------------------------------
// 2. MBR tables made by sfdisk.

const MBR_SCRIPT: &str = "label: dos
label-id: 0x00abcdef
IMG1 : start=2048, size=8192, type=83
IMG2 : start=10240, size=40960, type=5
IMG3 : start=51200, size=4096, type=99
IMG5 : size=4096, type=83
IMG6 : size=2048, type=82
IMG7 : size=8192, type=99
";

fn sfdisk_mbr_image(size: u64, script: &str) -> TempImage {
    let img = TempImage::new(size);
    sfdisk_script(img.path_str(), &script.replace("IMG", img.path_str()));
    img
}

#[test]
fn mbr_with_logicals_made_by_sfdisk_reads_as_sfdisk_and_partx_report_it() {
    require_tools!("sfdisk", "partx");
    let img = sfdisk_mbr_image(64 * MIB, MBR_SCRIPT);
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.kind, TableKind::Mbr);
    assert_eq!(t.sector_size, 512);
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 2, 3, 5, 6, 7]
    );
    let sf = sfdisk_json(img.path_str());
    assert_same_as_sfdisk(&t, &sf);
    assert_same_as_partx(&t, img.path_str());
    let disk_id = run(
        "blkid",
        &["-p", "-o", "value", "-s", "PTUUID", img.path_str()],
    );
    assert_eq!(t.get(5).unwrap().uuid, format!("{}-05", disk_id.trim()));
    assert!(t.get(2).unwrap().is_extended());
    assert!(matches!(
        t.get(3).unwrap().kind,
        PartKind::MbrPrimary { sys: 0x99 }
    ));
    assert!(matches!(
        t.get(7).unwrap().kind,
        PartKind::MbrLogical { sys: 0x99 }
    ));
    assert_eq!(t.data_partitions().count(), 5);
    // Each logical names its EBR: inside the container, before the partition, with 0x55AA.
    let ext = t.get(2).unwrap();
    let mut prev_end = ext.start;
    for n in 5..=7 {
        let p = t.get(n).unwrap();
        let ebr = p.ebr.expect("a logical has an EBR");
        assert!(
            ebr >= prev_end && ebr < p.start && p.end() <= ext.end(),
            "{p:?}"
        );
        assert_eq!(img.read_at(ebr * 512 + 510, 2), [0x55, 0xaa]);
        prev_end = p.end();
    }
    assert_eq!(t.get(5).unwrap().ebr, Some(ext.start));
    // MBR: the whole disk is usable (no backup table).
    assert_eq!(t.last_usable, t.disk_sectors - 1);
    assert_eq!(t.grow_limit, t.disk_sectors - 1);
    let m = Mbr::read(&mut img.open_ro(), 512).unwrap();
    assert_eq!(m.table, t);
    assert_eq!(m.logicals.len(), 3);
    // No filesystems anywhere: nothing suggests 4096-byte sectors.
    assert_eq!(probe_sector_size(&mut img.open_ro()).unwrap(), 512);
}

/// MBR images do not record their sector size; one made on a 4Kn disk (partitions at 4096-byte
/// LBAs, with filesystems in them) must be probed as 4096 from the image file, and the same
/// layout made on a 512-byte disk as 512.
#[test]
fn mbr_sector_size_is_probed_from_the_filesystems_in_the_partitions() {
    require_loop!("sfdisk", "mkfs.ext4", "mkfs.vfat");
    let _g = loop_lock();
    for ss in [4096u64, 512] {
        let img = TempImage::new(64 * MIB);
        let per_mib = MIB / ss;
        let script = format!(
            "label: dos\nlabel-id: 0x4b4b4b4b\nIMGp1 : start={}, size={}, type=83\nIMGp2 : size={}, type=c\nIMGp3 : size={}, type=5\nIMGp5 : size={}, type=83\n",
            per_mib,
            16 * per_mib,
            4 * per_mib,
            20 * per_mib,
            8 * per_mib
        );
        let sf = {
            let lo = LoopDev::attach(&img.path, ss);
            sfdisk_script(&lo.dev, &script.replace("IMG", &lo.dev));
            lo.add_partitions();
            run("mkfs.ext4", &["-q", "-F", &lo.part(1)]);
            run("mkfs.vfat", &[&lo.part(2)]);
            run("mkfs.ext4", &["-q", "-F", &lo.part(5)]);
            sfdisk_json(&lo.dev)
        };
        assert_eq!(sf.sector_size, ss);
        assert_eq!(
            probe_sector_size(&mut img.open_ro()).unwrap(),
            ss,
            "probe of the image made with {ss}-byte sectors"
        );
        let t = read_img(&img, None).unwrap();
        assert_eq!(t.sector_size, ss);
        assert_eq!(t.disk_sectors, 64 * MIB / ss);
        assert_same_as_sfdisk(&t, &sf);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Writing: sgdisk must find nothing wrong with what we write.

/// Reads the GPT of an image (sector size `ss`), edits it and writes it back.
fn edit_gpt(img: &TempImage, ss: u64, edit: impl FnOnce(&mut Gpt)) -> Gpt {
    let mut f = img.open_rw();
    let mut g = Gpt::read(&mut f, ss).unwrap();
    edit(&mut g);
    g.write(&mut f).unwrap();
    g
}

const TEST_GUID: [u8; 16] = [
    0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
];

#[test]
fn gpt_add_remove_and_grow_are_accepted_by_sgdisk_and_sfdisk() {
    require_tools!("sgdisk", "sfdisk");
    let img = standard_gpt(16 * MIB);
    let before = read_img(&img, None).unwrap();
    let p4 = before.get(4).unwrap().clone();

    // add: the first free slot (3), numbers of the others unchanged.
    let start = p4.end() + 2048;
    let g = edit_gpt(&img, 512, |g| {
        assert_eq!(
            g.add(start, start + 4095, LINUX_DATA, TEST_GUID, "added")
                .unwrap(),
            3
        );
    });
    assert_sgdisk_clean(img.path_str());
    let sf = sfdisk_json(img.path_str());
    let t = read_img(&img, None).unwrap();
    assert_eq!(t, g.table);
    assert!(t.warnings.is_empty());
    assert_same_as_sfdisk(&t, &sf);
    let added = sf.partitions.iter().find(|p| p.number == 3).unwrap();
    assert_eq!((added.start, added.size), (start, 4096));
    assert_eq!(added.name.as_deref(), Some("added"));
    assert_eq!(
        added.uuid.as_deref(),
        Some(guid_to_string(&TEST_GUID).as_str())
    );
    assert_eq!(added.type_, guid_to_string(&LINUX_DATA));

    // An overlapping add, an add outside the usable range and a 37-character name are refused
    // and change nothing.
    let mut f = img.open_rw();
    let mut g = Gpt::read(&mut f, 512).unwrap();
    let snapshot = g.table.clone();
    assert!(
        g.add(p4.start + 1, p4.start + 10, LINUX_DATA, TEST_GUID, "x")
            .is_err()
    );
    assert!(
        g.add(
            t.last_usable - 10,
            t.last_usable + 1,
            LINUX_DATA,
            TEST_GUID,
            "x"
        )
        .is_err()
    );
    assert!(
        g.add(
            start + 8192,
            start + 9000,
            LINUX_DATA,
            TEST_GUID,
            &"n".repeat(37)
        )
        .is_err()
    );
    assert!(
        g.set_end(1, before.get(2).unwrap().start).is_err(),
        "grow into 2"
    );
    assert!(g.remove(6).is_err());
    assert_eq!(g.table, snapshot);
    drop(f);

    // remove #2 of 1, 2, 3, 4: the others keep their numbers and GUIDs.
    edit_gpt(&img, 512, |g| g.remove(2).unwrap());
    assert_sgdisk_clean(img.path_str());
    let t = read_img(&img, None).unwrap();
    assert_eq!(
        t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(),
        [1, 3, 4]
    );
    assert_eq!(t.get(4).unwrap(), &p4);
    assert_same_as_sfdisk(&t, &sfdisk_json(img.path_str()));

    // set_end: root grows into the space #2 left.
    let new_end = p4.start - 1;
    edit_gpt(&img, 512, |g| g.set_end(1, new_end).unwrap());
    assert_sgdisk_clean(img.path_str());
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.get(1).unwrap().end(), new_end + 1);
    assert_eq!(t.get(1).unwrap().uuid, before.get(1).unwrap().uuid);
    assert_same_as_sfdisk(&t, &sfdisk_json(img.path_str()));
}

/// The Ironic case: an image made for a small disk written to a larger one. `relocate_backup`
/// is `sgdisk -e`: afterwards sgdisk finds nothing wrong, the old backup header is gone and the
/// protective MBR covers the whole disk.
#[test]
fn gpt_backup_relocation_on_a_grown_512_image() {
    require_tools!("sgdisk", "sfdisk");
    let img = standard_gpt(8 * MIB);
    let old_backup = 8 * MIB / 512 - 1;
    img.set_len(32 * MIB);
    let (clean, text) = sgdisk_verify(img.path_str());
    assert!(!clean && text.contains("secondary header"), "{text}");

    let t = read_img(&img, None).unwrap();
    assert!(
        t.warnings.iter().any(|w| w.contains("backup")),
        "{:?}",
        t.warnings
    );
    assert!(t.last_usable < t.grow_limit);
    let g = edit_gpt(&img, 512, |g| {
        assert!(g.backup_misplaced());
        g.relocate_backup();
        assert!(!g.backup_misplaced());
    });
    assert_sgdisk_clean(img.path_str());
    let disk = 32 * MIB / 512;
    let after = read_img(&img, None).unwrap();
    assert!(after.warnings.is_empty(), "{:?}", after.warnings);
    assert_eq!(after, g.table);
    assert_eq!(after.partitions, t.partitions);
    assert_eq!(after.last_usable, disk - 34);
    assert_eq!(after.grow_limit, after.last_usable);
    let sf = sfdisk_json(img.path_str());
    assert_same_as_sfdisk(&after, &sf);
    assert!(
        img.read_at(old_backup * 512, 512).iter().all(|b| *b == 0),
        "the old backup header is zeroed"
    );
    assert_protective_mbr_covers(&img, 512);
    // sfdisk has no complaint about the PMBR size either.
    let out = run_raw("sfdisk", &["--list", img.path_str()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("mismatch") && !err.contains("backup"),
        "{err}"
    );
}

/// `sgdisk -j` moves the primary array away from LBA 2 (boards whose firmware lives there);
/// a rewrite must keep it where it is and leave LBA 2.. alone.
#[test]
fn gpt_with_a_moved_main_table_keeps_it_where_it_is() {
    require_tools!("sgdisk", "sfdisk");
    let img = sgdisk_image(
        16 * MIB,
        &["-j", "2048", "-n", "1:4096:+4M", "-c", "1:root"],
    );
    let firmware: Vec<u8> = (0..2046 * 512).map(|i| (i % 251) as u8 | 1).collect();
    img.write_at(2 * 512, &firmware);
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.first_usable, 2048 + 32);
    edit_gpt(&img, 512, |g| {
        let s = t.get(1).unwrap().end();
        g.add(s, s + 2047, LINUX_DATA, TEST_GUID, "added").unwrap();
    });
    assert_eq!(
        img.read_at(2 * 512, firmware.len()),
        firmware,
        "LBA 2..2047"
    );
    let hdr = img.read_at(512, 512);
    assert_eq!(le64(&hdr, H_ARRAY_LBA), 2048);
    let (_, text) = sgdisk_verify(img.path_str());
    assert!(text.contains("No problems found"), "{text}");
    let after = read_img(&img, None).unwrap();
    assert_eq!(after.partitions.len(), 2);
    assert_same_as_sfdisk(&after, &sfdisk_json(img.path_str()));
}

#[track_caller]
fn assert_protective_mbr_covers(img: &TempImage, ss: u64) {
    let mbr = img.read_at(0, 512);
    assert_eq!(mbr[446 + 4], 0xee);
    assert_eq!(le32(&mbr, 446 + 8), 1);
    let want = u32::try_from(img.len() / ss - 1).unwrap_or(u32::MAX);
    assert_eq!(le32(&mbr, 446 + 12), want, "protective MBR size");
    assert_eq!(&mbr[510..512], &[0x55, 0xaa]);
}

#[test]
fn gpt_edits_and_relocation_on_4096_byte_sectors_pass_sgdisk_on_a_4kn_loop_device() {
    require_loop!("sgdisk", "sfdisk");
    let _g = loop_lock();
    let img = TempImage::new(16 * MIB);
    {
        let lo = LoopDev::attach(&img.path, 4096);
        sgdisk(
            &lo.dev,
            &[
                "-n",
                "1:256:+4M",
                "-c",
                "1:root",
                "-n",
                "2:0:+2M",
                "-c",
                "2:swap",
                "-n",
                "3:0:+2M",
                "-c",
                "3:config-v2",
            ],
        );
    }
    let old_backup = 16 * MIB / 4096 - 1;
    img.set_len(64 * MIB);
    {
        let lo = LoopDev::attach(&img.path, 4096);
        let (clean, text) = sgdisk_verify(&lo.dev);
        assert!(!clean && text.contains("secondary header"), "{text}");
    }
    let before = read_img(&img, None).unwrap();
    assert_eq!(before.sector_size, 4096);
    let p3 = before.get(3).unwrap().clone();
    // Relocate, drop #2, grow root up to #3 and add a partition past the old end, in one write.
    let g = edit_gpt(&img, 4096, |g| {
        g.relocate_backup();
        g.remove(2).unwrap();
        g.set_end(1, p3.start - 1).unwrap();
        let s = old_backup + 1;
        assert_eq!(
            g.add(s, s + 1023, LINUX_DATA, TEST_GUID, "past-old-end")
                .unwrap(),
            2
        );
    });
    let after = read_img(&img, None).unwrap();
    assert_eq!(after, g.table);
    assert_eq!(after.last_usable, 64 * MIB / 4096 - 6);
    assert!(img.read_at(old_backup * 4096, 4096).iter().all(|b| *b == 0));
    assert_protective_mbr_covers(&img, 4096);
    let lo = LoopDev::attach(&img.path, 4096);
    assert_sgdisk_clean(&lo.dev);
    let sf = sfdisk_json(&lo.dev);
    assert_same_as_sfdisk(&after, &sf);
    assert_eq!(after.get(3).unwrap(), &p3);
    assert_eq!(after.get(2).unwrap().name(), Some("past-old-end"));
}

/// `gpt::create` + `write_protective_mbr` + `write` make tables sgdisk accepts, on both sector
/// sizes (4096 checked through a 4Kn loop device when root).
#[test]
fn created_gpt_is_accepted_by_sgdisk() {
    require_tools!("sgdisk", "sfdisk");
    for ss in [512u64, 4096] {
        if ss == 4096 && !require_root() {
            continue;
        }
        let img = TempImage::new(16 * MIB);
        let mut f = img.open_rw();
        let mut g = gpt::create(img.len(), ss, TEST_GUID).unwrap();
        gpt::write_protective_mbr(&mut f, ss).unwrap();
        let a = MIB / ss;
        g.add(a, 5 * a - 1, LINUX_DATA, [0x11; 16], "root").unwrap();
        g.add(5 * a, 6 * a - 1, LINUX_DATA, [0x22; 16], "config-v2")
            .unwrap();
        g.write(&mut f).unwrap();
        drop(f);
        let t = read_img(&img, None).unwrap();
        assert_eq!(t, g.table);
        assert_eq!(t.sector_size, ss);
        assert_protective_mbr_covers(&img, ss);
        if ss == 512 {
            assert_sgdisk_clean(img.path_str());
            assert_same_as_sfdisk(&t, &sfdisk_json(img.path_str()));
        } else {
            let _g = loop_lock();
            let lo = LoopDev::attach(&img.path, 4096);
            assert_sgdisk_clean(&lo.dev);
            assert_same_as_sfdisk(&t, &sfdisk_json(&lo.dev));
        }
    }
    // A device too small for a GPT is an error, not a panic.
    for len in [0u64, 512, 512 * 20, 4096 * 5] {
        assert!(gpt::create(len, 512, TEST_GUID).is_err(), "{len}");
        assert!(gpt::create(len, 4096, TEST_GUID).is_err(), "{len}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Crash ordering: replay every prefix (and torn and reordered versions) of the writes.

/// A device in memory that records every write and flush, and refuses writes past its end
/// (as a disk would).
struct Recording {
    inner: Cursor<Vec<u8>>,
    len: u64,
    ops: Vec<Op>,
}

impl Recording {
    fn new(bytes: Vec<u8>) -> Recording {
        Recording {
            len: bytes.len() as u64,
            inner: Cursor::new(bytes),
            ops: Vec::new(),
        }
    }
}

impl Read for Recording {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for Recording {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

impl Write for Recording {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let pos = self.inner.position();
        if pos + buf.len() as u64 > self.len {
            return Err(io::Error::other(format!(
                "write of {} bytes at {pos} past the device's end ({})",
                buf.len(),
                self.len
            )));
        }
        self.ops.push(Op::Write(pos, buf.to_vec()));
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Device for Recording {
    fn sync(&mut self) -> io::Result<()> {
        self.ops.push(Op::Sync);
        Ok(())
    }
}

/// What part of one write landed: not any of it, all of it, or any of the torn versions.
fn tears(off: u64, data: &[u8], ss: usize) -> Vec<(String, Vec<Piece<'_>>)> {
    let mut v: Vec<(String, Vec<Piece<'_>>)> = vec![
        ("absent".into(), vec![]),
        ("whole".into(), vec![(off, data)]),
    ];
    v.extend(torn_writes(off, data, ss));
    v
}

/// Applies `pieces` to `buf`, runs `f`, and restores `buf`.
fn with_pieces<T>(buf: &mut [u8], pieces: &[Piece<'_>], f: impl FnOnce(&[u8]) -> T) -> T {
    let mut undo = Vec::new();
    for &(off, data) in pieces {
        let o = off as usize;
        undo.push((o, buf[o..o + data.len()].to_vec()));
        buf[o..o + data.len()].copy_from_slice(data);
    }
    let r = f(buf);
    for (o, old) in undo.into_iter().rev() {
        buf[o..o + old.len()].copy_from_slice(&old);
    }
    r
}

/// Runs `edit` + `Gpt::write` on a recording copy of `original`, then checks that every state a
/// power cut could leave reads (with `read_table`, sector size probed) as exactly the old or the
/// new table: every prefix of the write sequence, each with the next write torn in every way;
/// and, since the disk may reorder writes between two flushes, every combination of tears of
/// the writes between two flushes. Returns the number of states checked.
fn assert_crash_safe(label: &str, original: &[u8], edit: impl FnOnce(&mut Gpt)) -> usize {
    let old = read_buf(original, None).unwrap_or_else(|e| panic!("{label}: before: {e}"));
    let ss = old.sector_size as usize;
    let mut rec = Recording::new(original.to_vec());
    let mut g = Gpt::read(&mut rec, old.sector_size).unwrap();
    edit(&mut g);
    g.write(&mut rec)
        .unwrap_or_else(|e| panic!("{label}: write: {e}"));
    let ops = rec.ops.clone();
    let final_img = rec.inner.into_inner();
    let new = read_buf(&final_img, None).unwrap_or_else(|e| panic!("{label}: after: {e}"));
    if !g.backup_misplaced() {
        assert!(new.warnings.is_empty(), "{label}: {:?}", new.warnings);
    }
    assert_eq!(new, g.table, "{label}: what was written is what reads back");
    let (old_v, new_v) = (view(&old), view(&new));
    assert_ne!(old_v, new_v, "{label}: the edit must change something");
    assert!(
        ops.iter().any(|o| matches!(o, Op::Sync)),
        "{label}: the write never flushes"
    );

    let mut failures: Vec<String> = Vec::new();
    let mut checked = 0usize;
    let mut check = |buf: &[u8], what: &dyn Fn() -> String| {
        checked += 1;
        match read_buf(buf, None) {
            Ok(t) if view(&t) == old_v || view(&t) == new_v => {}
            Ok(t) => failures.push(format!("{}: a mixed table {:?}", what(), view(&t))),
            Err(e) => failures.push(format!("{}: {e}", what())),
        }
    };

    // Model 1: the writes land in order; the power fails after any of them or in the middle of
    // the next one.
    let writes: Vec<(usize, u64, &[u8])> = {
        let mut epoch = 0;
        let mut v = Vec::new();
        for op in &ops {
            match op {
                Op::Sync => epoch += 1,
                Op::Write(off, d) => v.push((epoch, *off, d.as_slice())),
            }
        }
        v
    };
    let mut buf = original.to_vec();
    for k in 0..=writes.len() {
        check(&buf, &|| format!("after {k} of {} writes", writes.len()));
        if let Some(&(_, off, data)) = writes.get(k) {
            for (how, pieces) in tears(off, data, ss) {
                with_pieces(&mut buf, &pieces, |b| {
                    check(b, &|| {
                        format!("after {k} writes, write {k} at {off} torn: {how}")
                    })
                });
            }
            buf[off as usize..off as usize + data.len()].copy_from_slice(data);
        }
    }
    assert_eq!(buf, final_img, "{label}: replay reproduces the final image");

    // Model 2: writes between two flushes land in any order and any of them may be torn.
    let epochs = writes.iter().map(|w| w.0).max().unwrap_or(0) + 1;
    let mut base = original.to_vec();
    for e in 0..epochs {
        let ws: Vec<&(usize, u64, &[u8])> = writes.iter().filter(|w| w.0 == e).collect();
        let variants: Vec<Vec<(String, Vec<Piece<'_>>)>> =
            ws.iter().map(|w| tears(w.1, w.2, ss)).collect();
        let total: usize = variants.iter().map(Vec::len).product();
        assert!(
            total <= 200_000,
            "{label}: epoch {e} has {total} combinations"
        );
        let mut idx = vec![0usize; variants.len()];
        loop {
            let pieces: Vec<Piece<'_>> = idx
                .iter()
                .zip(&variants)
                .flat_map(|(&i, v)| v[i].1.iter().copied())
                .collect();
            with_pieces(&mut base, &pieces, |b| {
                check(b, &|| {
                    let hows: Vec<String> = idx
                        .iter()
                        .zip(&variants)
                        .zip(&ws)
                        .map(|((&i, v), w)| format!("write at {}: {}", w.1, v[i].0))
                        .collect();
                    format!("between flush {e} and {}: {}", e + 1, hows.join(", "))
                })
            });
            // Next combination.
            let mut d = 0;
            while d < idx.len() {
                idx[d] += 1;
                if idx[d] < variants[d].len() {
                    break;
                }
                idx[d] = 0;
                d += 1;
            }
            if d == idx.len() {
                break;
            }
        }
        for w in &ws {
            base[w.1 as usize..w.1 as usize + w.2.len()].copy_from_slice(w.2);
        }
    }
    assert_eq!(base, final_img);

    // gdisk, independently: after each write and half-way through the next one, `sgdisk -p`
    // loads the old or the new table (512-byte images only: sgdisk cannot be told 4096).
    if ss == 512 && have_tool("sgdisk") {
        let tmp = TempImage::new(0);
        let rows = |t: &Table| -> Vec<(u32, u64, u64)> {
            t.partitions
                .iter()
                .map(|p| (p.number, p.start, p.end() - 1))
                .collect()
        };
        let (old_rows, new_rows) = (rows(&old), rows(&new));
        let mut buf = original.to_vec();
        for k in 0..=writes.len() {
            let mut states: Vec<(String, Vec<Piece<'_>>)> =
                vec![(format!("after {k} writes"), vec![])];
            if let Some(&(_, off, data)) = writes.get(k) {
                states.push((
                    format!("after {k} writes and half of the next"),
                    vec![(off, &data[..data.len() / 2])],
                ));
            }
            for (what, pieces) in &states {
                checked += 1;
                let got = with_pieces(&mut buf, pieces, |b| {
                    std::fs::write(&tmp.path, b).unwrap();
                    sgdisk_rows(tmp.path_str())
                });
                match got {
                    Ok(r) if r == old_rows || r == new_rows => {}
                    Ok(r) => failures.push(format!("sgdisk, {what}: a mixed table {r:?}")),
                    Err(e) => failures.push(format!("sgdisk, {what}: {e}")),
                }
            }
            if let Some(&(_, off, data)) = writes.get(k) {
                buf[off as usize..off as usize + data.len()].copy_from_slice(data);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: {} of {checked} crash states do not read as the old or the new table; first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(12)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    checked
}

/// An in-memory GPT made by `gpt::create` (no external tool), `size` bytes long.
fn created_gpt(size: u64, ss: u64) -> Vec<u8> {
    let mut dev = Cursor::new(vec![0u8; size as usize]);
    let mut g = gpt::create(size, ss, TEST_GUID).unwrap();
    gpt::write_protective_mbr(&mut dev, ss).unwrap();
    let a = MIB / ss;
    g.add(a, 3 * a - 1, LINUX_DATA, [1; 16], "root").unwrap();
    g.add(3 * a, 4 * a - 1, LINUX_DATA, [2; 16], "swap")
        .unwrap();
    g.add(4 * a, 5 * a - 1, LINUX_DATA, [3; 16], "config-v2")
        .unwrap();
    g.write(&mut dev).unwrap();
    dev.into_inner()
}

/// The sgdisk image, or the created one when sgdisk is missing.
fn gpt_fixture(size: u64) -> Vec<u8> {
    if have_tool("sgdisk") {
        standard_gpt(size).bytes()
    } else {
        eprintln!("note: sgdisk missing, crash tests use a gpt::create image");
        created_gpt(size, 512)
    }
}

/// The crash scenarios' GPT with `ss`-byte sectors: the sgdisk image (or a created one) for
/// 512, a created one for 4096.
fn crash_fixture(ss: u64) -> Vec<u8> {
    if ss == 512 {
        gpt_fixture(4 * MIB)
    } else {
        created_gpt(8 * MIB, 4096)
    }
}

/// `img` on a disk 4 MiB larger than it: its backup GPT is short of the end.
fn on_a_larger_disk(mut img: Vec<u8>) -> Vec<u8> {
    img.resize(img.len() + 4 * MIB as usize, 0);
    img
}

/// Edit used by most crash scenarios: delete the config partition and #2, grow root over #2's
/// space and add a partition: the partition list changes in three ways at once.
fn typical_edit(g: &mut Gpt) {
    let last = g.table.partitions.last().unwrap().clone();
    let second = g.table.partitions[1].clone();
    g.remove(last.number).unwrap();
    g.remove(second.number).unwrap();
    g.set_end(g.table.partitions[0].number, second.end() - 1)
        .unwrap();
    let s = last.start;
    g.add(s, s + last.sectors / 2, LINUX_DATA, TEST_GUID, "new")
        .unwrap();
}

#[test]
fn crash_during_a_gpt_edit_leaves_the_old_or_the_new_table() {
    let n = assert_crash_safe("512 edit", &crash_fixture(512), typical_edit);
    assert!(n > 100, "{n} states");
    assert_crash_safe("4096 edit", &crash_fixture(4096), typical_edit);
}

#[test]
fn crash_during_backup_relocation_leaves_the_old_or_the_new_table() {
    for ss in [512u64, 4096] {
        let img = on_a_larger_disk(crash_fixture(ss));
        assert_crash_safe(&format!("{ss}: relocate only"), &img, |g| {
            g.relocate_backup()
        });
        // The Ironic sequence in one write: move the backup, delete the drive, grow root.
        assert_crash_safe(&format!("{ss}: relocate, delete, grow"), &img, |g| {
            g.relocate_backup();
            let last = g.table.partitions.last().unwrap().number;
            g.remove(last).unwrap();
            let limit = g.table.grow_limit;
            let first = g.table.partitions[0].number;
            let second = g.table.partitions[1].number;
            g.remove(second).unwrap();
            g.set_end(first, limit).unwrap();
        });
    }
}

/// Deleting the config partition happens before growth (spec §5 step 4), so a table whose
/// backup header sits short of a larger disk is written without relocating it first.
#[test]
fn crash_during_an_edit_with_a_misplaced_backup_leaves_the_old_or_the_new_table() {
    for ss in [512u64, 4096] {
        let img = on_a_larger_disk(crash_fixture(ss));
        let t = read_buf(&img, None).unwrap();
        assert!(t.last_usable < t.grow_limit);
        assert_crash_safe(&format!("{ss}: misplaced backup, delete"), &img, |g| {
            let last = g.table.partitions.last().unwrap().number;
            g.remove(last).unwrap();
        });
    }
}

/// A table read from its backup (primary damaged) is rewritten: the only good copy must not be
/// the first one overwritten.
#[test]
fn crash_while_repairing_a_damaged_primary_leaves_the_old_or_the_new_table() {
    for ss in [512usize, 4096] {
        let base = crash_fixture(ss as u64);
        // Primary header CRC broken.
        let mut img = base.clone();
        img[ss + 60] ^= 0xff;
        assert!(!read_buf(&img, None).unwrap().warnings.is_empty());
        assert_crash_safe(&format!("{ss}: bad primary header"), &img, typical_edit);
        // Primary array CRC broken.
        let mut img = base.clone();
        img[2 * ss + 60] ^= 0xff;
        assert_crash_safe(&format!("{ss}: bad primary array"), &img, typical_edit);
        // Primary array broken on a grown disk: the backup is found through the (intact)
        // primary header, as gdisk does; then relocated.
        let mut img = base.clone();
        img[2 * ss + 60] ^= 0xff;
        let img = on_a_larger_disk(img);
        let t = read_buf(&img, None).unwrap();
        assert!(
            t.warnings.iter().any(|w| w.contains("primary")),
            "{:?}",
            t.warnings
        );
        assert_crash_safe(&format!("{ss}: bad primary array, grown"), &img, |g| {
            g.relocate_backup();
            typical_edit(g);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Corruption.

#[test]
fn corrupt_primary_gpt_falls_back_to_the_backup_with_a_warning() {
    let good = gpt_fixture(4 * MIB);
    let want = read_buf(&good, None).unwrap();
    let last = good.len() / 512 - 1;
    for (what, off) in [("header", 512 + 60), ("array", 1024 + 60)] {
        let mut img = good.clone();
        img[off] ^= 0x5a;
        let t = read_buf(&img, None).unwrap_or_else(|e| panic!("primary {what}: {e}"));
        assert_eq!(t.partitions, want.partitions, "primary {what}");
        assert_eq!(t.last_usable, want.last_usable);
        let w = t.warnings.join("\n");
        assert!(
            w.contains("primary") && w.contains("backup") && w.contains("CRC"),
            "primary {what}: {w}"
        );
        // The backup is at the end; a write repairs the primary.
        let mut dev = Cursor::new(img.clone());
        let mut g = Gpt::read(&mut dev, 512).unwrap();
        g.write(&mut dev).unwrap();
        let fixed = dev.into_inner();
        assert_eq!(
            fixed, good,
            "a rewrite of the unchanged table restores the image"
        );
        assert!(read_buf(&fixed, None).unwrap().warnings.is_empty());
    }
    // Backup broken: the primary is used, with a warning.
    let mut img = good.clone();
    img[last * 512 + 60] ^= 0x5a;
    let t = read_buf(&img, None).unwrap();
    assert_eq!(t.partitions, want.partitions);
    assert!(
        t.warnings.iter().any(|w| w.contains("backup")),
        "{:?}",
        t.warnings
    );
    // Both broken: an error naming both.
    let mut img = good.clone();
    img[512 + 60] ^= 0x5a;
    img[last * 512 + 60] ^= 0x5a;
    match read_buf(&img, None) {
        Err(DiskError::CorruptGpt(m)) => {
            assert!(m.contains("primary") && m.contains("backup"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    // Primary header and backup array broken.
    let mut img = good.clone();
    img[512 + 60] ^= 0x5a;
    let backup_array = entry_offsets(&good, 512)[1];
    img[backup_array + 60] ^= 0x5a;
    assert!(matches!(
        read_buf(&img, None),
        Err(DiskError::CorruptGpt(_))
    ));
}

#[test]
fn gpt_header_claiming_a_million_entries_is_refused_without_allocating_for_them() {
    let good = gpt_fixture(4 * MIB);
    let last = good.len() / 512 - 1;
    let mut img = good.clone();
    for lba in [1, last] {
        let h = lba * 512;
        put32(&mut img, h + H_COUNT, 1_000_000);
        fix_header_crc(&mut img, h);
    }
    let (r, peak) = peak_alloc_during(|| read_buf(&img, None));
    match r {
        Err(DiskError::CorruptGpt(m)) => {
            assert!(m.contains("1000000"), "{m}");
            assert!(m.contains("primary") && m.contains("backup"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert!(peak < 4 * MIB as usize, "largest allocation {peak} bytes");
    // Only the primary claims it: the backup is used.
    let mut img = good.clone();
    put32(&mut img, 512 + H_COUNT, 1_000_000);
    fix_header_crc(&mut img, 512);
    let t = read_buf(&img, None).unwrap();
    assert_eq!(t.partitions, read_buf(&good, None).unwrap().partitions);
    // An entry size other than 128, and an array outside the disk, likewise.
    let mut img = good.clone();
    put32(&mut img, 512 + H_ENTRY_SIZE, 256);
    put32(&mut img, 512 + H_COUNT, 64);
    fix_header_crc(&mut img, 512);
    assert!(!read_buf(&img, None).unwrap().warnings.is_empty());
    let mut img = good.clone();
    put64(&mut img, 512 + H_ARRAY_LBA, (last - 3) as u64);
    fix_header_crc(&mut img, 512);
    assert!(!read_buf(&img, None).unwrap().warnings.is_empty());
}

/// Tables that read but cannot be written back where they are: nothing is written.
#[test]
fn gpt_that_does_not_fit_the_disk_is_refused_before_any_write() {
    let good = gpt_fixture(4 * MIB);
    // An image larger than the disk it was written to (the backup lies past the end).
    let cut = &good[..good.len() - 32 * 512];
    let t = read_buf(cut, None).unwrap();
    assert!(
        t.warnings.iter().any(|w| w.contains("backup")),
        "{:?}",
        t.warnings
    );
    let mut dev = Recording::new(cut.to_vec());
    let mut g = Gpt::read(&mut dev, 512).unwrap();
    g.remove(1).unwrap();
    match g.write(&mut dev) {
        Err(DiskError::Refused(m)) => assert!(m.contains("does not fit"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(dev.ops.is_empty(), "{:?}", dev.ops.len());
    // Moving the backup to the real end makes it writable.
    g.relocate_backup();
    g.write(&mut dev).unwrap();
    let back = read_buf(&dev.inner.into_inner(), None).unwrap();
    assert!(back.warnings.is_empty(), "{:?}", back.warnings);
    assert_eq!(back.partitions, g.table.partitions);

    // Read from a backup whose usable range starts where the primary array must go.
    let last = good.len() / 512 - 1;
    let mut img = good.clone();
    img[512 + 60] ^= 0xff;
    put64(&mut img, last * 512 + H_FIRST, 10);
    fix_header_crc(&mut img, last * 512);
    let t = read_buf(&img, None).unwrap();
    assert_eq!(t.first_usable, 10);
    let mut dev = Recording::new(img);
    let mut g = Gpt::read(&mut dev, 512).unwrap();
    assert!(matches!(g.write(&mut dev), Err(DiskError::Refused(_))));
    assert!(dev.ops.is_empty());
}

#[test]
fn overlapping_gpt_partitions_are_an_error_naming_them() {
    let good = gpt_fixture(4 * MIB);
    let t = read_buf(&good, None).unwrap();
    let (p1, p2) = (t.partitions[0].clone(), t.partitions[1].clone());
    let mut img = good.clone();
    for base in entry_offsets(&good, 512) {
        let e = base + 128 * (p2.number as usize - 1);
        put64(&mut img, e + E_START, p1.end() - 10);
    }
    fix_gpt(&mut img, 512);
    match read_buf(&img, None) {
        Err(DiskError::CorruptGpt(m)) => assert!(
            m.contains(&format!(
                "partitions {} and {} overlap",
                p1.number, p2.number
            )),
            "{m}"
        ),
        other => panic!("{other:?}"),
    }
    // End before start, and beyond the last usable LBA.
    let mut img = good.clone();
    for base in entry_offsets(&good, 512) {
        put64(&mut img, base + E_END, p1.start - 1);
    }
    fix_gpt(&mut img, 512);
    assert!(matches!(
        read_buf(&img, None),
        Err(DiskError::CorruptGpt(_))
    ));
    let mut img = good.clone();
    for base in entry_offsets(&good, 512) {
        let e = base + 128 * (t.partitions.last().unwrap().number as usize - 1);
        put64(&mut img, e + E_END, t.last_usable + 1);
    }
    fix_gpt(&mut img, 512);
    match read_buf(&img, None) {
        Err(DiskError::CorruptGpt(m)) => assert!(m.contains("usable"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn mbr_fixture() -> Option<(TempImage, Table)> {
    if !require_tool("sfdisk") {
        return None;
    }
    let img = sfdisk_mbr_image(
        8 * MIB,
        "label: dos\nlabel-id: 0x11223344\nIMG1 : start=2048, size=2048, type=83\nIMG2 : start=4096, size=8192, type=5\nIMG3 : start=12288, size=2048, type=99\nIMG5 : start=5120, size=1024, type=83\nIMG6 : start=7168, size=1024, type=82\nIMG7 : start=10240, size=1024, type=99\n",
    );
    let t = read_img(&img, None).unwrap();
    Some((img, t))
}

#[test]
fn corrupt_mbr_chains_and_extents_are_errors() {
    let Some((img, t)) = mbr_fixture() else {
        return;
    };
    let good = img.bytes();
    let ebr = |n: u32| t.get(n).unwrap().ebr.unwrap() as usize * 512;
    let ext_start = t.get(2).unwrap().start;
    let expect_corrupt = |img: &[u8], what: &str| match read_buf(img, None) {
        Err(DiskError::CorruptMbr(m)) => m,
        other => panic!("{what}: {other:?}"),
    };
    // EBR of 6 links back to the EBR of 5 (a loop).
    let mut b = good.clone();
    put32(&mut b, ebr(6) + 462 + 8, 0);
    let m = expect_corrupt(&b, "back-link");
    assert!(m.contains("links to"), "{m}");
    // EBR of 7 links to itself.
    let mut b = good.clone();
    b[ebr(7) + 462 + 4] = 0x05;
    put32(
        &mut b,
        ebr(7) + 462 + 8,
        (ebr(7) / 512) as u32 - ext_start as u32,
    );
    put32(&mut b, ebr(7) + 462 + 12, 100);
    expect_corrupt(&b, "self-link");
    // A link out of the container.
    let mut b = good.clone();
    put32(&mut b, ebr(6) + 462 + 8, 9000);
    expect_corrupt(&b, "link out of the container");
    // A logical reaching out of its container.
    let mut b = good.clone();
    put32(&mut b, ebr(7) + 446 + 12, 9000);
    let m = expect_corrupt(&b, "logical outside");
    assert!(m.contains("outside its extended"), "{m}");
    // An EBR without its signature.
    let mut b = good.clone();
    b[ebr(6) + 510] = 0;
    expect_corrupt(&b, "EBR signature");
    // A primary beyond the disk's end; and the whole image cut short.
    let mut b = good.clone();
    let disk_sectors = (b.len() / 512) as u32;
    put32(&mut b, 446 + 16 * 2 + 12, disk_sectors);
    let m = expect_corrupt(&b, "primary beyond the end");
    assert!(m.contains("does not fit the disk"), "{m}");
    let m = expect_corrupt(&good[..6 * MIB as usize], "truncated image");
    assert!(m.contains("partition 3"), "{m}");
    // Overlapping primaries, and two extended partitions.
    let mut b = good.clone();
    put32(&mut b, 446 + 12, 2049);
    let m = expect_corrupt(&b, "overlap");
    assert!(m.contains("partitions 1 and 2 overlap"), "{m}");
    let mut b = good.clone();
    b[446 + 16 * 3 + 4] = 0x0f;
    put32(&mut b, 446 + 16 * 3 + 8, 14336);
    put32(&mut b, 446 + 16 * 3 + 12, 100);
    expect_corrupt(&b, "two extended");
}

#[test]
fn tiny_and_empty_images_are_clean_errors() {
    let good = gpt_fixture(4 * MIB);
    for len in [0usize, 1, 100, 511, 512, 513, 1024, 4096, 8192, 34 * 512] {
        let r = read_buf(&good[..len], None);
        assert!(r.is_err(), "{len} bytes: {r:?}");
        let r = read_buf(&good[..len], Some(4096));
        assert!(r.is_err(), "{len} bytes: {r:?}");
    }
    // The primary GPT alone, its partitions now beyond the end: an error.
    assert!(matches!(
        read_buf(&good[..MIB as usize], None),
        Err(DiskError::CorruptGpt(_))
    ));
    assert!(matches!(
        read_buf(&[0u8; 512 * 64], None),
        Err(DiskError::NoTable)
    ));
    assert!(matches!(
        read_buf(&[0u8; 4096 * 64], Some(4096)),
        Err(DiskError::NoTable)
    ));
    assert!(matches!(
        read_table(&mut Cursor::new(vec![0u8; 4096]), Some(520)),
        Err(DiskError::Refused(_))
    ));
}

/// Checks what a successful read promises: numbered partitions inside the usable range that
/// do not overlap.
fn table_invariants(t: &Table) -> Result<(), String> {
    let mut nums: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    nums.dedup();
    if nums.len() != t.partitions.len() || !nums.is_sorted() {
        return Err("numbers not unique and sorted".into());
    }
    let mut data: Vec<&Partition> = t.partitions.iter().filter(|p| !p.is_extended()).collect();
    data.sort_by_key(|p| p.start);
    for p in &t.partitions {
        if p.sectors == 0
            || p.start < t.first_usable
            || p.end() > t.last_usable + 1
            || p.end() > t.disk_sectors
        {
            return Err(format!("partition {} outside the usable range", p.number));
        }
    }
    for w in data.windows(2) {
        if w[1].start < w[0].end() {
            return Err(format!("{} and {} overlap", w[0].number, w[1].number));
        }
    }
    // (The usable range may end past the grow limit: a GPT image larger than the disk it was
    // written to reads, with a warning, but cannot be written back.)
    if t.grow_limit >= t.disk_sectors || (t.last_usable > t.grow_limit && t.warnings.is_empty()) {
        return Err(format!(
            "grow limit {} with the usable range ending at {} on a disk of {} sectors",
            t.grow_limit, t.last_usable, t.disk_sectors
        ));
    }
    Ok(())
}

/// Reads, and when the read succeeds, plans and (for GPT) rewrites: nothing may panic, a
/// successful read keeps its invariants, and a rewritten GPT reads back the same.
fn exercise(img: &[u8]) -> Result<(), String> {
    // (`Some(512)` reads like `None` on these 512-byte images.)
    for ss in [None, Some(4096)] {
        let Ok(t) = read_buf(img, ss) else { continue };
        table_invariants(&t)?;
        for p in &t.partitions {
            let _ = plan_growth(&t, p.number, None);
            for d in &t.partitions {
                if let Some(plan) = plan_growth(&t, p.number, Some(d.number)) {
                    check_plan(&t, &plan, Some(d.number))?;
                }
            }
        }
        if t.kind == TableKind::Gpt {
            let mut dev = Recording::new(img.to_vec());
            let mut g = Gpt::read(&mut dev, t.sector_size).map_err(|e| e.to_string())?;
            g.relocate_backup();
            let written = g.write(&mut dev);
            if let Err(DiskError::Io { what, source }) = &written {
                return Err(format!("write failed while {what}: {source}"));
            }
            let back = read_buf(&dev.inner.into_inner(), Some(t.sector_size))
                .map_err(|e| format!("table does not read after a write ({written:?}): {e}"))?;
            if back.partitions != t.partitions {
                return Err("rewritten table differs".into());
            }
        }
    }
    let _ = probe_sector_size(&mut Cursor::new(img));
    Ok(())
}

/// A plan keeps the start, only grows, ends aligned, inside the grow limit, and runs into no
/// partition that stays.
fn check_plan(t: &Table, p: &GrowPlan, delete: Option<u32>) -> Result<(), String> {
    let r = t.get(p.number).ok_or("plan for a missing partition")?;
    let end = p.start + p.new_sectors;
    let align = (MIB / t.sector_size).max(1);
    if p.start != r.start || p.new_sectors <= p.old_sectors || !end.is_multiple_of(align) {
        return Err(format!("bad plan {p:?}"));
    }
    if end > t.grow_limit + 1 {
        return Err(format!("plan {p:?} beyond the grow limit {}", t.grow_limit));
    }
    for o in &t.partitions {
        let holds_root = o.is_extended() && o.start <= r.start && r.end() <= o.end();
        if o.number == p.number || Some(o.number) == delete || holds_root {
            continue;
        }
        let first = o.ebr.unwrap_or(o.start);
        if first < end && o.end() > r.start {
            return Err(format!("plan {p:?} runs into partition {}", o.number));
        }
    }
    Ok(())
}

fn run_mutations(
    label: &str,
    good: &[u8],
    n: usize,
    seed: u64,
    mutate: impl Fn(&mut Rng, &mut Vec<u8>),
) {
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    let mut ok_reads = 0;
    for i in 0..n {
        let mut img = good.to_vec();
        mutate(&mut rng, &mut img);
        if read_buf(&img, None).is_ok() {
            ok_reads += 1;
        }
        match catch_unwind(AssertUnwindSafe(|| exercise(&img))) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failures.push(format!("mutation {i}: {e}")),
            Err(_) => failures.push(format!("mutation {i}: PANIC")),
        }
    }
    assert!(
        failures.is_empty(),
        "{label}: {} of {n} mutations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The mutations must not all be trivially rejected (or all harmless).
    assert!(
        ok_reads > 0 && ok_reads < n,
        "{label}: {ok_reads} of {n} read fine"
    );
}

fn interesting_u64(rng: &mut Rng, disk_sectors: u64) -> u64 {
    match rng.below(12) {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 33,
        4 => 34,
        5 => disk_sectors - 1,
        6 => disk_sectors,
        7 => disk_sectors + 1,
        8 => u64::MAX,
        9 => u64::MAX / 512 + 1,
        10 => 1 << 32,
        _ => rng.below(disk_sectors + 64),
    }
}

#[test]
fn random_gpt_mutations_never_panic() {
    let good = if have_tool("sgdisk") {
        let img = sgdisk_image(
            MIB,
            &[
                "-a",
                "8",
                "-n",
                "1:40:+256K",
                "-n",
                "2:0:+128K",
                "-n",
                "4:0:+128K",
            ],
        );
        img.bytes()
    } else {
        created_gpt(8 * MIB, 512)
    };
    let ss = 512usize;
    let disk = (good.len() / ss) as u64;
    let table_bytes: Vec<usize> = (0..34 * ss)
        .chain(good.len() - 33 * ss..good.len())
        .collect();
    run_mutations("gpt", &good, 300, 0x5eed_0001, |rng, img| {
        let last = disk - 1;
        match rng.below(6) {
            // Random bytes anywhere in the tables, CRCs left broken or fixed.
            0 | 1 => {
                for _ in 0..=rng.below(8) {
                    let at = table_bytes[rng.below(table_bytes.len() as u64) as usize];
                    img[at] = rng.next() as u8;
                }
                if rng.below(2) == 0 {
                    fix_gpt(img, ss);
                }
            }
            // A header field of either copy, with consistent CRCs.
            2 | 3 => {
                let lba = if rng.below(2) == 0 { 1 } else { last };
                let h = lba as usize * ss;
                let fields = [H_MY_LBA, H_ALT_LBA, H_FIRST, H_LAST, H_ARRAY_LBA, H_COUNT];
                let f = fields[rng.below(fields.len() as u64) as usize];
                let v = interesting_u64(rng, disk);
                if f == H_COUNT {
                    put32(img, h + f, v as u32);
                } else {
                    put64(img, h + f, v);
                }
                fix_gpt_copy(img, ss, lba);
            }
            // A partition's extent in both arrays, with consistent CRCs.
            4 => {
                let slot = rng.below(5) as usize;
                let field = if rng.below(2) == 0 { E_START } else { E_END };
                let v = interesting_u64(rng, disk);
                for base in entry_offsets(&good, ss) {
                    put64(img, base + 128 * slot + field, v);
                    if rng.below(4) == 0 {
                        img[base + 128 * slot] = 0xaa; // make the slot used
                    }
                }
                fix_gpt(img, ss);
            }
            // Cut the image anywhere.
            _ => {
                let n = rng.below(img.len() as u64) as usize;
                img.truncate(n);
            }
        }
    });
}

#[test]
fn random_mbr_mutations_never_panic() {
    let Some((img, t)) = mbr_fixture() else {
        return;
    };
    let good = img.bytes();
    let disk = t.disk_sectors;
    let mut sectors: Vec<usize> = vec![0];
    sectors.extend(
        t.partitions
            .iter()
            .filter_map(|p| p.ebr)
            .map(|e| e as usize),
    );
    run_mutations("mbr", &good, 400, 0x5eed_0002, |rng, img| {
        let s = sectors[rng.below(sectors.len() as u64) as usize] * 512;
        match rng.below(4) {
            0 => {
                for _ in 0..=rng.below(6) {
                    let at = s + 440 + rng.below(72) as usize;
                    img[at] = rng.next() as u8;
                }
            }
            1 | 2 => {
                let slot = rng.below(4) as usize;
                let field = [8usize, 12][rng.below(2) as usize];
                let v = interesting_u64(rng, disk) as u32;
                put32(img, s + 446 + 16 * slot + field, v);
                if rng.below(3) == 0 {
                    img[s + 446 + 16 * slot + 4] =
                        [0x05, 0x0f, 0x83, 0x99, 0xee][rng.below(5) as usize];
                }
            }
            _ => {
                let n = rng.below(img.len() as u64) as usize;
                img.truncate(n);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 6. The planner on real tables.

/// As Ironic does it: the image's root, then the config drive in the last 64 MiB.
const IRONIC: &[&str] = &["-n", "1:2048:+1G", "-n", "0:-64M:0", "-t", "0:0700"];

#[test]
fn planner_on_the_ironic_layout_grows_root_to_the_aligned_end() {
    require_tools!("sgdisk", "sfdisk");
    let img = sgdisk_image(1100 * MIB, IRONIC);
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.partitions.len(), 2);
    let p = plan_growth(&t, 1, Some(2)).expect("a plan");
    let aligned_end = (t.last_usable + 1) / 2048 * 2048;
    assert_eq!(p.start, 2048);
    assert_eq!(p.old_sectors, 1 << 21);
    assert_eq!(p.start + p.new_sectors, aligned_end);
    assert!(!p.relocate_backup);
    assert_eq!(p.grow_extended, None);
    // Without deleting the drive root grows up to it, aligned down.
    let q = plan_growth(&t, 1, None).expect("a plan up to the drive");
    assert_eq!(
        q.start + q.new_sectors,
        t.get(2).unwrap().start / 2048 * 2048
    );
    check_plan(&t, &p, Some(2)).unwrap();
    let after = apply_gpt_plan_checked(&img, &t, &p, Some(2));
    assert_eq!(after.partitions.len(), 1);
    assert_eq!(after.get(1).unwrap().end(), aligned_end);
    // Nothing left to gain.
    assert_eq!(plan_growth(&after, 1, None), None);
}

fn apply_gpt_plan(img: &TempImage, t: &Table, p: &GrowPlan, delete: Option<u32>) {
    edit_gpt(img, t.sector_size, |g| {
        if p.relocate_backup {
            g.relocate_backup();
        }
        if let Some(d) = delete {
            g.remove(d).unwrap();
        }
        g.set_end(p.number, p.start + p.new_sectors - 1).unwrap();
    });
}

/// `apply_gpt_plan` on a 512-byte image, then `sgdisk -v` finds nothing wrong and sfdisk reads
/// the table we read back, which is returned.
#[track_caller]
fn apply_gpt_plan_checked(img: &TempImage, t: &Table, p: &GrowPlan, delete: Option<u32>) -> Table {
    apply_gpt_plan(img, t, p, delete);
    assert_sgdisk_clean(img.path_str());
    let after = read_img(img, None).unwrap();
    assert_same_as_sfdisk(&after, &sfdisk_json(img.path_str()));
    after
}

#[test]
fn planner_on_an_ironic_image_written_to_a_larger_disk_relocates_the_backup() {
    require_tools!("sgdisk", "sfdisk");
    let img = sgdisk_image(1100 * MIB, IRONIC);
    img.set_len(1500 * MIB);
    let t = read_img(&img, None).unwrap();
    let p = plan_growth(&t, 1, Some(2)).unwrap();
    assert!(p.relocate_backup);
    let disk = 1500 * MIB / 512;
    assert_eq!(t.grow_limit, disk - 34);
    assert_eq!(p.start + p.new_sectors, (disk - 33) / 2048 * 2048);
    check_plan(&t, &p, Some(2)).unwrap();
    let after = apply_gpt_plan_checked(&img, &t, &p, Some(2));
    assert_eq!(after.get(1).unwrap().end(), p.start + p.new_sectors);
    // The old backup header is now inside root (whose filesystem has not grown yet): it is
    // left alone rather than written into a partition.
    assert!(after.get(1).unwrap().end() > 1100 * MIB / 512);
}

#[test]
fn planner_on_a_4096_byte_gpt_aligns_to_256_sectors() {
    require_loop!("sgdisk");
    let _g = loop_lock();
    let img = TempImage::new(48 * MIB);
    {
        let lo = LoopDev::attach(&img.path, 4096);
        sgdisk(
            &lo.dev,
            &["-n", "1:256:+8M", "-n", "0:-8M:0", "-c", "2:config-v2"],
        );
    }
    img.set_len(64 * MIB);
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.sector_size, 4096);
    let p = plan_growth(&t, 1, Some(2)).unwrap();
    assert!(p.relocate_backup);
    let disk = 64 * MIB / 4096;
    assert_eq!(p.start + p.new_sectors, (disk - 5) / 256 * 256);
    check_plan(&t, &p, Some(2)).unwrap();
    apply_gpt_plan(&img, &t, &p, Some(2));
    let lo = LoopDev::attach(&img.path, 4096);
    assert_sgdisk_clean(&lo.dev);
}

#[test]
fn planner_grows_an_mbr_logical_root_with_its_extended_container() {
    require_tools!("sfdisk");
    // boot (1), extended (2) holding root (5) and a data logical (6), config drive (3) after it.
    let img = sfdisk_mbr_image(
        64 * MIB,
        "label: dos\nIMG1 : start=2048, size=8192, type=83\nIMG2 : start=10240, size=30720, type=5\nIMG3 : start=40960, size=8192, type=99\nIMG5 : start=12288, size=4096, type=83\nIMG6 : start=24576, size=4096, type=83\n",
    );
    let t = read_img(&img, None).unwrap();
    let (ext, root, l6) = (
        t.get(2).unwrap().clone(),
        t.get(5).unwrap().clone(),
        t.get(6).unwrap().clone(),
    );
    // Root is followed by logical 6: it may grow only up to 6's EBR.
    assert!(l6.ebr.unwrap() > root.end() + 2048);
    let p = plan_growth(&t, 5, Some(3)).unwrap();
    assert_eq!(p.start + p.new_sectors, l6.ebr.unwrap() / 2048 * 2048);
    assert_eq!(p.grow_extended, None);
    check_plan(&t, &p, Some(3)).unwrap();
    // Logical 6 is the last one: deleting the drive lets 6 and its container grow to the end.
    let p = plan_growth(&t, 6, Some(3)).unwrap();
    let disk = t.disk_sectors;
    assert_eq!(p.start + p.new_sectors, disk);
    assert_eq!(p.grow_extended, Some((2, disk - ext.start)));
    assert!(!p.relocate_backup);
    check_plan(&t, &p, Some(3)).unwrap();
    // Keeping the drive: up to it, which is where the container ends already.
    assert_eq!(ext.end(), 40960);
    let q = plan_growth(&t, 6, None).unwrap();
    assert_eq!(q.start + q.new_sectors, 40960);
    assert_eq!(q.grow_extended, None);
    // sfdisk carries the plan out and reads back what was planned.
    let dev = img.path_str();
    run(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", "--delete", dev, "3"],
    );
    let (n, len) = p.grow_extended.unwrap();
    run_stdin(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", "-N", &n.to_string(), dev],
        &format!("size={len}\n"),
    );
    run_stdin(
        "sfdisk",
        &["--no-reread", "--no-tell-kernel", "-N", "6", dev],
        &format!("size={}\n", p.new_sectors),
    );
    let after = read_img(&img, None).unwrap();
    assert_same_as_sfdisk(&after, &sfdisk_json(dev));
    assert_eq!(after.get(6).unwrap().end(), disk);
    assert_eq!(after.get(2).unwrap().end(), disk);
    assert_eq!(after.get(5).unwrap(), &root);
    assert_eq!(plan_growth(&after, 6, None), None);
}

#[test]
fn planner_on_an_mbr_primary_root_stops_at_the_2tib_mark() {
    // A synthetic 3 TiB MBR disk: nothing is written, the image is sparse.
    require_tools!("sfdisk");
    let img = TempImage::new(3 << 40);
    sfdisk_script(
        img.path_str(),
        "label: dos\nstart=2048, size=2097152, type=83\n",
    );
    let t = read_img(&img, None).unwrap();
    assert_eq!(t.grow_limit, (1 << 32) - 1);
    let p = plan_growth(&t, 1, None).unwrap();
    assert_eq!(p.start + p.new_sectors, 1 << 32);
    check_plan(&t, &p, None).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 7. Through the kernel: loop devices.

/// `(start, size)` of `/dev/loopXpN` in 512-byte units, from sysfs.
fn sysfs_extent(dev: &str, n: u32) -> (u64, u64) {
    let name = format!("{}p{n}", dev.trim_start_matches("/dev/"));
    let read = |f: &str| -> u64 {
        std::fs::read_to_string(format!("/sys/class/block/{name}/{f}"))
            .unwrap_or_else(|e| panic!("{name}/{f}: {e}"))
            .trim()
            .parse()
            .unwrap()
    };
    (read("start"), read("size"))
}

#[test]
fn tables_read_through_loop_devices_match_the_kernels_partitions() {
    require_loop!("sgdisk", "sfdisk");
    let _g = loop_lock();
    for ss in [512u64, 4096] {
        let img = TempImage::new(32 * MIB);
        let per_mib = MIB / ss;
        {
            let lo = LoopDev::attach(&img.path, ss);
            sgdisk(
                &lo.dev,
                &[
                    "-n",
                    &format!("1:{per_mib}:+8M"),
                    "-c",
                    "1:root",
                    "-n",
                    "3:0:+4M",
                    "-c",
                    "3:config-v2",
                ],
            );
        }
        let from_file = read_img(&img, None).unwrap();
        let lo = LoopDev::attach(&img.path, ss);
        lo.add_partitions();
        let mut f = lo.open_ro();
        let lss = seedpart::sys::logical_sector_size(&f).unwrap();
        assert_eq!(lss, ss);
        let t = read_table(&mut f, Some(lss)).unwrap();
        assert_eq!(t, from_file);
        assert_eq!(t.sector_size, ss);
        for p in &t.partitions {
            let (start, size) = sysfs_extent(&lo.dev, p.number);
            assert_eq!(
                (start, size),
                (p.start * ss / 512, p.sectors * ss / 512),
                "kernel's view of partition {}",
                p.number
            );
        }
        let gap = format!("{}p2", lo.dev);
        assert!(!std::path::Path::new(&gap).exists(), "{gap} exists");
    }
    // MBR logicals: the kernel numbers them as we do.
    let Some((img, t)) = mbr_fixture() else {
        return;
    };
    let lo = LoopDev::attach(&img.path, 512);
    lo.add_partitions();
    let mut f = lo.open_ro();
    let lss = seedpart::sys::logical_sector_size(&f).unwrap();
    assert_eq!(read_table(&mut f, Some(lss)).unwrap(), t);
    for p in t.data_partitions() {
        assert_eq!(sysfs_extent(&lo.dev, p.number), (p.start, p.sectors));
    }
}
