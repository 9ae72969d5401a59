//! A catalogue of many images for the list bench and the index test: owners spread
//! over 50 projects, visibilities mixed, statuses mostly active, a few properties,
//! tags and member rows, creation times over two years. Rows are generated from
//! their number alone, so a run can name rows it knows exist (a marker, a name).
//! Inserted with multi-row `INSERT`s in one transaction; any backend.

use glance_api::api::parse::{PageLimits, list_query};
use glance_api::db::list::Scope;
use glance_layers::ListQuery;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};

pub const PROJECTS: u64 = 50;
/// A project owning about one image in 10,000 (the 51st).
pub const SMALL_PROJECT: u64 = PROJECTS;
/// A tag on about one image in 10,000.
pub const RARE_TAG: &str = "rare";
pub const TAGS: &[&str] = &[
    "gpu",
    "windows",
    "lts",
    "nightly",
    "cuda",
    "hardened",
    "minimal",
    "arm64",
    "fips",
    "k8s",
    "sriov",
    "uefi",
    "secureboot",
    "legacy",
    "beta",
    "golden",
    "ci",
    "sap",
    "hpc",
    "edge",
];
const DISTROS: &[&str] = &[
    "ubuntu", "debian", "centos", "rocky", "fedora", "cirros", "windows", "alpine",
];
const ROWS_PER_INSERT: u64 = 400;
/// 2024-01-01T00:00:00Z, in microseconds.
const EPOCH_US: i64 = 1_704_067_200_000_000;

fn mix(mut x: u64) -> u64 {
    // splitmix64
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A Keystone-style project id (32 hex digits).
pub fn project(p: u64) -> String {
    format!("{:016x}{:016x}", mix(p ^ 0xabcd), mix(p))
}

/// One image row, as generated for number `i`.
pub struct Row {
    pub id: String,
    pub name: Option<String>,
    pub status: &'static str,
    pub visibility: &'static str,
    pub owner: String,
    pub size: Option<i64>,
    pub created_at: i64,
    pub deleted: bool,
    pub os_hidden: bool,
    r: u64,
}

pub fn row(i: u64) -> Row {
    let r = mix(i);
    let status = match r % 100 {
        0..90 => "active",
        90..94 => "queued",
        94..96 => "deactivated",
        96 => "killed",
        97 => "saving",
        _ => "deleted",
    };
    let visibility = match (r >> 8) % 100 {
        0..20 => "public",
        20..30 => "community",
        30..60 => "shared",
        _ => "private",
    };
    let name = ((r >> 16) % 100 >= 3).then(|| {
        format!(
            "{}-{}",
            DISTROS[(r >> 24) as usize % DISTROS.len()],
            (r >> 32) % 2500
        )
    });
    let size =
        matches!(status, "active" | "deactivated").then_some(((r >> 20) % (20 << 30)) as i64);
    Row {
        id: uuid::Uuid::from_u64_pair(mix(i ^ 0x5eed), i).to_string(),
        name,
        status,
        visibility,
        owner: project(if i % 9973 == 17 {
            SMALL_PROJECT
        } else {
            (r >> 40) % PROJECTS
        }),
        size,
        // Every ten minutes or so, over about two years for 100,000 rows.
        created_at: EPOCH_US + i as i64 * 600_000_000 + ((r >> 12) % 600_000_000) as i64,
        deleted: status == "deleted",
        os_hidden: (r >> 48).is_multiple_of(100),
        r,
    }
}

fn text(v: Option<&str>) -> String {
    v.map_or_else(|| "NULL".into(), |s| format!("'{s}'"))
}

fn int(v: Option<i64>) -> String {
    v.map_or_else(|| "NULL".into(), |n| n.to_string())
}

/// Inserts rows `0..rows` with their properties, tags, members and locations.
pub async fn seed(db: &DatabaseConnection, rows: u64) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    let mut start = 0;
    while start < rows {
        let end = (start + ROWS_PER_INSERT).min(rows);
        let (mut images, mut props, mut tags, mut members, mut locations) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in start..end {
            let w = row(i);
            let r = w.r;
            let has_data = w.size.is_some();
            let checksum = has_data.then(|| format!("{:016x}{:016x}", mix(r), mix(r ^ 1)));
            let hash = has_data.then(|| {
                (0..8u64)
                    .map(|k| format!("{:016x}", mix(r ^ (k << 56))))
                    .collect::<String>()
            });
            images.push(format!(
                "('{}', {}, '{}', '{}', {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, '{}', {}, {}, {}, {})",
                w.id,
                text(w.name.as_deref()),
                w.status,
                w.visibility,
                (r >> 50).is_multiple_of(50),
                w.os_hidden,
                text(checksum.as_deref()),
                text(has_data.then_some("sha512")),
                text(hash.as_deref()),
                (r >> 6) % 40,
                ((r >> 10) % 8) * 512,
                int(w.size),
                int(w.size.map(|s| s * 3)),
                text(Some(["qcow2", "raw", "vmdk", "iso"][(r >> 3) as usize % 4])),
                text(Some("bare")),
                w.owner,
                w.created_at,
                w.created_at + ((r >> 28) % 86_400_000_000) as i64,
                w.deleted,
                int(w.deleted.then_some(w.created_at + 1_000_000)),
            ));
            let distro = w
                .name
                .as_deref()
                .and_then(|n| n.split('-').next())
                .unwrap_or("linux");
            props.push(format!("('{}', 'os_distro', '{distro}')", w.id));
            props.push(format!(
                "('{}', 'architecture', '{}')",
                w.id,
                ["x86_64", "aarch64"][(r >> 2) as usize % 2]
            ));
            props.push(format!(
                "('{}', 'hw_disk_bus', '{}')",
                w.id,
                ["virtio", "scsi", "ide"][(r >> 4) as usize % 3]
            ));
            if r.is_multiple_of(3) {
                props.push(format!(
                    "('{}', 'description', 'built by pipeline {}')",
                    w.id,
                    r % 997
                ));
            }
            let t = (r >> 36) % 10;
            if t < 3 {
                tags.push(format!(
                    "('{}', '{}')",
                    w.id,
                    TAGS[(r >> 44) as usize % TAGS.len()]
                ));
            }
            if i % 9967 == 5 {
                tags.push(format!("('{}', '{RARE_TAG}')", w.id));
            }
            if t == 0 {
                let second = TAGS[((r >> 44) as usize + 1 + (r >> 54) as usize % 5) % TAGS.len()];
                tags.push(format!("('{}', '{second}')", w.id));
            }
            if w.visibility == "shared" {
                for m in 0..1 + (r >> 58) % 2 {
                    let who = project(((r >> 40) + 1 + m * 7) % PROJECTS);
                    let status = if (r >> 33) % 10 < 7 {
                        "accepted"
                    } else {
                        "pending"
                    };
                    members.push(format!(
                        "('{}', '{who}', '{status}', {}, {})",
                        w.id, w.created_at, w.created_at
                    ));
                }
            }
            if has_data {
                locations.push(format!(
                    "('{}', 'file:///var/lib/glance/images/{}', '{{\"store\": \"file\"}}', 'active', {})",
                    w.id, w.id, w.created_at
                ));
            }
        }
        for (head, values) in [
            (
                "INSERT INTO images (id, name, status, visibility, protected, os_hidden, checksum, \
                 os_hash_algo, os_hash_value, min_disk, min_ram, size, virtual_size, disk_format, \
                 container_format, owner, created_at, updated_at, deleted, deleted_at) VALUES ",
                images,
            ),
            (
                "INSERT INTO image_properties (image_id, name, value) VALUES ",
                props,
            ),
            ("INSERT INTO image_tags (image_id, value) VALUES ", tags),
            (
                "INSERT INTO image_members (image_id, member, status, created_at, updated_at) VALUES ",
                members,
            ),
            (
                "INSERT INTO image_locations (image_id, url, metadata, status, created_at) VALUES ",
                locations,
            ),
        ] {
            if !values.is_empty() {
                txn.execute_unprepared(&format!("{head}{}", values.join(", ")))
                    .await?;
            }
        }
        start = end;
    }
    txn.commit().await
}

/// One list request of the bench and the index test.
pub struct Case {
    pub name: &'static str,
    /// The query string, as a client sends it.
    pub query: String,
    /// `None`: an admin (noauth's view); else a member of that project.
    pub member_of: Option<String>,
}

impl Case {
    pub fn list_query(&self) -> ListQuery {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        list_query(
            &pairs,
            PageLimits {
                default: 25,
                max: 1000,
            },
        )
        .unwrap()
    }

    pub fn scope(&self) -> Scope<'_> {
        match &self.member_of {
            None => Scope {
                project: Some("admin"),
                is_admin: true,
            },
            Some(p) => Scope {
                project: Some(p),
                is_admin: false,
            },
        }
    }
}

/// A live row `percent` of the way down the default (newest first) order, for a
/// marker: rows are created in the order of their numbers.
pub fn marker_id(rows: u64, percent: u64) -> String {
    let from = rows.saturating_sub(1 + rows * percent / 100);
    (0..=from)
        .rev()
        .map(row)
        .find(|r| !r.deleted)
        .map(|r| r.id)
        .unwrap_or_default()
}

/// The requests measured: Glance's default list, each common filter and sort (for
/// filters, a common and a rare value), later pages, and the default list as a
/// project member sees it.
pub fn cases(rows: u64) -> Vec<Case> {
    let name = (rows / 3..rows)
        .map(row)
        .find_map(|r| r.name)
        .unwrap_or_default();
    let admin = |name, query: String| Case {
        name,
        query,
        member_of: None,
    };
    vec![
        admin("default", "limit=25".into()),
        admin("visibility=public", "limit=25&visibility=public".into()),
        admin("status=active", "limit=25&status=active".into()),
        admin("owner", format!("limit=25&owner={}", project(7))),
        admin(
            "owner (small)",
            format!("limit=25&owner={}", project(SMALL_PROJECT)),
        ),
        admin("name", format!("limit=25&name={name}")),
        admin("tag", "limit=25&tag=gpu".into()),
        admin("tag (rare)", format!("limit=25&tag={RARE_TAG}")),
        admin(
            "sort=name:asc",
            "limit=25&sort_key=name&sort_dir=asc".into(),
        ),
        admin("sort=name:desc", "limit=25&sort_key=name".into()),
        admin("size_min=10GiB", "limit=25&size_min=10737418240".into()),
        admin(
            "marker 50%",
            format!("limit=25&marker={}", marker_id(rows, 50)),
        ),
        admin(
            "marker 90%",
            format!("limit=25&marker={}", marker_id(rows, 90)),
        ),
        Case {
            name: "member:default",
            query: "limit=25".into(),
            member_of: Some(project(7)),
        },
    ]
}
