//! oslo.config's INI dialect, the format of Glance's `glance-api.conf`.
//!
//! Written here rather than taken from a crate because the general INI crates
//! read a different dialect: oslo continues a value on every following line that
//! starts with whitespace (joined with `\n`) until a blank line, keeps every
//! value of a repeated key (multi-valued options), strips one pair of matching
//! quotes, and has no escapes or inline comments (`a = b # c` is the value
//! `b # c`). This follows `oslo_config/iniparser.py` line by line.
//!
//! Values are then `$name`-substituted as oslo does: `$name` or `${name}` is
//! the option `name` of the same section, else of `[DEFAULT]`; `${section.name}`
//! names the section; `$$` is a literal `$`. A reference to an option the file
//! does not set (oslo would fall back on that option's built-in default) is left
//! as written.

use std::collections::BTreeMap;
use std::fmt;

/// A file's assignments, in file order: `(section, key, value)`, one entry per
/// assignment, so a repeated key appears repeatedly.
#[derive(Debug, Default, PartialEq)]
pub struct IniFile {
    pub assignments: Vec<(String, String, String)>,
}

/// A line oslo.config would refuse, with its 1-based number.
#[derive(Debug, PartialEq, Eq)]
pub struct IniError {
    pub line: usize,
    pub message: &'static str,
}

impl fmt::Display for IniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for IniError {}

impl IniFile {
    pub fn parse(text: &str) -> Result<IniFile, IniError> {
        let mut file = IniFile::default();
        let mut section: Option<String> = None;
        // The assignment being read: its key, value lines and first line number.
        let mut pending: Option<(String, Vec<String>, usize)> = None;
        let flush = |pending: &mut Option<(String, Vec<String>, usize)>,
                     section: &Option<String>,
                     file: &mut IniFile|
         -> Result<(), IniError> {
            if let Some((key, lines, at)) = pending.take() {
                let Some(section) = section else {
                    return Err(IniError {
                        line: at,
                        message: "an assignment before any [section]",
                    });
                };
                file.assignments
                    .push((section.clone(), key, lines.join("\n")));
            }
            Ok(())
        };
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim_end();
            if line.is_empty() {
                // A blank line ends a multi-line value.
                flush(&mut pending, &section, &mut file)?;
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match &mut pending {
                    Some((_, lines, _)) => lines.push(line.trim_start().to_string()),
                    None => {
                        return Err(IniError {
                            line: line_no,
                            message: "a continuation line without a value to continue",
                        });
                    }
                }
                continue;
            }
            flush(&mut pending, &section, &mut file)?;
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest.strip_suffix(']').ok_or(IniError {
                    line: line_no,
                    message: "a section header without its closing ]",
                })?;
                if name.is_empty() {
                    return Err(IniError {
                        line: line_no,
                        message: "a section header without a name",
                    });
                }
                section = Some(name.to_string());
            } else if line.starts_with(['#', ';']) {
                // A comment.
            } else {
                let (key, value) = split_assignment(line).ok_or(IniError {
                    line: line_no,
                    message: "neither a section, a comment nor key = value",
                })?;
                if key.is_empty() {
                    return Err(IniError {
                        line: line_no,
                        message: "an assignment without a key",
                    });
                }
                pending = Some((key.to_string(), vec![value], line_no));
            }
        }
        flush(&mut pending, &section, &mut file)?;
        Ok(file)
    }

    /// Each section's keys with their last value (a repeated single-valued
    /// option: the last one wins, as in oslo), `$`-references substituted.
    /// Sections keep file order of first appearance; a section with no
    /// assignment is absent.
    pub fn last_values(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let mut sections: Vec<(String, BTreeMap<String, String>)> = Vec::new();
        for (section, key, value) in &self.assignments {
            let index = match sections.iter().position(|(name, _)| name == section) {
                Some(i) => i,
                None => {
                    sections.push((section.clone(), BTreeMap::new()));
                    sections.len() - 1
                }
            };
            sections[index].1.insert(key.clone(), value.clone());
        }
        let raw = sections.clone();
        for (section, values) in &mut sections {
            for value in values.values_mut() {
                *value = substitute(value, section, &raw);
            }
        }
        sections
    }
}

/// `key = value` or `key: value`, split at whichever of `=` and `:` comes first;
/// the value trimmed and stripped of one pair of matching quotes.
fn split_assignment(line: &str) -> Option<(&str, String)> {
    let at = line.find(['=', ':'])?;
    let (key, value) = (line[..at].trim(), line[at + 1..].trim());
    let unquoted = match value.as_bytes() {
        [q @ (b'"' | b'\''), .., last] if q == last && value.len() >= 2 => {
            &value[1..value.len() - 1]
        }
        _ => value,
    };
    Some((key, unquoted.to_string()))
}

/// oslo's `string.Template` substitution over the file's own values (one level,
/// as oslo re-substitutes only when it reads the referenced option).
fn substitute(value: &str, section: &str, raw: &[(String, BTreeMap<String, String>)]) -> String {
    let lookup = |name: &str| -> Option<&String> {
        let get = |s: &str, k: &str| {
            raw.iter()
                .find(|(n, _)| n == s)
                .and_then(|(_, values)| values.get(k))
        };
        match name.split_once('.') {
            Some((s, k)) => get(s, k),
            None => get(section, name).or_else(|| get("DEFAULT", name)),
        }
    };
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match lookup(name).filter(|_| !name.is_empty()) {
            Some(found) => {
                out.push_str(found);
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
        IniFile::parse(text).unwrap().last_values()
    }

    #[test]
    fn oslo_assignments_comments_and_quotes() {
        let v = values(
            "# a comment\n[DEFAULT]\nbind_host = 0.0.0.0\n; another\nbind_port: 9292\n\
             debug=True\nname = \"quoted # kept\"\nempty =\nurl = a=b:c # not a comment\n",
        );
        assert_eq!(v.len(), 1);
        let d = &v[0].1;
        assert_eq!(v[0].0, "DEFAULT");
        assert_eq!(d["bind_host"], "0.0.0.0");
        assert_eq!(d["bind_port"], "9292");
        assert_eq!(d["debug"], "True");
        assert_eq!(d["name"], "quoted # kept");
        assert_eq!(d["empty"], "");
        // `=` comes before `:`, so the key is `url`.
        assert_eq!(d["url"], "a=b:c # not a comment");
    }

    #[test]
    fn continuation_lines_join_with_newlines_until_a_blank_line() {
        let v = values("[a]\nk = one\n  two\n\tthree\n\n[b]\nx = 1\n");
        assert_eq!(v[0].1["k"], "one\ntwo\nthree");
        assert_eq!(v[1].1["x"], "1");
        // A comment line ends the value too (oslo flushes before it).
        let v = values("[a]\nk = one\n# c\nj = 2\n");
        assert_eq!(v[0].1["k"], "one");
    }

    #[test]
    fn repeated_keys_and_sections() {
        let file = IniFile::parse("[a]\nk = 1\n[b]\nx = y\n[a]\nk = 2\n[empty]\n").unwrap();
        assert_eq!(
            file.assignments
                .iter()
                .filter(|(s, k, _)| s == "a" && k == "k")
                .count(),
            2
        );
        let v = file.last_values();
        assert_eq!(v.len(), 2, "a section without assignments is absent");
        assert_eq!(v[0].1["k"], "2");
    }

    #[test]
    fn dollar_references() {
        let v = values(
            "[DEFAULT]\nstate_path = /var/lib/glance\n[a]\nlocal = x\n\
             p = $state_path/images\nq = ${local}y\nr = ${DEFAULT.state_path}\n\
             s = pa$$word\nt = $unknown/z\nu = cost $\n",
        );
        let a = &v[1].1;
        assert_eq!(a["p"], "/var/lib/glance/images");
        assert_eq!(a["q"], "xy");
        assert_eq!(a["r"], "/var/lib/glance");
        assert_eq!(a["s"], "pa$word");
        assert_eq!(a["t"], "$unknown/z");
        assert_eq!(a["u"], "cost $");
    }

    #[test]
    fn malformed_lines_name_their_number() {
        for (text, line) in [
            ("k = v\n", 1),
            ("[a]\n  cont\n", 2),
            ("[a\n", 1),
            ("[]\n", 1),
            ("[a]\nno separator\n", 2),
            ("[a]\n= v\n", 2),
        ] {
            assert_eq!(IniFile::parse(text).unwrap_err().line, line, "{text:?}");
        }
    }
}
