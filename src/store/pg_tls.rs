//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` (in the connection
//! string, else `PGSSLMODE` / `PGSSLROOTCERT`), read out of the string
//! before tokio-postgres parses the rest (it knows only
//! `disable|prefer|require` and no CA file), the rustls client setup of
//! each mode, the [`MakeTls`] every connection of the backend is made with
//! (writer, readers, listener, lease, offline tools), and the words of a
//! TLS failure.
//!
//! The modes are libpq's: `disable` never encrypts; `prefer` (the default)
//! encrypts when the server offers TLS; `require` insists on TLS;
//! `verify-ca` checks that the server's certificate chains to the CA file;
//! `verify-full` checks that and that the certificate's subjectAltName
//! names the host connected to (rustls never reads the CN). The CA file is
//! `sslrootcert`, else `~/.postgresql/root.crt` when that file exists, as
//! in libpq; when there is one, `prefer` (once TLS is used) and `require`
//! check the chain too, like `verify-ca`; without one they check nothing.
//! `verify-ca` / `verify-full` without a CA file are refused. A
//! Unix-socket connection never uses TLS (libpq ignores sslmode there).
//! rustls with the ring provider (the one tonic's TLS already uses);
//! SCRAM gets the `tls-server-end-point` channel binding.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// libpq's `sslmode` values (`allow` is not offered: it would try plain
/// text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (libpq's default); the chain checked
    /// when there is a CA file (given or the default one), else nothing.
    Prefer,
    /// TLS or no connection; the chain checked when there is a CA file
    /// (given or the default one), else nothing.
    Require,
    /// TLS, the server's certificate chains to the CA file.
    VerifyCa,
    /// [`SslMode::VerifyCa`] and the certificate names the host.
    VerifyFull,
}

impl SslMode {
    /// Parses a libpq `sslmode` value.
    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// What a connection string asks of TLS (no file read yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsRequest {
    /// The mode asked for (given, `PGSSLMODE`, else `prefer`).
    pub mode: SslMode,
    /// The CA file (given, `PGSSLROOTCERT`, else none).
    pub root_cert: Option<PathBuf>,
}

/// Keys of libpq's TLS settings that isc-ledger does not take, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("sslcert", "client certificates are not supported: authenticate with a password (passfile or PGPASSWORD) over sslmode=verify-full"),
    ("sslkey", "client certificates are not supported: authenticate with a password (passfile or PGPASSWORD) over sslmode=verify-full"),
    ("sslpassword", "client certificates are not supported"),
    ("sslcrl", "certificate revocation lists are not supported"),
    ("sslcrldir", "certificate revocation lists are not supported"),
];

/// Takes `sslmode` and `sslrootcert` out of a connection string (URL query
/// or key=value pairs); returns the rest, for tokio-postgres, and what they
/// asked. `Err` is the words of a setting that cannot be honoured.
pub fn split_tls_params(s: &str) -> Result<(String, TlsRequest), String> {
    let t = s.trim();
    let (rest, pairs) = if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        split_url(t)
    } else {
        split_key_value(t)
    };
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut mode = None;
    let mut root_cert = None;
    for (k, v) in pairs {
        match k.as_str() {
            "sslmode" => mode = Some(v),
            "sslrootcert" => root_cert = Some(v),
            other => {
                if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == other) {
                    return Err(format!("{other} in the connection string: {why}"));
                }
            }
        }
    }
    let (mode_text, from) = match mode {
        Some(m) => (m, "sslmode"),
        None => match env("PGSSLMODE") {
            Some(m) => (m, "PGSSLMODE"),
            None => ("prefer".to_owned(), "sslmode"),
        },
    };
    let mode = SslMode::parse(&mode_text).ok_or_else(|| {
        format!("{from}={mode_text:?}: expected disable, prefer, require, verify-ca or verify-full")
    })?;
    let root_cert = root_cert.or_else(|| env("PGSSLROOTCERT"));
    if root_cert.as_deref() == Some("system") {
        return Err(
            "sslrootcert=system (the system's trusted CAs) is not supported: give the file of the CA that signed the server's certificate"
                .into(),
        );
    }
    Ok((
        rest,
        TlsRequest {
            mode,
            root_cert: root_cert.map(PathBuf::from),
        },
    ))
}

/// `sslmode` / `sslrootcert` out of a URL's query (keys and values
/// percent-decoded, the other parameters kept as written).
fn split_url(t: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = t.split_once('?') else {
        return (t.to_owned(), vec![]);
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for part in query.split('&') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = percent_decode(k);
        if key == "sslmode" || key == "sslrootcert" || UNSUPPORTED.iter().any(|(n, _)| *n == key) {
            taken.push((key, percent_decode(v)));
        } else {
            kept.push(part);
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, taken)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `sslmode` / `sslrootcert` out of libpq key=value pairs (values plain or
/// single-quoted, `\` escaping); the other pairs kept exactly as written.
/// A string that does not tokenize is passed on whole (tokio-postgres
/// words its error).
fn split_key_value(t: &str) -> (String, Vec<(String, String)>) {
    let b = t.as_bytes();
    let mut i = 0;
    let mut kept: Vec<&str> = Vec::new();
    let mut taken = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &t[start..i];
        skip_ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return (t.to_owned(), vec![]);
        }
        i += 1;
        skip_ws(&mut i);
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                match b.get(i) {
                    None => return (t.to_owned(), vec![]),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < b.len() => {
                        value.push(b[i + 1]);
                        i += 2;
                    }
                    Some(&c) => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                value.push(b[i]);
                i += 1;
            }
        }
        if key == "sslmode" || key == "sslrootcert" || UNSUPPORTED.iter().any(|(n, _)| *n == key) {
            taken.push((key.to_owned(), String::from_utf8_lossy(&value).into_owned()));
        } else {
            kept.push(&t[start..i]);
        }
    }
    (kept.join(" "), taken)
}

/// The TLS side of a PostgreSQL connection: the mode and, unless
/// `disable`, the rustls client configuration built for it.
#[derive(Clone)]
pub struct MakeTls {
    mode: SslMode,
    /// The CA file in use (for messages).
    ca: Option<PathBuf>,
    config: Option<Arc<ClientConfig>>,
}

impl std::fmt::Debug for MakeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MakeTls")
            .field("mode", &self.mode)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// libpq's default CA file under the home directory `home`
/// (`~/.postgresql/root.crt`).
pub fn default_root_cert_in(home: &Path) -> PathBuf {
    home.join(".postgresql/root.crt")
}

impl MakeTls {
    /// Reads the CA file (when the mode needs one) and builds the client
    /// configuration; the default CA file is under `$HOME` (see
    /// [`MakeTls::with_home`]). `Err` is the words of what is wrong and
    /// what to do (the caller names the database).
    pub fn new(req: &TlsRequest) -> Result<MakeTls, String> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from);
        MakeTls::with_home(req, home.as_deref())
    }

    /// [`MakeTls::new`] with the home directory whose
    /// `.postgresql/root.crt` is the default CA file (`None`: no default).
    pub fn with_home(req: &TlsRequest, home: Option<&Path>) -> Result<MakeTls, String> {
        let mode = req.mode;
        let default_ca = || home.map(default_root_cert_in).filter(|p| p.exists());
        let ca = match (&req.root_cert, mode) {
            (_, SslMode::Disable) => None,
            (Some(p), _) => Some(p.clone()),
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => match default_ca() {
                Some(p) => Some(p),
                None => {
                    return Err(format!(
                        "sslmode={} needs the CA certificate that signed the server's: add sslrootcert=FILE to the connection string (or set PGSSLROOTCERT, or put it in ~/.postgresql/root.crt)",
                        mode.as_str()
                    ))
                }
            },
            // libpq: a default CA file that exists is used by prefer and
            // require too (the chain is checked, as verify-ca).
            (None, SslMode::Prefer | SslMode::Require) => default_ca(),
        };
        if mode == SslMode::Disable {
            return Ok(MakeTls {
                mode,
                ca: None,
                config: None,
            });
        }
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match &ca {
            // prefer / require without any CA file: encrypted, nothing
            // checked (libpq's meaning of these modes).
            None => Arc::new(NoCheck(provider.clone())),
            Some(path) => {
                let roots = Arc::new(load_roots(path)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                if mode == SslMode::VerifyFull {
                    webpki
                } else {
                    // verify-ca, and prefer / require with a CA file (as
                    // libpq).
                    Arc::new(ChainOnly(webpki))
                }
            }
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // PostgreSQL's ALPN name: servers from 17 on insist on it for
        // `sslnegotiation=direct`; older ones ignore it.
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(MakeTls {
            mode,
            ca,
            config: Some(Arc::new(config)),
        })
    }

    /// The mode asked for.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The words for a connection error of tokio-postgres, when it is one
    /// of TLS this module can say more about (`None`: use its own).
    pub fn explain(&self, e: &tokio_postgres::Error) -> Option<String> {
        use std::error::Error;
        let src = e.source()?;
        if let Some(ours) = src.downcast_ref::<TlsError>() {
            return Some(ours.0.clone());
        }
        if src.to_string() == "server does not support TLS" {
            return Some(format!(
                "the server does not offer TLS, and the connection string asks for sslmode={}: turn TLS on at the server (ssl = on, with ssl_cert_file and ssl_key_file, in postgresql.conf), or, on a trusted network only, connect with sslmode=prefer or disable",
                self.mode.as_str()
            ));
        }
        None
    }
}

/// The certificates of a PEM file, as trust anchors.
fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let what = |why: String| {
        format!(
            "cannot use sslrootcert {}: {why}: give a readable PEM file holding the CA certificate that signed the server's certificate",
            path.display()
        )
    };
    let bytes = std::fs::read(path).map_err(|e| what(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| what(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| what(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(what("no PEM certificate in it".into()));
    }
    Ok(roots)
}

/// `prefer` / `require` without a CA: any certificate, but the handshake's
/// signatures are still checked (the session is the one the certificate's
/// key made).
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: webpki's check, less the host name (webpki checks the
/// chain first, so a name error means the chain verified).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A failed TLS handshake in plain words (what tokio-postgres reports
/// after "error performing TLS handshake").
#[derive(Debug)]
pub struct TlsError(String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

impl<S> MakeTlsConnect<S> for MakeTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connector;
    type Error = TlsError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connector, TlsError> {
        Ok(Connector {
            tls: self.clone(),
            host: domain.to_owned(),
        })
    }
}

/// One connection's handshake (the host is the name checked and sent).
pub struct Connector {
    tls: MakeTls,
    host: String,
}

impl Connector {
    fn failed(&self, e: io::Error) -> TlsError {
        let mode = self.tls.mode.as_str();
        let host = &self.host;
        let ca = self
            .tls
            .ca
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let rustls_error = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let words = match rustls_error {
            Some(rustls::Error::InvalidCertificate(c)) => match c {
                CertificateError::NotValidForName => format!(
                    "the server's certificate is not valid for the host {host} (sslmode={mode}): connect by a name the certificate holds, or give the server a certificate for {host}"
                ),
                CertificateError::NotValidForNameContext { presented, .. } => format!(
                    "the server's certificate is not valid for the host {host} (sslmode={mode}; it names {}): connect by a name the certificate holds, or give the server a certificate for {host}",
                    presented_names(presented)
                ),
                CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
                    "the server's certificate is not signed by the CA in sslrootcert {ca} (sslmode={mode}, host {host}): give sslrootcert the CA certificate that signed the server's certificate"
                ),
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
                    "the server's certificate has expired (sslmode={mode}, host {host}): renew it at the server"
                ),
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    format!(
                        "the server's certificate is not valid yet (sslmode={mode}, host {host}): check the clocks of both machines"
                    )
                }
                other => format!(
                    "the server's certificate does not verify against sslrootcert {ca} (sslmode={mode}, host {host}): {other:?}"
                ),
            },
            Some(other) => format!("TLS handshake with {host} failed (sslmode={mode}): {other}"),
            None => format!("TLS handshake with {host} failed (sslmode={mode}): {e}"),
        };
        TlsError(words)
    }
}

/// rustls's presented names (`DnsName("db1")`, `IpAddress(10.0.0.1)`) as
/// people write them.
fn presented_names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no name".into();
    }
    presented
        .iter()
        .map(|p| {
            p.strip_prefix("DnsName(\"")
                .and_then(|r| r.strip_suffix("\")"))
                .or_else(|| {
                    p.strip_prefix("IpAddress(")
                        .and_then(|r| r.strip_suffix(')'))
                })
                .unwrap_or(p)
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<S> TlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let Some(config) = self.tls.config.clone() else {
                return Err(TlsError("TLS is disabled (sslmode=disable)".into()));
            };
            let name = ServerName::try_from(self.host.clone()).map_err(|_| {
                TlsError(format!(
                    "{:?} is not a host name TLS can check (sslmode={})",
                    self.host,
                    self.tls.mode.as_str()
                ))
            })?;
            let s = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| self.failed(e))?;
            Ok(TlsStream(s))
        })
    }
}

/// A connection's TLS stream.
pub struct TlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        match self
            .0
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
        {
            Some(cert) => ChannelBinding::tls_server_end_point(server_end_point(cert)),
            None => ChannelBinding::none(),
        }
    }
}

/// RFC 5929 `tls-server-end-point`: the hash of the server's certificate
/// with the hash function of its signature algorithm, SHA-256 for MD5,
/// SHA-1 and anything else.
pub fn server_end_point(cert_der: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    // OIDs (DER contents) of the SHA-384 / SHA-512 signature algorithms.
    const SHA384: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c], // sha384WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],       // ecdsa-with-SHA384
    ];
    const SHA512: &[&[u8]] = &[
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d], // sha512WithRSAEncryption
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],       // ecdsa-with-SHA512
    ];
    match signature_algorithm_oid(cert_der) {
        Some(oid) if SHA384.contains(&oid) => sha2::Sha384::digest(cert_der).to_vec(),
        Some(oid) if SHA512.contains(&oid) => sha2::Sha512::digest(cert_der).to_vec(),
        _ => sha2::Sha256::digest(cert_der).to_vec(),
    }
}

/// The contents of `Certificate.signatureAlgorithm.algorithm` (an OID) of a
/// DER certificate: `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm
/// SEQUENCE { OID, … }, … }`.
fn signature_algorithm_oid(der: &[u8]) -> Option<&[u8]> {
    /// One TLV at the start of `b`: (tag, contents, rest).
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let mut len = 0usize;
            for &x in &b[..n] {
                len = (len << 8) | usize::from(x);
            }
            b = &b[n..];
            len
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (0x30, _tbs, rest) = tlv(cert)? else {
        return None;
    };
    let (0x30, alg, _) = tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = tlv(alg)? else {
        return None;
    };
    Some(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, TlsRequest) {
        split_tls_params(s).expect("split")
    }

    #[test]
    fn url_parameters_are_taken_out_and_the_rest_kept_as_written() {
        let (rest, req) = split(
            "postgres://u:p%3F@db1:5432/x?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.crt&target_session_attrs=read-write",
        );
        assert_eq!(
            rest,
            "postgres://u:p%3F@db1:5432/x?connect_timeout=5&target_session_attrs=read-write"
        );
        assert_eq!(req.mode, SslMode::VerifyFull);
        assert_eq!(req.root_cert, Some(PathBuf::from("/etc/ca x.crt")));
        let (rest, req) = split("postgres://db1/x?sslmode=require");
        assert_eq!(rest, "postgres://db1/x");
        assert_eq!(req.mode, SslMode::Require);
    }

    #[test]
    fn key_value_pairs_are_taken_out_quoted_or_not() {
        let (rest, req) = split(
            "host=db1 sslmode = verify-ca  password='a b\\'c' sslrootcert='/ca dir/ca.crt' dbname=x",
        );
        assert_eq!(rest, "host=db1 password='a b\\'c' dbname=x");
        assert_eq!(req.mode, SslMode::VerifyCa);
        assert_eq!(req.root_cert, Some(PathBuf::from("/ca dir/ca.crt")));
        let parsed: tokio_postgres::Config = rest.parse().expect("the rest parses");
        assert_eq!(parsed.get_password(), Some(&b"a b'c"[..]));
    }

    #[test]
    fn bad_values_and_unsupported_settings_are_refused_in_words() {
        let e = split_tls_params("postgres://db1/x?sslmode=verify").unwrap_err();
        assert!(e.contains("expected disable, prefer, require"), "{e}");
        let e = split_tls_params("host=db1 sslcert=/c.pem").unwrap_err();
        assert!(e.contains("client certificates are not supported"), "{e}");
        let e = split_tls_params("postgres://db1/x?sslrootcert=system").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.crt");
        let e = MakeTls::new(&TlsRequest {
            mode: SslMode::VerifyFull,
            root_cert: Some(missing.clone()),
        })
        .unwrap_err();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("give a readable PEM file"), "{e}");
        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = MakeTls::new(&TlsRequest {
            mode: SslMode::VerifyCa,
            root_cert: Some(empty),
        })
        .unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn the_default_ca_file_is_used_by_every_mode_that_encrypts_when_it_exists() {
        let home = tempfile::tempdir().unwrap();
        let req = |mode| TlsRequest {
            mode,
            root_cert: None,
        };
        // No default file: prefer / require check nothing, verify-* refuse.
        for mode in [SslMode::Prefer, SslMode::Require] {
            let t = MakeTls::with_home(&req(mode), Some(home.path())).expect("no CA needed");
            assert_eq!(t.ca, None);
        }
        let e = MakeTls::with_home(&req(SslMode::VerifyCa), Some(home.path())).unwrap_err();
        assert!(e.contains("needs the CA certificate"), "{e}");
        let e = MakeTls::with_home(&req(SslMode::VerifyFull), None).unwrap_err();
        assert!(e.contains("needs the CA certificate"), "{e}");
        // With one, every mode but disable takes it.
        let root = default_root_cert_in(home.path());
        std::fs::create_dir_all(root.parent().unwrap()).unwrap();
        std::fs::write(&root, crate::store::pg_temp::new_test_ca().unwrap()).unwrap();
        for mode in [
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            let t = MakeTls::with_home(&req(mode), Some(home.path())).expect("the default CA");
            assert_eq!(t.ca.as_deref(), Some(root.as_path()), "{mode:?}");
        }
        let t = MakeTls::with_home(&req(SslMode::Disable), Some(home.path())).unwrap();
        assert!(t.ca.is_none() && t.config.is_none());
        // A default file that is not a CA is an error, not a silent skip.
        std::fs::write(&root, "junk\n").unwrap();
        let e = MakeTls::with_home(&req(SslMode::Require), Some(home.path())).unwrap_err();
        assert!(
            e.contains("no PEM certificate") && e.contains("root.crt"),
            "{e}"
        );
    }

    #[test]
    fn the_channel_binding_hash_follows_the_signature_algorithm() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(server_end_point(cert.der()).len(), 48);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(server_end_point(cert.der()).len(), 32);
        assert_eq!(signature_algorithm_oid(b"\x30\x01"), None);
    }
}
