//! JSON as Glance writes it: Python's `json.dumps` separators (`", "` and `": "`),
//! keys in the order given, UTF-8 left as is.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io;

struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// Serializes `value` the way Glance's responses are written.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a `Value` or our own structs into memory cannot fail.
    let _ = value.serialize(&mut ser);
    out
}

/// [`to_vec`] with Python's default `ensure_ascii`: every character beyond ASCII
/// as `\uXXXX` (UTF-16, lower-case hex), as Glance's plain JSON serializer writes.
pub fn to_vec_ascii<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let text = to_vec(value);
    // Outside strings the output is ASCII already; inside them an escape is
    // the same character.
    let Ok(text) = String::from_utf8(text) else {
        return Vec::new();
    };
    use std::fmt::Write;
    let mut out = String::with_capacity(text.len());
    let mut units = [0u16; 2];
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn separators_match_python() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": null}, "d": "é"});
        assert_eq!(
            String::from_utf8(super::to_vec(&v)).unwrap(),
            r#"{"a": [1, 2], "b": {"c": null}, "d": "é"}"#
        );
    }

    #[test]
    fn ascii_escapes_match_python() {
        let v = serde_json::json!({"é": "x\u{1F600}\n"});
        assert_eq!(
            String::from_utf8(super::to_vec_ascii(&v)).unwrap(),
            r#"{"\u00e9": "x\ud83d\ude00\n"}"#
        );
    }
}
