//! `Range` headers of downloads: parse to one range or a 400/416, and resolve
//! against any image size to bytes inside the image or a 416.
#![no_main]

use glance_api::api::parse::range;
use glance_layers::ImageError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (size, header) = data.split_at(8);
    let size = u64::from_le_bytes(size.try_into().unwrap_or_default());
    let header = String::from_utf8_lossy(header);
    let parsed = match range(&header) {
        Ok(r) => r,
        Err(e) => {
            return assert!(
                matches!(
                    e,
                    ImageError::Invalid(_) | ImageError::RangeNotSatisfiable { .. }
                ),
                "{e:?}"
            );
        }
    };
    for size in [size, 0, 1, u64::MAX] {
        match parsed.resolve(size) {
            Ok(r) => assert!(
                r.start < r.end && r.end <= size,
                "{parsed:?} in {size}: {r:?}"
            ),
            Err(e) => assert!(matches!(e, ImageError::RangeNotSatisfiable { .. }), "{e:?}"),
        }
    }
});
