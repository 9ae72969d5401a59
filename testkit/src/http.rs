//! The requests the API suites send over and over, against any running server
//! (in-process or a child process): paths are relative to its `url`.

use serde_json::Value;

/// A server's base URL and the client the test talks to it with.
#[derive(Debug, Clone)]
pub struct Api {
    pub url: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(url: impl Into<String>) -> Api {
        Api {
            url: url.into(),
            client: reqwest::Client::new(),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.url))
    }

    pub fn post_json(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.url)).json(&body)
    }

    /// A JSON-patch body in the media type Glance requires for it.
    pub fn patch(&self, path: &str, body: Value) -> reqwest::RequestBuilder {
        self.client
            .patch(format!("{}{path}", self.url))
            .header(
                "content-type",
                "application/openstack-images-v2.1-json-patch",
            )
            .body(body.to_string())
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.delete(format!("{}{path}", self.url))
    }

    /// `PUT /v2/images/{id}/file` of `data`.
    pub fn upload(&self, id: &str, data: impl Into<reqwest::Body>) -> reqwest::RequestBuilder {
        self.client
            .put(format!("{}/v2/images/{id}/file", self.url))
            .header("content-type", "application/octet-stream")
            .body(data)
    }

    /// Creates a raw/bare image (with `extra`'s fields on top) and returns its
    /// JSON; anything but a 201 fails the test.
    pub async fn create(&self, extra: Value) -> Value {
        let mut body =
            serde_json::json!({"name": "t", "disk_format": "raw", "container_format": "bare"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let resp = self.post_json("/v2/images", body).send().await.unwrap();
        assert_eq!(resp.status(), 201, "create");
        resp.json().await.unwrap()
    }

    /// The image's JSON, whatever the status (an error body is JSON too).
    pub async fn image(&self, id: &str) -> Value {
        self.get(&format!("/v2/images/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// The identity keystonemiddleware would pass on for a user of `project` with
/// `roles` (comma-separated), for servers in the `trusted-headers` auth mode.
pub fn as_project(
    rb: reqwest::RequestBuilder,
    project: &str,
    roles: &str,
) -> reqwest::RequestBuilder {
    rb.header("x-identity-status", "Confirmed")
        .header("x-project-id", project)
        .header("x-user-id", format!("user-{project}"))
        .header("x-roles", roles)
}

/// A local port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
