//! The policy layer: Glance's authorization rules, evaluated before anything is done.
//!
//! Images a caller may not see are `NotFound` whatever the operation; images they
//! can see but may not act on are `Forbidden` (Glance's `ImageAPIPolicy._enforce`). Rules are
//! oslo.policy text ([`rules`]), Glance's secure-RBAC defaults unless overridden.

pub mod file;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;

use crate::image::{Image, ImageStatus, Member, Visibility};
use crate::metadef::Namespace;
use crate::middleware::{Middleware, MiddlewareLayer, Next};
use crate::observe::Observer;
use crate::patch::{Change, PatchOp};
use crate::{Identity, ImageError, ImageRequest, ImageResponse, ImageService, Operation};
use rules::{Creds, RuleSet, Target};

/// An image as the policy sees it: the record and the caller's membership of it.
#[derive(Debug, Clone)]
pub struct PolicyTarget {
    /// The whole record (properties, tags, locations): the policy layer keeps it
    /// in the request's [`LoadedImage`](crate::context::LoadedImage) for the layers
    /// after it.
    pub image: Arc<Image>,
    /// The caller's project's member row, if any (any status).
    pub member: Option<Member>,
}

/// How the policy layer finds the image a request targets.
#[async_trait]
pub trait ImageLookup: Send + Sync + 'static {
    async fn lookup(
        &self,
        image_id: &str,
        project_id: Option<&str>,
    ) -> Result<Option<PolicyTarget>, ImageError>;

    /// The caller's member row of an image a layer above already loaded. The
    /// default looks the whole image up again; implementations read only the row.
    async fn member(
        &self,
        image: &Image,
        project_id: Option<&str>,
    ) -> Result<Option<Member>, ImageError> {
        Ok(self
            .lookup(&image.id, project_id)
            .await?
            .and_then(|t| t.member))
    }

    /// The metadef namespace a request names, for the rules to judge; `None`
    /// when there is none. The default knows no namespaces: the core then
    /// answers for them (a 404 for the missing and the hidden alike).
    async fn metadef_namespace(&self, _name: &str) -> Result<Option<Namespace>, ImageError> {
        Ok(None)
    }
}

/// The rules in force, replaceable at run time (SIGHUP reloads the policy file).
#[derive(Clone)]
pub struct PolicyRules(Arc<RwLock<Arc<RuleSet>>>);

impl PolicyRules {
    pub fn new(rules: RuleSet) -> Self {
        PolicyRules(Arc::new(RwLock::new(Arc::new(rules))))
    }

    pub fn current(&self) -> Arc<RuleSet> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn replace(&self, rules: RuleSet) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rules);
    }
}

/// Enforces the rules on every request; the image it reads to judge travels on
/// in the request's [`LoadedImage`](crate::context::LoadedImage).
pub struct Policy {
    rules: PolicyRules,
    lookup: Arc<dyn ImageLookup>,
    /// Told of every refusal, by rule (the server's metrics).
    observer: Observer,
}

/// The policy layer.
pub type PolicyLayer = MiddlewareLayer<Policy>;

impl MiddlewareLayer<Policy> {
    pub fn new(rules: PolicyRules, lookup: Arc<dyn ImageLookup>) -> Self {
        Self::observed(rules, lookup, None)
    }

    /// The layer, reporting each refusal to `observer`.
    pub fn observed(rules: PolicyRules, lookup: Arc<dyn ImageLookup>, observer: Observer) -> Self {
        MiddlewareLayer::from_middleware(Policy {
            rules,
            lookup,
            observer,
        })
    }
}

impl Middleware for Policy {
    async fn call<S: ImageService>(
        &self,
        req: ImageRequest,
        next: Next<S>,
    ) -> Result<ImageResponse, ImageError> {
        let identity = req.ctx.identity()?.clone();
        let plan = Plan::of(&req.op);
        let rules = self.rules.current();
        let found = Found {
            lookup: &*self.lookup,
            loaded: &req.ctx.loaded,
        };
        let refused = |rule: &str| {
            if let Some(o) = &self.observer {
                o.policy_denied(rule)
            }
        };
        if let Some(image) = authorize(&rules, found, &identity, plan, &refused).await? {
            req.ctx.loaded.keep(image);
        }
        next.run(req).await
    }
}

fn creds_of(identity: &Identity) -> Creds {
    let mut attrs = HashMap::new();
    if let Some(p) = &identity.project_id {
        attrs.insert("project_id".to_string(), p.clone());
    }
    if let Some(u) = &identity.user_id {
        attrs.insert("user_id".to_string(), u.clone());
    }
    if let Some(s) = &identity.system_scope {
        attrs.insert("system_scope".to_string(), s.clone());
    }
    attrs.insert(
        "is_admin".to_string(),
        if identity.is_admin { "True" } else { "False" }.to_string(),
    );
    Creds {
        roles: identity.roles.clone(),
        attrs,
    }
}

fn image_target(t: &PolicyTarget) -> Target {
    let mut target = Target::new();
    target.insert("id".into(), t.image.id.clone());
    if let Some(owner) = &t.image.owner {
        target.insert("project_id".into(), owner.clone());
        target.insert("owner".into(), owner.clone());
    }
    target.insert("visibility".into(), t.image.visibility.as_str().into());
    if let Some(m) = &t.member {
        target.insert("member_id".into(), m.member_id.clone());
    }
    for (k, v) in &t.image.properties {
        target.entry(k.clone()).or_insert_with(|| v.clone());
    }
    target
}

/// Glance's visibility rule (`is_image_visible`): what a caller may know exists.
pub fn is_visible(identity: &Identity, t: &PolicyTarget) -> bool {
    if identity.is_admin {
        return true;
    }
    if t.image.owner.is_some() && t.image.owner == identity.project_id {
        return true;
    }
    match t.image.visibility {
        Visibility::Public | Visibility::Community => true,
        Visibility::Shared => t.member.is_some(),
        Visibility::Private => false,
    }
}

fn denied(action: &str) -> ImageError {
    ImageError::Forbidden(format!(
        "You are not authorized to complete {action} action."
    ))
}

/// What must be checked for an operation, taken out of the request so that no
/// borrow of its (non-`Sync`) data stream is held across the image lookup.
enum Plan {
    Create {
        owner: Option<String>,
        visibility: Option<Visibility>,
    },
    List,
    Image {
        id: String,
        check: ImageCheck,
    },
    /// A rule with no image target.
    Rule(&'static str),
    /// The legacy tasks API: `tasks_api_access`, then the task's own rule, if any.
    Tasks(Option<&'static str>),
    /// A cache API rule judged against the image when the caller can see it,
    /// else against nothing; a missing image is a 404 only when `required`
    /// (Glance's `queue_image_from_api` and `delete_cache_entry`).
    CacheImage {
        id: String,
        rule: &'static str,
        required: bool,
    },
    /// Any authenticated caller may.
    Allow,
    /// A metadef operation: its rules, judged on the namespace it names (or on
    /// the caller's project when it names none).
    Metadef {
        rules: Vec<&'static str>,
        namespace: Option<String>,
    },
}

enum ImageCheck {
    Get,
    Update(Vec<Change>),
    Download,
    Action(&'static str),
    /// `get_member`: a refusal reads as `NotFound`.
    ShowMember,
    ModifyMember(String),
}

impl Plan {
    fn of(op: &Operation) -> Plan {
        let check = match op {
            Operation::Create(new) => {
                return Plan::Create {
                    owner: new.owner.clone(),
                    visibility: new.visibility,
                };
            }
            Operation::List(_) => return Plan::List,
            Operation::StoresInfo { detail: true } => return Plan::Rule("stores_info_detail"),
            Operation::StoresInfo { detail: false }
            | Operation::Usage
            | Operation::Authenticate => return Plan::Allow,
            Operation::CreateTask(_) => return Plan::Tasks(Some("add_task")),
            Operation::ListTasks(_) => return Plan::Tasks(Some("get_tasks")),
            Operation::GetTask { .. } => return Plan::Tasks(Some("get_task")),
            Operation::TasksAccess => return Plan::Tasks(None),
            Operation::Cache(op) => {
                return match op {
                    crate::cache::CacheOp::Queue { id } | crate::cache::CacheOp::Delete { id } => {
                        Plan::CacheImage {
                            id: id.clone(),
                            rule: op.rule(),
                            required: matches!(op, crate::cache::CacheOp::Queue { .. }),
                        }
                    }
                    // Glance judges the rest, `list_cached_nodes` too, with no
                    // image target.
                    _ => Plan::Rule(op.rule()),
                };
            }
            Operation::Metadef(op) => {
                return Plan::Metadef {
                    rules: op
                        .rules()
                        .iter()
                        .copied()
                        .chain(op.content_rules())
                        .collect(),
                    namespace: op.namespace().map(str::to_string),
                };
            }
            // Stage has no rule of its own; Glance checks modify_image.
            Operation::Stage { .. } => ImageCheck::Action("modify_image"),
            Operation::Import { request, .. } => match request.method {
                crate::ImportMethod::CopyImage => ImageCheck::Action("copy_image"),
                _ => ImageCheck::Action("modify_image"),
            },
            // Refused as missing, like a get.
            Operation::Get { .. } | Operation::ImageTasks { .. } => ImageCheck::Get,
            Operation::Update { changes, .. } => ImageCheck::Update(changes.clone()),
            Operation::Delete { .. } => ImageCheck::Action("delete_image"),
            Operation::Upload { .. } => ImageCheck::Action("upload_image"),
            Operation::Download { .. } => ImageCheck::Download,
            Operation::AddTag { .. } | Operation::DeleteTag { .. } => {
                ImageCheck::Action("modify_image")
            }
            Operation::Deactivate { .. } => ImageCheck::Action("deactivate"),
            Operation::Reactivate { .. } => ImageCheck::Action("reactivate"),
            Operation::ListMembers { .. } => ImageCheck::Action("get_members"),
            Operation::GetMember { .. } => ImageCheck::ShowMember,
            Operation::AddMember { .. } => ImageCheck::Action("add_member"),
            Operation::DeleteMember { .. } => ImageCheck::Action("delete_member"),
            Operation::DeleteFromStore { .. } => ImageCheck::Action("delete_image_location"),
            Operation::AddLocation { .. } => ImageCheck::Action("add_image_location"),
            Operation::GetLocations { .. } => ImageCheck::Action("fetch_image_location"),
            Operation::UpdateMember { member_id, .. } => {
                ImageCheck::ModifyMember(member_id.clone())
            }
        };
        Plan::Image {
            id: op.image_id().unwrap_or_default().to_string(),
            check,
        }
    }
}

/// Where the image to judge comes from: the request, if a layer above loaded it
/// (a side trip of property protection's), else the lookup.
struct Found<'a> {
    lookup: &'a dyn ImageLookup,
    loaded: &'a crate::context::LoadedImage,
}

impl Found<'_> {
    async fn target(
        &self,
        id: &str,
        project: Option<&str>,
    ) -> Result<Option<PolicyTarget>, ImageError> {
        match self.loaded.get(id) {
            Some(image) => Ok(Some(PolicyTarget {
                member: self.lookup.member(&image, project).await?,
                image,
            })),
            None => self.lookup.lookup(id, project).await,
        }
    }
}

/// Checks the rules; answers the image it read to judge, if it read one.
async fn authorize(
    rules: &RuleSet,
    found: Found<'_>,
    identity: &Identity,
    plan: Plan,
    refused: &(dyn Fn(&str) + Sync),
) -> Result<Option<Arc<Image>>, ImageError> {
    let creds = creds_of(identity);
    let project = identity.project_id.as_deref();
    let enforce = |action: &str, target: &Target| {
        if rules.check(action, &creds, target) {
            Ok(())
        } else {
            refused(action);
            Err(denied(action))
        }
    };
    let (id, check) = match plan {
        Plan::Allow => return Ok(None),
        // Every Glance rule has `scope_types=['project']`: a system-scoped token
        // is refused by oslo.policy's scope check whatever its roles.
        Plan::Create { .. }
        | Plan::List
        | Plan::Image { .. }
        | Plan::Rule(_)
        | Plan::Tasks(_)
        | Plan::CacheImage { .. }
        | Plan::Metadef { .. }
            if identity.project_id.is_none() && identity.system_scope.is_some() =>
        {
            return Err(ImageError::Forbidden(
                "You are not authorized to perform the requested action: the token is not scoped to a project.".into(),
            ));
        }
        Plan::Rule(rule) => return enforce(rule, &Target::new()).map(|()| None),
        Plan::CacheImage { id, rule, required } => {
            let seen = found
                .target(&id, project)
                .await?
                .filter(|t| is_visible(identity, t))
                .filter(|t| rules.check("get_image", &creds, &image_target(t)));
            return match seen {
                Some(t) => enforce(rule, &image_target(&t)).map(|()| Some(t.image)),
                None if required => Err(crate::cache::image_not_found(&id)),
                None => enforce(rule, &Target::new()).map(|()| None),
            };
        }
        Plan::Tasks(rule) => {
            let target: Target = project
                .map(|p| ("project_id".to_string(), p.to_string()))
                .into_iter()
                .collect();
            enforce("tasks_api_access", &target)?;
            return match rule {
                Some(rule) => enforce(rule, &target).map(|()| None),
                None => Ok(None),
            };
        }
        Plan::Create {
            owner: requested,
            visibility,
        } => {
            let owner = requested.as_deref().or(project).unwrap_or_default();
            if !identity.is_admin && requested.is_some() && requested.as_deref() != project {
                return Err(ImageError::Forbidden(format!(
                    "You are not permitted to create images owned by '{owner}'."
                )));
            }
            let target: Target = [("project_id", owner), ("owner", owner)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            enforce("add_image", &target)?;
            return check_visibility_change(visibility, &enforce, &target).map(|()| None);
        }
        Plan::List => {
            let target: Target = project
                .map(|p| ("project_id".to_string(), p.to_string()))
                .into_iter()
                .collect();
            return enforce("get_images", &target).map(|()| None);
        }
        Plan::Metadef {
            rules: wanted,
            namespace,
        } => {
            return authorize_metadef(
                rules,
                found.lookup,
                identity,
                &creds,
                (wanted, namespace),
                refused,
            )
            .await
            .map(|()| None);
        }
        Plan::Image { id, check } => (id, check),
    };
    let t = found
        .target(&id, project)
        .await?
        .filter(|t| is_visible(identity, t))
        .ok_or_else(|| ImageError::not_found(&id))?;
    let target = image_target(&t);
    if !rules.check("get_image", &creds, &target) {
        refused("get_image");
        return Err(ImageError::not_found(&id));
    }
    match check {
        ImageCheck::Get => Ok(()),
        ImageCheck::Update(changes) => {
            enforce("modify_image", &target)?;
            check_changes(&changes, identity, &enforce, &target)
        }
        ImageCheck::Download => {
            if t.image.status == ImageStatus::Deactivated && !identity.is_admin {
                return Err(ImageError::Forbidden(
                    "The requested image has been deactivated. Image data download is forbidden."
                        .into(),
                ));
            }
            enforce("download_image", &target)
        }
        ImageCheck::Action(action) => enforce(action, &target),
        ImageCheck::ShowMember => {
            enforce("get_member", &target).map_err(|_| ImageError::not_found(&id))
        }
        ImageCheck::ModifyMember(member_id) => {
            let mut target = target;
            target.insert("member_id".into(), member_id);
            enforce("modify_member", &target)
        }
    }?;
    Ok(Some(t.image))
}

/// Glance's `MetadefAPIPolicy`: rules judged on the namespace's owner and
/// visibility; a namespace the caller may not read is missing (404), one they
/// may read but not change is forbidden (403).
async fn authorize_metadef(
    rules: &RuleSet,
    lookup: &dyn ImageLookup,
    identity: &Identity,
    creds: &Creds,
    (wanted, namespace): (Vec<&'static str>, Option<String>),
    refused: &(dyn Fn(&str) + Sync),
) -> Result<(), ImageError> {
    let project = identity.project_id.as_deref();
    let mut target: Target = project
        .map(|p| ("project_id".to_string(), p.to_string()))
        .into_iter()
        .collect();
    if let Some(name) = namespace {
        let Some(ns) = lookup.metadef_namespace(&name).await? else {
            // Nothing to judge: the core answers that it is missing.
            return Ok(());
        };
        if !ns.is_visible_to(project, identity.is_admin) {
            // The core hides it with the words Glance uses for this operation.
            return Ok(());
        }
        target = Target::new();
        if let Some(owner) = &ns.owner {
            target.insert("project_id".into(), owner.clone());
        }
        target.insert("visibility".into(), ns.visibility.as_str().into());
        if !rules.check("get_metadef_namespace", creds, &target) {
            refused("get_metadef_namespace");
            return Err(ImageError::NotFound(
                "The resource could not be found.".into(),
            ));
        }
    }
    for rule in wanted {
        if !rules.check(rule, creds, &target) {
            refused(rule);
            return Err(denied(rule));
        }
    }
    Ok(())
}

fn check_visibility_change(
    visibility: Option<Visibility>,
    enforce: &impl Fn(&str, &Target) -> Result<(), ImageError>,
    target: &Target,
) -> Result<(), ImageError> {
    match visibility {
        Some(Visibility::Public) => enforce("publicize_image", target),
        Some(Visibility::Community) => enforce("communitize_image", target),
        _ => Ok(()),
    }
}

fn check_changes(
    changes: &[Change],
    identity: &Identity,
    enforce: &impl Fn(&str, &Target) -> Result<(), ImageError>,
    target: &Target,
) -> Result<(), ImageError> {
    // Location changes have rules of their own (Glance's `update_locations`,
    // `delete_locations`); replacing with nothing is refused before any rule.
    for change in changes.iter().filter(|c| c.key == "locations") {
        let emptied = change.op == PatchOp::Replace
            && change
                .value
                .as_ref()
                .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty));
        match change.op {
            PatchOp::Remove => enforce("delete_image_location", target)?,
            _ if emptied => {}
            _ => enforce("set_image_location", target)?,
        }
    }
    for change in changes.iter().filter(|c| c.op != PatchOp::Remove) {
        match change.key.as_str() {
            "visibility" => {
                let v = change
                    .value
                    .as_ref()
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse().ok());
                check_visibility_change(v, enforce, target)?;
            }
            "owner" if !identity.is_admin => {
                let unchanged = change.value.as_ref().and_then(|v| v.as_str())
                    == target.get("owner").map(String::as_str);
                if !unchanged {
                    return Err(ImageError::Forbidden(
                        "Owner can't be updated by non admin.".into(),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemberStatus, RequestContext};
    use tower::{Layer, ServiceExt};

    struct OneImage(Option<PolicyTarget>);

    #[async_trait]
    impl ImageLookup for OneImage {
        async fn lookup(
            &self,
            _: &str,
            _: Option<&str>,
        ) -> Result<Option<PolicyTarget>, ImageError> {
            Ok(self.0.clone())
        }
    }

    fn ctx(project: &str, roles: &[&str]) -> RequestContext {
        RequestContext {
            identity: Some(Identity {
                project_id: Some(project.into()),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                is_admin: roles.contains(&"admin"),
                ..Identity::default()
            }),
            ..RequestContext::default()
        }
    }

    fn image(owner: &str, visibility: Visibility) -> Image {
        let mut i = Image::new("img".into(), chrono::Utc::now());
        i.owner = Some(owner.into());
        i.visibility = visibility;
        i
    }

    async fn run(
        target: Option<PolicyTarget>,
        ctx: RequestContext,
        op: Operation,
    ) -> Result<(), ImageError> {
        let core = tower::service_fn(|_req: ImageRequest| async {
            Ok::<_, ImageError>(ImageResponse::image(Image::new(
                "img".into(),
                chrono::Utc::now(),
            )))
        });
        let layer = PolicyLayer::new(
            PolicyRules::new(RuleSet::defaults()),
            Arc::new(OneImage(target)),
        );
        layer
            .layer(core)
            .oneshot(ImageRequest::new(ctx, op))
            .await
            .map(|_| ())
    }

    fn get() -> Operation {
        Operation::Get { id: "img".into() }
    }

    #[tokio::test]
    async fn hidden_images_are_404_and_visible_ones_403() {
        let private = PolicyTarget {
            image: image("p1", Visibility::Private).into(),
            member: None,
        };
        let member = ["member", "reader"];
        assert!(
            run(Some(private.clone()), ctx("p1", &member), get())
                .await
                .is_ok()
        );
        assert!(matches!(
            run(Some(private.clone()), ctx("p2", &member), get()).await,
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            run(
                Some(private.clone()),
                ctx("p2", &member),
                Operation::Delete { id: "img".into() }
            )
            .await,
            Err(ImageError::NotFound(_))
        ));
        let public = PolicyTarget {
            image: image("p1", Visibility::Public).into(),
            member: None,
        };
        assert!(
            run(Some(public.clone()), ctx("p2", &member), get())
                .await
                .is_ok()
        );
        assert!(matches!(
            run(
                Some(public),
                ctx("p2", &member),
                Operation::Delete { id: "img".into() }
            )
            .await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(matches!(
            run(None, ctx("p1", &member), get()).await,
            Err(ImageError::NotFound(_))
        ));
        assert!(
            run(
                Some(private),
                ctx("p9", &["admin"]),
                Operation::Delete { id: "img".into() }
            )
            .await
            .is_ok()
        );
    }

    #[tokio::test]
    async fn shared_images_are_seen_by_members_of_any_status() {
        let now = chrono::Utc::now();
        let row = Member {
            image_id: "img".into(),
            member_id: "p2".into(),
            status: MemberStatus::Pending,
            created_at: now,
            updated_at: now,
        };
        let shared = PolicyTarget {
            image: image("p1", Visibility::Shared).into(),
            member: Some(row),
        };
        assert!(
            run(Some(shared.clone()), ctx("p2", &["reader"]), get())
                .await
                .is_ok()
        );
        let status = Operation::UpdateMember {
            id: "img".into(),
            member_id: "p2".into(),
            status: MemberStatus::Accepted,
        };
        assert!(
            run(
                Some(shared.clone()),
                ctx("p2", &["member", "reader"]),
                status
            )
            .await
            .is_ok()
        );
        let by_owner = Operation::UpdateMember {
            id: "img".into(),
            member_id: "p2".into(),
            status: MemberStatus::Accepted,
        };
        assert!(matches!(
            run(Some(shared), ctx("p1", &["member", "reader"]), by_owner).await,
            Err(ImageError::Forbidden(_))
        ));
    }

    #[tokio::test]
    async fn publicizing_needs_admin_and_anonymous_is_401() {
        let new = crate::NewImage {
            visibility: Some(Visibility::Public),
            ..Default::default()
        };
        assert!(matches!(
            run(None, ctx("p1", &["member"]), Operation::Create(new.clone())).await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(
            run(None, ctx("p1", &["admin"]), Operation::Create(new))
                .await
                .is_ok()
        );
        let other_owner = crate::NewImage {
            owner: Some("p2".into()),
            ..Default::default()
        };
        assert!(matches!(
            run(None, ctx("p1", &["member"]), Operation::Create(other_owner)).await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(matches!(
            run(None, RequestContext::default(), get()).await,
            Err(ImageError::NotAuthenticated(_))
        ));
    }

    #[tokio::test]
    async fn deactivated_data_is_for_admins_only() {
        let mut img = image("p1", Visibility::Private);
        img.status = ImageStatus::Deactivated;
        let t = PolicyTarget {
            image: img.into(),
            member: None,
        };
        let dl = || Operation::Download {
            id: "img".into(),
            range: None,
        };
        assert!(matches!(
            run(Some(t.clone()), ctx("p1", &["member", "reader"]), dl()).await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(run(Some(t), ctx("p1", &["admin"]), dl()).await.is_ok());
    }

    #[tokio::test]
    async fn the_cache_api_is_for_admins_and_queueing_needs_the_image() {
        use crate::cache::CacheOp;
        let public = PolicyTarget {
            image: image("p1", Visibility::Public).into(),
            member: None,
        };
        let member = ["member", "reader"];
        let admin = ["admin", "member", "reader"];
        let queue = || Operation::Cache(CacheOp::Queue { id: "img".into() });
        // The owner may see the image, yet only an admin may queue it.
        assert!(matches!(
            run(Some(public.clone()), ctx("p1", &member), queue()).await,
            Err(ImageError::Forbidden(_))
        ));
        assert!(
            run(Some(public.clone()), ctx("p1", &admin), queue())
                .await
                .is_ok()
        );
        // No image: Glance's own text, whoever asks.
        match run(None, ctx("p1", &member), queue()).await {
            Err(ImageError::NotFound(m)) => assert_eq!(m, "Image img not found."),
            other => panic!("{other:?}"),
        }
        // An entry of a deleted image may still be deleted, by an admin only.
        let delete = || Operation::Cache(CacheOp::Delete { id: "img".into() });
        assert!(run(None, ctx("p1", &admin), delete()).await.is_ok());
        assert!(matches!(
            run(None, ctx("p1", &member), delete()).await,
            Err(ImageError::Forbidden(_))
        ));
        for op in [CacheOp::List, CacheOp::Clean, CacheOp::Prune] {
            assert!(matches!(
                run(None, ctx("p1", &member), Operation::Cache(op.clone())).await,
                Err(ImageError::Forbidden(_))
            ));
            assert!(
                run(None, ctx("p1", &admin), Operation::Cache(op))
                    .await
                    .is_ok()
            );
        }
    }
}
