//! The notice schedule: when each source of time-driven notices next has
//! one due — an account (its unfired reminders, its depletion), a
//! purchased PBX (its `MAINTENANCE_EXPIRING`), an unresolved incident (its
//! SLA warnings and breaches) — so that `Ledger::notices_between(None, t1,
//! t2)` visits only the sources due in `(t1, t2]`: O(due + log n) per
//! clock tick instead of a walk over every account.
//!
//! Derived state, never a second truth: not serialized, built from the
//! state on first use (after a snapshot's decode or a replay) and then
//! kept by `Ledger::apply` for exactly the account, PBX or incident an
//! event touches. It only says *where to look*: each source found is asked
//! for its notices by the same code as the full scan
//! (`Account::pending_notices`, `Ledger::expiring_of`,
//! `SlaBook::live_notices_of`), so the notices are the scan's by
//! construction. Its invariant: it files each source under exactly the
//! instants its definition gives ([`DueIndex::build`]; `Ledger::apply`
//! replaces a source's instants when an event changes them), a superset
//! of the instants it can report at for any window with `t1 >= last_at`.

use super::ledger::Ledger;
use super::money::UnixSeconds;
use compact_str::CompactString;
use std::collections::BTreeSet;
use std::ops::Bound::{Excluded, Included};
use std::sync::OnceLock;

/// Sources of time-driven notices by the instants they are due at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct DueIndex {
    /// (instant, account index): `Account::due_instants`.
    accounts: BTreeSet<(UnixSeconds, u32)>,
    /// (`PurchasedPbx::expiring_due`, PBX id) of every purchased PBX; one
    /// of a closed account stays filed and tells nothing (the scan's rule).
    expiring: BTreeSet<(UnixSeconds, CompactString)>,
    /// (instant, incident slot): `SlaBook::live_due`.
    incidents: BTreeSet<(UnixSeconds, u32)>,
}

impl DueIndex {
    /// The schedule of `ledger` from its state alone (the definition).
    pub(crate) fn build(ledger: &Ledger) -> DueIndex {
        let mut accounts = Vec::new();
        for (i, account) in ledger.accounts.iter().enumerate() {
            let i = i as u32;
            accounts.extend(
                account
                    .due_instants(&ledger.policy)
                    .into_iter()
                    .map(|t| (t, i)),
            );
        }
        let expiring: BTreeSet<_> = ledger
            .maintenance
            .pbxs()
            .map(|p| (p.expiring_due(), p.pbx_id.clone()))
            .collect();
        let mut incidents = Vec::new();
        for i in ledger.sla.open_slots() {
            incidents.extend(ledger.sla.live_due(i).into_iter().map(|t| (t, i)));
        }
        // Sorted first: a BTreeSet from sorted input is built in one pass.
        accounts.sort_unstable();
        incidents.sort_unstable();
        DueIndex {
            accounts: accounts.into_iter().collect(),
            expiring,
            incidents: incidents.into_iter().collect(),
        }
    }

    /// Refiles account `i` from the instants `old` to `new`.
    pub(crate) fn refile_account(&mut self, i: u32, old: &[UnixSeconds], new: &[UnixSeconds]) {
        refile(&mut self.accounts, i, old, new);
    }

    /// Refiles incident slot `i` from the instants `old` to `new`.
    pub(crate) fn refile_incident(&mut self, i: u32, old: &[UnixSeconds], new: &[UnixSeconds]) {
        refile(&mut self.incidents, i, old, new);
    }

    /// Refiles a purchased PBX from its old expiring instant to its new one.
    pub(crate) fn refile_expiring(
        &mut self,
        pbx_id: &str,
        old: Option<UnixSeconds>,
        new: Option<UnixSeconds>,
    ) {
        if old == new {
            return;
        }
        if let Some(t) = old {
            self.expiring.remove(&(t, CompactString::from(pbx_id)));
        }
        if let Some(t) = new {
            self.expiring.insert((t, CompactString::from(pbx_id)));
        }
    }

    /// Accounts filed in `(t1, t2]`, ascending (the scan's order), once each.
    pub(crate) fn accounts_due(&self, t1: UnixSeconds, t2: UnixSeconds) -> Vec<u32> {
        sources_due(&self.accounts, t1, t2)
    }

    /// Incident slots filed in `(t1, t2]`, ascending (the scan's order).
    pub(crate) fn incidents_due(&self, t1: UnixSeconds, t2: UnixSeconds) -> Vec<u32> {
        sources_due(&self.incidents, t1, t2)
    }

    /// Purchased PBXs filed in `(t1, t2]`, by id (the scan's order).
    pub(crate) fn pbxs_due(&self, t1: UnixSeconds, t2: UnixSeconds) -> Vec<&str> {
        if t2 <= t1 {
            return Vec::new();
        }
        // `t > t1` is `t >= t1 + 1`, and "" is the least id.
        let mut ids: Vec<&str> = self
            .expiring
            .range((t1.saturating_add(1), CompactString::default())..)
            .take_while(|(t, _)| *t <= t2)
            .map(|(_, id)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Entries filed, all sources (for tests and benches).
    pub(crate) fn len(&self) -> usize {
        self.accounts.len() + self.expiring.len() + self.incidents.len()
    }
}

fn refile(
    set: &mut BTreeSet<(UnixSeconds, u32)>,
    i: u32,
    old: &[UnixSeconds],
    new: &[UnixSeconds],
) {
    if old == new {
        return;
    }
    for t in old {
        set.remove(&(*t, i));
    }
    for t in new {
        set.insert((*t, i));
    }
}

fn sources_due(set: &BTreeSet<(UnixSeconds, u32)>, t1: UnixSeconds, t2: UnixSeconds) -> Vec<u32> {
    if t2 <= t1 {
        return Vec::new();
    }
    let mut found: Vec<u32> = set
        .range((Excluded((t1, u32::MAX)), Included((t2, u32::MAX))))
        .map(|(_, i)| *i)
        .collect();
    found.sort_unstable();
    found.dedup();
    found
}

/// The ledger's schedule, built on first use. Derived: a clone carries it,
/// equality ignores it (two ledgers of the same log are equal whether or
/// not either has been asked for notices yet), serde skips it.
#[derive(Default)]
pub(crate) struct DueCache(OnceLock<DueIndex>);

impl DueCache {
    /// The schedule, built from `ledger` (whose cache this is) if need be.
    pub(crate) fn get_or_build(&self, ledger: &Ledger) -> &DueIndex {
        self.0.get_or_init(|| DueIndex::build(ledger))
    }

    /// The schedule if it is built (`apply` keeps only a built one).
    #[inline]
    pub(crate) fn get_mut(&mut self) -> Option<&mut DueIndex> {
        self.0.get_mut()
    }

    /// The schedule if it is built.
    pub(crate) fn get(&self) -> Option<&DueIndex> {
        self.0.get()
    }

    /// Forgets a built schedule (before a quiet fold, after an `apply`
    /// that failed half-way): the next use rebuilds it from the state.
    #[inline]
    pub(crate) fn forget(&mut self) {
        if self.0.get_mut().is_some() {
            self.drop_built();
        }
    }

    #[cold]
    #[inline(never)]
    fn drop_built(&mut self) {
        self.0 = OnceLock::new();
    }
}

impl Clone for DueCache {
    fn clone(&self) -> Self {
        let cell = OnceLock::new();
        if let Some(index) = self.0.get() {
            let _ = cell.set(index.clone());
        }
        DueCache(cell)
    }
}

impl PartialEq for DueCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for DueCache {}

impl std::fmt::Debug for DueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.get() {
            Some(index) => write!(f, "DueCache({} entries)", index.len()),
            None => f.write_str("DueCache(not built)"),
        }
    }
}
