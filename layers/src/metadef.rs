//! Metadata definitions (metadefs): the record types and the one operation enum
//! of Glance's `/v2/metadefs` API, so that every layer of the stack (auth,
//! notifier, policy) sees these requests as it sees image requests.
//!
//! A namespace groups property definitions, objects (named sets of
//! properties) and tags, and is associated with the resource types
//! (`OS::Glance::Image`, `OS::Nova::Flavor`, ...) whose metadata it describes.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

/// Who may see a namespace: everyone, or its owner's project (and admins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceVisibility {
    Public,
    Private,
}

impl NamespaceVisibility {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespaceVisibility::Public => "public",
            NamespaceVisibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(NamespaceVisibility::Public),
            "private" => Some(NamespaceVisibility::Private),
            _ => None,
        }
    }
}

/// A namespace, with its contents when they were asked for (show, create).
#[derive(Debug, Clone, PartialEq)]
pub struct Namespace {
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub visibility: NamespaceVisibility,
    pub protected: bool,
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resource_type_associations: Vec<Association>,
    pub properties: Vec<Property>,
    pub objects: Vec<Object>,
    pub tags: Vec<Tag>,
}

impl Namespace {
    /// Glance's `_is_namespace_visible`: admins, the owner's project, and
    /// everyone for public namespaces or namespaces nobody owns.
    pub fn is_visible_to(&self, project: Option<&str>, is_admin: bool) -> bool {
        is_admin
            || self.visibility == NamespaceVisibility::Public
            || self.owner.is_none()
            || self.owner.as_deref() == project
    }
}

/// A namespace's link to a resource type: what prefix its properties take on
/// that type, and (for Cinder) where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Association {
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A resource type, as `GET /v2/metadefs/resource_types` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A property definition: its name and its JSON schema (`title`, `type`,
/// `enum`, ...), kept as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub namespace: String,
    pub name: String,
    pub schema: Map<String, Value>,
}

/// A named set of property definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub namespace: String,
    pub name: String,
    pub description: Option<String>,
    pub required: Vec<String>,
    /// name → property schema
    pub properties: Map<String, Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub namespace: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An association to make: the resource type is created if it does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssociation {
    pub name: String,
    pub prefix: Option<String>,
    pub properties_target: Option<String>,
}

/// A property definition to write: name and schema.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProperty {
    pub name: String,
    pub schema: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewObject {
    pub name: String,
    pub description: Option<String>,
    pub required: Vec<String>,
    pub properties: Map<String, Value>,
}

/// The namespace's own fields, for create and (whole-record) update.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NamespaceFields {
    pub namespace: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    /// `None`: private, Glance's default on create and on update.
    pub visibility: Option<NamespaceVisibility>,
    pub protected: Option<bool>,
    /// `None`: the caller's project.
    pub owner: Option<String>,
}

/// `POST /v2/metadefs/namespaces`: the namespace and what it holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewNamespace {
    pub fields: NamespaceFields,
    pub resource_type_associations: Vec<NewAssociation>,
    pub properties: Vec<NewProperty>,
    pub objects: Vec<NewObject>,
    pub tags: Vec<String>,
}

/// Glance's sort keys for namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceSortKey {
    Namespace,
    CreatedAt,
    UpdatedAt,
}

/// `GET /v2/metadefs/namespaces` after parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceQuery {
    pub limit: u64,
    /// A namespace name: the page starts after it.
    pub marker: Option<String>,
    pub sort_key: NamespaceSortKey,
    pub descending: bool,
    pub visibility: Option<NamespaceVisibility>,
    /// Namespaces associated with any of these resource types.
    pub resource_types: Vec<String>,
}

/// Every metadef operation; `namespace` is the name in the path.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadefOp {
    ListNamespaces(NamespaceQuery),
    CreateNamespace(Box<NewNamespace>),
    /// `resource_type`: prefix property names with that association's prefix.
    GetNamespace {
        namespace: String,
        resource_type: Option<String>,
    },
    UpdateNamespace {
        namespace: String,
        fields: NamespaceFields,
    },
    DeleteNamespace {
        namespace: String,
    },
    DeleteObjects {
        namespace: String,
    },
    DeleteProperties {
        namespace: String,
    },
    DeleteTags {
        namespace: String,
    },
    ListResourceTypes,
    ListAssociations {
        namespace: String,
    },
    CreateAssociation {
        namespace: String,
        association: NewAssociation,
    },
    DeleteAssociation {
        namespace: String,
        resource_type: String,
    },
    ListProperties {
        namespace: String,
    },
    CreateProperty {
        namespace: String,
        property: NewProperty,
    },
    /// `resource_type`: `name` carries that association's prefix, to strip.
    GetProperty {
        namespace: String,
        name: String,
        resource_type: Option<String>,
    },
    UpdateProperty {
        namespace: String,
        name: String,
        property: NewProperty,
    },
    DeleteProperty {
        namespace: String,
        name: String,
    },
    ListObjects {
        namespace: String,
    },
    CreateObject {
        namespace: String,
        object: NewObject,
    },
    GetObject {
        namespace: String,
        name: String,
    },
    UpdateObject {
        namespace: String,
        name: String,
        object: NewObject,
    },
    DeleteObject {
        namespace: String,
        name: String,
    },
    ListTags {
        namespace: String,
    },
    /// Bulk create: replaces the namespace's tags unless `append`.
    CreateTags {
        namespace: String,
        tags: Vec<String>,
        append: bool,
    },
    CreateTag {
        namespace: String,
        name: String,
    },
    GetTag {
        namespace: String,
        name: String,
    },
    UpdateTag {
        namespace: String,
        name: String,
        new_name: String,
    },
    DeleteTag {
        namespace: String,
        name: String,
    },
}

impl MetadefOp {
    /// The policy rules Glance checks for the operation, the main one first.
    pub fn rules(&self) -> &'static [&'static str] {
        use MetadefOp::*;
        match self {
            // Listing also reads each namespace's associations.
            ListNamespaces(_) => &["get_metadef_namespaces", "list_metadef_resource_types"],
            CreateNamespace(_) => &["add_metadef_namespace"],
            GetNamespace { .. } => &[
                "get_metadef_namespace",
                "list_metadef_resource_types",
                "get_metadef_objects",
                "get_metadef_properties",
                "get_metadef_tags",
            ],
            UpdateNamespace { .. } => &["modify_metadef_namespace"],
            DeleteNamespace { .. } | DeleteObjects { .. } | DeleteProperties { .. } => {
                &["delete_metadef_namespace"]
            }
            DeleteTags { .. } => &["delete_metadef_namespace", "delete_metadef_tags"],
            ListResourceTypes => &["list_metadef_resource_types"],
            ListAssociations { .. } => &["list_metadef_resource_types"],
            CreateAssociation { .. } => &["add_metadef_resource_type_association"],
            DeleteAssociation { .. } => &["remove_metadef_resource_type_association"],
            ListProperties { .. } => &["get_metadef_properties"],
            CreateProperty { .. } => &["add_metadef_property"],
            GetProperty {
                resource_type: None,
                ..
            } => &["get_metadef_property"],
            GetProperty { .. } => &["get_metadef_property", "get_metadef_resource_type"],
            UpdateProperty { .. } => &["modify_metadef_property"],
            DeleteProperty { .. } => &["remove_metadef_property"],
            ListObjects { .. } => &["get_metadef_objects"],
            CreateObject { .. } => &["add_metadef_object"],
            GetObject { .. } => &["get_metadef_object"],
            UpdateObject { .. } => &["modify_metadef_object"],
            DeleteObject { .. } => &["delete_metadef_object"],
            ListTags { .. } => &["get_metadef_tags"],
            CreateTags { .. } => &["add_metadef_tags"],
            CreateTag { .. } => &["add_metadef_tag"],
            GetTag { .. } => &["get_metadef_tag"],
            UpdateTag { .. } => &["modify_metadef_tag"],
            DeleteTag { .. } => &["delete_metadef_tag"],
        }
    }

    /// The name of the operation, for logs and traces.
    pub fn name(&self) -> &'static str {
        self.rules()[0]
    }

    /// The namespace in the path, for operations on one.
    pub fn namespace(&self) -> Option<&str> {
        use MetadefOp::*;
        match self {
            ListNamespaces(_) | CreateNamespace(_) | ListResourceTypes => None,
            GetNamespace { namespace, .. }
            | UpdateNamespace { namespace, .. }
            | DeleteNamespace { namespace }
            | DeleteObjects { namespace }
            | DeleteProperties { namespace }
            | DeleteTags { namespace }
            | ListAssociations { namespace }
            | CreateAssociation { namespace, .. }
            | DeleteAssociation { namespace, .. }
            | ListProperties { namespace }
            | CreateProperty { namespace, .. }
            | GetProperty { namespace, .. }
            | UpdateProperty { namespace, .. }
            | DeleteProperty { namespace, .. }
            | ListObjects { namespace }
            | CreateObject { namespace, .. }
            | GetObject { namespace, .. }
            | UpdateObject { namespace, .. }
            | DeleteObject { namespace, .. }
            | ListTags { namespace }
            | CreateTags { namespace, .. }
            | CreateTag { namespace, .. }
            | GetTag { namespace, .. }
            | UpdateTag { namespace, .. }
            | DeleteTag { namespace, .. } => Some(namespace),
        }
    }

    /// Extra rules Glance checks on create for what the new namespace holds.
    pub fn content_rules(&self) -> Vec<&'static str> {
        let MetadefOp::CreateNamespace(new) = self else {
            return Vec::new();
        };
        [
            (
                !new.resource_type_associations.is_empty(),
                "add_metadef_resource_type_association",
            ),
            (!new.objects.is_empty(), "add_metadef_object"),
            (!new.properties.is_empty(), "add_metadef_property"),
            (!new.tags.is_empty(), "add_metadef_tag"),
        ]
        .into_iter()
        .filter_map(|(has, rule)| has.then_some(rule))
        .collect()
    }
}

/// What a metadef operation produced. Deletes answer the record deleted, so the
/// notifier can describe it.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadefResponse {
    Namespace(Box<Namespace>),
    Namespaces(Vec<Namespace>),
    ResourceTypes(Vec<ResourceType>),
    Associations(Vec<Association>),
    Association {
        namespace: String,
        association: Association,
    },
    Property(Property),
    Properties(Vec<Property>),
    Object(Box<Object>),
    Objects(Vec<Object>),
    Tag(Tag),
    Tags(Vec<Tag>),
}
