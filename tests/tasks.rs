//! Tasks: the records in SQL (SQLite, and PostgreSQL and MariaDB at their
//! standard local addresses unless `GLANCE_TEST_POSTGRES_URL` or
//! `GLANCE_TEST_MYSQL_URL` say otherwise), then the legacy `/v2/tasks` API and
//! `/v2/images/{id}/tasks` over a running server, as Glance answers them.

mod common;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::services::{self, Service};
use glance_api::config::AuthMode;
use glance_api::db::Repo;
use glance_api::db::entity::task as task_row;
use glance_layers::ImageError;
use glance_layers::request::SortDir;
use glance_layers::task::{Task, TaskQuery, TaskSortKey, TaskStatus};
use glance_testkit::database::ScratchDatabase;
use glance_testkit::http::as_project;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn task(owner: Option<&str>, created_at: DateTime<Utc>) -> Task {
    Task {
        id: uuid::Uuid::new_v4().to_string(),
        kind: "import".into(),
        status: TaskStatus::Pending,
        owner: owner.map(str::to_string),
        expires_at: None,
        created_at,
        updated_at: created_at,
        deleted_at: None,
        deleted: false,
        image_id: None,
        request_id: Some(format!("req-{}", uuid::Uuid::new_v4())),
        user_id: Some("u1".into()),
        input: json!({"import_from": "https://example.com/a.qcow2", "é": [1, {"b": null}]}),
        result: None,
        message: String::new(),
    }
}

fn ids(tasks: &[Task]) -> Vec<String> {
    tasks.iter().map(|t| t.id.clone()).collect()
}

/// Follows markers page by page and checks the pages add up to the whole list.
async fn pages_add_up(repo: &Repo, q: &TaskQuery, owner: Option<&str>) -> Vec<String> {
    let whole = ids(&repo
        .list_tasks(
            &TaskQuery {
                limit: 1000,
                ..q.clone()
            },
            owner,
        )
        .await
        .unwrap());
    let mut paged = Vec::new();
    let mut page_q = TaskQuery {
        limit: 2,
        ..q.clone()
    };
    loop {
        let page = ids(&repo.list_tasks(&page_q, owner).await.unwrap());
        paged.extend(page.iter().cloned());
        if page.len() < 2 {
            break;
        }
        page_q.marker = page.last().cloned();
    }
    assert_eq!(paged, whole, "{q:?}: pages differ from the whole list");
    whole
}

async fn records_behave(url: &str) {
    let repo = Repo::new(glance_api::db::connect(url).await.unwrap());
    let t0 = now() - Duration::hours(1);

    // Round trip, with both rows; a second insert of the id is a conflict.
    let mut first = task(Some("p1"), t0);
    first.image_id = Some(uuid::Uuid::new_v4().to_string());
    repo.insert_task(&first).await.unwrap();
    assert_eq!(repo.get_task(&first.id).await.unwrap(), Some(first.clone()));
    assert!(matches!(
        repo.insert_task(&first).await,
        Err(ImageError::Conflict(_))
    ));
    assert_eq!(repo.get_task("no-such-task").await.unwrap(), None);

    // p1 has five (two created in the same microsecond), p2 two, and one has no
    // owner; statuses and types vary.
    let mut all = vec![first.clone()];
    for (i, owner) in ["p1", "p1", "p1", "p1", "p2", "p2"].iter().enumerate() {
        let at = if i == 1 {
            t0 + Duration::seconds(1)
        } else {
            t0 + Duration::seconds(i as i64)
        };
        let mut t = task(Some(owner), at);
        if i % 2 == 0 {
            t.status = TaskStatus::Success;
            t.expires_at = Some(now() + Duration::hours(i as i64 + 1));
            t.result = Some(json!({"image_id": "i"}));
        }
        if i == 3 {
            t.kind = "api_image_import".into();
            t.request_id = None;
        }
        repo.insert_task(&t).await.unwrap();
        all.push(t);
    }
    let ownerless = task(None, t0 + Duration::seconds(9));
    repo.insert_task(&ownerless).await.unwrap();
    all.push(ownerless.clone());

    // Newest first by default, ties broken by id; an owner sees only its own.
    let expect = |owner: Option<&str>| {
        let mut mine: Vec<&Task> = all
            .iter()
            .filter(|t| owner.is_none() || t.owner.as_deref() == owner)
            .collect();
        mine.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        mine.iter().map(|t| t.id.clone()).collect::<Vec<_>>()
    };
    let q = TaskQuery::default();
    assert_eq!(
        pages_add_up(&repo, &q, Some("p1")).await,
        expect(Some("p1"))
    );
    assert_eq!(pages_add_up(&repo, &q, None).await, expect(None));
    let listed = repo.list_tasks(&q, Some("p1")).await.unwrap();
    assert_eq!(listed.iter().find(|t| t.id == first.id), Some(&first));

    // Every sort key, both ways, pages through without loss or repeat.
    for key in [
        TaskSortKey::Id,
        TaskSortKey::Type,
        TaskSortKey::Status,
        TaskSortKey::UpdatedAt,
        TaskSortKey::Owner,
        TaskSortKey::ExpiresAt,
        TaskSortKey::ImageId,
        TaskSortKey::RequestId,
    ] {
        for sort_dir in [SortDir::Asc, SortDir::Desc] {
            let q = TaskQuery {
                sort_key: key,
                sort_dir,
                ..TaskQuery::default()
            };
            assert_eq!(pages_add_up(&repo, &q, None).await.len(), all.len());
        }
    }
    let asc = TaskQuery {
        sort_dir: SortDir::Asc,
        ..TaskQuery::default()
    };
    let mut reversed = expect(None);
    reversed.reverse();
    assert_eq!(pages_add_up(&repo, &asc, None).await, reversed);

    // Filters.
    let success = TaskQuery {
        status: Some(TaskStatus::Success),
        ..TaskQuery::default()
    };
    let found = repo.list_tasks(&success, None).await.unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|t| t.status == TaskStatus::Success));
    let imports = TaskQuery {
        kind: Some("api_image_import".into()),
        ..TaskQuery::default()
    };
    assert_eq!(repo.list_tasks(&imports, None).await.unwrap().len(), 1);

    // Markers: unknown, and another project's.
    let unknown = uuid::Uuid::new_v4().to_string();
    let err = repo
        .list_tasks(
            &TaskQuery {
                marker: Some(unknown.clone()),
                ..TaskQuery::default()
            },
            Some("p1"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Task with the given id {unknown} was not found")
    );
    assert!(matches!(err, ImageError::Invalid(_)));
    let theirs = all
        .iter()
        .find(|t| t.owner.as_deref() == Some("p2"))
        .unwrap();
    let err = repo
        .list_tasks(
            &TaskQuery {
                marker: Some(theirs.id.clone()),
                ..TaskQuery::default()
            },
            Some("p1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::Forbidden(_)), "{err}");
    // A task without owner may mark anyone's page.
    let q = TaskQuery {
        marker: Some(ownerless.id.clone()),
        ..TaskQuery::default()
    };
    assert_eq!(repo.list_tasks(&q, Some("p1")).await.unwrap().len(), 5);

    // Status changes are compare-and-swaps; progress only while processing.
    let id = &first.id;
    assert!(!repo.set_task_message(id, "Copied 1 MiB").await.unwrap());
    assert!(
        repo.update_task(
            id,
            &[TaskStatus::Pending],
            TaskStatus::Processing,
            "",
            None,
            None
        )
        .await
        .unwrap()
    );
    assert!(
        !repo
            .update_task(
                id,
                &[TaskStatus::Pending],
                TaskStatus::Processing,
                "",
                None,
                None
            )
            .await
            .unwrap()
    );
    assert!(
        !repo
            .update_task(id, &[], TaskStatus::Failure, "", None, None)
            .await
            .unwrap()
    );
    assert!(repo.set_task_message(id, "Copied 1 MiB").await.unwrap());
    let processing = repo.get_task(id).await.unwrap().unwrap();
    assert_eq!(processing.status, TaskStatus::Processing);
    assert_eq!(processing.message, "Copied 1 MiB");
    assert!(processing.updated_at > first.updated_at);
    assert_eq!(processing.input, first.input);
    let expires = now() + Duration::hours(48);
    let result = json!({"image_id": "abc"});
    assert!(
        repo.update_task(
            id,
            &[TaskStatus::Pending, TaskStatus::Processing],
            TaskStatus::Success,
            "done",
            Some(&result),
            Some(expires),
        )
        .await
        .unwrap()
    );
    assert!(!repo.set_task_message(id, "Copied 2 MiB").await.unwrap());
    let done = repo.get_task(id).await.unwrap().unwrap();
    assert_eq!(
        (
            done.status,
            done.message.as_str(),
            done.result,
            done.expires_at
        ),
        (TaskStatus::Success, "done", Some(result), Some(expires))
    );

    // An image's tasks: oldest first, live only; an expired task is marked
    // deleted by the read that meets it and never returned again.
    let image_id = first.image_id.clone().unwrap();
    let mut later = task(Some("p2"), t0 + Duration::seconds(30));
    later.image_id = Some(image_id.clone());
    repo.insert_task(&later).await.unwrap();
    let mut expired = task(Some("p1"), t0 + Duration::seconds(20));
    expired.image_id = Some(image_id.clone());
    expired.status = TaskStatus::Failure;
    expired.expires_at = Some(now() - Duration::seconds(1));
    repo.insert_task(&expired).await.unwrap();
    assert_eq!(
        ids(&repo.tasks_of_image(&image_id).await.unwrap()),
        vec![first.id.clone(), later.id.clone()]
    );
    assert!(repo.tasks_of_image("other").await.unwrap().is_empty());
    let row = task_row::Entity::find_by_id(expired.id.clone())
        .one(repo.connection())
        .await
        .unwrap()
        .unwrap();
    assert!(row.deleted && row.deleted_at.is_some(), "{row:?}");
    assert_eq!(repo.get_task(&expired.id).await.unwrap(), None);

    let mut gone = task(Some("p1"), t0);
    gone.expires_at = Some(now() - Duration::seconds(1));
    repo.insert_task(&gone).await.unwrap();
    assert_eq!(repo.get_task(&gone.id).await.unwrap(), None);
    let row = task_row::Entity::find_by_id(gone.id.clone())
        .one(repo.connection())
        .await
        .unwrap()
        .unwrap();
    assert!(row.deleted);
    let mut swept = task(Some("p1"), t0);
    swept.expires_at = Some(now() - Duration::seconds(1));
    repo.insert_task(&swept).await.unwrap();
    let listed = ids(&repo.list_tasks(&TaskQuery::default(), None).await.unwrap());
    assert!(!listed.contains(&swept.id) && !listed.contains(&gone.id));
    assert!(
        !repo
            .update_task(
                &swept.id,
                &[TaskStatus::Pending],
                TaskStatus::Processing,
                "",
                None,
                None
            )
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn sqlite_task_records() {
    let dir = tempfile::tempdir().unwrap();
    records_behave(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("glance.sqlite").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_task_records() {
    if let Some(admin) = services::url(Service::Postgres) {
        let database = ScratchDatabase::create(&admin, "glance_tk").await;
        records_behave(database.url()).await;
    }
}

#[tokio::test]
async fn mariadb_task_records() {
    if let Some(admin) = services::url(Service::MariaDb) {
        let database = ScratchDatabase::create(&admin, "glance_tk").await;
        records_behave(database.url()).await;
    }
}

// The API.

async fn body(resp: reqwest::Response) -> Value {
    resp.json().await.unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// The message of a webob JSON error, without the breaks webob adds.
async fn error(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let v = body(resp).await;
    let msg = v["message"].as_str().unwrap_or_default();
    (
        status,
        msg.trim_end_matches("<br /><br />\n\n\n").to_string(),
    )
}

/// A source the import filter lets through (an allowed loopback port) that
/// sends its headers and then nothing: the task stays under way while the test
/// looks at it.
const IMPORT: &str = "http://127.0.0.1:9/stall";

fn import_body() -> Value {
    import_body_from(IMPORT)
}

fn import_body_from(uri: &str) -> Value {
    json!({"type": "import", "input": {
        "import_from": uri,
        "import_from_format": "qcow2",
        "image_properties": {"name": "cirros", "disk_format": "qcow2", "container_format": "bare"},
    }})
}

#[tokio::test]
async fn legacy_tasks_create_show_list() {
    let port = common::web::serve(Vec::new()).await;
    let s = common::start_with(
        |c| {
            c.import_filtering_opts.allowed_hosts = vec!["127.0.0.1".into()];
            c.import_filtering_opts.allowed_ports = vec![port];
        },
        |b| b,
    )
    .await;
    let uri = format!("http://127.0.0.1:{port}/stall");
    let resp = s
        .post_json("/v2/tasks", import_body_from(&uri))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created = body(resp).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v2/tasks/{id}"));
    assert_eq!(
        keys(&created),
        [
            "id",
            "input",
            "type",
            "status",
            "owner",
            "message",
            "result",
            "created_at",
            "updated_at",
            "self",
            "schema",
            "request_id",
            "user_id"
        ]
    );
    assert_eq!(created["input"], import_body_from(&uri)["input"]);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["owner"], "admin");
    assert_eq!(created["user_id"], "admin");
    assert_eq!(created["message"], "");
    assert_eq!(created["result"], Value::Null);
    assert_eq!(created["self"], format!("/v2/tasks/{id}"));
    assert_eq!(created["schema"], "/v2/schemas/task");
    assert!(created["request_id"].as_str().unwrap().starts_with("req-"));
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        created_at.len() == 20 && created_at.ends_with('Z'),
        "{created_at}"
    );

    let shown = s.get(&format!("/v2/tasks/{id}")).send().await.unwrap();
    assert_eq!(shown.status(), 200);
    // The same task, but for what its run changes meanwhile.
    let runs = |mut task: Value| {
        for key in ["status", "updated_at", "message"] {
            task.as_object_mut().unwrap().remove(key);
        }
        task
    };
    let shown = body(shown).await;
    assert!(
        matches!(shown["status"].as_str(), Some("pending" | "processing")),
        "{shown}"
    );
    assert_eq!(runs(shown), runs(created.clone()));

    // Other types take any object (or null) as input.
    let resp = s
        .post_json(
            "/v2/tasks",
            json!({"type": "location_import", "input": null}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let second = body(resp).await["id"].as_str().unwrap().to_string();

    let list = body(s.get("/v2/tasks").send().await.unwrap()).await;
    assert_eq!(keys(&list), ["tasks", "first", "schema"]);
    assert_eq!(list["first"], "/v2/tasks");
    assert_eq!(list["schema"], "/v2/schemas/tasks");
    let stubs = list["tasks"].as_array().unwrap();
    assert_eq!(stubs.len(), 2);
    assert_eq!(stubs[0]["id"], second.as_str(), "newest first");
    assert_eq!(
        keys(&stubs[1]),
        [
            "id",
            "type",
            "status",
            "owner",
            "created_at",
            "updated_at",
            "self",
            "schema"
        ]
    );

    // Pages and their links.
    let page = body(
        s.get("/v2/tasks?limit=1&sort_dir=asc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page["tasks"][0]["id"], id.as_str());
    assert_eq!(page["first"], "/v2/tasks?limit=1&sort_dir=asc");
    let next = page["next"].as_str().unwrap();
    assert_eq!(next, format!("/v2/tasks?limit=1&sort_dir=asc&marker={id}"));
    let page = body(s.get(next).send().await.unwrap()).await;
    assert_eq!(page["tasks"][0]["id"], second.as_str());
    assert_eq!(page["first"], "/v2/tasks?limit=1&sort_dir=asc");
    let page = body(s.get(page["next"].as_str().unwrap()).send().await.unwrap()).await;
    assert_eq!(page["tasks"], json!([]));
    assert!(page.get("next").is_none());

    // Filters (the import task is running by now; the other never runs).
    for (q, n) in [
        ("status=pending", 1),
        ("status=processing", 1),
        ("status=success", 0),
        ("type=import", 1),
        ("sort_key=type&sort_dir=asc", 2),
    ] {
        let page = body(s.get(&format!("/v2/tasks?{q}")).send().await.unwrap()).await;
        assert_eq!(page["tasks"].as_array().unwrap().len(), n, "{q}");
    }

    // What the query may not say.
    let unknown = uuid::Uuid::new_v4();
    let unknown_marker = format!("Task with the given id {unknown} was not found");
    for (q, message) in [
        ("marker=12345", "Invalid marker format"),
        ("sort_dir=sideways", "Invalid sort direction: sideways"),
        ("status=done", "Invalid status value: done"),
        (
            "type=location_import",
            "Invalid type value: location_import",
        ),
        ("sort_key=name", "Sort key supplied was not valid."),
        ("limit=-2", "limit param must be positive"),
        ("limit=many", "limit param must be an integer"),
        (&format!("marker={unknown}"), &unknown_marker),
    ] {
        let resp = s
            .get(&format!("/v2/tasks?{q}"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp).await, (400, message.to_string()), "{q}");
    }

    // What the body may not say.
    let schema = "Provided object does not match schema 'task': ";
    for (b, message) in [
        (json!({"input": {}}), "Task 'type' is required".to_string()),
        (json!({"type": "import"}), "Task 'input' is required".into()),
        (
            json!({"type": "export", "input": {}}),
            format!(
                "{schema}'export' is not one of ['import', 'api_image_import', 'location_import']"
            ),
        ),
        (
            json!({"type": "import", "input": {}, "extra": 1}),
            format!("{schema}Additional properties are not allowed ('extra' was unexpected)"),
        ),
        (
            json!({"type": "import", "input": {"import_from": "file:///etc/passwd"}}),
            "File based imports are not allowed. Please use a non-local source of image data."
                .into(),
        ),
        (
            json!({"type": "import", "input": {"import_from": "filesystem:///etc/passwd"}}),
            "File based imports are not allowed. Please use a non-local source of image data."
                .into(),
        ),
    ] {
        let resp = s
            .post_json("/v2/tasks", b.clone())
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(error(resp).await, (400, message), "{b}");
    }

    // Tasks are not deleted on request; the 405 is webob's with the explanation alone.
    let resp = s
        .delete(&format!("/v2/tasks/{id}"))
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    assert_eq!(
        resp.text().await.unwrap(),
        "405 Method Not Allowed\n\nThis operation is currently not permitted on Glance Tasks. \
         They are auto deleted after reaching the time based on their expires_at property."
    );
    let resp = s
        .client
        .put(format!("{}/v2/tasks/{id}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, DELETE");
    let resp = s
        .client
        .put(format!("{}/v2/tasks", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["allow"], "GET, POST");
    assert_eq!(
        s.get(&format!("/v2/tasks/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let missing = uuid::Uuid::new_v4();
    let resp = s
        .get(&format!("/v2/tasks/{missing}"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(resp).await,
        (404, format!("Could not find task {missing}"))
    );
}

/// p1 owns images, p2 is another project, p9 an admin.
fn who(rb: reqwest::RequestBuilder, project: &str) -> reqwest::RequestBuilder {
    let roles = if project == "p9" {
        "admin,member,reader"
    } else {
        "member,reader"
    };
    as_project(rb, project, roles).header("accept", "application/json")
}

#[tokio::test]
async fn only_admins_reach_the_tasks_api_and_image_tasks_follow_the_image() {
    let s = common::start_with(|c| c.auth.mode = AuthMode::TrustedHeaders, |b| b).await;
    let refused = (
        403,
        "You are not authorized to complete tasks_api_access action.".to_string(),
    );
    let task_path = format!("/v2/tasks/{}", uuid::Uuid::new_v4());
    // Refused before anything in the request is read.
    for rb in [
        s.get("/v2/tasks"),
        s.get("/v2/tasks?marker=bad&sort_dir=bad"),
        s.post_json("/v2/tasks", json!({"type": "import"})),
        s.post_json("/v2/tasks", import_body()),
        s.client
            .post(format!("{}/v2/tasks", s.url))
            .body("{not json"),
        s.get(&task_path),
        s.delete(&task_path),
    ] {
        assert_eq!(error(who(rb, "p1").send().await.unwrap()).await, refused);
    }
    assert_eq!(
        who(s.delete(&task_path), "p9")
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        who(s.get(&task_path), "p9").send().await.unwrap().status(),
        404
    );

    // An image's tasks: a 404 for a missing image and for one the caller may
    // not see, and no reject route for other methods.
    let created = body(
        who(
            s.post_json(
                "/v2/images",
                json!({"name": "m", "disk_format": "raw", "container_format": "bare"}),
            ),
            "p1",
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    let image = created["id"].as_str().unwrap().to_string();
    let path = format!("/v2/images/{image}/tasks");
    let resp = who(s.get(&path), "p1").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"tasks": []}"#);
    let not_found = (404, "The resource could not be found.".to_string());
    assert_eq!(
        error(who(s.get(&path), "p2").send().await.unwrap()).await,
        not_found
    );
    let missing = format!("/v2/images/{}/tasks", uuid::Uuid::new_v4());
    assert_eq!(
        error(who(s.get(&missing), "p1").send().await.unwrap()).await,
        not_found
    );
    let post = s.client.post(format!("{}{path}", s.url));
    assert_eq!(who(post, "p1").send().await.unwrap().status(), 404);

    // Rows as Glance's database layer gives them, each caller's own (an admin
    // sees all); an expired one is gone.
    let repo = Repo::new(
        glance_api::db::connect(&s.config.database_url())
            .await
            .unwrap(),
    );
    let t0 = now() - Duration::minutes(5);
    let mut mine = task(Some("p1"), t0);
    mine.image_id = Some(image.clone());
    mine.status = TaskStatus::Success;
    mine.result = Some(json!({"image_id": image}));
    mine.expires_at = Some(now() + Duration::hours(1));
    repo.insert_task(&mine).await.unwrap();
    let mut admins = task(Some("p9"), t0 + Duration::seconds(1));
    admins.image_id = Some(image.clone());
    repo.insert_task(&admins).await.unwrap();
    let mut expired = task(Some("p1"), t0);
    expired.image_id = Some(image.clone());
    expired.expires_at = Some(now() - Duration::seconds(1));
    repo.insert_task(&expired).await.unwrap();

    let resp = who(s.get(&path), "p1").send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains(r#""\u00e9": [1, {"b": null}]"#), "{text}");
    let rows: Value = serde_json::from_str(&text).unwrap();
    let rows = rows["tasks"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        keys(row),
        [
            "id",
            "type",
            "status",
            "owner",
            "expires_at",
            "created_at",
            "updated_at",
            "deleted_at",
            "deleted",
            "image_id",
            "request_id",
            "user_id",
            "input",
            "result",
            "message"
        ]
    );
    assert_eq!(row["id"], mine.id.as_str());
    assert_eq!(
        row["created_at"],
        mine.created_at.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
    );
    assert_eq!(row["deleted_at"], Value::Null);
    assert_eq!(row["deleted"], false);
    assert_eq!(row["input"], mine.input);
    assert_eq!(row["result"], json!({"image_id": image}));
    assert_eq!(row["message"], "");
    let all = body(who(s.get(&path), "p9").send().await.unwrap()).await;
    let all: Vec<&str> = all["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(all, [mine.id.as_str(), admins.id.as_str()]);

    // The legacy API lists each project's own tasks, or all for an admin's
    // list; an expired task is gone there too.
    let mut gone = task(Some("p9"), t0);
    gone.expires_at = Some(now() - Duration::seconds(1));
    repo.insert_task(&gone).await.unwrap();
    let shown = who(s.get(&format!("/v2/tasks/{}", gone.id)), "p9")
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 404);
    let listed = body(who(s.get("/v2/tasks"), "p9").send().await.unwrap()).await;
    let listed: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [admins.id.as_str(), mine.id.as_str()]);
    let shown = body(
        who(s.get(&format!("/v2/tasks/{}", mine.id)), "p9")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(shown["image_id"], image.as_str());
    assert_eq!(shown["result"], json!({"image_id": image}));
    assert!(shown["expires_at"].as_str().unwrap().ends_with('Z'));
}
