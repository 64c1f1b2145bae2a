//! Server assembly: the `Ledger` (and, with a manual clock, `Clock`) services
//! behind the auth interceptor, plus standard health and reflection, message
//! size limits, optional TLS and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use super::auth::{AuthInterceptor, Tokens};
use super::pb;
use super::service::{ClockService, LedgerService};
use crate::engine::Engine;

/// Largest request the server decodes (4 MiB). A full price list of
/// `MAX_PRICE_ENTRIES` × `MAX_TIERS` tiers is far below it; anything bigger
/// is refused by tonic before it is buffered further.
pub const MAX_DECODING_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Largest response (a long statement) the server encodes.
pub const MAX_ENCODING_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Reflection descriptors could not be loaded (a build problem).
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// TLS or transport failure.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// What the server needs besides the engine.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Token → role table; empty = no authentication (loopback only).
    pub tokens: Tokens,
    /// PEM certificate and key for TLS.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Serve the `Clock` service (manual clock).
    pub clock_service: bool,
}

/// Without tokens the server must not be reachable from other hosts: keep
/// the port, force the loopback address, and say so.
pub fn effective_listen_addr(requested: SocketAddr, tokens: &Tokens) -> SocketAddr {
    if tokens.is_configured() || requested.ip().is_loopback() {
        return requested;
    }
    let forced = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), requested.port());
    tracing::warn!(
        requested = %requested, listening = %forced,
        "no token configuration (--tokens or ISC_LEDGER_TOKENS): listening on loopback only"
    );
    forced
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting,
/// ends watch streams, lets in-flight calls finish and stops the engine
/// after it committed everything queued.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if !opts.tokens.is_configured() {
        tracing::warn!("no token configuration: every caller is admin (loopback only)");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let auth = AuthInterceptor::new(Arc::new(opts.tokens));
    let ledger = pb::ledger_server::LedgerServer::new(LedgerService::new(engine.clone(), stop_rx))
        .max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_ENCODING_MESSAGE_BYTES);
    let clock = opts.clock_service.then(|| {
        InterceptedService::new(
            pb::clock_server::ClockServer::new(ClockService::new(engine.clone()))
                .max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
            auth.clone(),
        )
    });
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::ledger_server::LedgerServer<LedgerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    let mut builder = Server::builder().layer(super::metrics::CallMetricsLayer::new(
        engine.metrics().clone(),
    ));
    if let Some((cert, key)) = opts.tls {
        builder =
            builder.tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?;
    }
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, clock_service = opts.clock_service, "serving isc.ledger.v1.Ledger");
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, ending watch streams");
        health_reporter
            .set_not_serving::<pb::ledger_server::LedgerServer<LedgerService>>()
            .await;
        let _ = stop_tx.send(true);
    };
    let result = builder
        .add_service(health)
        .add_service(reflection)
        .add_service(InterceptedService::new(ledger, auth))
        .add_optional_service(clock)
        .serve_with_incoming_shutdown(
            // Small responses must leave at once: without TCP_NODELAY, Nagle
            // and delayed ACKs add tens of milliseconds to acknowledgements.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )
        .await;
    engine.shutdown().await;
    tracing::info!("ledger stopped cleanly");
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_tokens_only_loopback() {
        let any: SocketAddr = "0.0.0.0:50051".parse().unwrap();
        let forced = effective_listen_addr(any, &Tokens::none());
        assert!(forced.ip().is_loopback());
        assert_eq!(forced.port(), 50051);
        let tokens = Tokens::from_pairs("t0k3n-admin=admin").unwrap();
        assert_eq!(effective_listen_addr(any, &tokens), any);
        let lo: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(effective_listen_addr(lo, &Tokens::none()), lo);
    }
}
