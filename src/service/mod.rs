//! The core `ImageService`: image records, the status state machine, tags and
//! members, over the database. The innermost service of the domain stack.

use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use chrono::Utc;
use glance_layers::patch::{self, Attribute};
use glance_layers::policy::{ImageLookup, PolicyTarget};
use glance_layers::quota::{Usage, UsageSource};
use glance_layers::{
    BoxFuture, Image, ImageError, ImagePage, ImageRequest, ImageResponse, ImageStatus, Member,
    MemberStatus, NewImage, Operation, RequestContext, Visibility,
};
use tower::Service;

use crate::db::Repo;
use crate::db::list::Scope;
use crate::recovery::LeaseKeeper;

mod imports;
mod metadefs;
mod tasks;
mod uploads;

/// Glance's per-image count limits (`image_property_quota` etc.); negative is
/// unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageLimits {
    pub image_property_quota: i64,
    pub image_tag_quota: i64,
    pub image_member_quota: i64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            image_property_quota: 128,
            image_tag_quota: 128,
            image_member_quota: 128,
        }
    }
}

/// Now, to the microsecond the database keeps, so a record built in memory after
/// a write is the record a later read returns.
pub(crate) fn now() -> chrono::DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// The core service. Cheap to clone.
#[derive(Clone)]
pub struct ImageCore {
    repo: Repo,
    limits: Arc<ImageLimits>,
    leases: LeaseKeeper,
    /// How long a finished task is kept (`[task] task_time_to_live`).
    task_ttl: chrono::Duration,
}

type Result<T> = std::result::Result<T, ImageError>;

/// `resource` is the limit's option name, `what` the words Glance uses for it.
fn over_quota(resource: &str, what: &str, attempted: usize, max: i64) -> Result<()> {
    if max >= 0 && attempted as i64 > max {
        return Err(ImageError::quota_exceeded(
            resource,
            format!("Maximum number of {what} exceeded. Attempted: {attempted}, Maximum: {max}"),
        ));
    }
    Ok(())
}

impl ImageCore {
    /// `leases` is this node's: uploads are taken under its leases.
    pub fn new(repo: Repo, limits: ImageLimits, leases: LeaseKeeper) -> Self {
        ImageCore {
            repo,
            limits: Arc::new(limits),
            leases,
            task_ttl: chrono::Duration::hours(48),
        }
    }

    /// Keeps finished tasks for `ttl` (Glance's default: 48 hours).
    pub fn with_task_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.task_ttl = ttl;
        self
    }

    /// The image the request targets: the one a layer above loaded for it, or
    /// read now and kept for the rest of the request.
    async fn image(&self, ctx: &RequestContext, id: &str) -> Result<Arc<Image>> {
        if let Some(image) = ctx.loaded.get(id) {
            return Ok(image);
        }
        let image = self
            .repo
            .get(id)
            .await?
            .ok_or_else(|| ImageError::not_found(id))?;
        Ok(ctx.loaded.keep(image))
    }

    fn check_counts(&self, image: &Image) -> Result<()> {
        let props = image
            .properties
            .keys()
            .filter(|k| !k.starts_with(patch::RESERVED_NAMESPACE))
            .count();
        over_quota(
            "image_property_quota",
            "image properties",
            props,
            self.limits.image_property_quota,
        )?;
        over_quota(
            "image_tag_quota",
            "tags",
            image.tags.len(),
            self.limits.image_tag_quota,
        )
    }

    async fn handle(&self, req: ImageRequest) -> Result<ImageResponse> {
        let ImageRequest { ctx, op } = req;
        match op {
            Operation::Create(new) => self.create(&ctx, new).await.map(ImageResponse::image),
            Operation::Get { id } => Ok(ImageResponse::image(
                self.image(&ctx, &id).await?.as_ref().clone(),
            )),
            Operation::List(q) => {
                let scope = Scope {
                    project: ctx.project_id(),
                    is_admin: ctx.is_admin(),
                };
                let images = self.repo.list(&q, scope).await?;
                Ok(ImageResponse::Images(ImagePage { images }))
            }
            Operation::Update { id, changes } => {
                let before = self.image(&ctx, &id).await?;
                let mut after = before.as_ref().clone();
                patch::apply_changes(&mut after, &changes)?;
                self.check_counts(&after)?;
                self.save(&before, after).await
            }
            Operation::Delete { id } => self.delete(&ctx, &id).await,
            Operation::AddTag { id, tag } => {
                let before = self.image(&ctx, &id).await?;
                let mut after = before.as_ref().clone();
                after.tags.insert(patch::check_tag(&tag)?.to_string());
                self.check_counts(&after)?;
                self.save(&before, after).await
            }
            Operation::DeleteTag { id, tag } => {
                let before = self.image(&ctx, &id).await?;
                let mut after = before.as_ref().clone();
                if !after.tags.remove(&tag) {
                    return Err(ImageError::NotFound(format!("Tag {tag} not found.")));
                }
                self.save(&before, after).await
            }
            Operation::Deactivate { id } => {
                let image = self.image(&ctx, &id).await?;
                self.toggle(
                    &image,
                    ImageStatus::Active,
                    ImageStatus::Deactivated,
                    "deactivate",
                )
                .await
            }
            Operation::Reactivate { id } => {
                let image = self.image(&ctx, &id).await?;
                self.toggle(
                    &image,
                    ImageStatus::Deactivated,
                    ImageStatus::Active,
                    "reactivate",
                )
                .await
            }
            Operation::ListMembers { id } => self.list_members(&ctx, &id).await,
            Operation::AddMember { id, member_id } => self.add_member(&ctx, &id, member_id).await,
            Operation::GetMember { id, member_id } => {
                let image = self.image(&ctx, &id).await?;
                if !sees_all_members(&ctx, &image) && ctx.project_id() != Some(member_id.as_str()) {
                    return Err(member_not_found(&id, &member_id));
                }
                self.member(&id, &member_id)
                    .await
                    .map(ImageResponse::Member)
            }
            Operation::UpdateMember {
                id,
                member_id,
                status,
            } => {
                self.image(&ctx, &id).await?;
                let mut member = self.member(&id, &member_id).await?;
                member.status = status;
                member.updated_at = now();
                if !self.repo.update_member(&member).await? {
                    return Err(member_not_found(&id, &member_id));
                }
                Ok(ImageResponse::Member(member))
            }
            Operation::DeleteMember { id, member_id } => {
                self.image(&ctx, &id).await?;
                let member = self.member(&id, &member_id).await?;
                if !self.repo.delete_member(&id, &member_id).await? {
                    return Err(member_not_found(&id, &member_id));
                }
                Ok(ImageResponse::Member(member))
            }
            // What the optional layers answer when they are in the stack, answered
            // as a stack without them would: no stores to describe, no limits to
            // report, and a known caller is all it takes.
            Operation::StoresInfo { .. } => Ok(ImageResponse::Stores(Vec::new())),
            Operation::Usage => Ok(ImageResponse::Usage(Vec::new())),
            Operation::Authenticate => ctx.identity().map(|_| ImageResponse::Empty),
            Operation::Metadef(op) => self.metadef_operation(&ctx, op).await,
            op @ (Operation::ImageTasks { .. }
            | Operation::CreateTask(_)
            | Operation::ListTasks(_)
            | Operation::GetTask { .. }
            | Operation::TasksAccess) => self.task_operation(&ctx, op).await,
            // The cache layer answers these when `image_cache_dir` turns it on.
            Operation::Cache(_) => Err(ImageError::NotFound(
                "Caching via API is not supported at this site.".into(),
            )),
            // Data moves only through the location layer.
            op @ (Operation::Upload { .. }
            | Operation::Download { .. }
            | Operation::DeleteFromStore { .. }
            | Operation::Stage { .. }
            | Operation::Import { .. }) => Err(ImageError::Unsupported(format!(
                "The operation {} needs a store, and this stack has none.",
                op.name()
            ))),
            op => Err(ImageError::Unsupported(format!(
                "The operation {} is not supported by this server.",
                op.name()
            ))),
        }
    }

    async fn create(&self, ctx: &RequestContext, new: NewImage) -> Result<Image> {
        let id = new
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut image = Image::new(id, now());
        image.owner = new.owner.or_else(|| ctx.project_id().map(str::to_string));
        let attrs = [
            new.name.map(|v| Attribute::Name(Some(v))),
            new.visibility.map(Attribute::Visibility),
            new.protected.map(Attribute::Protected),
            new.os_hidden.map(Attribute::OsHidden),
            new.min_disk.map(Attribute::MinDisk),
            new.min_ram.map(Attribute::MinRam),
            new.container_format
                .map(|v| Attribute::ContainerFormat(Some(v))),
            new.disk_format.map(|v| Attribute::DiskFormat(Some(v))),
        ];
        for attr in attrs.into_iter().flatten() {
            patch::set_attribute(&mut image, attr)?;
        }
        image.tags = new.tags.into_iter().collect();
        image.properties = new.properties;
        self.check_counts(&image)?;
        if !self.repo.insert(&image).await? {
            return Err(ImageError::Conflict(format!(
                "Image ID {} already exists!",
                image.id
            )));
        }
        Ok(image)
    }

    async fn save(&self, before: &Image, mut after: Image) -> Result<ImageResponse> {
        after.updated_at = now();
        if !self.repo.update(before, &after).await? {
            return Err(ImageError::Conflict(format!(
                "Image {} was changed by another request; try again.",
                before.id
            )));
        }
        Ok(ImageResponse::image(after))
    }

    async fn delete(&self, ctx: &RequestContext, id: &str) -> Result<ImageResponse> {
        let image = self.image(ctx, id).await.map_err(|e| match e {
            ImageError::NotFound(_) => {
                ImageError::NotFound(format!("Failed to find image {id} to delete"))
            }
            e => e,
        })?;
        if image.protected {
            return Err(ImageError::Forbidden(format!(
                "Image {id} is protected and cannot be deleted."
            )));
        }
        let now = now();
        let has_locations = !image.locations.is_empty();
        if !self
            .repo
            .soft_delete(id, image.status, now, has_locations)
            .await?
        {
            return Err(ImageError::Conflict(format!(
                "Image {id} changed while it was being deleted; try again."
            )));
        }
        let mut image = image.as_ref().clone();
        image.status = ImageStatus::Deleted;
        image.deleted_at = Some(now);
        image.updated_at = now;
        Ok(ImageResponse::image(image))
    }

    async fn toggle(
        &self,
        image: &Image,
        from: ImageStatus,
        to: ImageStatus,
        action: &str,
    ) -> Result<ImageResponse> {
        if image.status == to {
            return Ok(ImageResponse::image(image.clone()));
        }
        if image.status != from {
            return Err(ImageError::Forbidden(format!(
                "Not allowed to {action} image in status '{}'",
                image.status
            )));
        }
        let now = now();
        if !self.repo.transition(&image.id, from, to, now).await? {
            return Err(ImageError::Conflict(format!(
                "Image {} changed while it was being {action}d; try again.",
                image.id
            )));
        }
        let mut after = image.clone();
        after.status = to;
        after.updated_at = now;
        Ok(ImageResponse::image(after))
    }

    async fn member(&self, id: &str, member_id: &str) -> Result<Member> {
        self.repo
            .member(id, member_id)
            .await?
            .ok_or_else(|| member_not_found(id, member_id))
    }

    async fn list_members(&self, ctx: &RequestContext, id: &str) -> Result<ImageResponse> {
        let image = self.image(ctx, id).await?;
        if image.visibility != Visibility::Shared {
            return Err(ImageError::Forbidden(format!(
                "Image {id} is not shared: Only shared images have members."
            )));
        }
        let mut members = self.repo.members(id).await?;
        if !sees_all_members(ctx, &image) {
            members.retain(|m| Some(m.member_id.as_str()) == ctx.project_id());
        }
        Ok(ImageResponse::Members(members))
    }

    async fn add_member(
        &self,
        ctx: &RequestContext,
        id: &str,
        member_id: String,
    ) -> Result<ImageResponse> {
        let image = self.image(ctx, id).await?;
        if image.visibility != Visibility::Shared {
            return Err(ImageError::Forbidden(format!(
                "Not allowed to create members for image {id}."
            )));
        }
        let duplicated = |member_id: &str| {
            ImageError::Conflict(format!("Member {member_id} is duplicated for image {id}"))
        };
        // Checked before the member quota, so a duplicate is a 409 and not a 413.
        if self.repo.member(id, &member_id).await?.is_some() {
            return Err(duplicated(&member_id));
        }
        let count = self.repo.member_count(id).await? as usize;
        over_quota(
            "image_member_quota",
            "image members",
            count + 1,
            self.limits.image_member_quota,
        )?;
        let now = now();
        let member = Member {
            image_id: id.to_string(),
            member_id,
            status: MemberStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        // Another request may have added it since the check above.
        if !self.repo.insert_member(&member).await? {
            return Err(duplicated(&member.member_id));
        }
        Ok(ImageResponse::Member(member))
    }
}

/// Admins and the image's owner see every member row; a member sees only its own.
fn sees_all_members(ctx: &RequestContext, image: &Image) -> bool {
    ctx.is_admin() || (image.owner.is_some() && image.owner.as_deref() == ctx.project_id())
}

fn member_not_found(id: &str, member_id: &str) -> ImageError {
    ImageError::NotFound(format!(
        "{member_id} not found in the member list of the image {id}."
    ))
}

impl Service<ImageRequest> for ImageCore {
    type Response = ImageResponse;
    type Error = ImageError;
    type Future = BoxFuture<Result<ImageResponse>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: ImageRequest) -> Self::Future {
        let core = self.clone();
        Box::pin(async move {
            // A layer that reads after this write must see what it wrote.
            let loaded = req.ctx.loaded.clone();
            let op = &req.op;
            let wrote = matches!(
                op,
                Operation::Update { .. }
                    | Operation::AddTag { .. }
                    | Operation::DeleteTag { .. }
                    | Operation::Deactivate { .. }
                    | Operation::Reactivate { .. }
            );
            let deleted = matches!(op, Operation::Delete { .. });
            let resp = core.handle(req).await?;
            match &resp {
                ImageResponse::Image(image) if wrote => loaded.replace(image.as_ref().clone()),
                _ if deleted => loaded.forget(),
                _ => {}
            }
            Ok(resp)
        })
    }
}

#[async_trait]
impl ImageLookup for ImageCore {
    async fn lookup(&self, id: &str, project_id: Option<&str>) -> Result<Option<PolicyTarget>> {
        let Some(image) = self.repo.get(id).await? else {
            return Ok(None);
        };
        let member = ImageLookup::member(self, &image, project_id).await?;
        Ok(Some(PolicyTarget {
            image: Arc::new(image),
            member,
        }))
    }

    async fn metadef_namespace(
        &self,
        name: &str,
    ) -> Result<Option<glance_layers::metadef::Namespace>> {
        Ok(self
            .repo
            .metadef_namespace(name)
            .await?
            .map(|r| r.namespace))
    }

    /// Only a shared image's non-owner has a member row worth reading.
    async fn member(&self, image: &Image, project_id: Option<&str>) -> Result<Option<Member>> {
        match project_id {
            Some(p)
                if image.owner.as_deref() != Some(p) && image.visibility == Visibility::Shared =>
            {
                self.repo.member(&image.id, p).await
            }
            _ => Ok(None),
        }
    }
}

#[async_trait]
impl UsageSource for ImageCore {
    async fn usage(&self, project_id: &str) -> Result<Usage> {
        self.repo.usage(project_id).await
    }
}

#[cfg(test)]
mod tests;
