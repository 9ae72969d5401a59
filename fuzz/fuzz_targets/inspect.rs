//! Disk image format inspection on any bytes: no panic; what the inspector holds
//! stays under its bound whatever it is fed; the verdict does not depend on how
//! the stream is cut into chunks; and a refusal it settles mid-stream is the one
//! the whole stream gets.
#![no_main]

use glance_layers::inspect::{DiskFormat, FormatPolicy, Inspector, MAX_CAPTURE, check_format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, data)) = data.split_first() else {
        return;
    };
    // The inputs the fuzzer finds are short; the head that settles refusals is
    // 1 MiB: pad some inputs past it, with zeros or with their own bytes.
    let mut stream = data.to_vec();
    if cut & 0x80 != 0 {
        let pad = glance_layers::inspect::HEAD_LEN + 1024;
        if cut & 0x40 != 0 && !data.is_empty() {
            while stream.len() < pad {
                stream.extend_from_slice(data);
            }
        } else {
            stream.resize(stream.len() + pad, 0);
        }
    }
    let chunk = 1 + usize::from(cut & 0x3F) * 997;
    let policies = [
        FormatPolicy::default(),
        FormatPolicy {
            require_image_format_match: false,
            gpt_safety_checks_nonfatal: vec!["mbr".into()],
            ..FormatPolicy::default()
        },
    ];
    let declared: Vec<&str> = DiskFormat::ALL
        .iter()
        .map(|f| f.name())
        .chain(["ami"])
        .collect();

    let mut inspector = Inspector::new();
    let mut settled = Vec::new();
    let mut judged = false;
    for piece in stream.chunks(chunk) {
        inspector.feed(piece);
        assert!(inspector.bytes_held() <= MAX_CAPTURE);
        if !judged && inspector.bytes_seen() >= glance_layers::inspect::HEAD_LEN as u64 {
            judged = true;
            for (i, policy) in policies.iter().enumerate() {
                for format in &declared {
                    if let Some(refusal) = inspector.settled_refusal(format, policy) {
                        settled.push((i, *format, refusal));
                    }
                }
            }
        }
    }
    let verdict = inspector.finish();
    assert_eq!(verdict, glance_layers::inspect::inspect_bytes(&stream));
    for (i, format, refusal) in settled {
        assert_eq!(check_format(&verdict, format, &policies[i]), Err(refusal));
    }
    for policy in &policies {
        for format in &declared {
            let _ = check_format(&verdict, format, policy);
        }
    }
});
