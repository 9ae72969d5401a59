//! Tasks: Glance's record of background work. An image import runs as a task of
//! type `api_image_import`; the legacy `/v2/tasks` API creates `import` tasks.

use chrono::{DateTime, Utc};

/// Where a task stands. `pending → processing → success | failure`, and
/// `pending → failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Pending,
    Processing,
    Success,
    Failure,
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Processing => "processing",
            TaskStatus::Success => "success",
            TaskStatus::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        Some(match s {
            "pending" => TaskStatus::Pending,
            "processing" => TaskStatus::Processing,
            "success" => TaskStatus::Success,
            "failure" => TaskStatus::Failure,
            _ => return None,
        })
    }

    /// Whether the task is over.
    pub fn is_final(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Failure)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A task record, with the columns Glance keeps (`tasks` and `task_info`).
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: String,
    /// `import`, `api_image_import` or `location_import`.
    pub kind: String,
    pub status: TaskStatus,
    pub owner: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub image_id: Option<String>,
    pub request_id: Option<String>,
    pub user_id: Option<String>,
    /// What the task was asked to do (for an import, the whole import request).
    pub input: serde_json::Value,
    /// `{"image_id": ...}` once it succeeded.
    pub result: Option<serde_json::Value>,
    pub message: String,
}

/// `POST /v2/tasks` after its body was checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub kind: String,
    pub input: serde_json::Value,
    /// For a legacy `import` task: the image to create, from
    /// `input.image_properties`, already checked against the image schema.
    pub image: Option<crate::NewImage>,
}

/// `GET /v2/tasks` after parsing.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    pub limit: u64,
    pub marker: Option<String>,
    pub sort_key: TaskSortKey,
    pub sort_dir: crate::request::SortDir,
    pub status: Option<TaskStatus>,
    pub kind: Option<String>,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            limit: 25,
            marker: None,
            sort_key: TaskSortKey::CreatedAt,
            sort_dir: crate::request::SortDir::Desc,
            status: None,
            kind: None,
        }
    }
}

/// The columns `GET /v2/tasks` sorts on (Glance's `sort_key` values: any column
/// of its `tasks` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSortKey {
    Id,
    Type,
    Status,
    CreatedAt,
    UpdatedAt,
    Owner,
    ExpiresAt,
    ImageId,
    RequestId,
    UserId,
    DeletedAt,
    Deleted,
}

impl TaskSortKey {
    pub fn parse(s: &str) -> Option<TaskSortKey> {
        Some(match s {
            "id" => TaskSortKey::Id,
            "type" => TaskSortKey::Type,
            "status" => TaskSortKey::Status,
            "created_at" => TaskSortKey::CreatedAt,
            "updated_at" => TaskSortKey::UpdatedAt,
            "owner" => TaskSortKey::Owner,
            "expires_at" => TaskSortKey::ExpiresAt,
            "image_id" => TaskSortKey::ImageId,
            "request_id" => TaskSortKey::RequestId,
            "user_id" => TaskSortKey::UserId,
            "deleted_at" => TaskSortKey::DeletedAt,
            "deleted" => TaskSortKey::Deleted,
            _ => return None,
        })
    }
}
