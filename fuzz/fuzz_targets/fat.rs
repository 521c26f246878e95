//! FAT12/16/32: the input is the start of a volume; the reader sees it zero-extended to the size
//! its boot sector claims (at most 64 MiB), so a seed need not store empty clusters. `probe_label`,
//! the filesystem probe, then `Fat::open` on a read-only window, the whole tree, every file's
//! bytes and the config-drive model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::disk::{NoWrite, Window};
use seedpart::fs::{DriveFs, DriveFsKind, fat};
use seedpart_fuzz::{MAX_VIRTUAL, ZeroTail, exercise_drive};

/// The volume size the boot sector claims, when it is a plausible one.
fn claimed_len(data: &[u8]) -> u64 {
    if data.len() < 40 {
        return 0;
    }
    let bps = u64::from(u16::from_le_bytes([data[11], data[12]]));
    let total16 = u64::from(u16::from_le_bytes([data[19], data[20]]));
    let total32 = u64::from(u32::from_le_bytes([data[32], data[33], data[34], data[35]]));
    let total = if total16 != 0 { total16 } else { total32 };
    let len = bps.saturating_mul(total);
    if len <= MAX_VIRTUAL { len } else { 0 }
}

fuzz_target!(|data: &[u8]| {
    let dev = ZeroTail::new(0, data, claimed_len(data));
    let len = dev.len();
    let _ = fat::probe_label(&mut dev.clone());
    let _ = seedpart::fs::probe::detect(&mut dev.clone(), 0);
    let Ok(mut fs) = fat::Fat::open(Window::read_only(NoWrite(dev), 0, len)) else {
        return;
    };
    assert_eq!(fs.kind(), DriveFsKind::Vfat);
    exercise_drive(&mut fs);
});
