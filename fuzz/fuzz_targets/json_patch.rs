//! `PATCH /v2/images/{id}` bodies: any JSON-patch document, in either syntax,
//! parses to changes or to a 4xx, and applies to an image or fails with one.
#![no_main]

use glance_layers::patch::{apply_changes, parse_changes};
use glance_layers::{Image, ImageError};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn client_error(e: &ImageError) -> bool {
    matches!(
        e,
        ImageError::Invalid(_) | ImageError::Forbidden(_) | ImageError::Conflict(_)
    )
}

fn exercise(doc: &Value, draft4: bool) {
    let changes = match parse_changes(doc, draft4) {
        Ok(c) => c,
        Err(e) => return assert!(client_error(&e), "{e:?}"),
    };
    let mut image = Image::new(
        "00000000-0000-0000-0000-000000000000".into(),
        chrono::Utc::now(),
    );
    image.properties.insert("p".into(), "v".into());
    if let Err(e) = apply_changes(&mut image, &changes) {
        assert!(client_error(&e), "{e:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // A whole document.
        if let Ok(doc) = serde_json::from_slice::<Value>(rest) {
            exercise(&doc, mode & 2 != 0);
        }
    } else {
        // One change whose pointer is the input: the pointer decoding in depth.
        let path = String::from_utf8_lossy(rest);
        for op in ["add", "replace", "remove"] {
            exercise(&json!([{"op": op, "path": path, "value": "v"}]), false);
            exercise(&json!([{op: path, "value": "v"}]), true);
        }
    }
});
