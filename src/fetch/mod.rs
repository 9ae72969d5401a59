//! The fetcher behind `web-download`: Glance's `[import_filtering_opts]` filter,
//! plus what Glance lacks against server-side request forgery.
//!
//! * Every address a host resolves to is checked, and internal ones (loopback,
//!   link-local and the metadata service, private, CGNAT, multicast,
//!   reserved...) are refused unless `allowed_hosts` names the host or covers
//!   the address.
//! * The fetcher resolves the name itself and the HTTP client connects to those
//!   addresses only, so the DNS cannot answer differently the second time.
//! * Redirects are followed here, up to `max_redirects`, each target checked
//!   like the first; the caller's headers go only to the first URI's origin.
//! * Connect and read timeouts, a byte limit applied as the body streams, and
//!   no proxy from the environment.

mod address;
mod body;
mod filter;
/// `ImportFilteringOptions`, and `list_or_csv` for other list options.
pub(crate) mod options;
mod resolve;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use glance_layers::import::WebSource;
use glance_layers::{ImageData, ImageError};
use reqwest::header::LOCATION;
use reqwest::{Method, Url};

use filter::{Filter, Refused, Target};
pub use options::ImportFilteringOptions;
use resolve::{HostResolver, NoResolver, SystemResolver};

/// Downloads for `web-download`, checked against `[import_filtering_opts]` and
/// the internal-address deny. Cheap to share behind an `Arc`.
pub struct WebFetcher {
    filter: Filter,
    resolver: Arc<dyn HostResolver>,
    connect_timeout: Duration,
    read_timeout: Duration,
    max_redirects: usize,
    proxy: Option<reqwest::Proxy>,
    tls: Tls,
}

/// How HTTPS servers are trusted: the system's roots by default.
#[derive(Clone, Default)]
struct Tls {
    /// Certificates of any issuer are accepted (glance_store's `https_insecure`).
    insecure: bool,
    /// Only these roots are trusted (`https_ca_certificates_file`).
    roots: Option<Vec<reqwest::Certificate>>,
}

impl std::fmt::Debug for WebFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebFetcher")
            .field("filter", &self.filter)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_redirects", &self.max_redirects)
            .finish_non_exhaustive()
    }
}

/// A target whose addresses passed the checks.
struct Checked {
    target: Target,
    addrs: Vec<IpAddr>,
}

impl WebFetcher {
    /// A fetcher for `opts`; `Err` names the option that cannot work.
    pub fn new(opts: &ImportFilteringOptions) -> Result<WebFetcher, String> {
        if opts.connect_timeout == 0 || opts.read_timeout == 0 {
            return Err(
                "[import_filtering_opts] connect_timeout and read_timeout must be at least 1"
                    .into(),
            );
        }
        let proxy = opts
            .proxy
            .as_deref()
            .map(|p| {
                reqwest::Proxy::all(p)
                    .map_err(|e| format!("[import_filtering_opts] proxy {p:?} is not valid: {e}"))
            })
            .transpose()?;
        Ok(WebFetcher {
            filter: Filter::new(opts),
            resolver: Arc::new(SystemResolver),
            connect_timeout: Duration::from_secs(opts.connect_timeout),
            read_timeout: Duration::from_secs(opts.read_timeout),
            max_redirects: opts.max_redirects,
            proxy,
            tls: Tls::default(),
        })
    }

    /// The same fetcher trusting HTTPS servers as glance_store's http store
    /// options say: any certificate with `insecure`, else only the roots in
    /// `ca_file` when one is given, else the system's.
    pub fn with_tls(
        mut self,
        insecure: bool,
        ca_file: Option<&std::path::Path>,
    ) -> Result<WebFetcher, String> {
        let roots = ca_file
            .map(|path| {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("CA certificates {}: {e}", path.display()))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("CA certificates {}: {e}", path.display()))
            })
            .transpose()?;
        self.tls = Tls { insecure, roots };
        Ok(self)
    }

    /// The same fetcher through `proxy` (`http://host:port`).
    pub fn with_proxy(mut self, proxy: &str) -> Result<WebFetcher, String> {
        self.proxy = Some(reqwest::Proxy::all(proxy).map_err(|e| format!("proxy {proxy:?}: {e}"))?);
        Ok(self)
    }

    /// The same fetcher asking `resolver` for addresses (tests).
    #[cfg(test)]
    fn with_resolver(mut self, resolver: Arc<dyn HostResolver>) -> WebFetcher {
        self.resolver = resolver;
        self
    }

    /// Glance's filter, then the addresses of the host.
    async fn vet(&self, uri: &str) -> Result<Checked, Refused> {
        let target = self.filter.check_uri(uri)?;
        let addrs = match target.literal {
            Some(ip) => vec![ip],
            None => {
                let lookup = self.resolver.lookup(&target.host);
                match tokio::time::timeout(self.connect_timeout, lookup).await {
                    Ok(Ok(addrs)) => addrs,
                    Ok(Err(e)) => {
                        tracing::debug!(host = %target.host, error = %e, "web-download host does not resolve");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                }
            }
        };
        self.filter.check_addresses(&target, &addrs)?;
        tracing::debug!(host = %target.host, ?addrs, "web-download target checked");
        Ok(Checked { target, addrs })
    }

    /// A client for one request to `checked`: no redirects, no proxy but the
    /// configured one, and the checked addresses as the only DNS answers.
    fn client_for(&self, checked: &Checked) -> Result<reqwest::Client, ImageError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .connect_timeout(self.connect_timeout)
            .pool_max_idle_per_host(0);
        if self.tls.insecure {
            builder = builder.tls_danger_accept_invalid_certs(true);
        } else if let Some(roots) = &self.tls.roots {
            builder = builder.tls_certs_only(roots.iter().cloned());
        }
        builder = match &self.proxy {
            Some(proxy) => builder.proxy(proxy.clone()),
            None => builder.no_proxy().dns_resolver(NoResolver),
        };
        if checked.target.literal.is_none() {
            let addrs: Vec<SocketAddr> = checked
                .addrs
                .iter()
                .map(|&ip| SocketAddr::new(ip, 0))
                .collect();
            builder = builder.resolve_to_addrs(&checked.target.host, &addrs);
        }
        builder.build().map_err(ImageError::internal)
    }
}

#[async_trait::async_trait]
impl WebSource for WebFetcher {
    async fn check(&self, uri: &str) -> Result<(), String> {
        self.vet(uri)
            .await
            .map(drop)
            .map_err(|r| format!("{}: {r}", shown(uri)))
    }

    async fn open(
        &self,
        uri: &str,
        headers: &[(&str, &str)],
        max_bytes: u64,
    ) -> Result<ImageData, ImageError> {
        let (response, shown) = self.send(Method::GET, uri, headers).await?;
        let status = response.status();
        if !status.is_success() {
            let message = format!("{shown} answered {status}");
            return Err(match status.is_server_error() {
                true => ImageError::unavailable(message, None),
                false => ImageError::Invalid(message),
            });
        }
        let expected_size = response.content_length();
        if let Some(size) = expected_size
            && size > max_bytes
        {
            return Err(ImageError::Invalid(format!(
                "{shown} announces {size} bytes, more than the {max_bytes} allowed"
            )));
        }
        let stream = body::limited(response.bytes_stream(), max_bytes, self.read_timeout, shown);
        Ok(ImageData::new(stream, expected_size))
    }
}

impl WebFetcher {
    /// Sends `method` to `uri` and follows redirects, up to `max_redirects`, each
    /// target checked like the first; `headers` go only to the first URI's
    /// origin. Returns the first answer that is not a redirect, whatever its
    /// status, with the URI it came from as messages show it.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<(reqwest::Response, String), ImageError> {
        let mut current = uri.to_string();
        let mut origin = None;
        for _ in 0..=self.max_redirects {
            let checked = self.vet(&current).await.map_err(|r| {
                ImageError::Invalid(format!("URI {} is refused: {r}", shown(&current)))
            })?;
            let url = checked.target.url.clone();
            let shown = shown(url.as_str());
            let origin = origin.get_or_insert_with(|| url.origin());

            let mut request = self
                .client_for(&checked)?
                .request(method.clone(), url.clone());
            if url.origin() == *origin {
                for (name, value) in headers {
                    request = request.header(*name, *value);
                }
            }
            let send =
                tokio::time::timeout(self.connect_timeout + self.read_timeout, request.send());
            let response = match send.await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) if e.is_builder() => return Err(ImageError::internal(e)),
                Ok(Err(e)) => {
                    let what = match e.is_connect() {
                        true => "cannot connect to",
                        false => "no answer from",
                    };
                    return Err(ImageError::unavailable(
                        format!("{what} {shown}"),
                        Some(Arc::new(e) as _),
                    ));
                }
                Err(_) => {
                    return Err(ImageError::unavailable(
                        format!("no answer from {shown}: timed out"),
                        None,
                    ));
                }
            };

            let status = response.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        ImageError::Invalid(format!(
                            "{shown} redirects ({status}) without a valid Location"
                        ))
                    })?;
                current = redirect_target(&url, location).ok_or_else(|| {
                    ImageError::Invalid(format!("{shown} redirects to an invalid URI"))
                })?;
                continue;
            }
            return Ok((response, shown));
        }
        Err(ImageError::Invalid(format!(
            "{} redirects more than {} times",
            shown(uri),
            self.max_redirects
        )))
    }

    /// The body of `response` as a stream that fails once the server stops
    /// sending for `read_timeout`.
    pub(crate) fn body(
        &self,
        response: reqwest::Response,
        max_bytes: u64,
        shown: String,
    ) -> glance_layers::DataStream {
        Box::pin(body::limited(
            response.bytes_stream(),
            max_bytes,
            self.read_timeout,
            shown,
        ))
    }
}

/// Where a `Location` points from `current`, as a string for the filter:
/// absolute and scheme-relative targets as written (the filter must see their
/// host as written), relative ones joined to `current`.
fn redirect_target(current: &Url, location: &str) -> Option<String> {
    if location.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let has_scheme = filter::split_scheme(location).is_some();
    if has_scheme {
        Some(location.to_string())
    } else if location.starts_with("//") {
        Some(format!("{}:{location}", current.scheme()))
    } else {
        current.join(location).ok().map(String::from)
    }
}

/// `uri` for messages and logs, without a password it may carry.
fn shown(uri: &str) -> String {
    match Url::parse(uri) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => uri.to_string(),
    }
}
