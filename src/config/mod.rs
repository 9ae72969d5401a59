//! Configuration: built-in defaults, then a file (Glance's glance-api.conf or
//! TOML, see `file`), then `GLANCE__SECTION__KEY` environment variables, then
//! command-line flags. Section and key names follow glance-api.conf so operators
//! can carry their settings over; the options this server does not implement are
//! dropped and reported (see `known`), and Glance's spellings of ours rewritten
//! (see `compat`). The section structs are declared through `options!` (see
//! `option_doc`), so their doc comments are also the help of
//! `etc/glance-api.conf.sample` (see `sample`).

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::Serialized;
use serde::{Deserialize, Serialize};

mod compat;
mod file;
mod known;
pub(crate) mod option_doc;
mod oslo_ini;
mod sample;

pub use file::FileError;
pub use oslo_ini::IniError;
pub use sample::sample_config;

use option_doc::options;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    #[serde(rename = "DEFAULT")]
    pub default: DefaultSection,
    pub auth: AuthSection,
    pub database: DatabaseSection,
    pub glance_store: StoreSection,
    pub quota: QuotaSection,
    pub oslo_messaging_notifications: NotificationSection,
    /// How RabbitMQ is reached: TLS and failover (oslo.messaging's section).
    pub oslo_messaging_rabbit: OsloMessagingRabbitSection,
    pub telemetry: TelemetrySection,
    pub healthcheck: HealthcheckSection,
    pub oslo_policy: PolicySection,
    pub keystone_authtoken: KeystoneAuthtokenSection,
    pub oslo_limit: OsloLimitSection,
    pub task: TaskSection,
    pub image_import_opts: ImageImportSection,
    /// The `image_conversion` import plugin's options.
    pub image_conversion: ImageConversionSection,
    /// The `inject_image_metadata` import plugin's options.
    pub inject_metadata_properties: InjectMetadataSection,
    /// What format inspection accepts (Glance's `[image_format]`).
    pub image_format: ImageFormatSection,
    /// What `web-download` may fetch: Glance's options, and ours on top (see
    /// `crate::fetch`). By default every internal address is refused.
    pub import_filtering_opts: crate::fetch::ImportFilteringOptions,
    /// Cross-origin requests from browsers (oslo.middleware's `[cors]`); off
    /// until `allowed_origin` names an origin.
    pub cors: CorsSection,
    /// One section per store named in `[DEFAULT] enabled_backends` (and Glance's
    /// reserved stores). Loading drops, with a warning, any other section it does
    /// not know; a `Config` built otherwise with a stray one is refused when the
    /// service starts.
    #[serde(flatten)]
    pub backends: std::collections::BTreeMap<String, BackendSection>,
}

options! {
/// The options of one store, with glance_store's names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendSection {
    /// A description of the store, shown by the stores discovery API.
    pub store_description: Option<String>,
    /// Order of preference of this store's locations when an image is read (higher first).
    pub weight: i64,
    /// `file` stores: their directory.
    pub filesystem_store_datadir: Option<PathBuf>,
    /// `s3` stores: `http://host:port` or a host name (https).
    pub s3_store_host: Option<String>,
    /// `s3` stores: the access key.
    pub s3_store_access_key: Option<String>,
    /// `s3` stores: the secret key.
    pub s3_store_secret_key: Option<String>,
    /// `s3` stores: the bucket that holds the images.
    pub s3_store_bucket: Option<String>,
    /// `s3` stores: the region the requests are signed for.
    pub s3_store_region_name: String,
    /// MiB per multipart part.
    pub s3_store_large_object_chunk_size: usize,
    /// Parts uploading at once.
    pub s3_store_thread_pools: usize,
    // `http` stores: how HTTPS servers are trusted, and a proxy.
    /// Accept any certificate from HTTPS servers (glance_store's default).
    pub https_insecure: bool,
    /// Trust only the CA certificates in this PEM file (with `https_insecure`
    /// off).
    pub https_ca_certificates_file: Option<PathBuf>,
    /// A proxy for the http store's requests (`http://host:port`). glance_store
    /// takes a `scheme:proxy` map; here one proxy serves both schemes.
    pub http_proxy_information: Option<String>,
}
}

impl Default for BackendSection {
    fn default() -> Self {
        BackendSection {
            store_description: None,
            weight: 0,
            filesystem_store_datadir: None,
            s3_store_host: None,
            s3_store_access_key: None,
            s3_store_secret_key: None,
            s3_store_bucket: None,
            s3_store_region_name: "us-east-1".into(),
            s3_store_large_object_chunk_size: 10,
            s3_store_thread_pools: 10,
            https_insecure: true,
            https_ca_certificates_file: None,
            http_proxy_information: None,
        }
    }
}

options! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultSection {
    /// Address and port to listen on.
    pub bind: String,
    /// Where the embedded defaults keep the database, images and logs.
    pub data_dir: PathBuf,
    /// Base of absolute URLs in responses (`Location`, version links).
    pub public_endpoint: Option<String>,
    /// `os_hash_algo` of new uploads: sha256, sha384 or sha512.
    pub hashing_algorithm: String,
    /// Largest image in bytes (Glance's default: 1 TiB).
    pub image_size_cap: u64,
    /// Images a list returns when the request sets no `limit`.
    pub limit_param_default: u64,
    /// Most images (or tasks) a list returns, whatever the `limit` asked for.
    pub api_limit_max: u64,
    /// Most properties an image may have (`-1`: no limit).
    pub image_property_quota: i64,
    /// Most tags an image may have (`-1`: no limit).
    pub image_tag_quota: i64,
    /// Most members an image may be shared with (`-1`: no limit).
    pub image_member_quota: i64,
    /// The publisher id of notifications.
    pub default_publisher_id: String,
    /// Largest JSON request body, in bytes. Glance sets none; the default admits
    /// a 10 MiB property value and stays under MySQL/MariaDB's default
    /// `max_allowed_packet` (16 MiB), which one create's properties must fit.
    pub max_json_body: usize,
    /// Seconds a client may take to send its request headers. The first request
    /// on a connection must arrive within it too, and hyper applies it again each
    /// time an HTTP/1.1 connection goes idle, so it also bounds an idle HTTP/1.1
    /// keep-alive connection.
    pub header_read_timeout: u64,
    /// Glance's name: seconds a connection may wait on its client. A request body
    /// that brings no byte for this long ends the request (400, upload rolled
    /// back), and a connection with no request in flight for this long is closed.
    /// 0 waits forever.
    pub client_socket_timeout: u64,
    /// Glance's name and default: the longest request header line (`name: value`)
    /// in bytes; a longer one is a 431. 0 means no limit but `max_header_size`.
    pub max_header_line: usize,
    /// The largest request header section (request line and every header line)
    /// in bytes; a larger one is a 431. eventlet, Glance's server, fixed it at
    /// 64 KiB. 0 leaves only hyper's own buffer limit (about 400 KiB).
    pub max_header_size: usize,
    /// Glance's property protections rules file; unset turns them off.
    pub property_protection_file: Option<PathBuf>,
    /// Only `roles` is supported.
    pub property_protection_rule_format: String,
    /// oslo.messaging's broker URL, `rabbit://user:pass@host:port/vhost`.
    pub transport_url: Option<String>,
    /// oslo's `control_exchange`: the exchange notifications go to.
    pub control_exchange: String,
    /// `id:type,id:type` (types `file`, `s3`); unset means one `file` store named
    /// `[glance_store] default_backend`.
    pub enabled_backends: Option<String>,
    /// Legacy per-project storage limit over all of a project's images, as
    /// Glance spells it (`"10GB"`, 1024-based units B/KB/MB/GB/TB; `"0"` is
    /// unlimited). Ignored when `use_keystone_limits` is on.
    pub user_storage_quota: String,
    /// Take the `[quota]` limits from Keystone's unified limits (`/v3/limits`)
    /// instead of this file.
    pub use_keystone_limits: bool,
    /// This node's name in upload leases; unset means an id made once and kept in
    /// `data_dir/node-id`. Nodes sharing a database need distinct ones.
    pub node_id: Option<String>,
    /// Seconds an upload's lease lasts without renewal; a node renews its leases
    /// while it lives, so this is how long another node waits before it takes
    /// back the uploads of a node that died.
    pub upload_lease_ttl: u64,
    /// Seconds between sweeps for uploads whose node died and data no upload owns.
    pub recovery_interval: u64,
    /// The import methods offered (`glance-direct`, `web-download`,
    /// `copy-image`); an empty list turns interoperable import off. A TOML
    /// array, or a comma-separated string as glance-api.conf writes it.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub enabled_import_methods: Vec<String>,
    /// Where staged and downloaded data waits for its import, as a `file://`
    /// URI (Glance's option). Nodes sharing a database must share it (a shared
    /// file system), so an import finds data staged through another node. Unset:
    /// `data_dir/staging`. With `enabled_backends`, a `[os_glance_staging_store]`
    /// section's `filesystem_store_datadir` takes its place, as in Glance.
    pub node_staging_uri: Option<String>,
    /// Import tasks running at once on this node; more wait `pending`.
    pub task_pool_threads: usize,
    /// This node's URL. Imports do not use it (staged data is shared through
    /// the staging store, so no request is proxied to another node); the image
    /// cache records what this node caches under it (unset: the `node_id`).
    pub worker_self_reference_url: Option<String>,
    /// Where this node caches whole images in front of the stores; unset turns
    /// the cache and the cache API off.
    pub image_cache_dir: Option<PathBuf>,
    /// Bytes the cache may hold (Glance's default, 10 GiB); least recently used
    /// images are evicted to stay under it.
    pub image_cache_max_size: u64,
    /// Seconds an unfinished cache file may go untouched before cleaning
    /// removes it.
    pub image_cache_stall_time: u64,
    /// Where the cache's index lives: only `centralized_db` (the database).
    pub image_cache_driver: String,
    /// Show each image's best location (highest store weight first) as
    /// `direct_url`. Locations can carry credentials, so it is off by default.
    pub show_image_direct_url: bool,
    /// Glance's deprecated `show_multiple_locations`: images show `locations`,
    /// and `PATCH` may add, replace and remove them.
    pub show_multiple_locations: bool,
    /// Most locations an image may have (`-1`: no limit).
    pub image_location_quota: i64,
    /// A location added by the location API is read whole to compute its
    /// checksum and hash (and check them against `validation_data`).
    pub do_secure_hash: bool,
    /// Attempts at reading a location for its hash before giving up.
    pub http_retries: u32,
}
}

impl Default for DefaultSection {
    fn default() -> Self {
        DefaultSection {
            bind: "127.0.0.1:9292".into(),
            data_dir: PathBuf::from("./data"),
            public_endpoint: None,
            hashing_algorithm: "sha512".into(),
            image_size_cap: glance_layers::quota::DEFAULT_IMAGE_SIZE_CAP,
            limit_param_default: 25,
            api_limit_max: 1000,
            image_property_quota: 128,
            image_tag_quota: 128,
            image_member_quota: 128,
            default_publisher_id: "image.localhost".into(),
            max_json_body: 15 << 20,
            header_read_timeout: 30,
            client_socket_timeout: 900,
            max_header_line: 16384,
            max_header_size: 64 << 10,
            property_protection_file: None,
            property_protection_rule_format: "roles".into(),
            transport_url: None,
            control_exchange: "glance".into(),
            enabled_backends: None,
            user_storage_quota: "0".into(),
            use_keystone_limits: false,
            node_id: None,
            upload_lease_ttl: 60,
            recovery_interval: 15,
            enabled_import_methods: ["glance-direct", "web-download", "copy-image"]
                .map(String::from)
                .to_vec(),
            node_staging_uri: None,
            task_pool_threads: 16,
            worker_self_reference_url: None,
            image_cache_dir: None,
            image_cache_max_size: 10 << 30,
            image_cache_stall_time: 86400,
            image_cache_driver: "centralized_db".into(),
            show_image_direct_url: false,
            show_multiple_locations: false,
            image_location_quota: 10,
            do_secure_hash: true,
            http_retries: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Every request is an admin of `noauth_project_id` (Glance's unauthenticated pipeline).
    #[default]
    Noauth,
    /// Trust keystonemiddleware's `X-Identity-Status`/`X-Roles`/... headers.
    TrustedHeaders,
    /// Validate `X-Auth-Token` with Keystone, as keystonemiddleware's auth_token
    /// does, configured by `[keystone_authtoken]`.
    Keystone,
}

options! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// How requests are authenticated: `noauth`, `trusted-headers` or `keystone` (Glance's
    /// `[paste_deploy] flavor = keystone` sets `keystone`).
    pub mode: AuthMode,
    /// `noauth`: the project every request acts as.
    pub noauth_project_id: String,
    /// `noauth`: the user every request acts as.
    pub noauth_user_id: String,
}
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: AuthMode::Noauth,
            noauth_project_id: "admin".into(),
            noauth_user_id: "admin".into(),
        }
    }
}

options! {
/// Glance's `[task]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TaskSection {
    /// Hours a finished task is kept before it is deleted.
    pub task_time_to_live: u64,
    /// Accepted so glance-api.conf carries over; unused (no conversion plugins).
    pub work_dir: Option<PathBuf>,
}
}

impl Default for TaskSection {
    fn default() -> Self {
        TaskSection {
            task_time_to_live: 48,
            work_dir: None,
        }
    }
}

options! {
/// Glance's `[image_format]`: how uploaded and imported data is checked against
/// its `disk_format` (see `glance_layers::inspect`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFormatSection {
    /// Refuse data whose detected format is not its `disk_format`.
    pub require_image_format_match: bool,
    /// GPT safety checks (`mbr`) that only warn.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub gpt_safety_checks_nonfatal: Vec<String>,
    /// The VMDK `createType`s accepted.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub vmdk_allowed_types: Vec<String>,
}
}

impl Default for ImageFormatSection {
    fn default() -> Self {
        let policy = glance_layers::inspect::FormatPolicy::default();
        ImageFormatSection {
            require_image_format_match: policy.require_image_format_match,
            gpt_safety_checks_nonfatal: policy.gpt_safety_checks_nonfatal,
            vmdk_allowed_types: policy.vmdk_allowed_types,
        }
    }
}

impl ImageFormatSection {
    pub fn policy(&self) -> glance_layers::inspect::FormatPolicy {
        glance_layers::inspect::FormatPolicy {
            require_image_format_match: self.require_image_format_match,
            gpt_safety_checks_nonfatal: self.gpt_safety_checks_nonfatal.clone(),
            vmdk_allowed_types: self.vmdk_allowed_types.clone(),
        }
    }
}

options! {
/// oslo.middleware's `[cors]`, with the defaults Glance sets for it
/// (`glance/common/config.py`, `set_cors_middleware_defaults`). Lists are TOML
/// arrays or comma-separated strings, as glance-api.conf writes them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSection {
    /// Origins (`<scheme>://<host>[:<port>]`, compared exactly) allowed to
    /// share responses; `*` allows any. Empty turns CORS off.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub allowed_origin: Vec<String>,
    /// Let browsers send credentials (cookies, HTTP authentication) with cross-origin
    /// requests.
    pub allow_credentials: bool,
    /// Response headers a browser script may read.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer; 0 sends no `Max-Age`.
    pub max_age: u64,
    /// Methods a preflight may ask for (compared exactly, as oslo does).
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (any case), on top of the
    /// simple headers every origin may send.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub allow_headers: Vec<String>,
}
}

impl Default for CorsSection {
    fn default() -> Self {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        CorsSection {
            allowed_origin: Vec::new(),
            allow_credentials: true,
            expose_headers: list(&[
                "X-Image-Meta-Checksum",
                "X-Auth-Token",
                "X-Subject-Token",
                "X-Service-Token",
                "X-OpenStack-Request-ID",
            ]),
            max_age: 3600,
            allow_methods: list(&["GET", "PUT", "POST", "DELETE", "PATCH"]),
            allow_headers: list(&[
                "Content-MD5",
                "X-Image-Meta-Checksum",
                "X-Storage-Token",
                "Accept-Encoding",
                "X-Auth-Token",
                "X-Identity-Status",
                "X-Roles",
                "X-Service-Catalog",
                "X-User-Id",
                "X-Tenant-Id",
                "X-OpenStack-Request-ID",
            ]),
        }
    }
}

options! {
/// Glance's `[image_import_opts]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageImportSection {
    /// Glance's import plugins, run in this order (see `crate::import_plugins`);
    /// a name not built here stops the service from starting rather than being
    /// silently skipped.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub image_import_plugins: Vec<String>,
    /// Stores written at once by one import; only 1 (Glance's default) is
    /// supported.
    pub max_parallel_stores: usize,
}
}

impl Default for ImageImportSection {
    fn default() -> Self {
        ImageImportSection {
            image_import_plugins: Vec::new(),
            max_parallel_stores: 1,
        }
    }
}

options! {
/// Glance's `[image_conversion]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ImageConversionSection {
    /// What `image_conversion` converts imported data to.
    pub output_format: OutputFormat,
}
}

/// The formats `image_conversion` may produce (Glance's choices).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Raw,
    Qcow2,
    Vmdk,
}

impl OutputFormat {
    /// The `disk_format` (and `qemu-img` format) name.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Raw => "raw",
            OutputFormat::Qcow2 => "qcow2",
            OutputFormat::Vmdk => "vmdk",
        }
    }
}

options! {
/// Glance's `[inject_metadata_properties]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InjectMetadataSection {
    /// The properties added to imported images: a table, or glance-api.conf's
    /// `key1:value1,key2:value2`.
    #[serde(deserialize_with = "dict_or_pairs")]
    pub inject: std::collections::BTreeMap<String, String>,
    /// Importers with one of these roles get no properties injected.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub ignore_user_roles: Vec<String>,
}
}

impl Default for InjectMetadataSection {
    fn default() -> Self {
        InjectMetadataSection {
            inject: Default::default(),
            ignore_user_roles: vec!["admin".into()],
        }
    }
}

/// oslo.config's `DictOpt` as a TOML table of scalars or as its string form,
/// `k1:v1,k2:v2` (each pair split at its first colon, both sides trimmed).
fn dict_or_pairs<'de, D>(
    deserializer: D,
) -> Result<std::collections::BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Pairs(String),
        Table(std::collections::BTreeMap<String, Scalar>),
    }
    match Form::deserialize(deserializer)? {
        Form::Table(table) => Ok(table
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Scalar::Text(s) => s,
                    Scalar::Int(n) => n.to_string(),
                    Scalar::Float(n) => n.to_string(),
                    Scalar::Bool(b) => b.to_string(),
                };
                (k, v)
            })
            .collect()),
        Form::Pairs(text) => text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once(':') {
                Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
                None => Err(D::Error::custom(format!(
                    "{pair:?} is not a key:value pair"
                ))),
            })
            .collect(),
    }
}

options! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// A sea-orm URL; unset means SQLite in `data_dir`.
    pub connection: Option<String>,
    /// Seconds a request waits for a database connection before it gets a 503
    /// (oslo.db's name). Short, so an outage fails fast instead of piling up.
    pub pool_timeout: u64,
    /// Connections per pool (oslo.db's name); unset: 16, or 8 for SQLite.
    pub max_pool_size: Option<u32>,
    /// `serve` applies pending migrations before it starts. Off, it refuses to
    /// start on a schema that is not up to date, and `glance-api db sync` is the
    /// operator's step (as with Glance, whose API never migrates).
    pub auto_migrate: bool,
}
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            connection: None,
            pool_timeout: 5,
            max_pool_size: None,
            auto_migrate: true,
        }
    }
}

options! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    /// The id of the store new images go to.
    pub default_backend: String,
    /// Directory of the file store; unset means `data_dir/images`.
    pub filesystem_store_datadir: Option<PathBuf>,
    /// fsync each image and its directory before acknowledging the upload.
    pub filesystem_store_fsync: bool,
    /// Without `enabled_backends`: the store types enabled, as glance_store's
    /// `stores` (`file, http` by default). `http` adds the read-only http store,
    /// which serves `http(s)://` locations.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub stores: Vec<String>,
    // The http store's options without `enabled_backends` (with it, each http
    // store's own section has them).
    /// Accept any certificate from HTTPS servers (glance_store's default).
    pub https_insecure: bool,
    /// Trust only the CA certificates in this PEM file (with `https_insecure`
    /// off).
    pub https_ca_certificates_file: Option<PathBuf>,
    /// A proxy for the http store's requests (`http://host:port`). glance_store
    /// takes a `scheme:proxy` map; here one proxy serves both schemes.
    pub http_proxy_information: Option<String>,
}
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            default_backend: "file".into(),
            filesystem_store_datadir: None,
            filesystem_store_fsync: true,
            stores: vec!["file".into(), "http".into()],
            https_insecure: true,
            https_ca_certificates_file: None,
            http_proxy_information: None,
        }
    }
}

options! {
/// keystonemiddleware's `[keystone_authtoken]`, with its option names. Options
/// that only matter to keystonemiddleware's own plumbing (`auth_type`,
/// `memcached_servers`, ...) are accepted so a glance-api.conf section carries
/// over, and otherwise ignored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneAuthtokenSection {
    /// Sent to clients in `WWW-Authenticate: Keystone uri="..."`; defaults to `auth_url`.
    pub www_authenticate_uri: Option<String>,
    /// Keystone's base URL (with or without `/v3`), used to validate tokens.
    pub auth_url: Option<String>,
    /// The service user that validates tokens.
    pub username: Option<String>,
    /// The service user's password.
    pub password: Option<String>,
    /// The project the service user's token is scoped to.
    pub project_name: Option<String>,
    /// The service user's domain.
    pub user_domain_name: String,
    /// The domain of `project_name`.
    pub project_domain_name: String,
    /// Seconds a validated token is trusted before Keystone is asked again.
    pub token_cache_time: u64,
    /// Most tokens remembered at once.
    pub token_cache_size: usize,
    /// Roles that make an `X-Service-Token` a service's (which lets an expired
    /// user token through, as Nova needs for long uploads).
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub service_token_roles: Vec<String>,
    /// Refuse a valid service token that lacks those roles.
    pub service_token_roles_required: bool,
    /// Seconds to wait for Keystone before answering 503.
    pub http_connect_timeout: u64,
    /// Seconds to wait for Keystone's answer before answering 503.
    pub http_request_timeout: u64,
    /// Accepted from keystonemiddleware; unused (the service user authenticates with a
    /// password).
    pub auth_type: Option<String>,
    /// Accepted from keystonemiddleware; unused (validated tokens are cached in memory).
    pub memcached_servers: Option<String>,
    /// Accepted from keystonemiddleware; unused.
    pub region_name: Option<String>,
    /// Accepted from keystonemiddleware; unused.
    pub interface: Option<String>,
}
}

impl Default for KeystoneAuthtokenSection {
    fn default() -> Self {
        KeystoneAuthtokenSection {
            www_authenticate_uri: None,
            auth_url: None,
            username: None,
            password: None,
            project_name: None,
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            token_cache_time: 300,
            token_cache_size: 10_000,
            service_token_roles: vec!["service".into()],
            service_token_roles_required: false,
            http_connect_timeout: 5,
            http_request_timeout: 10,
            auth_type: None,
            memcached_servers: None,
            region_name: None,
            interface: None,
        }
    }
}

options! {
/// oslo.limit's `[oslo_limit]`: where unified limits are read when
/// `use_keystone_limits` is on. Credentials left unset are taken from
/// `[keystone_authtoken]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OsloLimitSection {
    /// Keystone's base URL; unset: `[keystone_authtoken] auth_url`.
    pub auth_url: Option<String>,
    /// The user that reads the limits; unset: `[keystone_authtoken] username`.
    pub username: Option<String>,
    /// Its password; unset: `[keystone_authtoken] password`.
    pub password: Option<String>,
    /// Accepted, unused (see `project_domain_name`).
    pub project_name: Option<String>,
    /// The user's domain; unset: `[keystone_authtoken] user_domain_name`.
    pub user_domain_name: Option<String>,
    /// Accepted so an oslo.limit section carries over; unused, since limits are
    /// read with a system-scoped token.
    pub project_domain_name: Option<String>,
    /// Glance's endpoint in Keystone's catalog; its service and region select the limits.
    pub endpoint_id: Option<String>,
    /// Accepted from oslo.limit; unused (password authentication).
    pub auth_type: Option<String>,
    /// Instead of `endpoint_id`: the service type of Glance's endpoint (`image`).
    pub endpoint_service_type: Option<String>,
    /// With `endpoint_service_type`: the region of Glance's endpoint.
    pub endpoint_region_name: Option<String>,
}
}

options! {
/// Glance's per-project limits, with its resource names; unset is unlimited.
/// Used when `use_keystone_limits` is off (Keystone holds them otherwise).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSection {
    /// Images a project may own.
    pub image_count_total: Option<u64>,
    /// MiB a project may store.
    pub image_size_total: Option<u64>,
    /// MiB a project may have staged for import.
    pub image_stage_total: Option<u64>,
    /// Images of a project receiving data at once.
    pub image_count_uploading: Option<u64>,
}
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotificationDriver {
    /// One JSON object per line in `log_file`.
    #[default]
    Log,
    Noop,
    /// oslo.messaging's v2 format to `[DEFAULT] transport_url` (RabbitMQ).
    Messagingv2,
}

options! {
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSection {
    /// Where notifications go: `log`, `noop` or `messagingv2` (oslo.messaging's `messaging`
    /// is sent as `messagingv2`, `test` is `noop`).
    pub driver: NotificationDriver,
    /// Unset means `data_dir/notifications.jsonl`.
    pub log_file: Option<PathBuf>,
    /// oslo's notification topics; routing keys are `<topic>.<priority>`.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub topics: Vec<String>,
    /// A broker for notifications only; unset means `[DEFAULT] transport_url`.
    pub transport_url: Option<String>,
}
}

impl Default for NotificationSection {
    fn default() -> Self {
        NotificationSection {
            driver: NotificationDriver::Log,
            log_file: None,
            topics: vec!["notifications".into()],
            transport_url: None,
        }
    }
}

impl Config {
    /// The broker notifications go to: `[oslo_messaging_notifications]
    /// transport_url`, else `[DEFAULT] transport_url`, as oslo.messaging picks it.
    pub fn notification_transport_url(&self) -> Option<&str> {
        self.oslo_messaging_notifications
            .transport_url
            .as_deref()
            .or(self.default.transport_url.as_deref())
    }
}

options! {
/// oslo.messaging's `[oslo_messaging_rabbit]`: the options that apply to a
/// publisher of notifications.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OsloMessagingRabbitSection {
    /// Connect with TLS (`amqps`); `?ssl=1` in `transport_url` does too.
    pub ssl: bool,
    /// CA certificates (PEM) trusted on top of the system's.
    pub ssl_ca_file: Option<PathBuf>,
    /// A client certificate (PEM), with `ssl_key_file`.
    pub ssl_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub ssl_key_file: Option<PathBuf>,
    /// Accepted so glance-api.conf carries over; TLS 1.2 or 1.3 is negotiated.
    pub ssl_version: Option<String>,
    /// How the next broker is picked when one fails: `round-robin` (oslo's
    /// default; the next in `transport_url`'s order) or `shuffle` (the same
    /// order from a random first host, so nodes spread over the cluster).
    pub kombu_failover_strategy: String,
}
}

impl Default for OsloMessagingRabbitSection {
    fn default() -> Self {
        OsloMessagingRabbitSection {
            ssl: false,
            ssl_ca_file: None,
            ssl_cert_file: None,
            ssl_key_file: None,
            ssl_version: None,
            kombu_failover_strategy: "round-robin".into(),
        }
    }
}

options! {
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    /// oslo.policy overrides (YAML or JSON) over Glance's defaults; re-read on SIGHUP.
    pub policy_file: Option<PathBuf>,
}
}

options! {
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetrySection {
    /// OTLP/HTTP endpoint for traces (e.g. `http://127.0.0.1:4318/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// Log lines as JSON rather than text.
    pub json_logs: bool,
    /// A listen address of its own for `/metrics` (e.g. `127.0.0.1:9102`),
    /// answered there without authentication. Unset: `/metrics` is only on the
    /// API's address, for admins.
    pub metrics_listen: Option<String>,
}
}

options! {
/// oslo.middleware's healthcheck, as Glance's paste pipeline mounts it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HealthcheckSection {
    /// Where the health check answers.
    pub path: String,
    /// While this file exists, the check answers 503 (take a node out of a
    /// load balancer before stopping it). Glance's paste file sets
    /// `/etc/glance/healthcheck_disable`, so that is the default; an empty
    /// value turns the check off.
    pub disable_by_file_path: Option<PathBuf>,
    /// Answer admins' `Accept: application/json` checks with the state of the
    /// database and of each store.
    pub detailed: bool,
    /// oslo's list of checks; only `disable_by_file` exists here, and it runs
    /// whenever `disable_by_file_path` is set.
    #[serde(deserialize_with = "crate::fetch::options::list_or_csv")]
    pub backends: Vec<String>,
}
}

impl Default for HealthcheckSection {
    fn default() -> Self {
        HealthcheckSection {
            path: "/healthcheck".into(),
            disable_by_file_path: Some(PathBuf::from("/etc/glance/healthcheck_disable")),
            detailed: false,
            backends: Vec::new(),
        }
    }
}

/// Values from the command line, applied last.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
}

impl DefaultSection {
    /// `user_storage_quota` in bytes: Glance's `^(\d+)((K|M|G|T)?B)?$`, 1024-based;
    /// `None` for 0 (unlimited).
    pub fn user_storage_quota_bytes(&self) -> Result<Option<u64>, String> {
        let v = self.user_storage_quota.trim();
        let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let shift = match &v[digits.len()..] {
            "" | "B" => 0,
            "KB" => 10,
            "MB" => 20,
            "GB" => 30,
            "TB" => 40,
            _ => u32::MAX,
        };
        let n: Option<u64> = digits.parse().ok().filter(|_| shift != u32::MAX);
        match n.and_then(|n| n.checked_mul(1u64.checked_shl(shift)?)) {
            Some(0) => Ok(None),
            Some(bytes) => Ok(Some(bytes)),
            None => Err(format!(
                "user_storage_quota {v:?}: expected a number with an optional B, KB, MB, GB or TB"
            )),
        }
    }
}

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] file::FileError),
    /// A value of an option this server implements is wrong; the message names
    /// the option and where the value came from.
    #[error(transparent)]
    Value(#[from] Box<figment::Error>),
    /// A store section's value is wrong (see `known::type_store_values`).
    #[error("{message} (in {origin})")]
    StoreValue { message: String, origin: String },
}

/// A loaded configuration and what loading it left out.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// `section.key` of each option given (in the file or the environment) that
    /// this server does not implement, sorted; they were ignored, as
    /// oslo.config ignores options nobody registered.
    pub ignored: Vec<String>,
    /// Glance options read with another meaning (see `compat`).
    pub notes: Vec<String>,
}

impl Loaded {
    /// What to log once logging is up (loading happens before it is).
    pub fn warnings(&self) -> Vec<String> {
        let mut lines = self.notes.clone();
        if !self.ignored.is_empty() {
            lines.push(format!(
                "ignoring options this server does not implement: {}",
                self.ignored.join(", ")
            ));
        }
        lines
    }
}

impl Config {
    /// Loads the layered configuration; `env` is the process environment in
    /// production and a fixed list in tests. Options this server does not
    /// implement are dropped; [`Config::load_reporting`] names them.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        Config::load_reporting(file, env, overrides).map(|loaded| loaded.config)
    }

    /// [`Config::load`], also returning the options it ignored. The file is TOML
    /// or Glance's glance-api.conf (see `file`); Glance's spellings of our
    /// settings are rewritten (see `compat`). Strings convert to the booleans
    /// and numbers options want (oslo's `true/false/yes/no/1/0/on/off`), in
    /// every layer.
    pub fn load_reporting(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Loaded, ConfigError> {
        let mut layers = Vec::new();
        if let Some(file) = file {
            layers.push(file::read(file)?);
        }
        // `GLANCE__SECTION__KEY`, read lower-cased; glance-api.conf spells the
        // first section `DEFAULT`.
        let vars = EnvVars(
            env.into_iter()
                .filter(|(k, _)| k.starts_with("GLANCE__"))
                .collect(),
        );
        layers.push(file::Layer {
            metadata: figment::Provider::metadata(&vars),
            dict: vars.dict(),
        });
        // The store sections are those `enabled_backends` names, as the layers
        // together leave it.
        let stores = layers
            .iter()
            .rev()
            .find_map(|l| match l.dict.get("DEFAULT") {
                Some(figment::value::Value::Dict(_, d)) => d.get("enabled_backends"),
                _ => None,
            })
            .and_then(|v| v.as_str())
            .map(known::store_ids)
            .unwrap_or_default();
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        let (mut ignored, mut notes) = (Vec::new(), Vec::new());
        for mut layer in layers {
            let bind: String = fig.extract_inner_lossy("DEFAULT.bind").map_err(Box::new)?;
            compat::translate(&mut layer.dict, &bind, &mut notes);
            known::retain_known(&mut layer.dict, &stores, &mut ignored);
            known::type_store_values(&mut layer.dict, &stores).map_err(|message| {
                ConfigError::StoreValue {
                    message,
                    origin: layer.metadata.source.as_ref().map_or_else(
                        || layer.metadata.name.to_string(),
                        |source| source.to_string(),
                    ),
                }
            })?;
            fig = fig.merge(layer);
        }
        if let Some(bind) = &overrides.bind {
            fig = fig.merge(Serialized::default("DEFAULT.bind", bind));
        }
        if let Some(dir) = &overrides.data_dir {
            fig = fig.merge(Serialized::default("DEFAULT.data_dir", dir));
        }
        ignored.sort();
        ignored.dedup();
        Ok(Loaded {
            config: fig.extract_lossy().map_err(Box::new)?,
            ignored,
            notes,
        })
    }

    /// The database URL for sea-orm: `[database] connection`, where oslo.db's
    /// SQLAlchemy URLs are accepted too (see `sqlalchemy_url`).
    pub fn database_url(&self) -> String {
        self.database
            .connection
            .as_deref()
            .map(sqlalchemy_url)
            .unwrap_or_else(|| {
                format!(
                    "sqlite://{}?mode=rwc",
                    self.default.data_dir.join("glance.sqlite").display()
                )
            })
    }

    pub fn store_dir(&self) -> PathBuf {
        self.glance_store
            .filesystem_store_datadir
            .clone()
            .unwrap_or_else(|| self.default.data_dir.join("images"))
    }

    /// The staging directory: see `node_staging_uri`.
    pub fn staging_dir(&self) -> Result<PathBuf, String> {
        let reserved = self
            .backends
            .get(glance_layers::import::records::STAGING_STORE)
            .and_then(|s| s.filesystem_store_datadir.clone());
        if let Some(dir) = reserved.filter(|_| self.default.enabled_backends.is_some()) {
            return Ok(dir);
        }
        match &self.default.node_staging_uri {
            None => Ok(self.default.data_dir.join("staging")),
            Some(uri) => uri
                .strip_prefix("file://")
                .filter(|p| p.starts_with('/'))
                .map(PathBuf::from)
                .ok_or_else(|| format!("node_staging_uri {uri:?} is not a file:///path URI")),
        }
    }

    pub fn notification_log(&self) -> PathBuf {
        self.oslo_messaging_notifications
            .log_file
            .clone()
            .unwrap_or_else(|| self.default.data_dir.join("notifications.jsonl"))
    }
}

/// oslo.db's SQLAlchemy URLs as sea-orm (sqlx) takes them: the `+driver` of
/// `mysql+pymysql://` or `postgresql+psycopg2://` dropped; SQLite's
/// `sqlite:////absolute/path` and `sqlite+pysqlite:///relative/path` (created
/// when missing, as SQLAlchemy does) and `sqlite://` (in memory). Other URLs
/// pass unchanged, so sqlx's own `sqlite:///absolute/path` keeps its meaning.
pub fn sqlalchemy_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (base, driver) = scheme.split_once('+').unwrap_or((scheme, ""));
    let sqlite_path = |path: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        if path.contains("mode=") {
            format!("sqlite://{path}")
        } else {
            format!("sqlite://{path}{sep}mode=rwc")
        }
    };
    match base {
        "sqlite" if rest.is_empty() => "sqlite::memory:".into(),
        "sqlite" if rest.starts_with("//") => sqlite_path(&rest[1..]),
        "sqlite" if !driver.is_empty() => sqlite_path(rest.strip_prefix('/').unwrap_or(rest)),
        "mysql" | "postgresql" | "postgres" if !driver.is_empty() => format!("{base}://{rest}"),
        _ => url.to_string(),
    }
}

/// `GLANCE__SECTION__KEY=value` pairs as a figment provider. Taking the pairs as a
/// list (rather than reading the process environment) lets tests inject values.
struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    fn dict(&self) -> figment::value::Dict {
        let mut dict = figment::value::Dict::new();
        for (k, v) in &self.0 {
            let Some(rest) = k.strip_prefix("GLANCE__") else {
                continue;
            };
            let mut path = rest
                .split("__")
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            if let Some(r) = path.strip_prefix("default.") {
                path = format!("DEFAULT.{r}");
            }
            let value: figment::value::Value = v.parse().unwrap_or_else(|_| v.clone().into());
            if let figment::value::Value::Dict(_, d) = figment::util::nest(&path, value) {
                dict = merge_dict(dict, d);
            }
        }
        dict
    }
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable(s)")
    }

    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        Ok(figment::Profile::Default.collect(self.dict()))
    }
}

fn merge_dict(mut a: figment::value::Dict, b: figment::value::Dict) -> figment::value::Dict {
    for (k, v) in b {
        let merged = match (a.remove(&k), v) {
            (Some(figment::value::Value::Dict(_, x)), figment::value::Value::Dict(tag, y)) => {
                figment::value::Value::Dict(tag, merge_dict(x, y))
            }
            (_, v) => v,
        };
        a.insert(k, merged);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_env_flags_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glance.toml");
        std::fs::write(
            &file,
            "[DEFAULT]\nbind = \"0.0.0.0:1\"\nimage_size_cap = 10\n[database]\nconnection = \"sqlite::memory:\"\n",
        )
        .unwrap();
        let env = vec![
            (
                "GLANCE__DEFAULT__IMAGE_SIZE_CAP".to_string(),
                "20".to_string(),
            ),
            (
                "GLANCE__QUOTA__IMAGE_COUNT_TOTAL".to_string(),
                "7".to_string(),
            ),
            (
                "GLANCE__AUTH__MODE".to_string(),
                "trusted-headers".to_string(),
            ),
            ("OTHER".to_string(), "x".to_string()),
        ];
        let flags = Overrides {
            bind: Some("127.0.0.1:5".into()),
            data_dir: None,
        };
        let c = Config::load(Some(&file), env, &flags).unwrap();
        assert_eq!(c.default.bind, "127.0.0.1:5");
        assert_eq!(c.default.image_size_cap, 20);
        assert_eq!(c.quota.image_count_total, Some(7));
        assert_eq!(c.auth.mode, AuthMode::TrustedHeaders);
        assert_eq!(c.database_url(), "sqlite::memory:");
        let plain = Config::load(None, Vec::new(), &Overrides::default()).unwrap();
        assert_eq!(plain, Config::default());
        assert!(
            plain
                .database_url()
                .starts_with("sqlite://./data/glance.sqlite")
        );
    }

    #[test]
    fn store_sections_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glance.toml");
        std::fs::write(
            &file,
            "[DEFAULT]\nenabled_backends = \"fast:file, cheap:s3\"\n[glance_store]\ndefault_backend = \"fast\"\n[cheap]\ns3_store_host = \"http://127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = vec![(
            "GLANCE__CHEAP__S3_STORE_BUCKET".to_string(),
            "images".to_string(),
        )];
        let c = Config::load(Some(&file), env, &Overrides::default()).unwrap();
        assert_eq!(
            c.backends["cheap"].s3_store_bucket.as_deref(),
            Some("images")
        );
        assert_eq!(c.backends["cheap"].s3_store_thread_pools, 10);
        assert_eq!(c.glance_store.default_backend, "fast");
    }

    #[test]
    fn storage_quota_units() {
        let q = |v: &str| {
            DefaultSection {
                user_storage_quota: v.into(),
                ..DefaultSection::default()
            }
            .user_storage_quota_bytes()
        };
        assert_eq!(q("0"), Ok(None));
        assert_eq!(q("512"), Ok(Some(512)));
        assert_eq!(q("10B"), Ok(Some(10)));
        assert_eq!(q("3MB"), Ok(Some(3 << 20)));
        assert_eq!(q("1TB"), Ok(Some(1 << 40)));
        for bad in ["", "1.5GB", "10mb", "GB", "-1", "1PB", "99999999999TB"] {
            assert!(q(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keystone_settings_from_the_environment() {
        let env = vec![
            ("GLANCE__AUTH__MODE".to_string(), "keystone".to_string()),
            (
                "GLANCE__KEYSTONE_AUTHTOKEN__AUTH_URL".to_string(),
                "http://k:5000/v3".to_string(),
            ),
            (
                "GLANCE__KEYSTONE_AUTHTOKEN__TOKEN_CACHE_TIME".to_string(),
                "5".to_string(),
            ),
        ];
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        assert_eq!(c.auth.mode, AuthMode::Keystone);
        assert_eq!(
            c.keystone_authtoken.auth_url.as_deref(),
            Some("http://k:5000/v3")
        );
        assert_eq!(c.keystone_authtoken.token_cache_time, 5);
        assert_eq!(c.keystone_authtoken.user_domain_name, "Default");
    }

    #[test]
    fn unknown_options_are_ignored_and_known_ones_still_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glance.toml");
        std::fs::write(&file, "[DEFAULT]\nbindd = \"x\"\nimage_size_cap = 5\n").unwrap();
        let env = vec![("GLANCE__PROFILER__ENABLED".to_string(), "true".to_string())];
        let loaded = Config::load_reporting(Some(&file), env, &Overrides::default()).unwrap();
        assert_eq!(loaded.ignored, ["DEFAULT.bindd", "profiler.enabled"]);
        assert_eq!(loaded.config.default.image_size_cap, 5);
        assert_eq!(
            loaded.warnings(),
            ["ignoring options this server does not implement: DEFAULT.bindd, profiler.enabled"]
        );

        std::fs::write(&file, "[DEFAULT]\nimage_size_cap = \"big\"\n").unwrap();
        let err = Config::load(Some(&file), Vec::new(), &Overrides::default()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("DEFAULT.image_size_cap"), "{text}");
        assert!(text.contains("glance.toml"), "{text}");
    }

    #[test]
    fn sqlalchemy_urls() {
        for (given, url) in [
            (
                "mysql+pymysql://glance:pw@db/glance?charset=utf8",
                "mysql://glance:pw@db/glance?charset=utf8",
            ),
            (
                "postgresql+psycopg2://g:pw@db/glance",
                "postgresql://g:pw@db/glance",
            ),
            ("postgresql://g:pw@db/glance", "postgresql://g:pw@db/glance"),
            (
                "sqlite:////var/lib/glance/glance.sqlite",
                "sqlite:///var/lib/glance/glance.sqlite?mode=rwc",
            ),
            (
                "sqlite+pysqlite:///glance.sqlite",
                "sqlite://glance.sqlite?mode=rwc",
            ),
            ("sqlite://", "sqlite::memory:"),
            (
                "sqlite:///abs/glance.sqlite?mode=rwc",
                "sqlite:///abs/glance.sqlite?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(sqlalchemy_url(given), url, "{given}");
        }
    }

    #[test]
    fn plugin_options_in_toml_and_in_glance_api_conf_form() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("glance.toml");
        std::fs::write(
            &file,
            "[image_import_opts]\nimage_import_plugins = \"image_decompression, image_conversion\"\n[image_conversion]\noutput_format = \"qcow2\"\n[inject_metadata_properties]\ninject = { a = \"1\", b = 2 }\nignore_user_roles = \"admin, reader\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&file), Vec::new(), &Overrides::default()).unwrap();
        assert_eq!(
            c.image_import_opts.image_import_plugins,
            ["image_decompression", "image_conversion"]
        );
        assert_eq!(c.image_conversion.output_format, OutputFormat::Qcow2);
        let inject = &c.inject_metadata_properties;
        assert_eq!(inject.inject["a"], "1");
        assert_eq!(inject.inject["b"], "2");
        assert_eq!(inject.ignore_user_roles, ["admin", "reader"]);

        let env = vec![(
            "GLANCE__INJECT_METADATA_PROPERTIES__INJECT".to_string(),
            "hw_vif_model: virtio, owner_note:x:y".to_string(),
        )];
        let c = Config::load(None, env, &Overrides::default()).unwrap();
        let inject = &c.inject_metadata_properties;
        assert_eq!(inject.inject["hw_vif_model"], "virtio");
        assert_eq!(inject.inject["owner_note"], "x:y");
        assert_eq!(inject.ignore_user_roles, ["admin"]);
        assert_eq!(c.image_conversion.output_format, OutputFormat::Raw);

        for bad in [
            "[image_conversion]\noutput_format = \"vhd\"\n",
            "[inject_metadata_properties]\ninject = \"novalue\"\n",
        ] {
            std::fs::write(&file, bad).unwrap();
            assert!(
                Config::load(Some(&file), Vec::new(), &Overrides::default()).is_err(),
                "{bad}"
            );
        }
    }
}
