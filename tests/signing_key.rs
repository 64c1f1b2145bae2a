//! The ledger's signing key is pinned by its stored signed head: a node
//! that would sign with another key (a restart with the wrong
//! `--signing-key`, a second node with a key of its own) refuses to start,
//! naming both keys; with a database store the node's default key lives in
//! its own directory (`serve --data`), so a restart keeps it.

use std::path::Path;
use std::sync::Arc;

use isc_ledger::engine::{Engine, EngineConfig, ManualClock};
use isc_ledger::store::pg_temp::TempCluster;
use isc_ledger::store::sth::LedgerKey;
use isc_ledger::store::StoreLocation;

/// Starts an engine, returns the public key of its head (hex) and stops it,
/// or the start error's words.
async fn start(store: &StoreLocation, config: EngineConfig) -> Result<String, String> {
    let clock = Arc::new(ManualClock::new(1_700_000_000));
    let engine = Engine::start(store.clone(), config, clock).map_err(|e| e.to_string())?;
    let key = engine.tree_head().expect("a signed head").public_key;
    engine.shutdown().await;
    Ok(hex::encode(key))
}

fn new_key_file(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let key = LedgerKey::generate().unwrap();
    let path = dir.join(name);
    key.save_new(&path).unwrap();
    (path, key.public_key_hex())
}

#[tokio::test(flavor = "multi_thread")]
async fn sled_ledger_refuses_another_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = StoreLocation::Dir(tmp.path().join("data"));
    let first = start(&store, EngineConfig::default()).await.unwrap();
    // A restart keeps the key it created in the data directory.
    assert_eq!(start(&store, EngineConfig::default()).await.unwrap(), first);

    let (other, other_pub) = new_key_file(tmp.path(), "other-key");
    let err = start(
        &store,
        EngineConfig {
            signing_key: Some(other),
            ..EngineConfig::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.contains(&format!("made with the key {first}")), "{err}");
    assert!(
        err.contains(&format!("this node's signing key is {other_pub}")),
        "{err}"
    );
    assert!(err.contains("--signing-key FILE"), "{err}");
    // Refused means unchanged: the ledger's own key still starts it.
    assert_eq!(start(&store, EngineConfig::default()).await.unwrap(), first);
}

#[tokio::test(flavor = "multi_thread")]
async fn database_ledger_keeps_the_node_key_and_refuses_a_stranger() {
    let cluster = tokio::task::spawn_blocking(TempCluster::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));
    let store = StoreLocation::Postgres(cluster.url("postgres"));
    let tmp = tempfile::tempdir().unwrap();
    let node = |d: &str| EngineConfig {
        key_dir: Some(tmp.path().join(d)),
        ..EngineConfig::default()
    };
    let first = start(&store, node("a")).await.unwrap();
    assert!(tmp.path().join("a/ledger-key").exists());
    // The restart finds the key in the node's directory.
    assert_eq!(start(&store, node("a")).await.unwrap(), first);
    // A node with a directory of its own would create another key: refused.
    let err = start(&store, node("b")).await.unwrap_err();
    assert!(err.contains(&format!("made with the key {first}")), "{err}");
    // Given the ledger's key file, the other node starts.
    let shared = EngineConfig {
        signing_key: Some(tmp.path().join("a/ledger-key")),
        ..EngineConfig::default()
    };
    assert_eq!(start(&store, shared).await.unwrap(), first);
    // A key of this run only (no key, no directory) is refused too.
    let err = start(&store, EngineConfig::default()).await.unwrap_err();
    assert!(err.contains(&format!("made with the key {first}")), "{err}");
}
