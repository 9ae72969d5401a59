//! Upload leases in SQL: taken with the `queued → saving` step, renewed while the
//! node lives, released with `saving → active` or `→ queued`, and claimed by
//! recovery when their node is gone. Every change that must not race is a
//! compare-and-swap on the lease's `boot_id` (its holder).

use std::collections::HashSet;

use glance_layers::{ImageError, ImageStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
};

use super::entity::lease::{self, Column};
use super::repo::transition_on;
use super::{Repo, db_error};

pub use super::entity::lease::Model as Lease;

type Result<T> = std::result::Result<T, ImageError>;

/// The kinds of work a lease covers: `PUT /file` (the image is `saving`),
/// `PUT /stage` (`uploading`), and an import task (`importing`, or `active` for a
/// copy), whose lease names the store it is writing to.
pub const UPLOAD: &str = "upload";
pub const STAGE: &str = "stage";
pub const IMPORT: &str = "import";

/// The status an image is in while a lease of `kind` runs, which an abort or
/// recovery takes it back from to `queued`.
pub fn leased_status(kind: &str) -> ImageStatus {
    match kind {
        STAGE => ImageStatus::Uploading,
        IMPORT => ImageStatus::Importing,
        _ => ImageStatus::Saving,
    }
}

impl Repo {
    /// `queued → saving` (or `uploading` for a stage lease) at `at` and the lease, in one transaction; `false` (and
    /// no lease) when the image was not `queued`. Recovery relies on it: a lease
    /// exists only for an upload that moved its image to `saving`, so settling a
    /// dead lease may requeue the image and remove the data under its final name.
    pub async fn begin_upload(
        &self,
        lease: &Lease,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        if !transition_on(
            &txn,
            &lease.image_id,
            ImageStatus::Queued,
            leased_status(&lease.kind),
            at,
        )
        .await?
        {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        lease::Entity::insert(lease::ActiveModel::from(lease.clone()))
            .exec_without_returning(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    pub async fn note_partial(&self, id: &str, boot_id: &str, partial: &str) -> Result<bool> {
        let res = lease::Entity::update_many()
            .col_expr(Column::Partial, Expr::value(partial))
            .filter(Column::Id.eq(id))
            .filter(Column::BootId.eq(boot_id))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected == 1)
    }

    /// Whether `(id, boot_id)` still holds its lease.
    pub async fn lease_held(&self, id: &str, boot_id: &str) -> Result<bool> {
        held_on(self.writer(), id, boot_id).await
    }

    /// `saving → queued` for an upload that gave up, and its lease released, or
    /// kept as a cleanup job (`abandoned`) when data may be left: `data_left`, or
    /// a partial the store noted. `false` when the lease is no longer this
    /// holder's (recovery claimed it and finishes the job).
    pub async fn abort_upload(&self, id: &str, boot_id: &str, data_left: bool) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let Some(held) = lease::Entity::find_by_id(id.to_string())
            .filter(Column::BootId.eq(boot_id))
            .one(&txn)
            .await
            .map_err(db_error)?
        else {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        };
        transition_on(
            &txn,
            &held.image_id,
            leased_status(&held.kind),
            ImageStatus::Queued,
            chrono::Utc::now(),
        )
        .await?;
        if data_left || held.partial.is_some() {
            lease::Entity::update_many()
                .col_expr(Column::Abandoned, Expr::value(true))
                .filter(Column::Id.eq(id))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        } else {
            lease::Entity::delete_by_id(id.to_string())
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Pushes the expiry of this node's leases in `ids` to `expires_at`.
    pub async fn renew_leases(
        &self,
        ids: &[String],
        boot_id: &str,
        expires_at: i64,
    ) -> Result<u64> {
        let mut renewed = 0;
        // Bounded IN lists: some databases cap the parameters of one statement.
        for chunk in ids.chunks(500) {
            let res = lease::Entity::update_many()
                .col_expr(Column::ExpiresAt, Expr::value(expires_at))
                .filter(Column::Id.is_in(chunk.iter().cloned()))
                .filter(Column::BootId.eq(boot_id))
                .exec(self.writer())
                .await
                .map_err(db_error)?;
            renewed += res.rows_affected;
        }
        Ok(renewed)
    }

    /// Leases that may have no live holder: abandoned ones, expired ones, and every
    /// lease of `node_id` (the caller keeps those of this life still in use).
    pub async fn candidate_leases(&self, node_id: &str, now: i64) -> Result<Vec<Lease>> {
        lease::Entity::find()
            .filter(
                Condition::any()
                    .add(Column::Abandoned.eq(true))
                    .add(Column::ExpiresAt.lt(now))
                    .add(Column::NodeId.eq(node_id)),
            )
            .all(self.writer())
            .await
            .map_err(db_error)
    }

    /// Takes `seen` over for recovery, unless its holder renewed or another node
    /// claimed it since it was read. The new holder is `(node_id, token)`.
    pub async fn claim_lease(
        &self,
        seen: &Lease,
        node_id: &str,
        token: &str,
        expires_at: i64,
    ) -> Result<bool> {
        let res = lease::Entity::update_many()
            .col_expr(Column::NodeId, Expr::value(node_id))
            .col_expr(Column::BootId, Expr::value(token))
            .col_expr(Column::ExpiresAt, Expr::value(expires_at))
            .filter(Column::Id.eq(&seen.id))
            .filter(Column::BootId.eq(&seen.boot_id))
            .filter(Column::ExpiresAt.eq(seen.expires_at))
            .exec(self.writer())
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected == 1)
    }

    /// After recovery removed a claimed lease's data: its image back to `queued`
    /// (unless the lease was abandoned: its image was requeued already and may be
    /// uploading again) and the lease gone. Returns whether the image was requeued.
    pub async fn settle_claimed(&self, claimed: &Lease, token: &str) -> Result<bool> {
        let txn = self.writer().begin().await.map_err(db_error)?;
        let requeued = !claimed.abandoned
            && transition_on(
                &txn,
                &claimed.image_id,
                leased_status(&claimed.kind),
                ImageStatus::Queued,
                chrono::Utc::now(),
            )
            .await?;
        lease::Entity::delete_many()
            .filter(Column::Id.eq(&claimed.id))
            .filter(Column::BootId.eq(token))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        txn.commit().await.map_err(db_error)?;
        Ok(requeued)
    }

    /// Which of `ids` have a lease.
    pub async fn existing_leases(&self, ids: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<String> = lease::Entity::find()
                .select_only()
                .column(Column::Id)
                .filter(Column::Id.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(self.writer())
                .await
                .map_err(db_error)?;
            found.extend(rows);
        }
        Ok(found)
    }
}

/// Whether `(id, boot_id)` holds its lease, read on `conn` (a transaction's
/// view, or the writer).
pub(crate) async fn held_on<C: ConnectionTrait>(conn: &C, id: &str, boot_id: &str) -> Result<bool> {
    let found = lease::Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Id.eq(id))
        .filter(Column::BootId.eq(boot_id))
        .into_tuple::<String>()
        .one(conn)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// Releases `(id, boot_id)`'s lease on `conn`; whether it was still held.
pub(crate) async fn release_on<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    boot_id: &str,
) -> Result<bool> {
    let res = lease::Entity::delete_many()
        .filter(Column::Id.eq(id))
        .filter(Column::BootId.eq(boot_id))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(res.rows_affected == 1)
}

/// A new lease of `kind`, taken now by `(node_id, boot_id)` until `expires_at`.
pub fn new_lease(
    kind: &str,
    image_id: &str,
    store_id: &str,
    node_id: &str,
    boot_id: &str,
    now: i64,
    expires_at: i64,
) -> Lease {
    Lease {
        id: uuid::Uuid::new_v4().simple().to_string(),
        kind: kind.into(),
        image_id: image_id.into(),
        store_id: store_id.into(),
        node_id: node_id.into(),
        boot_id: boot_id.into(),
        abandoned: false,
        partial: None,
        created_at: now,
        expires_at,
    }
}
