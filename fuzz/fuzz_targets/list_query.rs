//! `GET /v2/images?...`: any query string parses to a list query or a 400.
#![no_main]

use glance_api::api::parse::{PageLimits, list_query, quote_plus};
use glance_layers::ImageError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let limits = PageLimits {
        default: 25,
        max: 1000,
    };
    match list_query(&pairs, limits) {
        Ok(q) => {
            assert!(q.limit <= limits.max);
            // The tie-breakers always close the sort.
            assert!(q.sort.len() >= 2);
        }
        Err(e) => assert!(matches!(e, ImageError::Invalid(_)), "{e:?}"),
    }
    // `first`/`next` links re-encode every pair.
    for (k, v) in &pairs {
        let _ = (quote_plus(k), quote_plus(v));
    }
});
