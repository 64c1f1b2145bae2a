//! Connection strings of the PostgreSQL backend: a libpq-style URL
//! (`postgres://user@host1:5432,host2:5432/db?target_session_attrs=read-write`)
//! or a key=value string (`host=/run/postgresql dbname=ledger`), parsed by
//! tokio-postgres, plus the libpq conventions tokio-postgres leaves out: the
//! user defaults to `PGUSER` (else the login name), the host to `PGHOST`
//! (else the local socket directory), the port to `PGPORT`, the database to
//! `PGDATABASE`, and the password comes from the string, `PGPASSWORD`, or a
//! passfile (`PGPASSFILE`, else `~/.pgpass`; ignored when group- or
//! world-readable, as libpq does). A password never appears in a log line
//! or an error: [`describe`] is what gets printed. TLS (`sslmode`,
//! `sslrootcert`) is `store::pg_tls`'s: [`parse`] gives the settings and the
//! TLS together ([`PgConfig`]), and [`PgConfig::connect`] is how every
//! connection of the backend is made.

use std::path::PathBuf;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, Connection, Socket};

use super::pg_tls::{MakeTls, SslMode, TlsRequest, TlsStream};
use super::StoreError;

/// A parsed connection string: tokio-postgres's settings and the TLS its
/// connections are made with.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Hosts, database, user, password, timeouts, …
    pub cfg: Config,
    /// `sslmode` and its CA, ready to connect with.
    pub tls: MakeTls,
}

impl PgConfig {
    /// See [`describe`].
    pub fn describe(&self) -> String {
        describe(&self.cfg)
    }

    /// Connects (TLS as the string asks); the caller spawns the connection.
    pub async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream<Socket>>), tokio_postgres::Error> {
        self.cfg.connect(self.tls.clone()).await
    }

    /// The error of a failed [`PgConfig::connect`]: the database (never the
    /// password), which connection, and why in plain words.
    pub fn connect_error(&self, what: &str, e: tokio_postgres::Error) -> StoreError {
        let head = format!("cannot connect to {} ({what})", self.describe());
        match self.tls.explain(&e) {
            Some(words) => StoreError::Postgres(format!("{head}: {words}")),
            None => super::pg_log::pg_error(&head, e),
        }
    }
}

/// True when `s` names a PostgreSQL database rather than a directory: a
/// `postgres://` / `postgresql://` URL or a libpq key=value string.
pub fn looks_like_postgres(s: &str) -> bool {
    let t = s.trim_start();
    if t.starts_with("postgres://") || t.starts_with("postgresql://") {
        return true;
    }
    // key=value: the first word is `name=` with a known libpq key.
    let first = t.split_whitespace().next().unwrap_or("");
    match first.split_once('=') {
        Some((k, _)) => matches!(
            k,
            "host"
                | "hostaddr"
                | "port"
                | "dbname"
                | "user"
                | "password"
                | "options"
                | "application_name"
                | "sslmode"
                | "sslrootcert"
                | "connect_timeout"
                | "target_session_attrs"
                | "keepalives"
                | "keepalives_idle"
                | "load_balance_hosts"
                | "channel_binding"
        ),
        None => false,
    }
}

/// Parses a connection string, fills in libpq's defaults (see the module)
/// and reads the CA file TLS asks for.
pub fn parse(s: &str) -> Result<PgConfig, StoreError> {
    let (cfg, req) = parse_config(s)?;
    let tls =
        MakeTls::new(&req).map_err(|e| StoreError::Postgres(format!("{}: {e}", describe(&cfg))))?;
    Ok(PgConfig { cfg, tls })
}

/// [`parse`] without reading any file: the settings and what TLS is asked.
pub fn parse_config(s: &str) -> Result<(Config, TlsRequest), StoreError> {
    let bad = |e: String| {
        StoreError::Postgres(format!(
            "cannot parse the PostgreSQL connection string: {e}"
        ))
    };
    let (rest, mut req) = super::pg_tls::split_tls_params(s).map_err(bad)?;
    let mut cfg: Config = rest.parse().map_err(|e| bad(format!("{e}")))?;
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if cfg.get_user().is_none() {
        let user = env("PGUSER")
            .or_else(|| env("USER"))
            .or_else(|| env("LOGNAME"))
            .unwrap_or_else(|| "postgres".into());
        cfg.user(user);
    }
    if cfg.get_hosts().is_empty() && cfg.get_hostaddrs().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for h in hosts.split(',') {
                    cfg.host(h);
                }
            }
            None => {
                cfg.host("/var/run/postgresql");
            }
        }
    }
    // tokio-postgres names the TLS server after `host` only: with just
    // `hostaddr`, the address is the name (an IP name for rustls), as libpq
    // checks a certificate against hostaddr then; the passfile is matched
    // on it too (libpq's rule). verify-full has no host name to check.
    if cfg.get_hosts().is_empty() && !cfg.get_hostaddrs().is_empty() {
        if req.mode == SslMode::VerifyFull {
            return Err(bad(
                "sslmode=verify-full checks the host name in the server's certificate, and the string gives only hostaddr: add host=NAME (a name the certificate holds; hostaddr stays the address connected to), or use sslmode=verify-ca"
                    .into(),
            ));
        }
        let addrs: Vec<String> = cfg.get_hostaddrs().iter().map(|a| a.to_string()).collect();
        for a in addrs {
            cfg.host(a);
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(p) = env("PGPORT").and_then(|p| p.parse::<u16>().ok()) {
            cfg.port(p);
        }
    }
    if cfg.get_dbname().is_none() {
        if let Some(d) = env("PGDATABASE") {
            cfg.dbname(d);
        }
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("isc-ledger");
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(std::time::Duration::from_secs(10));
    }
    if cfg.get_password().is_none() {
        if let Some(p) = env("PGPASSWORD") {
            cfg.password(p);
        } else if let Some(p) = passfile_password(&cfg) {
            cfg.password(p);
        }
    }
    // libpq never uses TLS on a local socket, whatever sslmode says.
    let sockets_only = cfg.get_hostaddrs().is_empty()
        && cfg.get_hosts().iter().all(|h| matches!(h, Host::Unix(_)));
    if sockets_only {
        req.mode = SslMode::Disable;
    }
    // tokio-postgres takes one sslmode for every host: a socket in a list
    // with TCP hosts would be asked for TLS, which it never has.
    let some_socket = cfg.get_hosts().iter().any(|h| matches!(h, Host::Unix(_)));
    if some_socket
        && !sockets_only
        && matches!(
            req.mode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    {
        return Err(bad(format!(
            "the host list mixes Unix-socket directories and TCP hosts, and sslmode={} would ask TLS of the sockets too (a socket never has TLS): list only TCP hosts (e.g. localhost for the local server), or only sockets",
            req.mode.as_str()
        )));
    }
    cfg.ssl_mode(match req.mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok((cfg, req))
}

/// The connection for people: hosts, ports, database and user, never the
/// password.
pub fn describe(cfg: &Config) -> String {
    let ports = cfg.get_ports();
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match h {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "postgres {} database {} user {}",
        hosts.join(","),
        cfg.get_dbname().or(cfg.get_user()).unwrap_or("?"),
        cfg.get_user().unwrap_or("?")
    )
}

fn passfile_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass"))
}

/// The password of the first passfile line that matches one of the hosts
/// (tokio-postgres takes one password for all of them).
fn passfile_password(cfg: &Config) -> Option<String> {
    let path = passfile_path()?;
    let meta = std::fs::metadata(&path).ok()?;
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "password file has group or world access; permissions should be u=rw (0600) or less: ignored"
            );
            return None;
        }
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let user = cfg.get_user().unwrap_or("");
    let db = cfg.get_dbname().unwrap_or(user);
    let ports = cfg.get_ports();
    for (i, h) in cfg.get_hosts().iter().enumerate() {
        let host = match h {
            Host::Tcp(name) => name.clone(),
            // libpq matches a socket directory as `localhost`.
            Host::Unix(_) => "localhost".to_owned(),
        };
        let port = ports
            .get(i)
            .or(ports.first())
            .copied()
            .unwrap_or(5432)
            .to_string();
        if let Some(p) = lookup_passfile(&text, &host, &port, db, user) {
            return Some(p);
        }
    }
    None
}

/// Finds the password for `(host, port, db, user)` in passfile text
/// (`hostname:port:database:username:password`, `*` matches anything,
/// `\` escapes `:` and `\`).
pub fn lookup_passfile(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let m = |pat: &str, v: &str| pat == "*" || pat == v;
        if m(&fields[0], host) && m(&fields[1], port) && m(&fields[2], db) && m(&fields[3], user) {
            return Some(fields[4].clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_key_value_strings_are_told_from_directories() {
        assert!(looks_like_postgres("postgres://u@h/db"));
        assert!(looks_like_postgres(
            "postgresql://h1,h2/db?target_session_attrs=read-write"
        ));
        assert!(looks_like_postgres("host=/tmp dbname=x"));
        assert!(!looks_like_postgres("./isc-ledger-data"));
        assert!(!looks_like_postgres("/var/lib/isc"));
        assert!(!looks_like_postgres("data=x"));
    }

    #[test]
    fn multi_host_read_write_parses_and_the_password_is_never_described() {
        let cfg = parse(
            "postgres://ledger:s3cret@db1:5433,db2:5434/books?target_session_attrs=read-write",
        )
        .expect("parse")
        .cfg;
        assert_eq!(cfg.get_hosts().len(), 2);
        assert_eq!(
            cfg.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        let d = describe(&cfg);
        assert_eq!(d, "postgres db1:5433,db2:5434 database books user ledger");
        assert!(!format!("{d} {cfg:?}").contains("s3cret"));
        assert!(parse("postgres://[bad").is_err());
    }

    #[test]
    fn sslmode_defaults_to_prefer_and_a_local_socket_never_uses_tls() {
        use tokio_postgres::config::SslMode as Pq;
        let (cfg, req) = parse_config("postgres://u@db1/x").expect("parse");
        if std::env::var_os("PGSSLMODE").is_none() {
            assert_eq!(req.mode, SslMode::Prefer);
            assert_eq!(cfg.get_ssl_mode(), Pq::Prefer);
        }
        let (cfg, req) = parse_config("postgres://u@db1/x?sslmode=verify-full&sslrootcert=/ca.crt")
            .expect("parse");
        assert_eq!(req.mode, SslMode::VerifyFull);
        assert_eq!(cfg.get_ssl_mode(), Pq::Require);
        let (cfg, req) =
            parse_config("host=/run/postgresql dbname=x sslmode=verify-full").expect("parse");
        assert_eq!(req.mode, SslMode::Disable);
        assert_eq!(cfg.get_ssl_mode(), Pq::Disable);
        // The CA file is read by `parse`, not `parse_config`.
        let e =
            parse("postgres://u:s3cret@db1/x?sslmode=verify-ca&sslrootcert=/nonexistent/ca.crt")
                .unwrap_err()
                .to_string();
        assert!(e.contains("postgres db1:5432 database x user u"), "{e}");
        assert!(
            e.contains("/nonexistent/ca.crt") && !e.contains("s3cret"),
            "{e}"
        );
    }

    #[test]
    fn hostaddr_alone_is_the_tls_name_and_verify_full_needs_a_host() {
        let (cfg, _) =
            parse_config("hostaddr=127.0.0.1 port=5433 dbname=x sslmode=require").expect("parse");
        assert_eq!(cfg.get_hosts(), &[Host::Tcp("127.0.0.1".into())]);
        assert_eq!(cfg.get_hostaddrs().len(), 1);
        assert_eq!(
            describe(&cfg),
            "postgres 127.0.0.1:5433 database x user ".to_owned() + cfg.get_user().unwrap()
        );
        // A host given keeps being the name checked.
        let (cfg, _) = parse_config("host=db1 hostaddr=10.0.0.1 dbname=x").expect("parse");
        assert_eq!(cfg.get_hosts(), &[Host::Tcp("db1".into())]);
        let e = parse_config("hostaddr=127.0.0.1 dbname=x sslmode=verify-full")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sslmode=verify-full") && e.contains("add host=NAME"),
            "{e}"
        );
        parse_config("hostaddr=127.0.0.1 dbname=x sslmode=verify-ca").expect("verify-ca");
    }

    #[test]
    fn sockets_mixed_with_tcp_hosts_are_refused_when_tls_is_required() {
        for mode in ["require", "verify-ca", "verify-full"] {
            let e = parse_config(&format!(
                "host=/run/postgresql,db1 dbname=x sslmode={mode} sslrootcert=/ca.crt"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("mixes Unix-socket directories and TCP hosts")
                    && e.contains(&format!("sslmode={mode}")),
                "{e}"
            );
        }
        for mode in ["disable", "prefer"] {
            parse_config(&format!("host=/run/postgresql,db1 dbname=x sslmode={mode}"))
                .expect("a mixed list without required TLS");
        }
    }

    #[test]
    fn passfile_lines_match_like_libpq() {
        let text = "# comment\n\
                    db1:5432:books:ledger:pw\\:one\n\
                    *:*:*:ledger:fallback\n";
        assert_eq!(
            lookup_passfile(text, "db1", "5432", "books", "ledger").as_deref(),
            Some("pw:one")
        );
        assert_eq!(
            lookup_passfile(text, "db9", "1", "x", "ledger").as_deref(),
            Some("fallback")
        );
        assert_eq!(lookup_passfile(text, "db1", "5432", "books", "other"), None);
    }
}
