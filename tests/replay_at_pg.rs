//! `replay --at` against the live service (`replay_at.rs`, not copied:
//! included) on the PostgreSQL backend: the server writes a database of a
//! throwaway cluster and `replay --store URL` reads it.

#[path = "replay_at.rs"]
mod suite;
