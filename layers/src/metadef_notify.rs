//! Glance's metadef notifications (`metadef_namespace.*`, `metadef_object.*`,
//! `metadef_property.*`, `metadef_resource_type.*`, `metadef_tag.*`) and their
//! payloads (`glance/notifier.py`), for the notifier layer to send.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::metadef::{Association, MetadefOp, MetadefResponse, Namespace, Object, Property, Tag};

/// What a metadef request will announce once it succeeds, taken from the
/// request: the kind, and the name in the path (the old name on a rename).
#[derive(Debug, Clone)]
pub(crate) struct MetadefEvent {
    kind: Kind,
    old_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NamespaceCreate,
    NamespaceUpdate,
    NamespaceDelete,
    NamespaceDeleteObjects,
    NamespaceDeleteProperties,
    NamespaceDeleteTags,
    AssociationCreate,
    AssociationDelete,
    Create,
    Update,
    Delete,
    None,
}

impl MetadefEvent {
    pub(crate) fn of(op: &MetadefOp) -> Self {
        use MetadefOp::*;
        let (kind, old_name) = match op {
            CreateNamespace(_) => (Kind::NamespaceCreate, None),
            UpdateNamespace { namespace, .. } => (Kind::NamespaceUpdate, Some(namespace.clone())),
            DeleteNamespace { .. } => (Kind::NamespaceDelete, None),
            DeleteObjects { .. } => (Kind::NamespaceDeleteObjects, None),
            DeleteProperties { .. } => (Kind::NamespaceDeleteProperties, None),
            DeleteTags { .. } => (Kind::NamespaceDeleteTags, None),
            CreateAssociation { .. } => (Kind::AssociationCreate, None),
            DeleteAssociation { .. } => (Kind::AssociationDelete, None),
            CreateProperty { .. } | CreateObject { .. } | CreateTag { .. } | CreateTags { .. } => {
                (Kind::Create, None)
            }
            UpdateProperty { name, .. } | UpdateObject { name, .. } | UpdateTag { name, .. } => {
                (Kind::Update, Some(name.clone()))
            }
            DeleteProperty { .. } | DeleteObject { .. } | DeleteTag { .. } => (Kind::Delete, None),
            _ => (Kind::None, None),
        };
        MetadefEvent { kind, old_name }
    }

    /// The notifications the outcome `resp` makes, in the order Glance sends them.
    pub(crate) fn notifications(&self, resp: &MetadefResponse) -> Vec<(String, Value)> {
        let verb = match self.kind {
            Kind::Create | Kind::AssociationCreate | Kind::NamespaceCreate => "create",
            Kind::Update | Kind::NamespaceUpdate => "update",
            _ => "delete",
        };
        let deleted = verb == "delete";
        let mut out = Vec::new();
        let mut push = |kind: String, mut payload: Value| {
            if deleted {
                payload["deleted"] = json!(true);
                payload["deleted_at"] = json!(isotime(Utc::now()));
            }
            if let Some(old) = &self.old_name {
                let key = if kind.starts_with("metadef_namespace.") {
                    "namespace_old"
                } else {
                    "name_old"
                };
                payload[key] = json!(old);
            }
            out.push((kind, payload));
        };
        match (self.kind, resp) {
            (Kind::None, _) => {}
            (Kind::NamespaceDeleteObjects, MetadefResponse::Namespace(ns)) => out.push((
                "metadef_namespace.delete_objects".into(),
                namespace_payload(ns),
            )),
            (Kind::NamespaceDeleteProperties, MetadefResponse::Namespace(ns)) => out.push((
                "metadef_namespace.delete_properties".into(),
                namespace_payload(ns),
            )),
            (Kind::NamespaceDeleteTags, MetadefResponse::Namespace(ns)) => out.push((
                "metadef_namespace.delete_tags".into(),
                namespace_payload(ns),
            )),
            (Kind::NamespaceCreate, MetadefResponse::Namespace(ns)) => {
                // Glance adds the contents one by one, each announced.
                push("metadef_namespace.create".into(), namespace_payload(ns));
                for a in &ns.resource_type_associations {
                    push(
                        "metadef_resource_type.create".into(),
                        association_payload(&ns.namespace, a),
                    );
                }
                for o in &ns.objects {
                    push("metadef_object.create".into(), object_payload(o));
                }
                for t in &ns.tags {
                    push("metadef_tag.create".into(), tag_payload(t));
                }
                for p in &ns.properties {
                    push("metadef_property.create".into(), property_payload(p));
                }
            }
            (_, MetadefResponse::Namespace(ns)) => {
                push(format!("metadef_namespace.{verb}"), namespace_payload(ns))
            }
            (
                _,
                MetadefResponse::Association {
                    namespace,
                    association,
                },
            ) => push(
                format!("metadef_resource_type.{verb}"),
                association_payload(namespace, association),
            ),
            (_, MetadefResponse::Property(p)) => {
                push(format!("metadef_property.{verb}"), property_payload(p))
            }
            (_, MetadefResponse::Object(o)) => {
                push(format!("metadef_object.{verb}"), object_payload(o))
            }
            (_, MetadefResponse::Tag(t)) => push(format!("metadef_tag.{verb}"), tag_payload(t)),
            (_, MetadefResponse::Tags(tags)) => {
                for t in tags {
                    push(format!("metadef_tag.{verb}"), tag_payload(t));
                }
            }
            _ => {}
        }
        out
    }
}

/// oslo's `timeutils.isotime`: seconds, `Z`.
fn isotime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Glance's `format_metadef_namespace_notification`.
pub fn namespace_payload(ns: &Namespace) -> Value {
    json!({
        "namespace": ns.namespace,
        "namespace_old": ns.namespace,
        "display_name": ns.display_name,
        "protected": ns.protected,
        "visibility": ns.visibility.as_str(),
        "owner": ns.owner,
        "description": ns.description,
        "created_at": isotime(ns.created_at),
        "updated_at": isotime(ns.updated_at),
        "deleted": false,
        "deleted_at": null,
    })
}

/// Glance's `format_metadef_resource_type_notification`.
fn association_payload(namespace: &str, a: &Association) -> Value {
    json!({
        "namespace": namespace,
        "name": a.name,
        "name_old": a.name,
        "prefix": a.prefix,
        "properties_target": a.properties_target,
        "created_at": isotime(a.created_at),
        "updated_at": isotime(a.updated_at),
        "deleted": false,
        "deleted_at": null,
    })
}

/// The schema keys a property payload carries, `null` when absent.
const SCHEMA_KEYS: [&str; 16] = [
    "type",
    "title",
    "description",
    "default",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "confidential",
    "items",
    "uniqueItems",
    "minItems",
    "maxItems",
    "additionalItems",
];

/// Glance's `format_metadef_property_notification`.
fn property_payload(p: &Property) -> Value {
    let mut v = json!({
        "namespace": p.namespace,
        "name": p.name,
        "name_old": p.name,
    });
    for key in SCHEMA_KEYS {
        v[key] = p.schema.get(key).cloned().unwrap_or(Value::Null);
    }
    v["deleted"] = json!(false);
    v["deleted_at"] = Value::Null;
    v
}

/// Glance's `format_metadef_object_notification`: the object's properties as a
/// list, each with every schema key (Python's `or None` makes falsy ones null).
fn object_payload(o: &Object) -> Value {
    let properties: Vec<Value> = o
        .properties
        .iter()
        .map(|(name, schema)| {
            let mut v = json!({ "name": name });
            for key in SCHEMA_KEYS {
                let value = schema.get(key).cloned().unwrap_or(Value::Null);
                v[key] = if is_falsy(&value) { Value::Null } else { value };
            }
            v
        })
        .collect();
    json!({
        "namespace": o.namespace,
        "name": o.name,
        "name_old": o.name,
        "properties": properties,
        "required": o.required,
        "description": o.description,
        "created_at": isotime(o.created_at),
        "updated_at": isotime(o.updated_at),
        "deleted": false,
        "deleted_at": null,
    })
}

fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// Glance's `format_metadef_tag_notification`.
fn tag_payload(t: &Tag) -> Value {
    json!({
        "namespace": t.namespace,
        "name": t.name,
        "name_old": t.name,
        "created_at": isotime(t.created_at),
        "updated_at": isotime(t.updated_at),
        "deleted": false,
        "deleted_at": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadef::{NamespaceFields, NamespaceVisibility};

    fn ns(name: &str) -> Namespace {
        let now = Utc::now();
        Namespace {
            namespace: name.into(),
            display_name: None,
            description: None,
            visibility: NamespaceVisibility::Private,
            protected: false,
            owner: Some("p1".into()),
            created_at: now,
            updated_at: now,
            resource_type_associations: Vec::new(),
            properties: Vec::new(),
            objects: Vec::new(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn a_rename_carries_the_old_name() {
        let op = MetadefOp::UpdateNamespace {
            namespace: "old".into(),
            fields: NamespaceFields::default(),
        };
        let sent =
            MetadefEvent::of(&op).notifications(&MetadefResponse::Namespace(Box::new(ns("new"))));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, "metadef_namespace.update");
        assert_eq!(sent[0].1["namespace"], "new");
        assert_eq!(sent[0].1["namespace_old"], "old");
        let now = Utc::now();
        let tag = Tag {
            namespace: "n".into(),
            name: "b".into(),
            created_at: now,
            updated_at: now,
        };
        let op = MetadefOp::UpdateTag {
            namespace: "n".into(),
            name: "a".into(),
            new_name: "b".into(),
        };
        let sent = MetadefEvent::of(&op).notifications(&MetadefResponse::Tag(tag));
        assert_eq!(sent[0].0, "metadef_tag.update");
        assert_eq!(
            (sent[0].1["name"].as_str(), sent[0].1["name_old"].as_str()),
            (Some("b"), Some("a"))
        );
    }

    #[test]
    fn deletes_are_marked_deleted_and_reads_say_nothing() {
        let op = MetadefOp::DeleteNamespace {
            namespace: "n".into(),
        };
        let sent =
            MetadefEvent::of(&op).notifications(&MetadefResponse::Namespace(Box::new(ns("n"))));
        assert_eq!(sent[0].0, "metadef_namespace.delete");
        assert_eq!(sent[0].1["deleted"], json!(true));
        assert!(sent[0].1["deleted_at"].is_string());
        let op = MetadefOp::GetNamespace {
            namespace: "n".into(),
            resource_type: None,
        };
        assert!(
            MetadefEvent::of(&op)
                .notifications(&MetadefResponse::Namespace(Box::new(ns("n"))))
                .is_empty()
        );
    }
}
