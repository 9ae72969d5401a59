//! Keystone v3 password authentication: one token for the whole run, and the
//! image endpoint from the catalog when `--url` is not given.

use serde_json::{Value, json};

use crate::client::Api;

pub struct Credentials {
    pub auth_url: String,
    pub username: String,
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    pub interface: String,
    pub region: Option<String>,
}

pub struct Session {
    pub token: String,
    /// The catalog's image endpoint for the chosen interface and region.
    pub image_url: Option<String>,
}

/// POST /v3/auth/tokens; the token comes back in `X-Subject-Token`.
/// `keystone` is an `Api` rooted at the auth URL with no token.
pub async fn password_token(keystone: &Api, c: &Credentials) -> Result<Session, String> {
    // OS_AUTH_URL is written both with and without the version suffix.
    let path = if keystone.base().ends_with("/v3") {
        "/auth/tokens"
    } else {
        "/v3/auth/tokens"
    };
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": c.username,
            "domain": {"name": c.user_domain_name},
            "password": c.password,
        }}},
        "scope": {"project": {
            "name": c.project_name,
            "domain": {"name": c.project_domain_name},
        }},
    }});
    let reply = keystone
        .post_json(path, &body)
        .await
        .map_err(|e| format!("Keystone auth at {}{path} failed: {e}", keystone.base()))?;
    let token = reply
        .headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or("Keystone answered without an X-Subject-Token header")?
        .to_string();
    let catalog = reply.json().map_err(|e| e.to_string())?;
    Ok(Session {
        token,
        image_url: image_endpoint(&catalog, &c.interface, c.region.as_deref()),
    })
}

/// The `image` service's URL in a v3 token body.
fn image_endpoint(token_body: &Value, interface: &str, region: Option<&str>) -> Option<String> {
    let catalog = token_body["token"]["catalog"].as_array()?;
    let service = catalog.iter().find(|s| s["type"] == "image")?;
    service["endpoints"]
        .as_array()?
        .iter()
        .filter(|e| e["interface"] == interface)
        .find(|e| region.is_none_or(|r| e["region_id"] == r || e["region"] == r))
        .and_then(|e| e["url"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_image_endpoint() {
        let body = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": [
                {"interface": "public", "region_id": "R1", "url": "http://ks/v3"}]},
            {"type": "image", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://int:9292"},
                {"interface": "public", "region_id": "R1", "url": "http://pub1/image"},
                {"interface": "public", "region_id": "R2", "url": "http://pub2/image"}]},
        ]}});
        assert_eq!(
            image_endpoint(&body, "public", None).as_deref(),
            Some("http://pub1/image")
        );
        assert_eq!(
            image_endpoint(&body, "public", Some("R2")).as_deref(),
            Some("http://pub2/image")
        );
        assert_eq!(
            image_endpoint(&body, "internal", None).as_deref(),
            Some("http://int:9292")
        );
        assert_eq!(image_endpoint(&body, "admin", None), None);
    }
}
