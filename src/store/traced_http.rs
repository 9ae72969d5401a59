//! object_store's HTTP client with the current trace context added to every
//! request (`traceparent`), so an S3 server's spans join the upload's trace.
//! The header is added after object_store signs the request: SigV4 signs only
//! the headers it lists, and S3 ignores unsigned ones it does not know.

use async_trait::async_trait;
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};

#[derive(Debug, Default)]
pub struct TracedConnector;

impl HttpConnector for TracedConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Traced(
            ReqwestConnector::default().connect(options)?,
        )))
    }
}

#[derive(Debug)]
struct Traced(HttpClient);

#[async_trait]
impl HttpService for Traced {
    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        crate::telemetry::propagation::inject(req.headers_mut());
        self.0.execute(req).await
    }
}
