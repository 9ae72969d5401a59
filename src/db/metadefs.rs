//! Metadef records in SQL: namespaces and what they hold (resource type
//! associations, property definitions, objects, tags), Glance's six tables.
//!
//! Visibility is the caller's business (the core's); these queries read and
//! write what they are told, and say `Conflict` when a unique name is taken.

use chrono::{DateTime, Utc};
use glance_layers::ImageError;
use glance_layers::metadef::Namespace;
use glance_layers::metadef::{
    Association, NamespaceFields, NamespaceQuery, NamespaceSortKey, NamespaceVisibility,
    NewAssociation, NewNamespace, NewObject, NewProperty, Object, Property, ResourceType, Tag,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, Order,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::{Map, Value};

use super::entity::{
    metadef_association as assoc, metadef_namespace as ns, metadef_object as obj,
    metadef_property as prop, metadef_resource_type as rt, metadef_tag as tag,
};
use super::{Repo, db_error, end_txn, from_micros, is_duplicate, to_micros};

type Result<T> = std::result::Result<T, ImageError>;

/// A namespace and its row id, which its children refer to.
#[derive(Debug, Clone)]
pub struct NamespaceRow {
    pub id: i32,
    pub namespace: Namespace,
}

/// Maps a failed write: a taken unique name is `Conflict(duplicate)`.
fn write_error(e: DbErr, duplicate: impl FnOnce() -> String) -> ImageError {
    if is_duplicate(&e) {
        ImageError::Conflict(duplicate())
    } else {
        db_error(e)
    }
}

fn namespace_from_row(row: ns::Model) -> NamespaceRow {
    NamespaceRow {
        id: row.id,
        namespace: Namespace {
            namespace: row.namespace,
            display_name: row.display_name,
            description: row.description,
            visibility: NamespaceVisibility::parse(&row.visibility)
                .unwrap_or(NamespaceVisibility::Private),
            protected: row.protected,
            owner: row.owner,
            created_at: from_micros(row.created_at),
            updated_at: from_micros(row.updated_at),
            resource_type_associations: Vec::new(),
            properties: Vec::new(),
            objects: Vec::new(),
            tags: Vec::new(),
        },
    }
}

fn json_map(text: &str) -> Map<String, Value> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn property_from_row(namespace: &str, row: prop::Model) -> Property {
    Property {
        namespace: namespace.to_string(),
        name: row.name,
        schema: json_map(&row.json_schema),
    }
}

fn object_from_row(namespace: &str, row: obj::Model) -> Object {
    Object {
        namespace: namespace.to_string(),
        name: row.name,
        description: row.description,
        required: row
            .required
            .and_then(|r| serde_json::from_str(&r).ok())
            .unwrap_or_default(),
        properties: json_map(&row.json_schema),
        created_at: from_micros(row.created_at),
        updated_at: from_micros(row.updated_at),
    }
}

fn tag_from_row(namespace: &str, row: tag::Model) -> Tag {
    Tag {
        namespace: namespace.to_string(),
        name: row.name,
        created_at: from_micros(row.created_at),
        updated_at: from_micros(row.updated_at),
    }
}

fn duplicate_namespace(name: &str) -> String {
    format!("The metadata definition namespace={name} already exists.")
}

fn duplicate_property(name: &str, namespace: &str) -> String {
    format!(
        "A metadata definition property with name={name} already exists in namespace={namespace}."
    )
}

fn duplicate_object(name: &str, namespace: &str) -> String {
    format!(
        "A metadata definition object with name={name} already exists in namespace={namespace}."
    )
}

fn duplicate_tag(name: &str, namespace: &str) -> String {
    format!(
        "A metadata tag with name={name} already exists in namespace={namespace}. (Please note that metadata tag names are case insensitive)."
    )
}

impl Repo {
    /// The namespace named `name`, without its contents.
    pub async fn metadef_namespace(&self, name: &str) -> Result<Option<NamespaceRow>> {
        ns::Entity::find()
            .filter(ns::Column::Namespace.eq(name))
            .one(self.connection())
            .await
            .map(|r| r.map(namespace_from_row))
            .map_err(db_error)
    }

    /// Whether any namespace exists (the catalogue is loaded at start when none does).
    pub async fn metadef_is_empty(&self) -> Result<bool> {
        Ok(ns::Entity::find()
            .one(self.connection())
            .await
            .map_err(db_error)?
            .is_none())
    }

    /// A page of the namespaces `project` may see (all for admins), each with its
    /// resource type associations.
    pub async fn list_metadef_namespaces(
        &self,
        q: &NamespaceQuery,
        project: Option<&str>,
        is_admin: bool,
    ) -> Result<Vec<Namespace>> {
        let db = self.connection();
        let mut cond = Condition::all();
        if !is_admin {
            let mut seen = Condition::any().add(ns::Column::Visibility.eq("public"));
            if let Some(p) = project {
                seen = seen.add(ns::Column::Owner.eq(p));
            }
            cond = cond.add(seen);
        }
        if let Some(v) = q.visibility {
            cond = cond.add(ns::Column::Visibility.eq(v.as_str()));
        }
        if !q.resource_types.is_empty() {
            // Namespaces associated with any of the types named.
            let ids = Query::select()
                .column((assoc::Entity, assoc::Column::NamespaceId))
                .from(assoc::Entity)
                .inner_join(
                    rt::Entity,
                    Expr::col((rt::Entity, rt::Column::Id))
                        .equals((assoc::Entity, assoc::Column::ResourceTypeId)),
                )
                .and_where(rt::Column::Name.is_in(q.resource_types.clone()))
                .to_owned();
            cond = cond.add(ns::Column::Id.in_subquery(ids));
        }
        let col = match q.sort_key {
            NamespaceSortKey::Namespace => ns::Column::Namespace,
            NamespaceSortKey::CreatedAt => ns::Column::CreatedAt,
            NamespaceSortKey::UpdatedAt => ns::Column::UpdatedAt,
        };
        if let Some(marker) = &q.marker {
            let m = self.metadef_namespace(marker).await?.ok_or_else(|| {
                ImageError::NotFound(format!(
                    "Metadata definition namespace={marker} was not found."
                ))
            })?;
            let key: sea_orm::Value = match q.sort_key {
                NamespaceSortKey::Namespace => m.namespace.namespace.clone().into(),
                NamespaceSortKey::CreatedAt => to_micros(m.namespace.created_at).into(),
                NamespaceSortKey::UpdatedAt => to_micros(m.namespace.updated_at).into(),
            };
            // After the marker in (key, id) order.
            let after = if q.descending {
                Condition::any().add(col.lt(key.clone())).add(
                    Condition::all()
                        .add(col.eq(key))
                        .add(ns::Column::Id.lt(m.id)),
                )
            } else {
                Condition::any().add(col.gt(key.clone())).add(
                    Condition::all()
                        .add(col.eq(key))
                        .add(ns::Column::Id.gt(m.id)),
                )
            };
            cond = cond.add(after);
        }
        let order = if q.descending {
            Order::Desc
        } else {
            Order::Asc
        };
        let rows = ns::Entity::find()
            .filter(cond)
            .order_by(col, order.clone())
            .order_by(ns::Column::Id, order)
            .limit(q.limit)
            .all(db)
            .await
            .map_err(db_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut r = namespace_from_row(row);
            r.namespace.resource_type_associations = self.metadef_associations(r.id).await?;
            out.push(r.namespace);
        }
        Ok(out)
    }

    /// Creates a namespace and everything it holds, all or nothing.
    pub async fn insert_metadef_namespace(
        &self,
        new: &NewNamespace,
        owner: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Namespace> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = insert_namespace_in(&txn, new, owner, now)
            .await
            .map(|ns| (ns, true));
        end_txn(txn, outcome).await
    }

    /// Rewrites a namespace's own fields (a rename included).
    pub async fn update_metadef_namespace(
        &self,
        id: i32,
        f: &NamespaceFields,
        owner: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let row = ns::ActiveModel {
            id: Set(id),
            namespace: Set(f.namespace.clone()),
            display_name: Set(f.display_name.clone()),
            description: Set(f.description.clone()),
            visibility: Set(f
                .visibility
                .unwrap_or(NamespaceVisibility::Private)
                .as_str()
                .into()),
            protected: Set(f.protected.unwrap_or(false)),
            owner: Set(owner),
            updated_at: Set(to_micros(now)),
            ..Default::default()
        };
        ns::Entity::update(row)
            .exec(self.writer())
            .await
            .map_err(|e| {
                write_error(e, || {
                    format!(
                        "Invalid update. It would result in a duplicate metadata definition namespace with the same name of {}",
                        f.namespace
                    )
                })
            })?;
        Ok(())
    }

    /// Deletes a namespace and everything in it.
    pub async fn delete_metadef_namespace(&self, id: i32) -> Result<()> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            delete_children(&txn, id, Children::All).await?;
            ns::Entity::delete_by_id(id)
                .exec(&txn)
                .await
                .map_err(db_error)?;
            Ok(((), true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    pub async fn delete_metadef_objects(&self, id: i32) -> Result<()> {
        delete_children(self.writer(), id, Children::Objects).await
    }

    pub async fn delete_metadef_properties(&self, id: i32) -> Result<()> {
        delete_children(self.writer(), id, Children::Properties).await
    }

    pub async fn delete_metadef_tags(&self, id: i32) -> Result<()> {
        delete_children(self.writer(), id, Children::Tags).await
    }

    /// Every resource type, by name.
    pub async fn metadef_resource_types(&self) -> Result<Vec<ResourceType>> {
        Ok(rt::Entity::find()
            .order_by_asc(rt::Column::Name)
            .all(self.connection())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| ResourceType {
                name: r.name,
                created_at: from_micros(r.created_at),
                updated_at: from_micros(r.updated_at),
            })
            .collect())
    }

    /// A namespace's resource type associations, by type name.
    pub async fn metadef_associations(&self, ns_id: i32) -> Result<Vec<Association>> {
        associations_in(self.connection(), ns_id).await
    }

    /// Associates a resource type (created if new) with a namespace.
    pub async fn insert_metadef_association(
        &self,
        ns_id: i32,
        namespace: &str,
        a: &NewAssociation,
        now: DateTime<Utc>,
    ) -> Result<Association> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = insert_association_in(&txn, ns_id, namespace, a, false, now)
            .await
            .map(|a| (a, true));
        end_txn(txn, outcome).await
    }

    /// Removes an association; `None` when there is none.
    pub async fn delete_metadef_association(
        &self,
        ns_id: i32,
        type_name: &str,
    ) -> Result<Option<Association>> {
        let found = associations_in(self.connection(), ns_id)
            .await?
            .into_iter()
            .find(|a| a.name == type_name);
        let Some(a) = found else { return Ok(None) };
        let Some(t) = rt::Entity::find()
            .filter(rt::Column::Name.eq(type_name))
            .one(self.connection())
            .await
            .map_err(db_error)?
        else {
            return Ok(None);
        };
        assoc::Entity::delete_many()
            .filter(assoc::Column::NamespaceId.eq(ns_id))
            .filter(assoc::Column::ResourceTypeId.eq(t.id))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(Some(a))
    }

    pub async fn metadef_properties(&self, ns_id: i32, namespace: &str) -> Result<Vec<Property>> {
        Ok(prop::Entity::find()
            .filter(prop::Column::NamespaceId.eq(ns_id))
            .order_by_asc(prop::Column::Name)
            .all(self.connection())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| property_from_row(namespace, r))
            .collect())
    }

    pub async fn metadef_property(
        &self,
        ns_id: i32,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Property>> {
        Ok(prop::Entity::find()
            .filter(prop::Column::NamespaceId.eq(ns_id))
            .filter(prop::Column::Name.eq(name))
            .one(self.connection())
            .await
            .map_err(db_error)?
            .map(|r| property_from_row(namespace, r)))
    }

    pub async fn insert_metadef_property(
        &self,
        ns_id: i32,
        namespace: &str,
        p: &NewProperty,
        now: DateTime<Utc>,
    ) -> Result<Property> {
        insert_property_in(self.writer(), ns_id, namespace, p, now).await
    }

    /// Rewrites property `old` (a rename included); `false` when it is gone.
    pub async fn update_metadef_property(
        &self,
        ns_id: i32,
        namespace: &str,
        old: &str,
        p: &NewProperty,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let res = prop::Entity::update_many()
            .col_expr(prop::Column::Name, Expr::value(p.name.clone()))
            .col_expr(
                prop::Column::JsonSchema,
                Expr::value(Value::Object(p.schema.clone()).to_string()),
            )
            .col_expr(prop::Column::UpdatedAt, Expr::value(to_micros(now)))
            .filter(prop::Column::NamespaceId.eq(ns_id))
            .filter(prop::Column::Name.eq(old))
            .exec(self.writer())
            .await
            .map_err(|e| {
                write_error(e, || {
                    format!(
                        "Invalid update. It would result in a duplicate metadata definition property with the same name={} in namespace={namespace}.",
                        p.name
                    )
                })
            })?;
        Ok(res.rows_affected > 0)
    }

    pub async fn delete_metadef_property(&self, ns_id: i32, name: &str) -> Result<bool> {
        let res = prop::Entity::delete_many()
            .filter(prop::Column::NamespaceId.eq(ns_id))
            .filter(prop::Column::Name.eq(name))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected > 0)
    }

    pub async fn metadef_objects(&self, ns_id: i32, namespace: &str) -> Result<Vec<Object>> {
        Ok(obj::Entity::find()
            .filter(obj::Column::NamespaceId.eq(ns_id))
            .order_by_asc(obj::Column::Name)
            .all(self.connection())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| object_from_row(namespace, r))
            .collect())
    }

    pub async fn metadef_object(
        &self,
        ns_id: i32,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Object>> {
        Ok(obj::Entity::find()
            .filter(obj::Column::NamespaceId.eq(ns_id))
            .filter(obj::Column::Name.eq(name))
            .one(self.connection())
            .await
            .map_err(db_error)?
            .map(|r| object_from_row(namespace, r)))
    }

    pub async fn insert_metadef_object(
        &self,
        ns_id: i32,
        namespace: &str,
        o: &NewObject,
        now: DateTime<Utc>,
    ) -> Result<Object> {
        insert_object_in(self.writer(), ns_id, namespace, o, now).await
    }

    /// Rewrites object `old` (a rename included); `false` when it is gone.
    pub async fn update_metadef_object(
        &self,
        ns_id: i32,
        namespace: &str,
        old: &str,
        o: &NewObject,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let res = obj::Entity::update_many()
            .col_expr(obj::Column::Name, Expr::value(o.name.clone()))
            .col_expr(obj::Column::Description, Expr::value(o.description.clone()))
            .col_expr(
                obj::Column::Required,
                Expr::value(serde_json::to_string(&o.required).ok()),
            )
            .col_expr(
                obj::Column::JsonSchema,
                Expr::value(Value::Object(o.properties.clone()).to_string()),
            )
            .col_expr(obj::Column::UpdatedAt, Expr::value(to_micros(now)))
            .filter(obj::Column::NamespaceId.eq(ns_id))
            .filter(obj::Column::Name.eq(old))
            .exec(self.writer())
            .await
            .map_err(|e| {
                write_error(e, || {
                    format!(
                        "Invalid update. It would result in a duplicate metadata definition object with the same name={} in namespace={namespace}.",
                        o.name
                    )
                })
            })?;
        Ok(res.rows_affected > 0)
    }

    pub async fn delete_metadef_object(&self, ns_id: i32, name: &str) -> Result<bool> {
        let res = obj::Entity::delete_many()
            .filter(obj::Column::NamespaceId.eq(ns_id))
            .filter(obj::Column::Name.eq(name))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected > 0)
    }

    pub async fn metadef_tags(&self, ns_id: i32, namespace: &str) -> Result<Vec<Tag>> {
        Ok(tag::Entity::find()
            .filter(tag::Column::NamespaceId.eq(ns_id))
            .order_by_asc(tag::Column::Name)
            .all(self.connection())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(|r| tag_from_row(namespace, r))
            .collect())
    }

    pub async fn metadef_tag(
        &self,
        ns_id: i32,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Tag>> {
        Ok(tag::Entity::find()
            .filter(tag::Column::NamespaceId.eq(ns_id))
            .filter(tag::Column::Name.eq(name))
            .one(self.connection())
            .await
            .map_err(db_error)?
            .map(|r| tag_from_row(namespace, r)))
    }

    /// Adds tags, after removing the namespace's others unless `append`; all or
    /// nothing.
    pub async fn insert_metadef_tags(
        &self,
        ns_id: i32,
        namespace: &str,
        names: &[String],
        append: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Tag>> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let outcome = async {
            if !append {
                delete_children(&txn, ns_id, Children::Tags).await?;
            }
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                out.push(insert_tag_in(&txn, ns_id, namespace, name, now).await?);
            }
            Ok((out, true))
        }
        .await;
        end_txn(txn, outcome).await
    }

    /// Renames tag `old`; `false` when it is gone.
    pub async fn update_metadef_tag(
        &self,
        ns_id: i32,
        namespace: &str,
        old: &str,
        new_name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let res = tag::Entity::update_many()
            .col_expr(tag::Column::Name, Expr::value(new_name.to_string()))
            .col_expr(tag::Column::UpdatedAt, Expr::value(to_micros(now)))
            .filter(tag::Column::NamespaceId.eq(ns_id))
            .filter(tag::Column::Name.eq(old))
            .exec(self.writer())
            .await
            .map_err(|e| write_error(e, || duplicate_tag(new_name, namespace)))?;
        Ok(res.rows_affected > 0)
    }

    pub async fn delete_metadef_tag(&self, ns_id: i32, name: &str) -> Result<bool> {
        let res = tag::Entity::delete_many()
            .filter(tag::Column::NamespaceId.eq(ns_id))
            .filter(tag::Column::Name.eq(name))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected > 0)
    }

    /// Marks the named resource types as seeded, so they outlive their
    /// associations (the catalogue loader's).
    pub async fn protect_metadef_resource_types(&self, names: &[String]) -> Result<()> {
        rt::Entity::update_many()
            .col_expr(rt::Column::Protected, Expr::value(true))
            .filter(rt::Column::Name.is_in(names.to_vec()))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Children {
    Objects,
    Properties,
    Tags,
    All,
}

async fn delete_children(db: &impl ConnectionTrait, id: i32, which: Children) -> Result<()> {
    if matches!(which, Children::Objects | Children::All) {
        obj::Entity::delete_many()
            .filter(obj::Column::NamespaceId.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    if matches!(which, Children::Properties | Children::All) {
        prop::Entity::delete_many()
            .filter(prop::Column::NamespaceId.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    if matches!(which, Children::Tags | Children::All) {
        tag::Entity::delete_many()
            .filter(tag::Column::NamespaceId.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    if which == Children::All {
        assoc::Entity::delete_many()
            .filter(assoc::Column::NamespaceId.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

async fn associations_in(db: &impl ConnectionTrait, ns_id: i32) -> Result<Vec<Association>> {
    let links = assoc::Entity::find()
        .filter(assoc::Column::NamespaceId.eq(ns_id))
        .all(db)
        .await
        .map_err(db_error)?;
    if links.is_empty() {
        return Ok(Vec::new());
    }
    let types = rt::Entity::find()
        .filter(rt::Column::Id.is_in(links.iter().map(|l| l.resource_type_id)))
        .all(db)
        .await
        .map_err(db_error)?;
    let mut out: Vec<Association> = links
        .into_iter()
        .filter_map(|l| {
            let t = types.iter().find(|t| t.id == l.resource_type_id)?;
            Some(Association {
                name: t.name.clone(),
                prefix: l.prefix,
                properties_target: l.properties_target,
                created_at: from_micros(l.created_at),
                updated_at: from_micros(l.updated_at),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

async fn insert_namespace_in(
    txn: &impl ConnectionTrait,
    new: &NewNamespace,
    owner: Option<String>,
    now: DateTime<Utc>,
) -> Result<Namespace> {
    let f = &new.fields;
    let at = to_micros(now);
    let row = ns::ActiveModel {
        namespace: Set(f.namespace.clone()),
        display_name: Set(f.display_name.clone()),
        description: Set(f.description.clone()),
        visibility: Set(f
            .visibility
            .unwrap_or(NamespaceVisibility::Private)
            .as_str()
            .into()),
        protected: Set(f.protected.unwrap_or(false)),
        owner: Set(owner),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    };
    let id = ns::Entity::insert(row)
        .exec(txn)
        .await
        .map_err(|e| write_error(e, || duplicate_namespace(&f.namespace)))?
        .last_insert_id;
    let mut created = match ns::Entity::find_by_id(id)
        .one(txn)
        .await
        .map_err(db_error)?
    {
        Some(row) => namespace_from_row(row).namespace,
        None => return Err(ImageError::internal("a namespace vanished as it was made")),
    };
    let name = f.namespace.clone();
    for a in &new.resource_type_associations {
        let made = insert_association_in(txn, id, &name, a, false, now).await?;
        created.resource_type_associations.push(made);
    }
    for o in &new.objects {
        created
            .objects
            .push(insert_object_in(txn, id, &name, o, now).await?);
    }
    for t in &new.tags {
        created
            .tags
            .push(insert_tag_in(txn, id, &name, t, now).await?);
    }
    for p in &new.properties {
        created
            .properties
            .push(insert_property_in(txn, id, &name, p, now).await?);
    }
    Ok(created)
}

/// Finds or creates the resource type, then links it.
async fn insert_association_in(
    db: &impl ConnectionTrait,
    ns_id: i32,
    namespace: &str,
    a: &NewAssociation,
    protected: bool,
    now: DateTime<Utc>,
) -> Result<Association> {
    let at = to_micros(now);
    let existing = rt::Entity::find()
        .filter(rt::Column::Name.eq(&a.name))
        .one(db)
        .await
        .map_err(db_error)?;
    let type_id = match existing {
        Some(t) => t.id,
        None => {
            let row = rt::ActiveModel {
                name: Set(a.name.clone()),
                protected: Set(protected),
                created_at: Set(at),
                updated_at: Set(at),
                ..Default::default()
            };
            rt::Entity::insert(row)
                .exec(db)
                .await
                .map_err(|e| {
                    write_error(e, || {
                        format!(
                            "A metadata definition resource-type with name={} already exists.",
                            a.name
                        )
                    })
                })?
                .last_insert_id
        }
    };
    let link = assoc::ActiveModel {
        resource_type_id: Set(type_id),
        namespace_id: Set(ns_id),
        properties_target: Set(a.properties_target.clone()),
        prefix: Set(a.prefix.clone()),
        created_at: Set(at),
        updated_at: Set(at),
    };
    assoc::Entity::insert(link)
        .exec_without_returning(db)
        .await
        .map_err(|e| {
            write_error(e, || {
                format!(
                    "The metadata definition resource-type association of resource-type={} to namespace={namespace} already exists.",
                    a.name
                )
            })
        })?;
    Ok(Association {
        name: a.name.clone(),
        prefix: a.prefix.clone(),
        properties_target: a.properties_target.clone(),
        created_at: now,
        updated_at: now,
    })
}

async fn insert_property_in(
    db: &impl ConnectionTrait,
    ns_id: i32,
    namespace: &str,
    p: &NewProperty,
    now: DateTime<Utc>,
) -> Result<Property> {
    let row = prop::ActiveModel {
        namespace_id: Set(ns_id),
        name: Set(p.name.clone()),
        json_schema: Set(Value::Object(p.schema.clone()).to_string()),
        created_at: Set(to_micros(now)),
        updated_at: Set(to_micros(now)),
        ..Default::default()
    };
    prop::Entity::insert(row)
        .exec(db)
        .await
        .map_err(|e| write_error(e, || duplicate_property(&p.name, namespace)))?;
    Ok(Property {
        namespace: namespace.to_string(),
        name: p.name.clone(),
        schema: p.schema.clone(),
    })
}

async fn insert_object_in(
    db: &impl ConnectionTrait,
    ns_id: i32,
    namespace: &str,
    o: &NewObject,
    now: DateTime<Utc>,
) -> Result<Object> {
    let row = obj::ActiveModel {
        namespace_id: Set(ns_id),
        name: Set(o.name.clone()),
        description: Set(o.description.clone()),
        required: Set(serde_json::to_string(&o.required).ok()),
        json_schema: Set(Value::Object(o.properties.clone()).to_string()),
        created_at: Set(to_micros(now)),
        updated_at: Set(to_micros(now)),
        ..Default::default()
    };
    obj::Entity::insert(row)
        .exec(db)
        .await
        .map_err(|e| write_error(e, || duplicate_object(&o.name, namespace)))?;
    Ok(Object {
        namespace: namespace.to_string(),
        name: o.name.clone(),
        description: o.description.clone(),
        required: o.required.clone(),
        properties: o.properties.clone(),
        created_at: now,
        updated_at: now,
    })
}

async fn insert_tag_in(
    db: &impl ConnectionTrait,
    ns_id: i32,
    namespace: &str,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Tag> {
    let row = tag::ActiveModel {
        namespace_id: Set(ns_id),
        name: Set(name.to_string()),
        created_at: Set(to_micros(now)),
        updated_at: Set(to_micros(now)),
        ..Default::default()
    };
    tag::Entity::insert(row)
        .exec(db)
        .await
        .map_err(|e| write_error(e, || duplicate_tag(name, namespace)))?;
    Ok(Tag {
        namespace: namespace.to_string(),
        name: name.to_string(),
        created_at: now,
        updated_at: now,
    })
}
