//! `GET /v2/images` in SQL: Glance's visibility scoping, filters, multi-key sorting
//! and marker pagination as one indexed query, plus three to load the page's
//! properties, tags and locations.

use glance_layers::request::{
    CompareOp, Filter, FilterField, FilterValue, ListQuery, MemberStatusFilter, SortDir, SortKey,
    VisibilityFilter,
};
use glance_layers::{Image, ImageError, ImageStatus, Visibility};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select,
};

use super::entity::image;
use super::{Repo, db_error, to_micros};

/// Who is listing.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub project: Option<&'a str>,
    pub is_admin: bool,
}

fn column(field: FilterField) -> image::Column {
    match field {
        FilterField::Id => image::Column::Id,
        FilterField::Name => image::Column::Name,
        FilterField::Status => image::Column::Status,
        FilterField::ContainerFormat => image::Column::ContainerFormat,
        FilterField::DiskFormat => image::Column::DiskFormat,
        FilterField::Owner => image::Column::Owner,
        FilterField::Checksum => image::Column::Checksum,
        FilterField::OsHashValue => image::Column::OsHashValue,
        FilterField::Size => image::Column::Size,
        FilterField::CreatedAt => image::Column::CreatedAt,
        FilterField::UpdatedAt => image::Column::UpdatedAt,
        FilterField::Protected => image::Column::Protected,
    }
}

fn value(v: &FilterValue) -> sea_orm::Value {
    match v {
        FilterValue::Text(s) => s.clone().into(),
        FilterValue::Int(i) => (*i).into(),
        FilterValue::Time(t) => to_micros(*t).into(),
        FilterValue::Bool(b) => (*b).into(),
    }
}

fn filter_condition(f: &Filter) -> SimpleExpr {
    let col = Expr::col((image::Entity, column(f.field)));
    let first = f
        .values
        .first()
        .map(value)
        .unwrap_or(sea_orm::Value::Bool(None));
    match f.op {
        CompareOp::Eq => col.eq(first),
        CompareOp::Neq => col.ne(first),
        CompareOp::In => col.is_in(f.values.iter().map(value)),
        CompareOp::Gt => col.gt(first),
        CompareOp::Gte => col.gte(first),
        CompareOp::Lt => col.lt(first),
        CompareOp::Lte => col.lte(first),
    }
}

/// Sort keys that may be NULL are compared through a sentinel that sorts first, as
/// NULL does in ascending order on SQLite and MySQL, so markers stay exact. The
/// sentinel is written into the SQL, not bound, so that the expression matches the
/// index on it (`ix_images_name_sort`).
fn sort_expr(key: SortKey) -> SimpleExpr {
    let text = |c: image::Column| -> SimpleExpr {
        Func::coalesce([Expr::col((image::Entity, c)), Expr::Constant("".into())]).into()
    };
    match key {
        SortKey::Name => text(image::Column::Name),
        SortKey::ContainerFormat => text(image::Column::ContainerFormat),
        SortKey::DiskFormat => text(image::Column::DiskFormat),
        SortKey::Size => Func::coalesce([
            Expr::col((image::Entity, image::Column::Size)),
            Expr::Constant((-1i64).into()),
        ])
        .into(),
        SortKey::Status => Expr::col((image::Entity, image::Column::Status)),
        SortKey::Id => Expr::col((image::Entity, image::Column::Id)),
        SortKey::CreatedAt => Expr::col((image::Entity, image::Column::CreatedAt)),
        SortKey::UpdatedAt => Expr::col((image::Entity, image::Column::UpdatedAt)),
    }
}

fn marker_value(key: SortKey, m: &image::Model) -> sea_orm::Value {
    match key {
        SortKey::Name => m.name.clone().unwrap_or_default().into(),
        SortKey::ContainerFormat => m.container_format.clone().unwrap_or_default().into(),
        SortKey::DiskFormat => m.disk_format.clone().unwrap_or_default().into(),
        SortKey::Size => m.size.unwrap_or(-1).into(),
        SortKey::Status => m.status.clone().into(),
        SortKey::Id => m.id.clone().into(),
        SortKey::CreatedAt => m.created_at.into(),
        SortKey::UpdatedAt => m.updated_at.into(),
    }
}

/// Rows strictly after the marker in the sort order: for keys k1..kn,
/// `k1 >= m1 AND (k1 > m1 OR (k1 = m1 AND k2 > m2) OR ...)` (`<` for descending
/// keys). The first term is implied by the rest; it is there so that an index on
/// k1 starts at the marker instead of reading every row before it.
fn after_marker(sort: &[(SortKey, SortDir)], marker: &image::Model) -> Condition {
    let mut from = Condition::all();
    if let Some(&(key, dir)) = sort.first() {
        let v = marker_value(key, marker);
        from = from.add(match dir {
            SortDir::Asc => sort_expr(key).gte(v),
            SortDir::Desc => sort_expr(key).lte(v),
        });
    }
    let mut any = Condition::any();
    for i in 0..sort.len() {
        let mut all = Condition::all();
        for (key, _) in &sort[..i] {
            all = all.add(sort_expr(*key).eq(marker_value(*key, marker)));
        }
        let (key, dir) = sort[i];
        let v = marker_value(key, marker);
        all = all.add(match dir {
            SortDir::Asc => sort_expr(key).gt(v),
            SortDir::Desc => sort_expr(key).lt(v),
        });
        any = any.add(all);
    }
    from.add(any)
}

fn exists_in(table: &str, pairs: &[(&str, sea_orm::Value)]) -> SimpleExpr {
    let t = Alias::new(table);
    let mut sub = Query::select();
    sub.expr(Expr::val(1)).from(t.clone()).and_where(
        Expr::col((t.clone(), Alias::new("image_id"))).equals((image::Entity, image::Column::Id)),
    );
    for (col, v) in pairs {
        sub.and_where(Expr::col((t.clone(), Alias::new(*col))).eq(v.clone()));
    }
    Expr::exists(sub.to_owned())
}

/// Images with tag `t`, as `id IN (...)` rather than a correlated `EXISTS`: SQLite
/// then reads `ix_image_tags_value` once, instead of probing the tags of every
/// image it walks (the whole table for a rare tag).
fn tagged(t: &str) -> SimpleExpr {
    let tags = Alias::new("image_tags");
    let mut sub = Query::select();
    sub.column((tags.clone(), Alias::new("image_id")))
        .from(tags.clone())
        .and_where(Expr::col((tags, Alias::new("value"))).eq(t));
    Expr::col((image::Entity, image::Column::Id)).in_subquery(sub.to_owned())
}

impl Repo {
    /// One page of the images `scope` may list, filtered and sorted as `q` says.
    pub async fn list(&self, q: &ListQuery, scope: Scope<'_>) -> Result<Vec<Image>, ImageError> {
        let rows = self
            .list_select(q, scope)
            .await?
            .all(self.connection())
            .await
            .map_err(db_error)?;
        self.hydrate(rows).await
    }

    /// The query [`Repo::list`] runs for the page's rows (the marker row already
    /// looked up), so tests can check its plan with `EXPLAIN`.
    pub async fn list_select(
        &self,
        q: &ListQuery,
        scope: Scope<'_>,
    ) -> Result<Select<image::Entity>, ImageError> {
        let mut cond = Condition::all()
            .add(image::Column::Deleted.eq(false))
            .add(image::Column::Status.ne(ImageStatus::Killed.as_str()))
            .add(image::Column::OsHidden.eq(q.os_hidden));

        let community = Visibility::Community.as_str();
        match q.visibility {
            None => {
                // Community images of other projects stay out of default lists.
                let mut c = Condition::any().add(image::Column::Visibility.ne(community));
                if let Some(p) = scope.project {
                    c = c.add(image::Column::Owner.eq(p));
                }
                cond = cond.add(c);
            }
            Some(VisibilityFilter::All) => {}
            Some(VisibilityFilter::Only(v)) => {
                cond = cond.add(image::Column::Visibility.eq(v.as_str()))
            }
        }

        if !scope.is_admin {
            let mut visible = Condition::any()
                .add(image::Column::Visibility.is_in([Visibility::Public.as_str(), community]));
            if let Some(p) = scope.project {
                visible = visible.add(image::Column::Owner.eq(p));
                let mut pairs = vec![("member", sea_orm::Value::from(p.to_string()))];
                if let MemberStatusFilter::Only(s) = q.member_status {
                    pairs.push(("status", s.as_str().to_string().into()));
                }
                visible = visible.add(
                    Condition::all()
                        .add(image::Column::Visibility.eq(Visibility::Shared.as_str()))
                        .add(exists_in("image_members", &pairs)),
                );
            }
            cond = cond.add(visible);
        }

        for f in &q.filters {
            cond = cond.add(filter_condition(f));
        }
        for t in &q.tags {
            cond = cond.add(tagged(t));
        }
        for (k, v) in &q.properties {
            cond = cond.add(exists_in(
                "image_properties",
                &[("name", k.clone().into()), ("value", v.clone().into())],
            ));
        }

        if let Some(marker_id) = &q.marker {
            let marker = image::Entity::find_by_id(marker_id.clone())
                .filter(image::Column::Deleted.eq(false))
                .one(self.connection())
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    ImageError::Invalid(format!("No image found with ID {marker_id}"))
                })?;
            cond = cond.add(after_marker(&q.sort, &marker));
        }

        let mut select = image::Entity::find().filter(cond);
        for (key, dir) in &q.sort {
            let order = match dir {
                SortDir::Asc => Order::Asc,
                SortDir::Desc => Order::Desc,
            };
            select = select.order_by(sort_expr(*key), order);
        }
        Ok(select.limit(q.limit))
    }
}
