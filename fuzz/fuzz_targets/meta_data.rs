//! `meta_data.json`: `MetaData::parse` on any bytes, then everything derived from a parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::configdrive::MetaData;

fuzz_target!(|data: &[u8]| {
    match MetaData::parse("meta_data.json", data) {
        Ok(md) => {
            let _ = md.hostname();
            let _ = md.random_seed_bytes();
            for k in md.authorized_keys() {
                assert!(
                    !k.is_empty() && !k.contains('\n'),
                    "bad authorized_keys line {k:?}"
                );
            }
            let _ = format!("{md:?}");
        }
        Err(e) => {
            let _ = (e.to_string(), e.file(), e.json_path());
        }
    }
});
