//! Property protections: per-property role rules for extra properties, read from
//! Glance's `property_protection_file` (`property_protection_rule_format = roles`).
//!
//! ```ini
//! [^x_billing_.*]
//! create = admin
//! read = admin,member
//! update = admin
//! delete = admin
//!
//! [.*]
//! create = @
//! read = @
//! update = @
//! delete = @
//! ```
//!
//! Sections are regular expressions tried in file order; the first that matches a
//! property name decides. `@` allows everyone, `!` no one; a property no section
//! matches may not be touched at all. Unreadable properties vanish from responses;
//! a forbidden create, update or delete is `Forbidden`, as in Glance.

use regex::Regex;

use crate::image::Image;
use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::patch::{self, KeyKind, PatchOp};
use crate::{Identity, ImageError, ImageRequest, ImageResponse, ImageService, Operation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
}

#[derive(Debug, Clone)]
enum Allowed {
    Everyone,
    NoOne,
    Roles(Vec<String>),
}

/// The parsed rules file.
#[derive(Debug, Clone)]
pub struct PropertyRules {
    rules: Vec<(Regex, [Allowed; 4])>,
}

/// A rules file that cannot be used; the server refuses to start with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("property protection file, line {line}: {reason}")]
pub struct RulesError {
    pub line: usize,
    pub reason: String,
}

impl PropertyRules {
    /// Parses the INI text of a roles-format rules file.
    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let mut rules: Vec<(Regex, [Option<Allowed>; 4], usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let err = |reason: String| RulesError {
                line: i + 1,
                reason,
            };
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let re = Regex::new(section)
                    .map_err(|e| err(format!("invalid regular expression {section:?}: {e}")))?;
                rules.push((re, [None, None, None, None], i + 1));
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("expected `action = roles`, got {line:?}")))?;
            let slot = match key.trim() {
                "create" => 0,
                "read" => 1,
                "update" => 2,
                "delete" => 3,
                other => {
                    return Err(err(format!(
                        "unknown action {other:?}: use create, read, update or delete"
                    )));
                }
            };
            let roles: Vec<String> = value
                .split(',')
                .map(|r| r.trim().to_lowercase())
                .filter(|r| !r.is_empty())
                .collect();
            let allowed = if roles.iter().any(|r| r == "!") {
                Allowed::NoOne
            } else if roles.iter().any(|r| r == "@") {
                Allowed::Everyone
            } else {
                Allowed::Roles(roles)
            };
            let current = rules
                .last_mut()
                .ok_or_else(|| err("an action before any [section]".into()))?;
            current.1[slot] = Some(allowed);
        }
        let rules = rules
            .into_iter()
            .map(|(re, actions, line)| {
                // Glance treats an action left out of a section as allowing no one.
                let actions = actions.map(|a| a.unwrap_or(Allowed::NoOne));
                if actions.iter().any(|a| matches!(a, Allowed::NoOne)) {
                    tracing::debug!(line, section = %re, "property protection section denies some actions to everyone");
                }
                (re, actions)
            })
            .collect();
        Ok(PropertyRules { rules })
    }

    /// Whether a caller with `roles` may do `action` on property `name`.
    pub fn allows(&self, name: &str, action: Action, roles: &[String]) -> bool {
        let Some((_, actions)) = self.rules.iter().find(|(re, _)| re.is_match(name)) else {
            return false;
        };
        match &actions[action as usize] {
            Allowed::Everyone => true,
            Allowed::NoOne => false,
            Allowed::Roles(allowed) => roles
                .iter()
                .any(|r| allowed.iter().any(|a| a.eq_ignore_ascii_case(r))),
        }
    }

    /// Drops the properties the caller may not read.
    fn redact(&self, image: &mut Image, roles: &[String]) {
        image
            .properties
            .retain(|k, _| self.allows(k, Action::Read, roles));
    }
}

fn reserved(key: &str) -> ImageError {
    ImageError::Forbidden(format!("Attribute '{key}' is reserved."))
}

/// Glance's property protections: per-property role rules on create, read,
/// update and delete.
pub struct PropertyProtection {
    rules: PropertyRules,
}

/// The property protection layer.
pub type PropertyProtectionLayer = MiddlewareLayer<PropertyProtection>;

impl MiddlewareLayer<PropertyProtection> {
    pub fn new(rules: PropertyRules) -> Self {
        MiddlewareLayer::from_middleware(PropertyProtection { rules })
    }
}

impl Middleware for PropertyProtection {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let rules = &self.rules;
        let roles = req
            .ctx
            .identity()
            .map(|i: &Identity| i.roles.clone())
            .unwrap_or_default();
        match &req.op {
            Operation::Create(new) => {
                if let Some(key) = new
                    .properties
                    .keys()
                    .find(|k| !rules.allows(k, Action::Create, &roles))
                {
                    return Err(reserved(key));
                }
            }
            Operation::Update { id, changes } => {
                // Read through the rest of the stack, so the policy below
                // judges whether the caller may see it; the record it loads
                // stays in the request for the update.
                let current = next
                    .clone()
                    .run(req.derive(Operation::Get { id: id.clone() }))
                    .await?
                    .into_image()?;
                // What the caller can see of the properties, as the changes apply.
                let mut visible: std::collections::BTreeSet<String> = current
                    .properties
                    .keys()
                    .filter(|k| rules.allows(k, Action::Read, &roles))
                    .cloned()
                    .collect();
                for c in changes
                    .iter()
                    .filter(|c| patch::classify(&c.key) == KeyKind::Extra)
                {
                    let exists = visible.contains(&c.key);
                    match (c.op, exists) {
                        (PatchOp::Remove, false) | (PatchOp::Replace, false) => {
                            return Err(ImageError::Conflict(format!(
                                "Property {} does not exist.",
                                c.key
                            )));
                        }
                        (PatchOp::Remove, true) => {
                            if !rules.allows(&c.key, Action::Delete, &roles) {
                                return Err(reserved(&c.key));
                            }
                            visible.remove(&c.key);
                        }
                        (_, true) => {
                            if !rules.allows(&c.key, Action::Update, &roles) {
                                return Err(reserved(&c.key));
                            }
                        }
                        (PatchOp::Add, false) => {
                            if !rules.allows(&c.key, Action::Create, &roles) {
                                return Err(reserved(&c.key));
                            }
                            visible.insert(c.key.clone());
                        }
                    }
                }
            }
            _ => {}
        }
        let mut resp = next.run(req).await?;
        match &mut resp {
            ImageResponse::Image(i) | ImageResponse::NoData(i) => rules.redact(i, &roles),
            ImageResponse::Data(d) => rules.redact(&mut d.image, &roles),
            ImageResponse::Images(page) => {
                page.images.iter_mut().for_each(|i| rules.redact(i, &roles))
            }
            _ => {}
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::parse_changes;
    use crate::{NewImage, RequestContext};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tower::{Layer, ServiceExt};

    const RULES: &str = "
# billing is for admins to write and members to read
[^x_billing_.*]
create = admin
read = admin,member
update = admin
delete = admin

[^secret_]
create = admin
read = admin
update = admin
delete = admin

[.*]
create = @
read = @
update = @
delete = @
";

    fn roles(r: &[&str]) -> Vec<String> {
        r.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_matching_section_decides() {
        let rules = PropertyRules::parse(RULES).unwrap();
        assert!(rules.allows("x_billing_code", Action::Read, &roles(&["member"])));
        assert!(!rules.allows("x_billing_code", Action::Update, &roles(&["member"])));
        assert!(rules.allows("x_billing_code", Action::Update, &roles(&["ADMIN"])));
        assert!(rules.allows("anything", Action::Delete, &roles(&[])));
        let strict = PropertyRules::parse("[^a$]\ncreate = @\nread = !\n").unwrap();
        assert!(!strict.allows("a", Action::Read, &roles(&["admin"])));
        assert!(
            !strict.allows("a", Action::Update, &roles(&["admin"])),
            "a missing action allows no one"
        );
        assert!(
            !strict.allows("b", Action::Create, &roles(&["admin"])),
            "no section matches"
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let e = PropertyRules::parse("[ok]\ncreate = @\n[(unclosed]\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(
            PropertyRules::parse("create = admin\n").unwrap_err().line,
            1
        );
        assert_eq!(
            PropertyRules::parse("[a]\nwrite = admin\n")
                .unwrap_err()
                .line,
            2
        );
    }

    /// A core with one image holding `x_billing_code` and `secret_key`.
    fn core() -> impl ImageService {
        let image = Arc::new(Mutex::new({
            let mut i = Image::new("img".into(), chrono::Utc::now());
            i.properties.insert("x_billing_code".into(), "42".into());
            i.properties.insert("secret_key".into(), "s".into());
            i
        }));
        tower::service_fn(move |req: ImageRequest| {
            let image = image.clone();
            async move {
                let mut img = image.lock().unwrap().clone();
                if let Operation::Update { changes, .. } = &req.op {
                    patch::apply_changes(&mut img, changes)?;
                }
                Ok::<_, ImageError>(ImageResponse::image(img))
            }
        })
    }

    fn as_roles(r: &[&str], op: Operation) -> ImageRequest {
        let ctx = RequestContext {
            identity: Some(Identity {
                roles: roles(r),
                ..Identity::default()
            }),
            ..RequestContext::default()
        };
        ImageRequest::new(ctx, op)
    }

    async fn run(r: &[&str], op: Operation) -> Result<Image, ImageError> {
        let svc = PropertyProtectionLayer::new(PropertyRules::parse(RULES).unwrap()).layer(core());
        svc.oneshot(as_roles(r, op)).await?.into_image()
    }

    fn update(doc: serde_json::Value) -> Operation {
        Operation::Update {
            id: "img".into(),
            changes: parse_changes(&doc, false).unwrap(),
        }
    }

    #[tokio::test]
    async fn reads_are_redacted() {
        let seen = run(&["member"], Operation::Get { id: "img".into() })
            .await
            .unwrap();
        assert!(seen.properties.contains_key("x_billing_code"));
        assert!(!seen.properties.contains_key("secret_key"));
        let admin = run(&["admin"], Operation::Get { id: "img".into() })
            .await
            .unwrap();
        assert_eq!(admin.properties.len(), 2);
    }

    #[tokio::test]
    async fn writes_need_their_action() {
        let mut new = NewImage::default();
        new.properties.insert("x_billing_code".into(), "1".into());
        assert!(matches!(
            run(&["member"], Operation::Create(new.clone())).await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(run(&["admin"], Operation::Create(new)).await.is_ok());
        let replace = json!([{"op": "replace", "path": "/x_billing_code", "value": "7"}]);
        assert!(matches!(
            run(&["member"], update(replace.clone())).await,
            Err(ImageError::Forbidden(_))
        ));
        assert_eq!(
            run(&["admin"], update(replace)).await.unwrap().properties["x_billing_code"],
            "7"
        );
        // A property the caller cannot read does not exist for it.
        let remove_secret = json!([{"op": "remove", "path": "/secret_key"}]);
        assert!(matches!(
            run(&["member"], update(remove_secret)).await,
            Err(ImageError::Conflict(_))
        ));
        let free = json!([{"op": "add", "path": "/color", "value": "blue"}]);
        assert!(run(&["member"], update(free)).await.is_ok());
    }
}
