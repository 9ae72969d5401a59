//! Task operations of the core: the legacy `/v2/tasks` API (create, list, show)
//! and an image's tasks. Creating a task records it `pending`; running it is the
//! task runner's business, not this module's.

use glance_layers::task::{Task, TaskStatus};
use glance_layers::{ImageError, ImageResponse, Operation, RequestContext};

use super::{ImageCore, Result, now};

/// Glance's `_is_task_visible`: admins see every task, others their project's
/// and tasks with no owner.
fn visible(ctx: &RequestContext, task: &Task) -> bool {
    ctx.is_admin() || task.owner.is_none() || task.owner.as_deref() == ctx.project_id()
}

impl ImageCore {
    /// Answers the task operations (`ImageTasks`, `CreateTask`, `ListTasks`,
    /// `GetTask`, `TasksAccess`); the policy layer has judged them already.
    pub(super) async fn task_operation(
        &self,
        ctx: &RequestContext,
        op: Operation,
    ) -> Result<ImageResponse> {
        match op {
            Operation::ImageTasks { id } => {
                // Only that it exists: whether the caller may see it was judged.
                self.image(ctx, &id).await?;
                let mut tasks = self.repo.tasks_of_image(&id).await?;
                tasks.retain(|t| visible(ctx, t));
                Ok(ImageResponse::Tasks(tasks))
            }
            Operation::CreateTask(new) => {
                let at = now();
                let task = Task {
                    id: uuid::Uuid::new_v4().to_string(),
                    image_id: new
                        .input
                        .get("image_id")
                        .and_then(|v| v.as_str())
                        // What the column holds; Glance fails on longer ones.
                        .filter(|s| s.len() <= 36)
                        .map(str::to_string),
                    kind: new.kind,
                    status: TaskStatus::Pending,
                    owner: ctx.project_id().map(str::to_string),
                    expires_at: None,
                    created_at: at,
                    updated_at: at,
                    deleted_at: None,
                    deleted: false,
                    request_id: Some(ctx.request_id.clone()).filter(|r| !r.is_empty()),
                    user_id: ctx.identity.as_ref().and_then(|i| i.user_id.clone()),
                    input: new.input,
                    result: None,
                    message: String::new(),
                };
                self.repo.insert_task(&task).await?;
                Ok(ImageResponse::Task(Box::new(task)))
            }
            Operation::ListTasks(q) => {
                let owner = if ctx.is_admin() {
                    None
                } else {
                    ctx.project_id()
                };
                Ok(ImageResponse::Tasks(self.repo.list_tasks(&q, owner).await?))
            }
            Operation::GetTask { id } => self
                .repo
                .get_task(&id)
                .await?
                .filter(|t| visible(ctx, t))
                .map(|t| ImageResponse::Task(Box::new(t)))
                .ok_or_else(|| ImageError::NotFound(format!("Could not find task {id}"))),
            Operation::TasksAccess => ctx.identity().map(|_| ImageResponse::Empty),
            op => Err(ImageError::internal(format!(
                "{} is not a task operation",
                op.name()
            ))),
        }
    }
}
