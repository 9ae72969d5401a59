//! What flows through the domain stack: one request type, one response type.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Utc};

use crate::cache::{CacheOp, CacheReply};
use crate::context::RequestContext;
use crate::data::{ByteRange, DataStream, ImageData};
use crate::image::{Image, Location, Member, MemberStatus, Visibility};
use crate::import::ImportRequest;
use crate::metadef::{MetadefOp, MetadefResponse};
use crate::patch::Change;
use crate::task::{NewTask, Task, TaskQuery};

/// A domain request: who asks, and for what.
#[derive(Debug)]
pub struct ImageRequest {
    pub ctx: RequestContext,
    pub op: Operation,
}

impl ImageRequest {
    pub fn new(ctx: RequestContext, op: Operation) -> Self {
        ImageRequest { ctx, op }
    }

    /// A request for the same caller with another operation, for layers that need to
    /// ask the inner service something on the way.
    pub fn derive(&self, op: Operation) -> Self {
        ImageRequest {
            ctx: self.ctx.clone(),
            op,
        }
    }
}

/// Every operation of the domain. Layers match the variants they care about and pass
/// the rest through.
#[derive(Debug)]
#[non_exhaustive]
pub enum Operation {
    Create(NewImage),
    Get {
        id: String,
    },
    List(ListQuery),
    Update {
        id: String,
        changes: Vec<Change>,
    },
    Delete {
        id: String,
    },
    /// `PUT /file`: the location layer streams it into a store under an upload
    /// lease taken from the image records ([`crate::uploads::UploadRecords`]).
    Upload {
        id: String,
        data: ImageData,
        /// `X-Image-Meta-Store`: the store to write to; `None` is the default one.
        store: Option<String>,
    },
    Download {
        id: String,
        range: Option<ByteRange>,
    },
    AddTag {
        id: String,
        tag: String,
    },
    DeleteTag {
        id: String,
        tag: String,
    },
    Deactivate {
        id: String,
    },
    Reactivate {
        id: String,
    },
    ListMembers {
        id: String,
    },
    AddMember {
        id: String,
        member_id: String,
    },
    GetMember {
        id: String,
        member_id: String,
    },
    UpdateMember {
        id: String,
        member_id: String,
        status: MemberStatus,
    },
    DeleteMember {
        id: String,
        member_id: String,
    },
    /// `DELETE /v2/stores/{store_id}/{image_id}`: drop one replica of the data.
    DeleteFromStore {
        id: String,
        store_id: String,
    },
    /// `PUT /v2/images/{id}/stage`: the data goes to the staging area, where an
    /// import with `glance-direct` takes it from.
    Stage {
        id: String,
        data: ImageData,
    },
    /// `POST /v2/images/{id}/import`: starts an import task and answers at once.
    Import {
        id: String,
        request: ImportRequest,
    },
    /// `POST /v2/images/{id}/locations` (v2.17): data already in a store becomes
    /// the image's, through a `location_import` task that checks the location
    /// and hashes the data.
    AddLocation {
        id: String,
        url: String,
        /// Hashes the data must have (both or neither, the API checked).
        validation: Option<crate::import::ValidationData>,
    },
    /// `GET /v2/images/{id}/locations` (v2.17).
    GetLocations {
        id: String,
    },
    /// `GET /v2/images/{id}/tasks`: the image's import tasks.
    ImageTasks {
        id: String,
    },
    /// `POST /v2/tasks` (legacy).
    CreateTask(NewTask),
    /// `GET /v2/tasks` (legacy).
    ListTasks(TaskQuery),
    /// `GET /v2/tasks/{id}` (legacy).
    GetTask {
        id: String,
    },
    /// Only that the caller may use the legacy tasks API (`tasks_api_access`):
    /// what Glance checks before it reads a tasks request, and all that
    /// `DELETE /v2/tasks/{id}` checks before its 405.
    TasksAccess,
    /// `GET /v2/info/stores[/detail]`. The location layer describes its stores;
    /// without it there are none.
    StoresInfo {
        detail: bool,
    },
    /// `GET /v2/info/usage`. The quota layer reports limits and usage; without it
    /// nothing is limited and the report is empty, as Glance's without unified
    /// limits.
    Usage,
    /// Only that the caller is known: for what the API serves by itself
    /// (schemas, `/v2/info/import`).
    Authenticate,
    /// The cache API (`/v2/cache...`). The cache layer answers it; without one
    /// the core says caching is not supported at this site.
    Cache(CacheOp),
    /// `/v2/metadefs/...`: metadata definitions (see [`crate::metadef`]).
    Metadef(MetadefOp),
}

impl Operation {
    /// The policy-style name of the operation, for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Operation::Create(_) => "add_image",
            Operation::Get { .. } => "get_image",
            Operation::List(_) => "get_images",
            Operation::Update { .. } => "modify_image",
            Operation::Delete { .. } => "delete_image",
            Operation::Upload { .. } => "upload_image",
            Operation::Download { .. } => "download_image",
            Operation::AddTag { .. } => "add_tag",
            Operation::DeleteTag { .. } => "delete_tag",
            Operation::Deactivate { .. } => "deactivate",
            Operation::Reactivate { .. } => "reactivate",
            Operation::ListMembers { .. } => "get_members",
            Operation::AddMember { .. } => "add_member",
            Operation::GetMember { .. } => "get_member",
            Operation::UpdateMember { .. } => "modify_member",
            Operation::DeleteMember { .. } => "delete_member",
            Operation::DeleteFromStore { .. } => "delete_image_location",
            Operation::Stage { .. } => "stage_image",
            Operation::Import { .. } => "import_image",
            Operation::ImageTasks { .. } => "get_image_tasks",
            Operation::AddLocation { .. } => "add_image_location",
            Operation::GetLocations { .. } => "fetch_image_location",
            Operation::CreateTask(_) => "add_task",
            Operation::ListTasks(_) => "get_tasks",
            Operation::GetTask { .. } => "get_task",
            Operation::TasksAccess => "tasks_api_access",
            Operation::StoresInfo { detail: false } => "stores_info",
            Operation::StoresInfo { detail: true } => "stores_info_detail",
            Operation::Usage => "get_usage",
            Operation::Authenticate => "authenticate",
            Operation::Cache(op) => op.rule(),
            Operation::Metadef(op) => op.name(),
        }
    }

    /// The image this operation targets, if it targets one.
    pub fn image_id(&self) -> Option<&str> {
        match self {
            Operation::Create(_)
            | Operation::List(_)
            | Operation::StoresInfo { .. }
            | Operation::Usage
            | Operation::Authenticate
            | Operation::Metadef(_)
            | Operation::CreateTask(_)
            | Operation::ListTasks(_)
            | Operation::GetTask { .. }
            | Operation::TasksAccess => None,
            Operation::Get { id }
            | Operation::Update { id, .. }
            | Operation::Delete { id }
            | Operation::Upload { id, .. }
            | Operation::Download { id, .. }
            | Operation::AddTag { id, .. }
            | Operation::DeleteTag { id, .. }
            | Operation::Deactivate { id }
            | Operation::Reactivate { id }
            | Operation::ListMembers { id }
            | Operation::AddMember { id, .. }
            | Operation::GetMember { id, .. }
            | Operation::UpdateMember { id, .. }
            | Operation::DeleteMember { id, .. }
            | Operation::DeleteFromStore { id, .. }
            | Operation::Stage { id, .. }
            | Operation::Import { id, .. }
            | Operation::AddLocation { id, .. }
            | Operation::GetLocations { id }
            | Operation::ImageTasks { id } => Some(id),
            Operation::Cache(op) => op.image_id(),
        }
    }
}

/// The attributes of an image to create, already checked against the schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewImage {
    pub id: Option<String>,
    pub name: Option<String>,
    pub visibility: Option<Visibility>,
    pub protected: Option<bool>,
    pub os_hidden: Option<bool>,
    pub min_disk: Option<i64>,
    pub min_ram: Option<i64>,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    pub properties: BTreeMap<String, String>,
}

/// `GET /v2/images` after parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub limit: u64,
    pub marker: Option<String>,
    /// In order of precedence; `created_at` and `id` tie-breakers are already appended.
    pub sort: Vec<(SortKey, SortDir)>,
    pub filters: Vec<Filter>,
    /// `None`: Glance's default scoping (public, own, accepted shares; community only
    /// if owned).
    pub visibility: Option<VisibilityFilter>,
    pub member_status: MemberStatusFilter,
    /// All of these tags (AND).
    pub tags: Vec<String>,
    /// `os_hidden=true` lists only hidden images; the default lists only visible ones.
    pub os_hidden: bool,
    /// Exact matches on extra properties.
    pub properties: Vec<(String, String)>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: 25,
            marker: None,
            sort: vec![
                (SortKey::CreatedAt, SortDir::Desc),
                (SortKey::Id, SortDir::Desc),
            ],
            filters: Vec::new(),
            visibility: None,
            member_status: MemberStatusFilter::Only(MemberStatus::Accepted),
            tags: Vec::new(),
            os_hidden: false,
            properties: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityFilter {
    Only(Visibility),
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatusFilter {
    Only(MemberStatus),
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Size,
    Id,
    CreatedAt,
    UpdatedAt,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s {
            "name" => SortKey::Name,
            "status" => SortKey::Status,
            "container_format" => SortKey::ContainerFormat,
            "disk_format" => SortKey::DiskFormat,
            "size" => SortKey::Size,
            "id" => SortKey::Id,
            "created_at" => SortKey::CreatedAt,
            "updated_at" => SortKey::UpdatedAt,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    Asc,
    Desc,
}

/// One filter on a base attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: FilterField,
    pub op: CompareOp,
    /// One value, or several for `in:`.
    pub values: Vec<FilterValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterField {
    Id,
    Name,
    Status,
    ContainerFormat,
    DiskFormat,
    Owner,
    Checksum,
    OsHashValue,
    Size,
    CreatedAt,
    UpdatedAt,
    Protected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Neq,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
    Bool(bool),
}

/// The data of an upload once it is safely stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredData {
    pub location: Location,
    pub size: u64,
    /// MD5, hex.
    pub checksum: String,
    pub os_hash_algo: String,
    pub os_hash_value: String,
    /// What format inspection found the guest disk's size to be, if it did.
    pub virtual_size: Option<u64>,
}

/// A page of images, in the requested order.
#[derive(Debug, Clone)]
pub struct ImagePage {
    pub images: Vec<Image>,
}

/// Image bytes on their way to the client.
pub struct ImageDownload {
    pub image: Box<Image>,
    pub data: DataStream,
    /// The part served, when a range was asked for.
    pub range: Option<Range<u64>>,
    /// Bytes in `data`.
    pub length: u64,
}

impl std::fmt::Debug for ImageDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageDownload")
            .field("image", &self.image.id)
            .field("range", &self.range)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// What a domain operation produced.
#[derive(Debug)]
#[non_exhaustive]
pub enum ImageResponse {
    /// The image after the operation (also for delete, upload, tags, actions).
    Image(Box<Image>),
    Images(ImagePage),
    Member(Member),
    Members(Vec<Member>),
    /// Image data to stream.
    Data(ImageDownload),
    /// A download of an image that has no data.
    NoData(Box<Image>),
    Stores(Vec<StoreInfo>),
    Usage(Vec<UsageEntry>),
    Task(Box<Task>),
    Tasks(Vec<Task>),
    /// What the cache API answered.
    Cache(CacheReply),
    /// Nothing to return: the operation only had to be allowed.
    Empty,
    /// What a metadef operation produced.
    Metadef(MetadefResponse),
}

/// One enabled store, as `/v2/info/stores` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreInfo {
    pub id: String,
    pub kind: &'static str,
    pub default: bool,
    pub read_only: bool,
    pub weight: i64,
    pub description: Option<String>,
    /// Backend settings shown by `/v2/info/stores/detail`.
    pub properties: serde_json::Value,
}

/// One line of `/v2/info/usage`: a limit and its use (sizes in MiB, -1 unlimited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEntry {
    pub resource: &'static str,
    pub limit: i64,
    pub usage: i64,
}

impl ImageResponse {
    pub fn image(image: Image) -> Self {
        ImageResponse::Image(Box::new(image))
    }

    /// The image this response is about, when there is one.
    pub fn as_image(&self) -> Option<&Image> {
        match self {
            ImageResponse::Image(i) | ImageResponse::NoData(i) => Some(i),
            ImageResponse::Data(d) => Some(&d.image),
            _ => None,
        }
    }

    /// Unwraps an image response, or reports the inner service broke the contract.
    pub fn into_image(self) -> Result<Image, crate::ImageError> {
        match self {
            ImageResponse::Image(i) => Ok(*i),
            other => Err(crate::ImageError::internal(format!(
                "expected an image response, got {other:?}"
            ))),
        }
    }
}
