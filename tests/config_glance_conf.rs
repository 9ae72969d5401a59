//! A glance-api.conf as devstack writes it loads as the configuration it means,
//! and the options this server does not implement are named, not refused.

use std::path::Path;

use glance_api::config::{AuthMode, BackendSection, Config, NotificationDriver, Overrides};

#[test]
fn devstack_glance_api_conf() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/devstack-glance-api.conf");
    let loaded = Config::load_reporting(Some(&path), Vec::new(), &Overrides::default()).unwrap();

    let mut want = Config::default();
    let d = &mut want.default;
    d.bind = "0.0.0.0:19292".into();
    d.transport_url = Some("rabbit://stackrabbit:secret@10.0.0.1:5672/".into());
    d.image_cache_dir = Some("/opt/stack/data/glance/cache/".into());
    d.show_image_direct_url = true;
    d.show_multiple_locations = true;
    d.enabled_backends = Some("fast:file, web:http".into());
    d.public_endpoint = Some("http://10.0.0.1/image".into());
    d.user_storage_quota = "10GB".into();
    d.enabled_import_methods = ["glance-direct", "web-download", "copy-image"]
        .map(String::from)
        .to_vec();
    want.database.connection =
        Some("mysql+pymysql://root:secret@127.0.0.1/glance?charset=utf8".into());
    want.database.max_pool_size = Some(10);
    let k = &mut want.keystone_authtoken;
    k.memcached_servers = Some("localhost:11211".into());
    k.project_name = Some("service".into());
    k.password = Some("secret".into());
    k.username = Some("glance".into());
    k.auth_url = Some("http://10.0.0.1/identity".into());
    k.interface = Some("public".into());
    k.auth_type = Some("password".into());
    k.www_authenticate_uri = Some("http://10.0.0.1/identity".into());
    k.service_token_roles_required = true;
    k.service_token_roles = vec!["service".into(), "admin".into()];
    want.oslo_messaging_notifications.driver = NotificationDriver::Messagingv2;
    want.glance_store.default_backend = "fast".into();
    want.auth.mode = AuthMode::Keystone;
    want.cors.allowed_origin = vec!["http://10.0.0.1".into()];
    want.cors.allow_credentials = false;
    let l = &mut want.oslo_limit;
    l.auth_url = Some("http://10.0.0.1/identity".into());
    l.username = Some("glance".into());
    l.password = Some("secret".into());
    l.endpoint_service_type = Some("image".into());
    l.endpoint_region_name = Some("RegionOne".into());
    want.oslo_policy.policy_file = Some("/etc/glance/policy.yaml".into());
    want.image_import_opts.image_import_plugins = vec!["image_conversion".into()];
    let store = |dir: Option<&str>, weight: i64, https_insecure: bool| BackendSection {
        filesystem_store_datadir: dir.map(Into::into),
        weight,
        https_insecure,
        ..BackendSection::default()
    };
    want.backends = [
        (
            "fast",
            store(Some("/opt/stack/data/glance/images/"), 100, true),
        ),
        ("web", store(None, 0, false)),
        (
            "os_glance_staging_store",
            store(
                Some("/opt/stack/data/glance/os_glance_staging_store/"),
                0,
                true,
            ),
        ),
        (
            "os_glance_tasks_store",
            store(
                Some("/opt/stack/data/glance/os_glance_tasks_store/"),
                0,
                true,
            ),
        ),
    ]
    .into_iter()
    .map(|(id, s)| (id.to_string(), s))
    .collect();
    assert_eq!(loaded.config, want);

    assert_eq!(
        loaded.ignored,
        [
            "DEFAULT.debug",
            "DEFAULT.log_file",
            "DEFAULT.logging_context_format_string",
            "DEFAULT.logging_exception_prefix",
            "DEFAULT.use_syslog",
            "DEFAULT.workers",
            "keystone_authtoken.cafile",
            "oslo_concurrency.lock_path",
            "oslo_limit.system_scope",
            "oslo_limit.user_domain_id",
            "oslo_messaging_rabbit.rabbit_ha_queues",
            "oslo_policy.enforce_new_defaults",
            "oslo_policy.enforce_scope",
            "profiler.enabled",
            "profiler.trace_sqlalchemy",
        ]
    );
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert_eq!(
        loaded.config.database_url(),
        "mysql://root:secret@127.0.0.1/glance?charset=utf8"
    );
    assert_eq!(
        loaded.config.staging_dir().unwrap(),
        Path::new("/opt/stack/data/glance/os_glance_staging_store/")
    );
}

/// A value this server reads is still checked, and the error names the option
/// and the file.
#[test]
fn a_bad_value_of_a_known_option_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glance-api.conf");
    for (text, key) in [
        (
            "[DEFAULT]\nshow_image_direct_url = maybe\n",
            "DEFAULT.show_image_direct_url",
        ),
        (
            "[DEFAULT]\nbind_port = 1\nimage_size_cap = 1TB\n",
            "DEFAULT.image_size_cap",
        ),
        (
            "[oslo_messaging_notifications]\ndriver = kafka\n",
            "oslo_messaging_notifications.driver",
        ),
        (
            "[DEFAULT]\nenabled_backends = a:file\n[a]\nweight = heavy\n",
            "a.weight",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Config::load(Some(&path), Vec::new(), &Overrides::default()).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains(key) && err.contains("glance-api.conf"),
            "{text}: {err}"
        );
    }
    // oslo's booleans, any case; the environment still overrides the file.
    std::fs::write(
        &path,
        "[DEFAULT]\nshow_image_direct_url = On\ndo_secure_hash = NO\n",
    )
    .unwrap();
    let env = vec![(
        "GLANCE__DEFAULT__DO_SECURE_HASH".to_string(),
        "yes".to_string(),
    )];
    let c = Config::load(Some(&path), env, &Overrides::default()).unwrap();
    assert!(c.default.show_image_direct_url);
    assert!(c.default.do_secure_hash);
}

/// A single-store glance-api.conf in Glance's older style: the store options in
/// `[glance_store]`, Glance's bind options, an absolute SQLite path.
#[test]
fn single_store_glance_api_conf() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("glance-api.conf");
    std::fs::write(
        &path,
        "[DEFAULT]\nbind_host = 0.0.0.0\nlog_dir = /var/log/glance\n\
         [database]\nconnection = sqlite:////var/lib/glance/glance.sqlite\n\
         [glance_store]\nstores = file,http\ndefault_store = file\n\
         filesystem_store_datadir = /var/lib/glance/images/\n\
         [oslo_messaging_notifications]\ndriver = noop\n\
         [paste_deploy]\nflavor = keystone+cachemanagement\nconfig_file = glance-api-paste.ini\n",
    )
    .unwrap();
    let loaded = Config::load_reporting(Some(&path), Vec::new(), &Overrides::default()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.default.bind, "0.0.0.0:9292");
    assert_eq!(
        c.database_url(),
        "sqlite:///var/lib/glance/glance.sqlite?mode=rwc"
    );
    assert_eq!(c.glance_store.stores, ["file", "http"]);
    assert_eq!(c.glance_store.default_backend, "file");
    assert_eq!(c.store_dir(), Path::new("/var/lib/glance/images/"));
    assert_eq!(
        c.oslo_messaging_notifications.driver,
        NotificationDriver::Noop
    );
    assert_eq!(c.auth.mode, AuthMode::Keystone);
    assert_eq!(
        loaded.ignored,
        ["DEFAULT.log_dir", "paste_deploy.config_file"]
    );
}
