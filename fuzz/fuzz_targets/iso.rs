//! ISO 9660 (Rock Ridge, Joliet): the input is a volume from its primary volume descriptor on
//! (byte 32768 of the image): the reader sees 32 KiB of zeros (the system area) in front of it
//! and zeros after it up to the volume size the PVD claims (at most 64 MiB). `probe_label`, the
//! filesystem probe, then `Iso9660::open`, the whole tree, every file's bytes and the
//! config-drive model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::fs::{DriveFs, DriveFsKind, iso9660};
use seedpart_fuzz::{MAX_VIRTUAL, ZeroTail, exercise_drive};

const SYSTEM_AREA: u64 = 32768;

/// The volume size the PVD claims, when it is a plausible one.
fn claimed_len(data: &[u8]) -> u64 {
    if data.len() < 84 {
        return 0;
    }
    let blocks = u64::from(u32::from_le_bytes([data[80], data[81], data[82], data[83]]));
    let len = blocks.saturating_mul(2048);
    if len <= MAX_VIRTUAL { len } else { 0 }
}

fuzz_target!(|data: &[u8]| {
    let dev = ZeroTail::new(SYSTEM_AREA, data, claimed_len(data));
    let _ = iso9660::probe_label(&mut dev.clone());
    let _ = seedpart::fs::probe::detect(&mut dev.clone(), 0);
    let Ok(mut fs) = iso9660::Iso9660::open(dev) else {
        return;
    };
    assert_eq!(fs.kind(), DriveFsKind::Iso9660);
    exercise_drive(&mut fs);
});
