//! oslo.policy's rule language: parsing and evaluation, and Glance's secure-RBAC
//! defaults written in it.
//!
//! Grammar (as oslo.policy reads it): `or` binds loosest, then `and`, then `not`;
//! parentheses group; `@` always passes, `!` never does; a check is `kind:match`:
//! `role:admin`, `rule:name`, or a generic check `attr:value` comparing a
//! credential attribute with a literal or a `%(target_key)s` substitution. A quoted
//! literal on the left (`'public':%(visibility)s`) compares with the target.

use std::collections::{BTreeMap, HashMap};

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Always,
    Never,
    Role(String),
    Named(String),
    /// `attr:literal` or `attr:%(key)s`
    Generic {
        attr: String,
        value: Operand,
    },
    /// `'literal':%(key)s`
    Literal {
        literal: String,
        value: Operand,
    },
    Not(Box<Rule>),
    And(Vec<Rule>),
    Or(Vec<Rule>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Literal(String),
    Target(String),
}

/// A rule text that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid rule {rule:?}: {reason}")]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

impl Rule {
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let err = |reason: &str| RuleError {
            rule: text.to_string(),
            reason: reason.to_string(),
        };
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return Ok(Rule::Always);
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let rule = parser.or_expr().map_err(|r| err(&r))?;
        if parser.pos != parser.tokens.len() {
            return Err(err(&format!("unexpected {:?}", parser.tokens[parser.pos])));
        }
        Ok(rule)
    }
}

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let mut w = word;
        while let Some(rest) = w.strip_prefix('(') {
            tokens.push("(".to_string());
            w = rest;
        }
        let mut closing = 0;
        while let Some(rest) = w.strip_suffix(')') {
            closing += 1;
            w = rest;
        }
        if !w.is_empty() {
            tokens.push(w.to_string());
        }
        tokens.extend(std::iter::repeat_n(")".to_string(), closing));
    }
    tokens
}

/// Deepest nesting of parentheses and `not` a rule may have. Evaluation gives up
/// beyond this depth anyway (see `RuleSet::eval`), and the parser recurses once
/// per level: a limit keeps a hostile file from overflowing the stack.
const MAX_DEPTH: u32 = 32;

struct Parser {
    tokens: Vec<String>,
    pos: usize,
    /// Current nesting of parentheses and `not`.
    depth: u32,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn or_expr(&mut self) -> Result<Rule, String> {
        let mut terms = vec![self.and_expr()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.pos += 1;
            terms.push(self.and_expr()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Rule::Or(terms)
        })
    }

    fn and_expr(&mut self) -> Result<Rule, String> {
        let mut terms = vec![self.not_expr()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.pos += 1;
            terms.push(self.not_expr()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Rule::And(terms)
        })
    }

    fn not_expr(&mut self) -> Result<Rule, String> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.pos += 1;
            let inner = self.nested(Self::not_expr)?;
            return Ok(Rule::Not(Box::new(inner)));
        }
        self.atom()
    }

    /// Parses one level deeper, refusing to go beyond [`MAX_DEPTH`].
    fn nested(&mut self, f: fn(&mut Self) -> Result<Rule, String>) -> Result<Rule, String> {
        if self.depth >= MAX_DEPTH {
            return Err(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.depth += 1;
        let rule = f(self);
        self.depth -= 1;
        rule
    }

    fn atom(&mut self) -> Result<Rule, String> {
        let token = self.peek().ok_or("unexpected end of rule")?.to_string();
        self.pos += 1;
        match token.as_str() {
            "(" => {
                let inner = self.nested(Self::or_expr)?;
                if self.peek() != Some(")") {
                    return Err("missing ')'".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            ")" => Err("unexpected ')'".into()),
            "@" => Ok(Rule::Always),
            "!" => Ok(Rule::Never),
            t if ["and", "or"].iter().any(|k| t.eq_ignore_ascii_case(k)) => {
                Err(format!("unexpected '{t}'"))
            }
            check => parse_check(check),
        }
    }
}

fn parse_check(check: &str) -> Result<Rule, String> {
    let (kind, matched) = check
        .split_once(':')
        .ok_or_else(|| format!("'{check}' is not of the form kind:match"))?;
    let operand = match matched
        .strip_prefix("%(")
        .and_then(|m| m.strip_suffix(")s"))
    {
        Some(key) => Operand::Target(key.to_string()),
        None => Operand::Literal(matched.to_string()),
    };
    let quoted = ['\'', '"']
        .iter()
        .find_map(|q| kind.strip_prefix(*q).and_then(|k| k.strip_suffix(*q)));
    Ok(match (kind, quoted) {
        (_, Some(literal)) => Rule::Literal {
            literal: literal.to_string(),
            value: operand,
        },
        ("role", None) => Rule::Role(matched.to_lowercase()),
        ("rule", None) => Rule::Named(matched.to_string()),
        (attr, None) => Rule::Generic {
            attr: attr.to_string(),
            value: operand,
        },
    })
}

/// The caller, as the rules see it.
#[derive(Debug, Clone, Default)]
pub struct Creds {
    pub roles: Vec<String>,
    /// `user_id`, `project_id`, `is_admin`, `system_scope`, ...
    pub attrs: HashMap<String, String>,
}

/// The object acted on: `project_id` (the owner), `member_id`, `visibility`, ...
pub type Target = HashMap<String, String>;

/// A named set of rules.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: BTreeMap<String, Rule>,
}

impl RuleSet {
    /// Glance's defaults, overridden by `overrides` (name → rule text).
    pub fn with_overrides<'a>(
        overrides: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, RuleError> {
        let mut rules = BTreeMap::new();
        for (name, text) in DEFAULT_RULES.iter().copied().chain(overrides) {
            rules.insert(name.to_string(), Rule::parse(text)?);
        }
        Ok(RuleSet { rules })
    }

    pub fn defaults() -> Self {
        Self::with_overrides([]).expect("the default rules parse")
    }

    /// Whether `name` allows `creds` on `target`; an unknown name uses `default`.
    pub fn check(&self, name: &str, creds: &Creds, target: &Target) -> bool {
        let rule = self
            .rules
            .get(name)
            .or_else(|| self.rules.get("default"))
            .unwrap_or(&Rule::Never);
        self.eval(rule, creds, target, 0)
    }

    fn eval(&self, rule: &Rule, creds: &Creds, target: &Target, depth: u32) -> bool {
        // A rule that refers to itself would loop forever; treat it as a refusal.
        if depth > 32 {
            return false;
        }
        let resolve = |op: &Operand| -> Option<String> {
            match op {
                Operand::Literal(s) => Some(s.clone()),
                Operand::Target(key) => target.get(key).cloned(),
            }
        };
        match rule {
            Rule::Always => true,
            Rule::Never => false,
            Rule::Role(role) => creds.roles.iter().any(|r| r.eq_ignore_ascii_case(role)),
            Rule::Named(name) => self
                .rules
                .get(name)
                .is_some_and(|r| self.eval(r, creds, target, depth + 1)),
            Rule::Generic { attr, value } => match (creds.attrs.get(attr), resolve(value)) {
                (Some(have), Some(want)) => {
                    have == &want
                        || (matches!(value, Operand::Literal(_))
                            && have.eq_ignore_ascii_case(&want)
                            && ["true", "false"].contains(&want.to_lowercase().as_str()))
                }
                _ => false,
            },
            Rule::Literal { literal, value } => resolve(value).is_some_and(|v| &v == literal),
            Rule::Not(r) => !self.eval(r, creds, target, depth + 1),
            Rule::And(rs) => rs.iter().all(|r| self.eval(r, creds, target, depth + 1)),
            Rule::Or(rs) => rs.iter().any(|r| self.eval(r, creds, target, depth + 1)),
        }
    }
}

const ADMIN: &str = "rule:context_is_admin";
const READ_GET_IMAGE: &str = "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))";
const MEMBER_DOWNLOAD: &str = "rule:context_is_admin or (role:member and (project_id:%(project_id)s or project_id:%(member_id)s or 'community':%(visibility)s or 'public':%(visibility)s or 'shared':%(visibility)s))";
const ADMIN_OR_PROJECT_MEMBER: &str =
    "rule:context_is_admin or (role:member and project_id:%(project_id)s)";
const ADMIN_OR_PROJECT_READER: &str =
    "rule:context_is_admin or (role:reader and project_id:%(project_id)s)";
/// Glance's `ADMIN_OR_PROJECT_READER_GET_NAMESPACE`: metadef reads.
const METADEF_READ: &str = "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or 'public':%(visibility)s))";
const METADEF_ADMIN: &str = "rule:metadef_admin";
const ADMIN_OR_READER_OR_SHARED_MEMBER: &str = "rule:context_is_admin or (role:reader and (project_id:%(project_id)s or project_id:%(member_id)s))";

/// Glance's secure-RBAC defaults (`glance/policies/*.py`, new defaults enforced).
pub const DEFAULT_RULES: &[(&str, &str)] = &[
    ("context_is_admin", "role:admin"),
    ("default", ""),
    ("service_api", "role:service"),
    (
        "add_image",
        "rule:context_is_admin or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    ("delete_image", ADMIN_OR_PROJECT_MEMBER),
    ("get_image", READ_GET_IMAGE),
    ("get_images", ADMIN_OR_PROJECT_READER),
    ("modify_image", ADMIN_OR_PROJECT_MEMBER),
    ("publicize_image", "role:admin"),
    ("communitize_image", ADMIN_OR_PROJECT_MEMBER),
    ("download_image", MEMBER_DOWNLOAD),
    ("download_from_store", MEMBER_DOWNLOAD),
    ("upload_image", ADMIN_OR_PROJECT_MEMBER),
    ("delete_image_location", ADMIN),
    ("get_image_location", ADMIN_OR_PROJECT_READER),
    ("set_image_location", ADMIN_OR_PROJECT_MEMBER),
    (
        "add_image_location",
        "rule:service_api or (role:member and project_id:%(project_id)s and project_id:%(owner)s)",
    ),
    ("fetch_image_location", "rule:service_api"),
    ("add_member", ADMIN_OR_PROJECT_MEMBER),
    ("delete_member", ADMIN_OR_PROJECT_MEMBER),
    ("get_member", ADMIN_OR_READER_OR_SHARED_MEMBER),
    ("get_members", ADMIN_OR_READER_OR_SHARED_MEMBER),
    (
        "modify_member",
        "rule:context_is_admin or (role:member and project_id:%(member_id)s)",
    ),
    ("deactivate", ADMIN_OR_PROJECT_MEMBER),
    ("reactivate", ADMIN_OR_PROJECT_MEMBER),
    ("copy_image", "role:admin"),
    ("stores_info_detail", "role:admin or role:service"),
    ("tasks_api_access", "role:admin"),
    // Glance's task rules default to `rule:default`; `tasks_api_access` guards
    // the legacy API before them.
    ("get_task", "rule:default"),
    ("get_tasks", "rule:default"),
    ("add_task", "rule:default"),
    ("modify_task", "rule:default"),
    // The image cache API: admins only (`glance/policies/cache.py`, `image.py`).
    ("manage_image_cache", "role:admin"),
    ("cache_image", "role:admin"),
    ("cache_list", "role:admin"),
    ("cache_delete", "role:admin"),
    ("cache_clean", "role:admin"),
    ("cache_prune", "role:admin"),
    ("list_cached_nodes", "role:admin"),
    // Metadata definitions (`glance/policies/metadef.py`): reads for readers of
    // their own or public namespaces, every write for admins only.
    ("metadef_default", ""),
    ("metadef_admin", ADMIN),
    ("get_metadef_namespace", METADEF_READ),
    ("get_metadef_namespaces", ADMIN_OR_PROJECT_READER),
    ("modify_metadef_namespace", METADEF_ADMIN),
    ("add_metadef_namespace", METADEF_ADMIN),
    ("delete_metadef_namespace", METADEF_ADMIN),
    ("get_metadef_object", METADEF_READ),
    ("get_metadef_objects", METADEF_READ),
    ("modify_metadef_object", METADEF_ADMIN),
    ("add_metadef_object", METADEF_ADMIN),
    ("delete_metadef_object", METADEF_ADMIN),
    ("list_metadef_resource_types", METADEF_READ),
    ("get_metadef_resource_type", METADEF_READ),
    ("add_metadef_resource_type_association", METADEF_ADMIN),
    ("remove_metadef_resource_type_association", METADEF_ADMIN),
    ("get_metadef_property", METADEF_READ),
    ("get_metadef_properties", METADEF_READ),
    ("modify_metadef_property", METADEF_ADMIN),
    ("add_metadef_property", METADEF_ADMIN),
    ("remove_metadef_property", METADEF_ADMIN),
    ("get_metadef_tag", METADEF_READ),
    ("get_metadef_tags", METADEF_READ),
    ("modify_metadef_tag", METADEF_ADMIN),
    ("add_metadef_tag", METADEF_ADMIN),
    ("add_metadef_tags", METADEF_ADMIN),
    ("delete_metadef_tag", METADEF_ADMIN),
    ("delete_metadef_tags", METADEF_ADMIN),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(roles: &[&str], project: &str) -> Creds {
        Creds {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            attrs: HashMap::from([("project_id".to_string(), project.to_string())]),
        }
    }

    fn target(pairs: &[(&str, &str)]) -> Target {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_precedence_and_groups() {
        let r = Rule::parse("role:a or role:b and not role:c").unwrap();
        assert_eq!(
            r,
            Rule::Or(vec![
                Rule::Role("a".into()),
                Rule::And(vec![
                    Rule::Role("b".into()),
                    Rule::Not(Box::new(Rule::Role("c".into())))
                ]),
            ])
        );
        assert_eq!(Rule::parse("((role:a))").unwrap(), Rule::Role("a".into()));
        assert_eq!(Rule::parse("").unwrap(), Rule::Always);
        assert_eq!(Rule::parse("@").unwrap(), Rule::Always);
        assert_eq!(Rule::parse("!").unwrap(), Rule::Never);
        assert!(Rule::parse("role:a or").is_err());
        assert!(Rule::parse("(role:a").is_err());
        assert!(Rule::parse("nonsense").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = |n: usize, open: &str, close: &str| {
            format!("{}role:a{}", open.repeat(n), close.repeat(n))
        };
        assert!(Rule::parse(&deep(32, "(", ")")).is_ok());
        assert!(Rule::parse(&deep(32, "not ", "")).is_ok());
        for rule in [
            deep(33, "(", ")"),
            deep(100_000, "(", ")"),
            deep(100_000, "not ", ""),
        ] {
            let err = Rule::parse(&rule).unwrap_err();
            assert!(err.reason.contains("nested more than 32"), "{}", err.reason);
        }
    }

    #[test]
    fn defaults_follow_secure_rbac() {
        let rules = RuleSet::defaults();
        let own = target(&[
            ("project_id", "p1"),
            ("owner", "p1"),
            ("visibility", "private"),
        ]);
        assert!(rules.check("modify_image", &creds(&["member", "reader"], "p1"), &own));
        assert!(!rules.check("modify_image", &creds(&["reader"], "p1"), &own));
        assert!(!rules.check("modify_image", &creds(&["member"], "p2"), &own));
        assert!(rules.check("modify_image", &creds(&["admin"], "p9"), &own));
        assert!(rules.check("get_image", &creds(&["reader"], "p1"), &own));
        assert!(!rules.check("get_image", &creds(&["reader"], "p2"), &own));
        let public = target(&[("project_id", "p1"), ("visibility", "public")]);
        assert!(rules.check("get_image", &creds(&["reader"], "p2"), &public));
        assert!(!rules.check("download_image", &creds(&["reader"], "p2"), &public));
        assert!(rules.check("download_image", &creds(&["member"], "p2"), &public));
        assert!(!rules.check("publicize_image", &creds(&["member"], "p1"), &own));
        let shared = target(&[("project_id", "p1"), ("member_id", "p2")]);
        assert!(rules.check("modify_member", &creds(&["member"], "p2"), &shared));
        assert!(!rules.check("modify_member", &creds(&["member"], "p1"), &shared));
    }

    #[test]
    fn metadef_reads_are_for_readers_and_writes_for_admins() {
        let rules = RuleSet::defaults();
        let names: Vec<_> = DEFAULT_RULES
            .iter()
            .filter(|(n, _)| n.contains("metadef_") && !n.starts_with("metadef_"))
            .collect();
        assert_eq!(names.len(), 26, "Glance's 26 metadef rules");
        let private = target(&[("project_id", "p1"), ("visibility", "private")]);
        let public = target(&[("project_id", "p1"), ("visibility", "public")]);
        let reader = |p| creds(&["reader"], p);
        assert!(rules.check("get_metadef_namespace", &reader("p1"), &private));
        assert!(!rules.check("get_metadef_namespace", &reader("p2"), &private));
        assert!(rules.check("get_metadef_tags", &reader("p2"), &public));
        let member = creds(&["member", "reader"], "p1");
        assert!(!rules.check("add_metadef_tag", &member, &private));
        assert!(rules.check("add_metadef_tag", &creds(&["admin"], "p9"), &private));
        // An operator may hand writes to someone else, as with any rule.
        let delegated = RuleSet::with_overrides([("metadef_admin", "role:member")]).unwrap();
        assert!(delegated.check("modify_metadef_namespace", &member, &private));
    }

    #[test]
    fn overrides_and_generic_checks() {
        let rules = RuleSet::with_overrides([
            ("add_image", "role:admin"),
            ("x", "is_admin:True and not user_id:bob"),
        ])
        .unwrap();
        let mut c = creds(&["member"], "p1");
        let t = target(&[("project_id", "p1"), ("owner", "p1")]);
        assert!(!rules.check("add_image", &c, &t));
        c.attrs.insert("is_admin".into(), "True".into());
        c.attrs.insert("user_id".into(), "alice".into());
        assert!(rules.check("x", &c, &t));
        c.attrs.insert("user_id".into(), "bob".into());
        assert!(!rules.check("x", &c, &t));
        assert!(
            !RuleSet::with_overrides([("y", "rule:y")])
                .unwrap()
                .check("y", &c, &t)
        );
    }
}
