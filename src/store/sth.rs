//! Signed tree heads (spec §13): the ledger key, the 88 signed bytes, and the
//! JSON form that is the one file format of the store's head file
//! (`<data>/signed-tree-head.json`), `audit --state FILE` and
//! `verify --sth FILE`.
//!
//! Signed bytes (Ed25519, RFC 8032):
//!
//! ```text
//! "isc-ledger/sth/v1\0"   18 bytes (the last a zero byte)
//! tree_size               u64 big-endian
//! root_hash               32 bytes
//! at                      i64 big-endian (instant of the head's last record; 0 when empty)
//! reserved                22 zero bytes
//! ```
//!
//! JSON form (lowercase hex; readers ignore fields they do not know, so
//! `audit`'s state file is a head file with more fields):
//!
//! ```json
//! {"tree_size":150,"root_hash":"…64 hex…","at":1733000000,
//!  "signature":"…128 hex…","public_key":"…64 hex…"}
//! ```
//!
//! Key file (`key new`, `serve --signing-key`, `<data>/ledger-key`): one
//! line `isc-ledger-ed25519-secret-v1 <64 hex of the 32-byte seed>`,
//! mode 0600.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::codec::Hash;

/// Domain separation prefix of the signed bytes (18 bytes).
pub const STH_CONTEXT: &[u8; 18] = b"isc-ledger/sth/v1\0";

/// Length of the signed bytes.
pub const STH_SIGNED_BYTES: usize = 88;

/// Name of the head file in a sled data directory.
pub const HEAD_FILE: &str = "signed-tree-head.json";

/// Name of the key file `serve` creates in the data directory when it is
/// given none.
pub const DEFAULT_KEY_FILE: &str = "ledger-key";

/// First word of a key file.
const KEY_FILE_TAG: &str = "isc-ledger-ed25519-secret-v1";

/// Head files and key files are small; anything larger is not one.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What can go wrong with keys and heads.
#[derive(Debug, thiserror::Error)]
pub enum SthError {
    /// Reading or writing a file failed.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        err: std::io::Error,
    },
    /// A file or string is not in the expected format.
    #[error("{0}")]
    Format(String),
    /// The signature does not verify.
    #[error("signature of the tree head (size {tree_size}) does not verify")]
    BadSignature {
        /// Size of the head.
        tree_size: u64,
    },
    /// The head is signed by another key.
    #[error("tree head is signed by key {found}, expected {expected}")]
    WrongKey {
        /// The head's key (hex).
        found: String,
        /// The expected key (hex).
        expected: String,
    },
    /// No randomness for a new key.
    #[error("cannot get randomness for a new key: {0}")]
    Random(String),
}

fn io_err(path: &Path, err: std::io::Error) -> SthError {
    SthError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// The 88 bytes a head's signature covers.
pub fn signed_bytes(tree_size: u64, root_hash: &Hash, at: i64) -> [u8; STH_SIGNED_BYTES] {
    let mut out = [0u8; STH_SIGNED_BYTES];
    out[..18].copy_from_slice(STH_CONTEXT);
    out[18..26].copy_from_slice(&tree_size.to_be_bytes());
    out[26..58].copy_from_slice(root_hash);
    out[58..66].copy_from_slice(&at.to_be_bytes());
    // 66..88 reserved, zero.
    out
}

/// A signed tree head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// Number of records (leaves) in the tree.
    pub tree_size: u64,
    /// RFC 9162 root of the tree.
    pub root_hash: Hash,
    /// Instant of the last record (0 for the empty tree).
    pub at: i64,
    /// Ed25519 signature over [`signed_bytes`].
    pub signature: [u8; 64],
    /// The signer's public key.
    pub public_key: [u8; 32],
}

/// The serde shape of the JSON form.
#[derive(Serialize, Deserialize)]
struct SthJson {
    tree_size: u64,
    root_hash: String,
    at: i64,
    signature: String,
    public_key: String,
}

/// Decodes `N` bytes of lowercase (or uppercase) hex.
pub fn parse_hex<const N: usize>(what: &str, s: &str) -> Result<[u8; N], SthError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.trim(), &mut out)
        .map_err(|e| SthError::Format(format!("{what}: expected {} hex digits ({e})", 2 * N)))?;
    Ok(out)
}

impl SignedTreeHead {
    /// The bytes its signature covers.
    pub fn signed_bytes(&self) -> [u8; STH_SIGNED_BYTES] {
        signed_bytes(self.tree_size, &self.root_hash, self.at)
    }

    /// Checks the signature against the head's own public key.
    pub fn verify(&self) -> Result<(), SthError> {
        let key = VerifyingKey::from_bytes(&self.public_key)
            .map_err(|_| SthError::Format("public key is not an Ed25519 point".into()))?;
        key.verify_strict(
            &self.signed_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| SthError::BadSignature {
            tree_size: self.tree_size,
        })
    }

    /// Checks that the head is signed by `public_key` and the signature holds.
    pub fn verify_with(&self, public_key: &[u8; 32]) -> Result<(), SthError> {
        if &self.public_key != public_key {
            return Err(SthError::WrongKey {
                found: hex::encode(self.public_key),
                expected: hex::encode(public_key),
            });
        }
        self.verify()
    }

    /// The JSON form (one line, no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_json_value()).unwrap_or_default()
    }

    /// The JSON form as a value (to add fields to, as `audit` does).
    pub fn to_json_value(&self) -> serde_json::Value {
        serde_json::json!({
            "tree_size": self.tree_size,
            "root_hash": hex::encode(self.root_hash),
            "at": self.at,
            "signature": hex::encode(self.signature),
            "public_key": hex::encode(self.public_key),
        })
    }

    /// Parses the JSON form (unknown fields are ignored). Does not check
    /// the signature.
    pub fn from_json(s: &str) -> Result<SignedTreeHead, SthError> {
        let j: SthJson = serde_json::from_str(s)
            .map_err(|e| SthError::Format(format!("not a signed tree head: {e}")))?;
        Self::from_json_parts(j)
    }

    /// Parses the head out of a JSON value (unknown fields are ignored).
    pub fn from_json_value(v: &serde_json::Value) -> Result<SignedTreeHead, SthError> {
        let j: SthJson = serde_json::from_value(v.clone())
            .map_err(|e| SthError::Format(format!("not a signed tree head: {e}")))?;
        Self::from_json_parts(j)
    }

    fn from_json_parts(j: SthJson) -> Result<SignedTreeHead, SthError> {
        Ok(SignedTreeHead {
            tree_size: j.tree_size,
            root_hash: parse_hex("root_hash", &j.root_hash)?,
            at: j.at,
            signature: parse_hex("signature", &j.signature)?,
            public_key: parse_hex("public_key", &j.public_key)?,
        })
    }

    /// Reads a head file (the JSON form). Does not check the signature.
    pub fn read_file(path: &Path) -> Result<SignedTreeHead, SthError> {
        let text = read_small_file(path)?;
        Self::from_json(&text).map_err(|e| SthError::Format(format!("{}: {e}", path.display())))
    }

    /// Writes the head file atomically (see [`write_file_atomic`]).
    pub fn write_file(&self, path: &Path, durable: bool) -> Result<(), SthError> {
        let mut text = self.to_json();
        text.push('\n');
        write_file_atomic(path, text.as_bytes(), durable)
    }
}

/// Reads a file of at most 64 KiB as UTF-8.
pub fn read_small_file(path: &Path) -> Result<String, SthError> {
    let f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_FILE_BYTES + 1), &mut text)
        .map_err(|e| io_err(path, e))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(SthError::Format(format!(
            "{}: larger than {MAX_FILE_BYTES} bytes",
            path.display()
        )));
    }
    Ok(text)
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// and a rename, so a reader sees the old or the new file, never a torn
/// one. `durable` also fsyncs the file before the rename and the directory
/// after it.
pub fn write_file_atomic(path: &Path, bytes: &[u8], durable: bool) -> Result<(), SthError> {
    write_atomic(path, durable, |f| f.write_all(bytes))
}

/// [`write_file_atomic`] of what `write` writes (through a buffer), for
/// contents too big to build in memory first.
pub fn write_file_atomic_with(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), SthError> {
    write_atomic(path, durable, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        w.flush()
    })
}

fn write_atomic(
    path: &Path,
    durable: bool,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), SthError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "head".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let run = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable {
            std::fs::File::open(&dir)?.sync_all()?;
        }
        Ok(())
    };
    run().map_err(|e| io_err(path, e))
}

/// The ledger's Ed25519 signing key.
pub struct LedgerKey {
    signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "LedgerKey(public {})", self.public_key_hex())
    }
}

impl LedgerKey {
    /// A key from its 32-byte seed (tests, benches).
    pub fn from_seed(seed: &[u8; 32]) -> LedgerKey {
        LedgerKey {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// A new random key.
    pub fn generate() -> Result<LedgerKey, SthError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| SthError::Random(e.to_string()))?;
        let key = LedgerKey::from_seed(&seed);
        seed.fill(0);
        Ok(key)
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The public key in lowercase hex.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key())
    }

    /// Signs a head.
    pub fn sign(&self, tree_size: u64, root_hash: Hash, at: i64) -> SignedTreeHead {
        let sig = self.signing.sign(&signed_bytes(tree_size, &root_hash, at));
        SignedTreeHead {
            tree_size,
            root_hash,
            at,
            signature: sig.to_bytes(),
            public_key: self.public_key(),
        }
    }

    /// The key file's text.
    fn file_text(&self) -> String {
        format!("{KEY_FILE_TAG} {}\n", hex::encode(self.signing.to_bytes()))
    }

    /// Parses a key file's text.
    pub fn from_file_text(text: &str) -> Result<LedgerKey, SthError> {
        let mut words = text.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some(KEY_FILE_TAG), Some(h), None) => {
                let seed = parse_hex::<32>("signing key", h)?;
                Ok(LedgerKey::from_seed(&seed))
            }
            _ => Err(SthError::Format(format!(
                "not an isc-ledger key file (expected `{KEY_FILE_TAG} <64 hex digits>`)"
            ))),
        }
    }

    /// Loads a key file.
    pub fn load(path: &Path) -> Result<LedgerKey, SthError> {
        let text = read_small_file(path)?;
        Self::from_file_text(&text)
            .map_err(|e| SthError::Format(format!("{}: {e}", path.display())))
    }

    /// Writes this key to a new file (mode 0600; refuses to overwrite),
    /// durably.
    pub fn save_new(&self, path: &Path) -> Result<(), SthError> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let write = || -> std::io::Result<()> {
            let mut f = opts.open(path)?;
            f.write_all(self.file_text().as_bytes())?;
            f.sync_all()?;
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| io_err(path, e))
    }

    /// Loads the key file at `path`, or creates one there. Returns the key
    /// and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(LedgerKey, bool), SthError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let key = Self::generate()?;
        key.save_new(path)?;
        Ok((key, true))
    }
}

/// A public key given on a command line: 64 hex digits, or a file holding
/// them (a file written by `key show` or a key file, whose public half is
/// derived).
pub fn parse_public_key(arg: &str) -> Result<[u8; 32], SthError> {
    if let Ok(k) = parse_hex::<32>("public key", arg) {
        return Ok(k);
    }
    let path = Path::new(arg);
    let text = read_small_file(path)?;
    if let Ok(key) = LedgerKey::from_file_text(&text) {
        return Ok(key.public_key());
    }
    parse_hex::<32>("public key", text.trim())
        .map_err(|e| SthError::Format(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey::from_seed(&[7u8; 32])
    }

    #[test]
    fn signed_bytes_layout() {
        let b = signed_bytes(0x0102, &[0xAB; 32], -2);
        assert_eq!(b.len(), 88);
        assert_eq!(&b[..18], b"isc-ledger/sth/v1\0");
        assert_eq!(&b[18..26], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&b[26..58], &[0xAB; 32]);
        assert_eq!(&b[58..66], &(-2i64).to_be_bytes());
        assert_eq!(&b[66..], &[0u8; 22]);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let k = key();
        let h = k.sign(5, [1; 32], 100);
        h.verify().expect("valid");
        h.verify_with(&k.public_key()).expect("valid");
        let other = LedgerKey::from_seed(&[8u8; 32]);
        assert!(h.verify_with(&other.public_key()).is_err());
        for t in [
            SignedTreeHead { tree_size: 4, ..h },
            SignedTreeHead { at: 101, ..h },
            SignedTreeHead {
                root_hash: [2; 32],
                ..h
            },
            SignedTreeHead {
                public_key: other.public_key(),
                ..h
            },
        ] {
            assert!(t.verify().is_err());
        }
        let mut s = h;
        s.signature[10] ^= 1;
        assert!(s.verify().is_err());
    }

    #[test]
    fn json_round_trip_and_extra_fields() {
        let h = key().sign(150, [0xCD; 32], 1_733_000_000);
        let j = h.to_json();
        assert!(j.contains("\"root_hash\":\"cdcd"), "{j}");
        assert_eq!(SignedTreeHead::from_json(&j).expect("parses"), h);
        let mut v = h.to_json_value();
        v["chain_hash"] = serde_json::json!("00");
        assert_eq!(SignedTreeHead::from_json_value(&v).expect("parses"), h);
        assert!(SignedTreeHead::from_json("{}").is_err());
        assert!(SignedTreeHead::from_json(&j.replace("cdcd", "zz")).is_err());
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k");
        let (k, created) = LedgerKey::load_or_create(&p).expect("create");
        assert!(created);
        let (k2, created) = LedgerKey::load_or_create(&p).expect("load");
        assert!(!created);
        assert_eq!(k.public_key(), k2.public_key());
        assert!(k.save_new(&p).is_err(), "never overwrites");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            parse_public_key(p.to_str().expect("utf8")).expect("from key file"),
            k.public_key()
        );
        assert_eq!(
            parse_public_key(&k.public_key_hex()).expect("hex"),
            k.public_key()
        );
        assert!(format!("{k:?}").contains(&k.public_key_hex()));
        assert!(!format!("{k:?}").contains(&hex::encode(k.signing.to_bytes())));
        std::fs::write(&p, "garbage").expect("write");
        assert!(LedgerKey::load(&p).is_err());
    }

    #[test]
    fn head_file_atomic_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(HEAD_FILE);
        let h = key().sign(3, [9; 32], 7);
        h.write_file(&p, true).expect("write");
        assert_eq!(SignedTreeHead::read_file(&p).expect("read"), h);
        let h2 = key().sign(4, [9; 32], 8);
        h2.write_file(&p, false).expect("write");
        assert_eq!(SignedTreeHead::read_file(&p).expect("read"), h2);
    }
}
