//! Metadef operations of the core: who sees which namespace, and what each
//! request reads or writes. The policy layer has judged the rules already; the
//! visibility rule is applied here again because it also decides the 404s'
//! words, which differ by operation as in Glance.

use glance_layers::metadef::{MetadefOp, MetadefResponse, Namespace, Object};
use glance_layers::{ImageError, ImageResponse, RequestContext};
use serde_json::{Map, Value};

use super::{ImageCore, Result, now};
use crate::db::metadefs::NamespaceRow;

/// How a request names a namespace it may not see: `show` answers as Glance's
/// namespace show does, everything else as its sub-resource controllers do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lookup {
    Show,
    Other,
}

fn property_not_found(name: &str, namespace: &str) -> ImageError {
    ImageError::NotFound(format!(
        "The metadata definition property with name={name} was not found in namespace={namespace}."
    ))
}

fn object_not_found(name: &str, namespace: &str) -> ImageError {
    ImageError::NotFound(format!(
        "The metadata definition object with name={name} was not found in namespace={namespace}."
    ))
}

fn tag_not_found(name: &str, namespace: &str) -> ImageError {
    ImageError::NotFound(format!(
        "The metadata definition tag with name={name} was not found in namespace={namespace}."
    ))
}

/// Glance's domain refuses to delete a protected namespace, and every bulk
/// delete of its contents goes through that same check.
fn check_unprotected(ns: &Namespace) -> Result<()> {
    if ns.protected {
        return Err(ImageError::Forbidden(format!(
            "Metadata definition namespace {} is protected and cannot be deleted.",
            ns.namespace
        )));
    }
    Ok(())
}

/// `GET …/namespaces/{ns}?resource_type=X`: property names (the namespace's
/// and its objects') as that resource type knows them.
fn prefix_names(ns: &mut Namespace, resource_type: &str) {
    let Some(prefix) = ns
        .resource_type_associations
        .iter()
        .find(|a| a.name == resource_type)
        .and_then(|a| a.prefix.clone())
        .filter(|p| !p.is_empty())
    else {
        return;
    };
    for p in &mut ns.properties {
        p.name = format!("{prefix}{}", p.name);
    }
    for o in &mut ns.objects {
        prefix_object(o, &prefix);
    }
}

fn prefix_object(o: &mut Object, prefix: &str) {
    let props = std::mem::take(&mut o.properties);
    o.properties = props
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect::<Map<String, Value>>();
    for r in &mut o.required {
        *r = format!("{prefix}{r}");
    }
}

impl ImageCore {
    /// The namespace `name`, if the caller may see it.
    async fn namespace(
        &self,
        ctx: &RequestContext,
        name: &str,
        how: Lookup,
    ) -> Result<NamespaceRow> {
        let row = self.repo.metadef_namespace(name).await?;
        match (row, how) {
            (Some(r), _) if r.namespace.is_visible_to(ctx.project_id(), ctx.is_admin()) => Ok(r),
            (None, Lookup::Show) => Err(ImageError::NotFound(format!(
                "Metadata definition namespace={name} was not found."
            ))),
            (Some(_), Lookup::Show) => Err(ImageError::NotFound(
                "The resource could not be found.".into(),
            )),
            (_, Lookup::Other) => Err(ImageError::NotFound(format!("Namespace {name} not found"))),
        }
    }

    /// A namespace with everything in it.
    async fn namespace_detail(&self, row: NamespaceRow) -> Result<Namespace> {
        let NamespaceRow { id, mut namespace } = row;
        let name = namespace.namespace.clone();
        namespace.resource_type_associations = self.repo.metadef_associations(id).await?;
        namespace.properties = self.repo.metadef_properties(id, &name).await?;
        namespace.objects = self.repo.metadef_objects(id, &name).await?;
        namespace.tags = self.repo.metadef_tags(id, &name).await?;
        Ok(namespace)
    }

    /// Answers a metadef operation.
    pub(super) async fn metadef_operation(
        &self,
        ctx: &RequestContext,
        op: MetadefOp,
    ) -> Result<ImageResponse> {
        use MetadefOp::*;
        use MetadefResponse as R;
        let repo = &self.repo;
        let resp = match op {
            ListNamespaces(q) => R::Namespaces(
                repo.list_metadef_namespaces(&q, ctx.project_id(), ctx.is_admin())
                    .await?,
            ),
            CreateNamespace(new) => {
                let owner = new
                    .fields
                    .owner
                    .clone()
                    .or_else(|| ctx.project_id().map(str::to_string));
                R::Namespace(Box::new(
                    repo.insert_metadef_namespace(&new, owner, now()).await?,
                ))
            }
            GetNamespace {
                namespace,
                resource_type,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Show).await?;
                let mut ns = self.namespace_detail(row).await?;
                if let Some(rt) = resource_type {
                    prefix_names(&mut ns, &rt);
                }
                R::Namespace(Box::new(ns))
            }
            UpdateNamespace { namespace, fields } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                // Glance rewrites the whole record: what is left out falls back to
                // the defaults of a create.
                let owner = fields
                    .owner
                    .clone()
                    .or_else(|| ctx.project_id().map(str::to_string));
                repo.update_metadef_namespace(row.id, &fields, owner, now())
                    .await?;
                let renamed = repo
                    .metadef_namespace(&fields.namespace)
                    .await?
                    .ok_or_else(|| ImageError::internal("an updated namespace vanished"))?;
                R::Namespace(Box::new(renamed.namespace))
            }
            DeleteNamespace { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                check_unprotected(&row.namespace)?;
                repo.delete_metadef_namespace(row.id).await?;
                R::Namespace(Box::new(row.namespace))
            }
            DeleteObjects { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                check_unprotected(&row.namespace)?;
                repo.delete_metadef_objects(row.id).await?;
                R::Namespace(Box::new(row.namespace))
            }
            DeleteProperties { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                check_unprotected(&row.namespace)?;
                repo.delete_metadef_properties(row.id).await?;
                R::Namespace(Box::new(row.namespace))
            }
            DeleteTags { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                check_unprotected(&row.namespace)?;
                repo.delete_metadef_tags(row.id).await?;
                R::Namespace(Box::new(row.namespace))
            }
            ListResourceTypes => R::ResourceTypes(repo.metadef_resource_types().await?),
            ListAssociations { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Associations(repo.metadef_associations(row.id).await?)
            }
            CreateAssociation {
                namespace,
                association,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let association = repo
                    .insert_metadef_association(row.id, &namespace, &association, now())
                    .await?;
                R::Association {
                    namespace,
                    association,
                }
            }
            DeleteAssociation {
                namespace,
                resource_type,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let association = repo
                    .delete_metadef_association(row.id, &resource_type)
                    .await?
                    .ok_or_else(|| {
                        ImageError::NotFound(format!(
                            "The metadata definition resource-type association of resource-type={resource_type} to namespace={namespace}, was not found."
                        ))
                    })?;
                R::Association {
                    namespace,
                    association,
                }
            }
            ListProperties { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Properties(repo.metadef_properties(row.id, &namespace).await?)
            }
            CreateProperty {
                namespace,
                property,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Property(
                    repo.insert_metadef_property(row.id, &namespace, &property, now())
                        .await?,
                )
            }
            GetProperty {
                namespace,
                name,
                resource_type,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let mut wanted = name.clone();
                if let Some(rt) = resource_type {
                    let prefix = repo
                        .metadef_associations(row.id)
                        .await?
                        .into_iter()
                        .find(|a| a.name == rt)
                        .ok_or_else(|| {
                            ImageError::NotFound(format!(
                                "The metadata definition resource-type association of resource-type={rt} to namespace={namespace}, was not found."
                            ))
                        })?
                        .prefix
                        .unwrap_or_default();
                    match name.strip_prefix(&prefix) {
                        Some(rest) if !prefix.is_empty() => wanted = rest.to_string(),
                        _ => {
                            return Err(ImageError::NotFound(format!(
                                "Property {name} does not start with the expected resource type association prefix of '{prefix}'."
                            )));
                        }
                    }
                }
                R::Property(
                    repo.metadef_property(row.id, &namespace, &wanted)
                        .await?
                        .ok_or_else(|| property_not_found(&wanted, &namespace))?,
                )
            }
            UpdateProperty {
                namespace,
                name,
                property,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                if !repo
                    .update_metadef_property(row.id, &namespace, &name, &property, now())
                    .await?
                {
                    return Err(property_not_found(&name, &namespace));
                }
                R::Property(
                    repo.metadef_property(row.id, &namespace, &property.name)
                        .await?
                        .ok_or_else(|| property_not_found(&property.name, &namespace))?,
                )
            }
            DeleteProperty { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let found = repo
                    .metadef_property(row.id, &namespace, &name)
                    .await?
                    .ok_or_else(|| property_not_found(&name, &namespace))?;
                repo.delete_metadef_property(row.id, &name).await?;
                R::Property(found)
            }
            ListObjects { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Objects(repo.metadef_objects(row.id, &namespace).await?)
            }
            CreateObject { namespace, object } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Object(Box::new(
                    repo.insert_metadef_object(row.id, &namespace, &object, now())
                        .await?,
                ))
            }
            GetObject { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Object(Box::new(
                    repo.metadef_object(row.id, &namespace, &name)
                        .await?
                        .ok_or_else(|| object_not_found(&name, &namespace))?,
                ))
            }
            UpdateObject {
                namespace,
                name,
                object,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                if !repo
                    .update_metadef_object(row.id, &namespace, &name, &object, now())
                    .await?
                {
                    return Err(object_not_found(&name, &namespace));
                }
                R::Object(Box::new(
                    repo.metadef_object(row.id, &namespace, &object.name)
                        .await?
                        .ok_or_else(|| object_not_found(&object.name, &namespace))?,
                ))
            }
            DeleteObject { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let found = repo
                    .metadef_object(row.id, &namespace, &name)
                    .await?
                    .ok_or_else(|| object_not_found(&name, &namespace))?;
                repo.delete_metadef_object(row.id, &name).await?;
                R::Object(Box::new(found))
            }
            ListTags { namespace } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Tags(repo.metadef_tags(row.id, &namespace).await?)
            }
            CreateTags {
                namespace,
                tags,
                append,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Tags(
                    repo.insert_metadef_tags(row.id, &namespace, &tags, append, now())
                        .await?,
                )
            }
            CreateTag { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let mut made = repo
                    .insert_metadef_tags(row.id, &namespace, &[name], true, now())
                    .await?;
                R::Tag(
                    made.pop()
                        .ok_or_else(|| ImageError::internal("no tag made"))?,
                )
            }
            GetTag { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                R::Tag(
                    repo.metadef_tag(row.id, &namespace, &name)
                        .await?
                        .ok_or_else(|| tag_not_found(&name, &namespace))?,
                )
            }
            UpdateTag {
                namespace,
                name,
                new_name,
            } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                if !repo
                    .update_metadef_tag(row.id, &namespace, &name, &new_name, now())
                    .await?
                {
                    return Err(tag_not_found(&name, &namespace));
                }
                R::Tag(
                    repo.metadef_tag(row.id, &namespace, &new_name)
                        .await?
                        .ok_or_else(|| tag_not_found(&new_name, &namespace))?,
                )
            }
            DeleteTag { namespace, name } => {
                let row = self.namespace(ctx, &namespace, Lookup::Other).await?;
                let found = repo
                    .metadef_tag(row.id, &namespace, &name)
                    .await?
                    .ok_or_else(|| tag_not_found(&name, &namespace))?;
                repo.delete_metadef_tag(row.id, &name).await?;
                R::Tag(found)
            }
        };
        Ok(ImageResponse::Metadef(resp))
    }
}
