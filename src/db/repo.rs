//! Image records in SQL: load, save, and the compare-and-swap status updates the
//! upload state machine relies on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use glance_layers::image::Location;
use glance_layers::import::records::IMPORTING_TO_STORES;
use glance_layers::quota::Usage;
use glance_layers::{Image, ImageError, ImageStatus, Member, MemberStatus, StoredData};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};

use super::entity::{image, location, member, property, tag};
use super::{db_error, from_micros, to_micros};

type Result<T> = std::result::Result<T, ImageError>;

/// How [`Repo::finish_upload`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Active, and nothing else of the image changed since the upload began.
    Untouched,
    /// Active; the image's metadata changed while the data flowed.
    Changed,
    /// Nothing changed: the lease is no longer this holder's, or the image left
    /// `saving` (deleted, taken back by recovery).
    NotHeld,
}

/// Queries over the image tables. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Repo {
    db: DatabaseConnection,
    /// Where writes go: `db` itself, or SQLite's single writer connection.
    writer: DatabaseConnection,
}

fn image_from_row(row: image::Model) -> Image {
    Image {
        status: row.status.parse().unwrap_or(ImageStatus::Killed),
        visibility: row
            .visibility
            .parse()
            .unwrap_or(glance_layers::Visibility::Private),
        id: row.id,
        name: row.name,
        protected: row.protected,
        os_hidden: row.os_hidden,
        checksum: row.checksum,
        os_hash_algo: row.os_hash_algo,
        os_hash_value: row.os_hash_value,
        min_disk: row.min_disk,
        min_ram: row.min_ram,
        size: row.size,
        virtual_size: row.virtual_size,
        container_format: row.container_format,
        disk_format: row.disk_format,
        owner: row.owner,
        created_at: from_micros(row.created_at),
        updated_at: from_micros(row.updated_at),
        deleted_at: row.deleted_at.map(from_micros),
        tags: BTreeSet::new(),
        properties: BTreeMap::new(),
        locations: Vec::new(),
    }
}

fn member_from_row(row: member::Model) -> Member {
    Member {
        image_id: row.image_id,
        member_id: row.member,
        status: row.status.parse().unwrap_or(MemberStatus::Pending),
        created_at: from_micros(row.created_at),
        updated_at: from_micros(row.updated_at),
    }
}

impl Repo {
    pub fn new(db: DatabaseConnection) -> Self {
        Repo {
            writer: db.clone(),
            db,
        }
    }

    /// Sends every write through `writer` (see [`super::connect_writer`]).
    pub fn with_writer(mut self, writer: DatabaseConnection) -> Self {
        self.writer = writer;
        self
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Where writes go (SQLite's single writer, or the pool).
    pub(super) fn writer(&self) -> &DatabaseConnection {
        &self.writer
    }

    /// Inserts a new image; `false` when its id was ever used (deleted images keep
    /// their rows, so Glance's "never reuse an id" is the primary key's).
    pub async fn insert(&self, img: &Image) -> Result<bool> {
        let row = image::ActiveModel {
            id: Set(img.id.clone()),
            name: Set(img.name.clone()),
            status: Set(img.status.as_str().into()),
            visibility: Set(img.visibility.as_str().into()),
            protected: Set(img.protected),
            os_hidden: Set(img.os_hidden),
            checksum: Set(img.checksum.clone()),
            os_hash_algo: Set(img.os_hash_algo.clone()),
            os_hash_value: Set(img.os_hash_value.clone()),
            min_disk: Set(img.min_disk),
            min_ram: Set(img.min_ram),
            size: Set(img.size),
            virtual_size: Set(img.virtual_size),
            container_format: Set(img.container_format.clone()),
            disk_format: Set(img.disk_format.clone()),
            owner: Set(img.owner.clone()),
            created_at: Set(to_micros(img.created_at)),
            updated_at: Set(to_micros(img.updated_at)),
            deleted: Set(false),
            deleted_at: Set(None),
        };
        let inserted = |e: Option<sea_orm::DbErr>| match e {
            Some(e) if super::is_duplicate(&e) => Ok(false),
            Some(e) => Err(db_error(e)),
            None => Ok(true),
        };
        // A bare image is one row: no transaction needed around one statement.
        if img.properties.is_empty() && img.tags.is_empty() {
            let res = image::Entity::insert(row)
                .exec_without_returning(&self.writer)
                .await;
            return inserted(res.err());
        }
        let txn = self.writer.begin().await.map_err(db_error)?;
        let res = image::Entity::insert(row)
            .exec_without_returning(&txn)
            .await;
        if !inserted(res.err())? {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        insert_properties(&txn, &img.id, img.properties.iter()).await?;
        insert_tags(&txn, &img.id, img.tags.iter()).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// The live (not deleted) image with this id, with its properties, tags and
    /// locations, in one statement: the image row joined to the union of its
    /// children, one result row per child (or one row for a bare image).
    pub async fn get(&self, id: &str) -> Result<Option<Image>> {
        let backend = self.db.get_database_backend();
        let p = |n: usize| placeholders(backend, n, 1);
        let sql = format!(
            "SELECT i.*, c.c_kind, c.c_key, c.c_value FROM images i LEFT JOIN (\
             SELECT image_id, 'p' AS c_kind, name AS c_key, value AS c_value, 0 AS c_ord \
             FROM image_properties WHERE image_id = {} \
             UNION ALL SELECT image_id, 't', value, NULL, 0 FROM image_tags WHERE image_id = {} \
             UNION ALL SELECT image_id, 'l', url, metadata, id FROM image_locations \
             WHERE image_id = {} AND status = 'active'\
             ) c ON c.image_id = i.id WHERE i.id = {} AND i.deleted = {} \
             ORDER BY c.c_kind, c.c_ord",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5)
        );
        let values: [sea_orm::Value; 5] =
            [id.into(), id.into(), id.into(), id.into(), false.into()];
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await
            .map_err(db_error)?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let mut img = image_from_row(image::Model::from_query_result(first, "").map_err(db_error)?);
        for row in &rows {
            add_child(&mut img, row)?;
        }
        Ok(Some(img))
    }

    /// Whether the image exists but is deleted.
    pub async fn is_deleted(&self, id: &str) -> Result<bool> {
        Ok(image::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_error)?
            .is_some_and(|r| r.deleted))
    }

    /// Loads the properties, tags and locations of many images in one statement
    /// (per 5000 images).
    pub(crate) async fn hydrate(&self, rows: Vec<image::Model>) -> Result<Vec<Image>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut images: Vec<Image> = rows.into_iter().map(image_from_row).collect();
        let index: HashMap<String, usize> = images
            .iter()
            .enumerate()
            .map(|(i, img)| (img.id.clone(), i))
            .collect();
        // A page's ids bound three times stay far below every backend's limit on
        // bound values (SQLite 32766, PostgreSQL and MySQL 65535) in chunks of 5000.
        let ids: Vec<&str> = images.iter().map(|i| i.id.as_str()).collect();
        let mut children = Vec::new();
        for chunk in ids.chunks(5000) {
            let backend = self.db.get_database_backend();
            let list = |first: usize| placeholders(backend, first, chunk.len());
            let n = chunk.len();
            let sql = format!(
                "SELECT image_id AS c_image, 'p' AS c_kind, name AS c_key, value AS c_value, \
                 0 AS c_ord FROM image_properties WHERE image_id IN ({}) \
                 UNION ALL SELECT image_id, 't', value, NULL, 0 FROM image_tags \
                 WHERE image_id IN ({}) \
                 UNION ALL SELECT image_id, 'l', url, metadata, id FROM image_locations \
                 WHERE image_id IN ({}) AND status = 'active' \
                 ORDER BY c_kind, c_ord",
                list(1),
                list(n + 1),
                list(2 * n + 1),
            );
            let values: Vec<sea_orm::Value> = (0..3)
                .flat_map(|_| chunk.iter().map(|id| sea_orm::Value::from(*id)))
                .collect();
            children.extend(
                self.db
                    .query_all_raw(sea_orm::Statement::from_sql_and_values(
                        backend, sql, values,
                    ))
                    .await
                    .map_err(db_error)?,
            );
        }
        for row in &children {
            let id: String = row.try_get("", "c_image").map_err(db_error)?;
            if let Some(&i) = index.get(&id) {
                add_child(&mut images[i], row)?;
            }
        }
        Ok(images)
    }

    /// Saves what a PATCH (or a tag change) may alter, if the image is still in the
    /// status it was read in. Returns false when it moved on meanwhile.
    pub async fn update(&self, before: &Image, after: &Image) -> Result<bool> {
        let txn = self.writer.begin().await.map_err(db_error)?;
        let res = image::Entity::update_many()
            .col_expr(image::Column::Name, Expr::value(after.name.clone()))
            .col_expr(
                image::Column::Visibility,
                Expr::value(after.visibility.as_str()),
            )
            .col_expr(image::Column::Protected, Expr::value(after.protected))
            .col_expr(image::Column::OsHidden, Expr::value(after.os_hidden))
            .col_expr(image::Column::MinDisk, Expr::value(after.min_disk))
            .col_expr(image::Column::MinRam, Expr::value(after.min_ram))
            .col_expr(
                image::Column::ContainerFormat,
                Expr::value(after.container_format.clone()),
            )
            .col_expr(
                image::Column::DiskFormat,
                Expr::value(after.disk_format.clone()),
            )
            .col_expr(image::Column::Owner, Expr::value(after.owner.clone()))
            .col_expr(image::Column::Status, Expr::value(after.status.as_str()))
            .col_expr(
                image::Column::UpdatedAt,
                Expr::value(to_micros(after.updated_at)),
            )
            .filter(image::Column::Id.eq(&before.id))
            .filter(image::Column::Status.eq(before.status.as_str()))
            .filter(image::Column::Deleted.eq(false))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if res.rows_affected != 1 {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        // Changed keys are deleted and inserted again rather than upserted: on
        // MySQL's case-insensitive collation an upsert of `foo` would overwrite
        // `Foo`'s value.
        let gone: Vec<String> = before
            .properties
            .iter()
            .filter(|(k, v)| after.properties.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        if !gone.is_empty() {
            property::Entity::delete_many()
                .filter(property::Column::ImageId.eq(&before.id))
                .filter(property::Column::Name.is_in(gone))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        let set = after
            .properties
            .iter()
            .filter(|(k, v)| before.properties.get(*k) != Some(*v));
        insert_properties(&txn, &before.id, set).await?;
        let removed_tags: Vec<String> = before.tags.difference(&after.tags).cloned().collect();
        if !removed_tags.is_empty() {
            tag::Entity::delete_many()
                .filter(tag::Column::ImageId.eq(&before.id))
                .filter(tag::Column::Value.is_in(removed_tags))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        insert_tags(&txn, &before.id, after.tags.difference(&before.tags)).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// `from → to` if the image is in `from`; returns whether it happened. Going back
    /// to `queued` clears the data attributes, as Glance does.
    pub async fn transition(
        &self,
        id: &str,
        from: ImageStatus,
        to: ImageStatus,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool> {
        transition_on(&self.writer, id, from, to, at).await
    }

    /// `saving → active` with the stored data's attributes and location, and the
    /// upload's lease released, atomically; the lease must still be `(lease_id,
    /// boot_id)`'s, or nothing changes (recovery took the upload back).
    pub async fn finish_upload(
        &self,
        id: &str,
        stored: &StoredData,
        virtual_size: Option<i64>,
        lease: (&str, &str),
        begun_at: chrono::DateTime<chrono::Utc>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Finish> {
        let now = to_micros(at);
        let txn = self.writer.begin().await.map_err(db_error)?;
        if !super::leases::release_on(&txn, lease.0, lease.1).await? {
            txn.rollback().await.map_err(db_error)?;
            return Ok(Finish::NotHeld);
        }
        let activate = || {
            with_data_attributes(image::Entity::update_many(), stored, virtual_size)
                .col_expr(
                    image::Column::Status,
                    Expr::value(ImageStatus::Active.as_str()),
                )
                .col_expr(image::Column::UpdatedAt, Expr::value(now))
                .filter(image::Column::Id.eq(id))
                .filter(image::Column::Status.eq(ImageStatus::Saving.as_str()))
                .filter(image::Column::Deleted.eq(false))
        };
        // Untouched since `begin` (the usual case): the caller knows the record.
        // Else a PATCH came in while the data flowed, and the caller reads it back.
        let untouched = activate()
            .filter(image::Column::UpdatedAt.eq(to_micros(begun_at)))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        let finish = if untouched.rows_affected == 1 {
            Finish::Untouched
        } else if activate().exec(&txn).await.map_err(db_error)?.rows_affected == 1 {
            Finish::Changed
        } else {
            txn.rollback().await.map_err(db_error)?;
            return Ok(Finish::NotHeld);
        };
        insert_location(&txn, id, &stored.location, now).await?;
        txn.commit().await.map_err(db_error)?;
        Ok(finish)
    }

    /// Forgets one active location of an image; returns whether there was one.
    pub async fn remove_location(&self, image_id: &str, url: &str) -> Result<bool> {
        let res = location::Entity::update_many()
            .col_expr(location::Column::Status, Expr::value("deleted"))
            .filter(location::Column::ImageId.eq(image_id))
            .filter(location::Column::Url.eq(url))
            .filter(location::Column::Status.eq("active"))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected > 0)
    }

    /// Replaces the image's locations with `after`'s, and saves the status, size,
    /// checksum and hash that come with them, if the image is still in
    /// `before`'s status and was not updated since. Returns whether it was.
    pub async fn save_locations(&self, before: &Image, after: &Image) -> Result<bool> {
        let txn = self.writer.begin().await.map_err(db_error)?;
        let res = image::Entity::update_many()
            .col_expr(image::Column::Status, Expr::value(after.status.as_str()))
            .col_expr(image::Column::Size, Expr::value(after.size))
            .col_expr(image::Column::Checksum, Expr::value(after.checksum.clone()))
            .col_expr(
                image::Column::OsHashAlgo,
                Expr::value(after.os_hash_algo.clone()),
            )
            .col_expr(
                image::Column::OsHashValue,
                Expr::value(after.os_hash_value.clone()),
            )
            .col_expr(
                image::Column::UpdatedAt,
                Expr::value(to_micros(after.updated_at)),
            )
            .filter(image::Column::Id.eq(&before.id))
            .filter(image::Column::Status.eq(before.status.as_str()))
            .filter(image::Column::UpdatedAt.eq(to_micros(before.updated_at)))
            .filter(image::Column::Deleted.eq(false))
            .exec(&txn)
            .await
            .map_err(db_error)?;
        if res.rows_affected != 1 {
            txn.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        if before.locations != after.locations {
            // Written again in their new order (locations are read in id order).
            location::Entity::update_many()
                .col_expr(location::Column::Status, Expr::value("deleted"))
                .filter(location::Column::ImageId.eq(&before.id))
                .filter(location::Column::Status.eq("active"))
                .exec(&txn)
                .await
                .map_err(db_error)?;
            let at = to_micros(after.updated_at);
            for loc in &after.locations {
                insert_location(&txn, &before.id, loc, at).await?;
            }
        }
        txn.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Marks the image deleted if it is still in `from`; returns whether it was.
    /// `has_locations: false` (the caller read none) saves the statement that
    /// retires locations, and with it the transaction.
    pub async fn soft_delete(
        &self,
        id: &str,
        from: ImageStatus,
        at: chrono::DateTime<chrono::Utc>,
        has_locations: bool,
    ) -> Result<bool> {
        let mark = image::Entity::update_many()
            .col_expr(
                image::Column::Status,
                Expr::value(ImageStatus::Deleted.as_str()),
            )
            .col_expr(image::Column::Deleted, Expr::value(true))
            .col_expr(image::Column::DeletedAt, Expr::value(to_micros(at)))
            .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)))
            .filter(image::Column::Id.eq(id))
            .filter(image::Column::Status.eq(from.as_str()))
            .filter(image::Column::Deleted.eq(false));
        if !has_locations {
            let res = mark.exec(&self.writer).await.map_err(db_error)?;
            return Ok(res.rows_affected == 1);
        }
        let txn = self.writer.begin().await.map_err(db_error)?;
        let res = mark.exec(&txn).await.map_err(db_error)?;
        if res.rows_affected == 1 {
            location::Entity::update_many()
                .col_expr(location::Column::Status, Expr::value("deleted"))
                .filter(location::Column::ImageId.eq(id))
                .exec(&txn)
                .await
                .map_err(db_error)?;
        }
        txn.commit().await.map_err(db_error)?;
        Ok(res.rows_affected == 1)
    }

    pub async fn members(&self, image_id: &str) -> Result<Vec<Member>> {
        Ok(member::Entity::find()
            .filter(member::Column::ImageId.eq(image_id))
            .order_by_asc(member::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(member_from_row)
            .collect())
    }

    pub async fn member(&self, image_id: &str, member_id: &str) -> Result<Option<Member>> {
        Ok(
            member::Entity::find_by_id((image_id.to_string(), member_id.to_string()))
                .one(&self.db)
                .await
                .map_err(db_error)?
                .map(member_from_row),
        )
    }

    pub async fn member_count(&self, image_id: &str) -> Result<u64> {
        count(
            member::Entity::find().filter(member::Column::ImageId.eq(image_id)),
            &self.db,
        )
        .await
    }

    /// Adds a member; `false` when the project is a member already.
    pub async fn insert_member(&self, m: &Member) -> Result<bool> {
        let inserted = member::Entity::insert(member::ActiveModel {
            image_id: Set(m.image_id.clone()),
            member: Set(m.member_id.clone()),
            status: Set(m.status.as_str().into()),
            created_at: Set(to_micros(m.created_at)),
            updated_at: Set(to_micros(m.updated_at)),
        })
        .exec_without_returning(&self.writer)
        .await;
        match inserted {
            Err(e) if super::is_duplicate(&e) => Ok(false),
            other => other.map(|_| true).map_err(db_error),
        }
    }

    pub async fn update_member(&self, m: &Member) -> Result<bool> {
        let res = member::Entity::update_many()
            .col_expr(member::Column::Status, Expr::value(m.status.as_str()))
            .col_expr(
                member::Column::UpdatedAt,
                Expr::value(to_micros(m.updated_at)),
            )
            .filter(member::Column::ImageId.eq(&m.image_id))
            .filter(member::Column::Member.eq(&m.member_id))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected == 1)
    }

    pub async fn delete_member(&self, image_id: &str, member_id: &str) -> Result<bool> {
        let res = member::Entity::delete_many()
            .filter(member::Column::ImageId.eq(image_id))
            .filter(member::Column::Member.eq(member_id))
            .exec(&self.writer)
            .await
            .map_err(db_error)?;
        Ok(res.rows_affected == 1)
    }

    /// A project's image count and stored bytes, counting what Glance counts.
    pub async fn usage(&self, project_id: &str) -> Result<Usage> {
        let live = || {
            image::Entity::find()
                .filter(image::Column::Owner.eq(project_id))
                .filter(image::Column::Deleted.eq(false))
                .filter(image::Column::Status.ne(ImageStatus::Killed.as_str()))
        };
        let image_count = count(live(), &self.db).await?;
        // SUM of a BIGINT is NUMERIC on PostgreSQL and DECIMAL on MySQL: cast back.
        let bigint = match self.db.get_database_backend() {
            sea_orm::DbBackend::MySql => "SIGNED",
            _ => "BIGINT",
        };
        let sum = SimpleExpr::from(sea_orm::sea_query::Func::cast_as(
            sea_orm::sea_query::Func::sum(Expr::col(image::Column::Size)),
            sea_orm::sea_query::Alias::new(bigint),
        ));
        let total: Option<Option<i64>> = live()
            .select_only()
            .column_as(sum, "total")
            .into_tuple()
            .one(&self.db)
            .await
            .map_err(db_error)?;
        let incoming = [
            ImageStatus::Saving,
            ImageStatus::Uploading,
            ImageStatus::Importing,
        ]
        .map(|s| s.as_str());
        // Copies in flight count as staged and uploading too, as Glance counts
        // them: active images with stores left to import to.
        let copying = sea_orm::sea_query::Query::select()
            .column(property::Column::ImageId)
            .from(property::Entity)
            .and_where(property::Column::Name.eq(IMPORTING_TO_STORES))
            .and_where(property::Column::Value.ne(""))
            .to_owned();
        let in_flight = || {
            live().filter(
                Condition::any()
                    .add(image::Column::Status.is_in(incoming))
                    .add(
                        Condition::all()
                            .add(image::Column::Status.eq(ImageStatus::Active.as_str()))
                            .add(image::Column::Id.in_subquery(copying.clone())),
                    ),
            )
        };
        let rows: Vec<(String, String, Option<i64>)> = in_flight()
            .select_only()
            .column(image::Column::Id)
            .column(image::Column::Status)
            .column(image::Column::Size)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_error)?;
        // Staged bytes: data in the staging store (a stage, a download) or
        // being copied through an import; an upload's `saving` bytes are not.
        let image_stage_total = rows
            .iter()
            .filter(|(_, status, _)| status != ImageStatus::Saving.as_str())
            .map(|(_, _, size)| size.unwrap_or(0).max(0) as u64)
            .sum();
        let uploading = rows.into_iter().map(|(id, _, _)| id).collect();
        Ok(Usage {
            image_count,
            image_size_total: total.flatten().unwrap_or(0).max(0) as u64,
            image_stage_total,
            uploading,
        })
    }
}

/// `from → to` on `conn` (the writer, or a transaction of it).
pub(crate) async fn transition_on<C: ConnectionTrait>(
    conn: &C,
    id: &str,
    from: ImageStatus,
    to: ImageStatus,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool> {
    let mut update = image::Entity::update_many()
        .col_expr(image::Column::Status, Expr::value(to.as_str()))
        .col_expr(image::Column::UpdatedAt, Expr::value(to_micros(at)));
    if to == ImageStatus::Queued {
        update = update
            .col_expr(image::Column::Size, Expr::value(Option::<i64>::None))
            .col_expr(image::Column::VirtualSize, Expr::value(Option::<i64>::None))
            .col_expr(image::Column::Checksum, Expr::value(Option::<String>::None))
            .col_expr(
                image::Column::OsHashAlgo,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                image::Column::OsHashValue,
                Expr::value(Option::<String>::None),
            );
    }
    let res = update
        .filter(image::Column::Id.eq(id))
        .filter(image::Column::Status.eq(from.as_str()))
        .filter(image::Column::Deleted.eq(false))
        .exec(conn)
        .await
        .map_err(db_error)?;
    Ok(res.rows_affected == 1)
}

/// Sets the attributes of an image's data (size, checksums) on `update`.
pub(crate) fn with_data_attributes(
    update: sea_orm::UpdateMany<image::Entity>,
    stored: &StoredData,
    virtual_size: Option<i64>,
) -> sea_orm::UpdateMany<image::Entity> {
    // Empty values are unknown ones (a location registered without hashing).
    let known = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
    update
        .col_expr(image::Column::Size, Expr::value(stored.size as i64))
        .col_expr(image::Column::VirtualSize, Expr::value(virtual_size))
        .col_expr(
            image::Column::Checksum,
            Expr::value(known(&stored.checksum)),
        )
        .col_expr(
            image::Column::OsHashAlgo,
            Expr::value(known(&stored.os_hash_algo)),
        )
        .col_expr(
            image::Column::OsHashValue,
            Expr::value(known(&stored.os_hash_value)),
        )
}

/// Records an active location of an image's data.
pub(crate) async fn insert_location<C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    loc: &Location,
    created_at: i64,
) -> Result<()> {
    location::Entity::insert(location::ActiveModel {
        image_id: Set(image_id.to_string()),
        url: Set(loc.url.clone()),
        metadata: Set(serde_json::Value::Object(loc.metadata.clone()).to_string()),
        status: Set("active".into()),
        created_at: Set(created_at),
        ..Default::default()
    })
    .exec_without_returning(conn)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The number of rows `select` matches.
async fn count<E: EntityTrait>(select: sea_orm::Select<E>, db: &DatabaseConnection) -> Result<u64>
where
    E::Model: Send + Sync,
{
    use sea_orm::PaginatorTrait;
    select.count(db).await.map_err(db_error)
}

async fn insert_properties<'a, C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    props: impl Iterator<Item = (&'a String, &'a String)>,
) -> Result<()> {
    let rows: Vec<property::ActiveModel> = props
        .map(|(k, v)| property::ActiveModel {
            image_id: Set(image_id.to_string()),
            name: Set(k.clone()),
            value: Set(v.clone()),
        })
        .collect();
    if !rows.is_empty() {
        property::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

async fn insert_tags<'a, C: ConnectionTrait>(
    conn: &C,
    image_id: &str,
    tags: impl Iterator<Item = &'a String>,
) -> Result<()> {
    let rows: Vec<tag::ActiveModel> = tags
        .map(|t| tag::ActiveModel {
            image_id: Set(image_id.to_string()),
            value: Set(t.clone()),
        })
        .collect();
    if !rows.is_empty() {
        tag::Entity::insert_many(rows)
            .exec_without_returning(conn)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// `n` bound-value placeholders in the backend's syntax, numbered from `first`
/// where the backend numbers them.
fn placeholders(backend: sea_orm::DbBackend, first: usize, n: usize) -> String {
    let one = |i: usize| match backend {
        sea_orm::DbBackend::Postgres => format!("${i}"),
        _ => "?".to_string(),
    };
    (first..first + n).map(one).collect::<Vec<_>>().join(", ")
}

/// Adds one row of the children union (`c_kind`, `c_key`, `c_value`) to its image.
/// The kind is text, not a number: each backend types an integer literal its own
/// way, and a string decodes the same on all three.
fn add_child(img: &mut Image, row: &sea_orm::QueryResult) -> Result<()> {
    let kind: Option<String> = row.try_get("", "c_kind").map_err(db_error)?;
    let key = || row.try_get::<String>("", "c_key").map_err(db_error);
    let value = || {
        row.try_get::<Option<String>>("", "c_value")
            .map_err(db_error)
    };
    match kind.as_deref() {
        Some("p") => {
            img.properties.insert(key()?, value()?.unwrap_or_default());
        }
        Some("t") => {
            img.tags.insert(key()?);
        }
        Some("l") => img.locations.push(Location {
            url: key()?,
            metadata: serde_json::from_str(&value()?.unwrap_or_default()).unwrap_or_default(),
        }),
        _ => {}
    }
    Ok(())
}
