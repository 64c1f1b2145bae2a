//! The service integration suite (`service_api.rs`, not copied: included)
//! on the PostgreSQL backend: every test's store is a database of a
//! throwaway cluster instead of its temp dir (`common::pg::store_for`).

#[path = "service_api.rs"]
mod suite;

#[test]
fn this_target_runs_the_suite_on_postgres() {
    // What `common::pg::on_postgres` keys on.
    assert!(env!("CARGO_CRATE_NAME").ends_with("_pg"));
}
