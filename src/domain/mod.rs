//! The pure domain: everything that turns accepted commands into balances.

pub mod license_model;

use serde::{Deserialize, Serialize};

/// Where the PBX runs (spec §11 `hosting`). It does not change billing; it
/// feeds the license-model rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Hosting {
    /// On an innovaphone gateway (the default).
    #[default]
    Gateway,
    /// On an IPVA (virtual appliance).
    Ipva,
}
