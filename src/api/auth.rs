//! Bearer-token authentication and role-based authorisation (spec §11 Tokens).
//!
//! A client sends `authorization: Bearer <token>`. The interceptor turns the
//! token into a [`Role`] (missing or unknown token: `UNAUTHENTICATED`) and
//! stores it in the request extensions; each method then asks
//! [`require`] for the [`Permission`] it needs (`PERMISSION_DENIED`).
//! Without a token configuration every caller is `admin` and the server binds
//! to loopback only (decided in `api::server`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tonic::{Request, Status};

/// Environment variable holding `token=role` pairs separated by commas.
pub const TOKENS_ENV: &str = "ISC_LEDGER_TOKENS";

/// Upper bound on one token's length, so a hostile header costs nothing.
pub const TOKEN_MAX_BYTES: usize = 512;

/// Who the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A PBX agent / reseller: opens accounts, changes configs, tops up, reads.
    Agent,
    /// The vendor: publishes price lists.
    Vendor,
    /// An auditor: reads, statements, compliance reports, watches.
    Auditor,
    /// Everything, including closing accounts and moving the manual clock.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = AuthConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "agent" => Ok(Role::Agent),
            "vendor" => Ok(Role::Vendor),
            "auditor" => Ok(Role::Auditor),
            "admin" => Ok(Role::Admin),
            other => Err(AuthConfigError::UnknownRole(other.to_string())),
        }
    }
}

/// What a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Open account, change config, top-up.
    AccountWrite,
    /// Close an account (forfeits credit: admin only).
    CloseAccount,
    /// Publish a price list.
    PublishPrices,
    /// Read an account view or a statement; watch notices.
    Read,
    /// The continuous-use compliance report.
    Compliance,
    /// Move the manual clock.
    SetClock,
    /// Mark a device incompatible or banned, or restore it (spec §14).
    DeviceStatus,
    /// Signed tree heads, inclusion and consistency proofs (hashes only).
    Proofs,
    /// Stream the whole log (every account's records).
    ReadLog,
}

impl Role {
    /// Whether this role may do `p`.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Agent => matches!(p, AccountWrite | Read | Proofs),
            Role::Vendor => matches!(p, PublishPrices | DeviceStatus),
            Role::Auditor => matches!(p, Read | Compliance | Proofs | ReadLog),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Vendor => "vendor",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

/// A bad token configuration.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected TOML.
    #[error("token file {path} is not valid: {source}")]
    Toml {
        /// The file.
        path: String,
        /// Why.
        source: toml::de::Error,
    },
    /// A role name other than agent/vendor/auditor/admin.
    #[error("unknown role {0:?} (expected agent, vendor, auditor or admin)")]
    UnknownRole(String),
    /// A malformed `token=role` pair in the environment.
    #[error("malformed {TOKENS_ENV} entry {0:?} (expected token=role)")]
    BadPair(String),
    /// An empty, too long or non-printable token.
    #[error("a token must be 1..={TOKEN_MAX_BYTES} printable ASCII characters without spaces")]
    BadToken,
}

/// The token → role table. Empty means "no authentication configured".
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_token: HashMap<String, Role>,
}

#[derive(serde::Deserialize)]
struct TokenFile {
    /// `[tokens]` table: `"the-token" = "agent"`.
    #[serde(default)]
    tokens: HashMap<String, Role>,
}

impl Tokens {
    /// No authentication: every caller is admin.
    pub fn none() -> Self {
        Self::default()
    }

    /// Whether any token is configured.
    pub fn is_configured(&self) -> bool {
        !self.by_token.is_empty()
    }

    /// Adds one token.
    pub fn insert(&mut self, token: &str, role: Role) -> Result<(), AuthConfigError> {
        let ok = !token.is_empty()
            && token.len() <= TOKEN_MAX_BYTES
            && token.bytes().all(|b| (0x21..=0x7e).contains(&b));
        if !ok {
            return Err(AuthConfigError::BadToken);
        }
        self.by_token.insert(token.to_string(), role);
        Ok(())
    }

    /// Parses a TOML token file:
    /// ```toml
    /// [tokens]
    /// "s3cret-agent" = "agent"
    /// "s3cret-admin" = "admin"
    /// ```
    pub fn from_toml(text: &str, path: &str) -> Result<Self, AuthConfigError> {
        let file: TokenFile = toml::from_str(text).map_err(|source| AuthConfigError::Toml {
            path: path.to_string(),
            source,
        })?;
        let mut t = Tokens::none();
        for (token, role) in file.tokens {
            t.insert(&token, role)?;
        }
        Ok(t)
    }

    /// Reads a TOML token file.
    pub fn from_file(path: &Path) -> Result<Self, AuthConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    /// Parses `tok1=agent,tok2=admin` (the [`TOKENS_ENV`] format).
    pub fn from_pairs(spec: &str) -> Result<Self, AuthConfigError> {
        let mut t = Tokens::none();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (token, role) = pair
                .rsplit_once('=')
                .ok_or_else(|| AuthConfigError::BadPair(pair.to_string()))?;
            t.insert(token.trim(), role.parse()?)?;
        }
        Ok(t)
    }

    /// The file if given, else [`TOKENS_ENV`] if set, else none.
    pub fn load(file: Option<&Path>) -> Result<Self, AuthConfigError> {
        let mut t = match file {
            Some(p) => Self::from_file(p)?,
            None => Tokens::none(),
        };
        if let Ok(spec) = std::env::var(TOKENS_ENV) {
            for (k, v) in Self::from_pairs(&spec)?.by_token {
                t.by_token.insert(k, v);
            }
        }
        Ok(t)
    }

    /// The role of a bearer token, if known.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.by_token.get(token).copied()
    }
}

/// The gRPC interceptor: authenticates and records the caller's [`Role`].
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    tokens: Arc<Tokens>,
}

impl AuthInterceptor {
    /// Wraps a token table.
    pub fn new(tokens: Arc<Tokens>) -> Self {
        Self { tokens }
    }

    fn authenticate(&self, req: &Request<()>) -> Result<Role, Status> {
        if !self.tokens.is_configured() {
            return Ok(Role::Admin);
        }
        let header = req.metadata().get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing `authorization: Bearer <token>` metadata")
        })?;
        let value = header.to_str().map_err(|_| {
            Status::unauthenticated("the authorization header is not printable ASCII")
        })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("the authorization header must read `Bearer <token>`")
            })?
            .trim();
        self.tokens
            .role_of(token)
            .ok_or_else(|| Status::unauthenticated("unknown bearer token"))
    }
}

impl tonic::service::Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let role = self.authenticate(&req)?;
        req.extensions_mut().insert(role);
        Ok(req)
    }
}

/// Checks that the authenticated caller may do `p` (`PERMISSION_DENIED` if not).
///
/// A request that did not pass through the interceptor has no role and is
/// refused: failing closed is the safe default.
pub fn require<T>(req: &Request<T>, p: Permission) -> Result<Role, Status> {
    let role = req
        .extensions()
        .get::<Role>()
        .copied()
        .ok_or_else(|| Status::unauthenticated("request was not authenticated"))?;
    if role.allows(p) {
        Ok(role)
    } else {
        Err(Status::permission_denied(format!(
            "the {} role may not {}",
            role.name(),
            match p {
                Permission::AccountWrite => "open accounts, change configurations or top up",
                Permission::CloseAccount => "close accounts (admin only)",
                Permission::PublishPrices => "publish price lists (vendor or admin)",
                Permission::Read => "read accounts, statements or notices",
                Permission::Compliance => "read the compliance report (auditor or admin)",
                Permission::SetClock => "set the clock (admin only)",
                Permission::DeviceStatus => "set a device's status (vendor or admin)",
                Permission::Proofs => "read tree heads or proofs (agent, auditor or admin)",
                Permission::ReadLog => "read the log (auditor or admin)",
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn tokens() -> Tokens {
        Tokens::from_toml(
            "[tokens]\n\"a-tok\" = \"agent\"\n\"v-tok\" = \"vendor\"\n",
            "t",
        )
        .unwrap()
    }

    fn call(t: Tokens, header: Option<&str>) -> Result<Role, Status> {
        let mut i = AuthInterceptor::new(Arc::new(t));
        let mut req = Request::new(());
        if let Some(h) = header {
            req.metadata_mut()
                .insert("authorization", h.parse().unwrap());
        }
        let req = i.call(req)?;
        Ok(*req.extensions().get::<Role>().unwrap())
    }

    #[test]
    fn no_config_means_admin() {
        assert_eq!(call(Tokens::none(), None).unwrap(), Role::Admin);
    }

    #[test]
    fn missing_or_wrong_token_is_unauthenticated() {
        assert_eq!(
            call(tokens(), None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let e = call(tokens(), Some("Bearer nope")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let e = call(tokens(), Some("a-tok")).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn roles_map_to_permissions() {
        assert_eq!(call(tokens(), Some("Bearer a-tok")).unwrap(), Role::Agent);
        let mut req = Request::new(());
        req.extensions_mut().insert(Role::Vendor);
        assert_eq!(
            require(&req, Permission::AccountWrite).unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        assert!(require(&req, Permission::PublishPrices).is_ok());
        assert!(Role::Auditor.allows(Permission::Compliance));
        assert!(!Role::Agent.allows(Permission::Compliance));
        assert!(!Role::Agent.allows(Permission::CloseAccount));
        assert!(Role::Agent.allows(Permission::Proofs));
        assert!(!Role::Agent.allows(Permission::ReadLog));
        assert!(Role::Auditor.allows(Permission::ReadLog));
        assert!(!Role::Vendor.allows(Permission::Proofs));
    }

    #[test]
    fn env_pairs_parse() {
        let t = Tokens::from_pairs("x1234=admin, y5678=auditor").unwrap();
        assert_eq!(t.role_of("y5678"), Some(Role::Auditor));
        assert!(Tokens::from_pairs("x=boss").is_err());
        assert!(Tokens::from_pairs("novalue").is_err());
    }
}
