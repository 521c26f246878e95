//! Ironic's `--configdrive` blob: `Blob::parse` on any bytes (JSON form, raw or gzipped ISO,
//! base64 of either), then the files of a JSON form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use seedpart::configdrive::Blob;
use seedpart::configdrive::blob::MAX_IMAGE;

fuzz_target!(|data: &[u8]| {
    match Blob::parse(data) {
        Ok(Blob::Iso(iso)) => {
            assert!(iso.len() as u64 <= MAX_IMAGE);
            assert_eq!(iso.get(32769..32774), Some(&b"CD001"[..]));
        }
        Ok(Blob::Tree(tree)) => {
            for (path, file) in &tree.files {
                let _ = (path.as_str(), file.len());
                let _ = file.write_to(&mut std::io::sink());
            }
            let _ = tree.dirs.len();
        }
        Err(e) => {
            let _ = (e.to_string(), e.file(), e.json_path());
        }
    }
});
