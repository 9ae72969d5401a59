//! Operator overrides from an oslo.policy file: YAML (`"rule": "check"` per line, as
//! `oslopolicy-sample-generator` writes them) or JSON (one object).

use super::rules::{Rule, RuleSet};

/// A policy file that cannot be used; the service refuses to start with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy file, line {line}: {reason}")]
pub struct PolicyFileError {
    pub line: usize,
    pub reason: String,
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return Some(inner.replace("\\\"", "\"").replace("''", "'"));
        }
    }
    None
}

/// The `(name, rule text, line)` entries of a policy file.
pub fn parse_entries(text: &str) -> Result<Vec<(String, String, usize)>, PolicyFileError> {
    if text.trim_start().starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| PolicyFileError {
                line: e.line(),
                reason: e.to_string(),
            })?;
        return map
            .into_iter()
            .map(|(k, v)| {
                let line = text
                    .lines()
                    .position(|l| l.contains(&format!("\"{k}\"")))
                    .map(|i| i + 1)
                    .unwrap_or(1);
                match v {
                    serde_json::Value::String(s) => Ok((k, s, line)),
                    other => Err(PolicyFileError {
                        line,
                        reason: format!("the rule of {k:?} must be a string, not {other}"),
                    }),
                }
            })
            .collect();
    }
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line == "---" {
            continue;
        }
        let err = |reason: String| PolicyFileError {
            line: i + 1,
            reason,
        };
        // The key may be quoted and contain ':' itself.
        let (key, rest) = if let Some(q) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let end = line[1..]
                .find(q)
                .ok_or_else(|| err("unterminated quoted name".into()))?
                + 1;
            (line[1..end].to_string(), line[end + 1..].trim_start())
        } else {
            let colon = line
                .find(':')
                .ok_or_else(|| err(format!("expected `\"name\": \"rule\"`, got {line:?}")))?;
            (line[..colon].trim().to_string(), &line[colon..])
        };
        let value = rest
            .strip_prefix(':')
            .ok_or_else(|| err(format!("expected ':' after {key:?}")))?
            .trim();
        let value = value.split(" #").next().unwrap_or(value).trim();
        let rule = match unquote(value) {
            Some(v) => v,
            None if value.is_empty() => String::new(),
            None => value.to_string(),
        };
        entries.push((key, rule, i + 1));
    }
    Ok(entries)
}

/// Glance's defaults with the file's rules on top; every rule must parse.
pub fn load(text: &str) -> Result<RuleSet, PolicyFileError> {
    let entries = parse_entries(text)?;
    for (name, rule, line) in &entries {
        Rule::parse(rule).map_err(|e| PolicyFileError {
            line: *line,
            reason: format!("{name}: {e}"),
        })?;
    }
    RuleSet::with_overrides(entries.iter().map(|(n, r, _)| (n.as_str(), r.as_str()))).map_err(|e| {
        PolicyFileError {
            line: 0,
            reason: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::Creds;
    use std::collections::HashMap;

    fn member() -> Creds {
        Creds {
            roles: vec!["member".into()],
            attrs: HashMap::from([("project_id".to_string(), "p".to_string())]),
        }
    }

    #[test]
    fn yaml_and_json_overrides() {
        let target = HashMap::from([
            ("project_id".to_string(), "p".to_string()),
            ("owner".to_string(), "p".to_string()),
        ]);
        let yaml = "# only admins create\n\"add_image\": \"role:admin\"\nget_images: ''\n";
        let rules = load(yaml).unwrap();
        assert!(!rules.check("add_image", &member(), &target));
        assert!(rules.check("get_images", &member(), &target));
        assert!(
            rules.check("modify_image", &member(), &target),
            "defaults stay"
        );
        let json = "{\n  \"add_image\": \"role:admin\"\n}";
        assert!(!load(json).unwrap().check("add_image", &member(), &target));
    }

    #[test]
    fn errors_name_the_line() {
        let e = load("\"a\": \"role:x\"\n\"add_image\": \"role:admin or\"\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("add_image"));
        assert_eq!(load("just words\n").unwrap_err().line, 1);
        assert!(load("{\"a\": 5}").is_err());
    }
}
