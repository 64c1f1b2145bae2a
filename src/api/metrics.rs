//! Counts every gRPC call of the ledger's services by method and status
//! code (`isc_ledger_grpc_calls_total`): a tower layer around the routed
//! services, so calls refused by the auth interceptor or by tonic itself
//! (a message too large) count too.
//!
//! The code is the one the response starts with: a `grpc-status` header
//! (tonic answers every error of a unary call that way, "trailers only"),
//! else `Ok`. A `Watch` stream that ends in an error later counts as `Ok`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::engine::metrics::Metrics;

/// The services whose calls are counted (health checks and reflection are not).
const COUNTED: &[&str] = &["/isc.ledger.v1.Ledger/", "/isc.ledger.v1.Clock/"];

/// Wraps a service so its calls are counted in `metrics`.
#[derive(Debug, Clone)]
pub struct CallMetricsLayer {
    metrics: Arc<Metrics>,
}

impl CallMetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for CallMetricsLayer {
    type Service = CallMetrics<S>;
    fn layer(&self, inner: S) -> CallMetrics<S> {
        CallMetrics {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// See [`CallMetricsLayer`].
#[derive(Debug, Clone)]
pub struct CallMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// The method of a counted path (`/isc.ledger.v1.Ledger/GetAccount` →
/// `GetAccount`), `None` for other services.
fn method_of(path: &str) -> Option<&str> {
    COUNTED
        .iter()
        .find_map(|p| path.strip_prefix(p))
        .filter(|m| !m.is_empty() && m.len() <= 64 && m.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl<S, B, R> tower::Service<http::Request<B>> for CallMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_of(req.uri().path()).map(str::to_owned);
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let res = fut.await;
            if let (Some(method), Ok(resp)) = (method, &res) {
                let code = resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from);
                // An unknown method is answered UNIMPLEMENTED: never label it
                // with the client's path (unbounded label values).
                let method = if code == tonic::Code::Unimplemented {
                    "unknown".to_owned()
                } else {
                    method
                };
                metrics.call(&method, code);
            }
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::method_of;

    #[test]
    fn only_ledger_methods_are_named() {
        assert_eq!(
            method_of("/isc.ledger.v1.Ledger/GetAccount"),
            Some("GetAccount")
        );
        assert_eq!(method_of("/isc.ledger.v1.Clock/SetTime"), Some("SetTime"));
        assert_eq!(method_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(method_of("/isc.ledger.v1.Ledger/"), None);
        assert_eq!(method_of("/isc.ledger.v1.Ledger/a/b"), None);
    }
}
