//! The media ranges of an `Accept` header with their q-values, which both of
//! webob's negotiations here start from: error bodies (`errors`) and oslo's
//! healthcheck (`crate::http::health`). Each decides from these by its own rule.

/// `(range, q)` per comma-separated item, the range lowercased; an item
/// without a readable `q` has `q = 1`, and empty items are skipped.
pub(crate) fn media_ranges(accept: &str) -> Vec<(String, f32)> {
    accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let range = parts.next()?.trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!range.is_empty()).then_some((range, q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_their_q_values() {
        assert_eq!(
            media_ranges("Text/HTML;q=0.5, application/json;level=1, ,*/*;q=x"),
            vec![
                ("text/html".to_string(), 0.5),
                ("application/json".to_string(), 1.0),
                ("*/*".to_string(), 1.0),
            ]
        );
    }
}
