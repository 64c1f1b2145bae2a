//! The account listing index: `ListAccounts`, the console's accounts page
//! and the state/runout gauges are answered from it, never by scanning
//! every account.
//!
//! Owns: per account, its *class* as of its last event (closed, suspended,
//! idle, active without runout, accruing with a runout instant) in ordered
//! sets — every id, the ids of each class, and the accruing accounts by
//! `(runout, id)`. It lives in the engine's shared state beside the
//! `Ledger` and is updated by the writer for each account an applied event
//! touches (a few ordered-set operations, under the lock that makes the
//! event visible), never by the domain's fold: replay and the fold bench do
//! not pay for it. Time alone turns an accruing account suspended at its
//! runout; [`AccountIndex::expire`] moves those when the writer publishes
//! the time-driven notices (their depletions), and a query treats the few
//! not yet moved by their runout, so the classes are always right at the
//! instant of the query.
//!
//! Paging is by key (`(runout, id)` or `id`), so a page is one range walk
//! from the cursor: accounts added meanwhile never shift or repeat a page.
//! Under the runout order an account whose runout passes between two pages
//! moves to the "no runout" part (it is suspended now): it is never lost,
//! and shows again there if an earlier page listed it.

use std::collections::BTreeSet;
use std::ops::Bound;

use compact_str::CompactString;
use sha2::{Digest, Sha256};

use crate::domain::account::{Account, FastMap};
use crate::domain::ids::{ID_RULE, MAX_ID_LEN};
use crate::domain::report::{state_of, summary_of, AccountSummary};
use crate::domain::{AccountState, Ledger, Rejection};

/// Most rows in one page.
pub const MAX_PAGE_SIZE: usize = 1000;
/// Rows in a page when the request names no size.
pub const DEFAULT_PAGE_SIZE: usize = 100;

/// An account's class as of its last event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Closed = 0,
    Suspended = 1,
    Idle = 2,
    /// Active and nothing accrues (zero-priced licenses).
    Flat = 3,
    /// Active with a runout instant (until that instant passes).
    Accruing = 4,
}

const CLASSES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    class: Class,
    /// The runout at the last event; kept after [`AccountIndex::expire`]
    /// moved the account to `Suspended` (paging needs it).
    runout: Option<i64>,
}

fn entry_of(a: &Account) -> Entry {
    let runout = a.runout();
    let class = match state_of(a, a.since) {
        AccountState::Closed => Class::Closed,
        AccountState::Suspended => Class::Suspended,
        AccountState::Idle => Class::Idle,
        AccountState::Active if runout.is_some() => Class::Accruing,
        AccountState::Active => Class::Flat,
    };
    Entry {
        class,
        runout: runout.filter(|_| class == Class::Accruing),
    }
}

/// Ordered sets over the accounts of a [`Ledger`] (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct AccountIndex {
    entries: FastMap<CompactString, Entry>,
    all: BTreeSet<CompactString>,
    by_class: [BTreeSet<CompactString>; CLASSES],
    by_runout: BTreeSet<(i64, CompactString)>,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// Soonest runout first; accounts without a runout follow by id.
    Runout,
    /// By id.
    Id,
}

/// One `ListAccounts` request, in domain terms.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub state: Option<AccountState>,
    /// Only accounts whose runout is strictly before this instant.
    pub runout_before: Option<i64>,
    /// Only accounts whose runout is within this many seconds of now
    /// (combined with `runout_before`: the earlier bound wins).
    pub runout_within: Option<i64>,
    /// Only ids starting with this.
    pub prefix: String,
    pub order: ListOrder,
    /// 0 = [`DEFAULT_PAGE_SIZE`].
    pub page_size: usize,
    /// The opaque token of the previous page ("" = first page).
    pub page_token: String,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub rows: Vec<AccountSummary>,
    /// Empty on the last page.
    pub next_page_token: String,
    /// The instant the rows are computed at.
    pub at: i64,
}

/// Counts for the gauges, at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCounts {
    pub active: u64,
    pub suspended: u64,
    pub idle: u64,
    pub closed: u64,
    /// Accounts whose credit runs out within 1, 7 and 30 days.
    pub runouts_within: [u64; 3],
}

/// Where a page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    /// 0: the accounts with a runout; 1: the rest (runout order only).
    phase: u8,
    runout: i64,
    id: CompactString,
}

const TOKEN_VERSION: u8 = 1;

fn fingerprint(q: &ListQuery) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(format!(
        "{:?}|{:?}|{:?}|{}|{:?}",
        q.state, q.runout_before, q.runout_within, q.prefix, q.order
    ));
    let d = h.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&d[..8]);
    out
}

impl Cursor {
    fn encode(&self, fp: [u8; 8]) -> String {
        let mut b = Vec::with_capacity(22 + self.id.len());
        b.push(TOKEN_VERSION);
        b.extend_from_slice(&fp);
        b.push(self.phase);
        b.extend_from_slice(&self.runout.to_be_bytes());
        b.extend_from_slice(self.id.as_bytes());
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_be_bytes());
        hex::encode(b)
    }

    fn decode(token: &str, q: &ListQuery) -> Result<Cursor, Rejection> {
        let bad = || {
            Rejection::invalid(
                "page_token is not one this server issued: pass the next_page_token of the previous page, or none",
            )
        };
        if token.len() > 2 * (22 + MAX_ID_LEN) {
            return Err(bad());
        }
        let mut b = hex::decode(token).map_err(|_| bad())?;
        if b.len() < 22 || b[0] != TOKEN_VERSION {
            return Err(bad());
        }
        let crc = b.split_off(b.len() - 4);
        if crc != crc32fast::hash(&b).to_be_bytes() {
            return Err(bad());
        }
        if b[1..9] != fingerprint(q) {
            return Err(Rejection::invalid(
                "page_token belongs to a listing with other filters or order: repeat the same filters with it",
            ));
        }
        let word = |at: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(w)
        };
        let id = std::str::from_utf8(&b[18..]).map_err(|_| bad())?;
        let phase = b[9];
        if phase > 1 || id.is_empty() || crate::domain::ids::check_id("id", id).is_err() {
            return Err(bad());
        }
        Ok(Cursor {
            phase,
            runout: word(10),
            id: id.into(),
        })
    }
}

type RunoutKey = (i64, CompactString);

/// `set.range((lower, upper))`, empty where `BTreeSet::range` would panic
/// (start after end, or an empty excluded range).
fn runout_range(
    set: &BTreeSet<RunoutKey>,
    lower: Bound<RunoutKey>,
    upper: Bound<RunoutKey>,
) -> std::collections::btree_set::Range<'_, RunoutKey> {
    let empty = match (&lower, &upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    };
    if empty {
        set.range((
            Bound::Excluded((i64::MIN, CompactString::default())),
            Bound::Included((i64::MIN, CompactString::default())),
        ))
    } else {
        set.range((lower, upper))
    }
}

/// Merges ascending id iterators (each strictly increasing) into one.
fn merge<'a>(
    mut its: Vec<Box<dyn Iterator<Item = &'a CompactString> + 'a>>,
) -> impl Iterator<Item = &'a CompactString> + 'a {
    let mut heads: Vec<Option<&'a CompactString>> = its.iter_mut().map(|i| i.next()).collect();
    std::iter::from_fn(move || {
        let (k, _) = heads
            .iter()
            .enumerate()
            .filter_map(|(k, h)| h.map(|h| (k, h)))
            .min_by(|a, b| a.1.cmp(b.1))?;
        let out = heads[k];
        heads[k] = its[k].next();
        out
    })
}

impl AccountIndex {
    /// The index of every account of `ledger`, with the runouts up to
    /// `until` already expired.
    pub fn build(ledger: &Ledger, until: i64) -> AccountIndex {
        let mut ix = AccountIndex::default();
        for id in ledger.account_ids() {
            ix.update(ledger, id);
        }
        ix.expire(until);
        ix
    }

    /// Number of accounts indexed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no account is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Re-reads `id`'s class after an event of it was applied to `ledger`.
    pub fn update(&mut self, ledger: &Ledger, id: &str) {
        let Some(account) = ledger.account(id) else {
            return;
        };
        let new = entry_of(account);
        match self.entries.get_mut(id) {
            Some(old) if *old == new => {}
            Some(old) => {
                let old = std::mem::replace(old, new);
                let key = CompactString::from(id);
                if old.class != new.class {
                    self.by_class[old.class as usize].remove(id);
                    self.by_class[new.class as usize].insert(key.clone());
                }
                if let (Class::Accruing, Some(t)) = (old.class, old.runout) {
                    self.by_runout.remove(&(t, key.clone()));
                }
                if let Some(t) = new.runout {
                    self.by_runout.insert((t, key));
                }
            }
            None => {
                let key = CompactString::from(id);
                self.entries.insert(key.clone(), new);
                self.all.insert(key.clone());
                self.by_class[new.class as usize].insert(key.clone());
                if let Some(t) = new.runout {
                    self.by_runout.insert((t, key));
                }
            }
        }
    }

    /// Moves the accounts whose runout is at or before `until` from accruing
    /// to suspended (their depletion was published up to `until`).
    pub fn expire(&mut self, until: i64) {
        while let Some((t, _)) = self.by_runout.first() {
            if *t > until {
                break;
            }
            let Some((_, id)) = self.by_runout.pop_first() else {
                break;
            };
            self.by_class[Class::Accruing as usize].remove(&id);
            if let Some(e) = self.entries.get_mut(&id) {
                e.class = Class::Suspended;
            }
            self.by_class[Class::Suspended as usize].insert(id);
        }
    }

    /// Accounts by state and runouts ahead, at `now`.
    pub fn counts(&self, now: i64) -> IndexCounts {
        let n = |c: Class| self.by_class[c as usize].len() as u64;
        let lapsed = self
            .by_runout
            .range(..(now.saturating_add(1), CompactString::default()))
            .count() as u64;
        let within = |d: i64| {
            runout_range(
                &self.by_runout,
                Bound::Excluded((now, CompactString::default())),
                Bound::Included((now.saturating_add(d), CompactString::default())),
            )
            .count() as u64
        };
        IndexCounts {
            active: n(Class::Flat) + n(Class::Accruing) - lapsed,
            suspended: n(Class::Suspended) + lapsed,
            idle: n(Class::Idle),
            closed: n(Class::Closed),
            runouts_within: [within(86_400), within(7 * 86_400), within(30 * 86_400)],
        }
    }

    /// Ids of accruing accounts whose runout is at or before `t`, sorted:
    /// those the last [`expire`](Self::expire) has not moved yet (few).
    fn lapsed(&self, t: i64) -> Vec<&CompactString> {
        let mut v: Vec<&CompactString> = self
            .by_runout
            .range(..(t.saturating_add(1), CompactString::default()))
            .map(|(_, id)| id)
            .collect();
        v.sort_unstable();
        v
    }

    /// Ids in ascending order from `from` (exclusive when `exclusive`) in
    /// the classes named, plus the lapsed accruing accounts when `lapsed`.
    fn ids_from<'a>(
        &'a self,
        classes: &[Class],
        lapsed: Option<Vec<&'a CompactString>>,
        from: &'a str,
        exclusive: bool,
    ) -> impl Iterator<Item = &'a CompactString> + 'a {
        let lower = move || {
            if exclusive {
                Bound::Excluded(from)
            } else {
                Bound::Included(from)
            }
        };
        let mut its: Vec<Box<dyn Iterator<Item = &'a CompactString> + 'a>> = Vec::new();
        if classes.len() == CLASSES {
            its.push(Box::new(
                self.all.range::<str, _>((lower(), Bound::Unbounded)),
            ));
        } else {
            for c in classes {
                its.push(Box::new(
                    self.by_class[*c as usize].range::<str, _>((lower(), Bound::Unbounded)),
                ));
            }
            if let Some(l) = lapsed {
                its.push(Box::new(l.into_iter().filter(move |id| {
                    if exclusive {
                        id.as_str() > from
                    } else {
                        id.as_str() >= from
                    }
                })));
            }
        }
        merge(its)
    }

    /// One page of the listing at `now` (rows computed at `now`).
    pub fn list(&self, ledger: &Ledger, q: &ListQuery, now: i64) -> Result<ListPage, Rejection> {
        let size = match q.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Rejection::invalid(format!(
                    "page_size {n} is too large: at most {MAX_PAGE_SIZE}"
                )))
            }
            n => n,
        };
        // A non-empty prefix is the start of an id: the id check applies.
        if !q.prefix.is_empty() && crate::domain::ids::check_id("id prefix", &q.prefix).is_err() {
            return Err(Rejection::invalid(format!(
                "id prefix {:?} cannot start any account id: ids are {ID_RULE}",
                q.prefix.chars().take(80).collect::<String>()
            )));
        }
        if q.runout_within.is_some_and(|d| d < 0) {
            return Err(Rejection::invalid(
                "runout_within_seconds must not be negative",
            ));
        }
        let cursor = if q.page_token.is_empty() {
            None
        } else {
            Some(Cursor::decode(&q.page_token, q)?)
        };
        let fp = fingerprint(q);
        let prefix = q.prefix.as_str();
        let within = q
            .runout_within
            .map(|d| now.saturating_add(d).saturating_add(1));
        let before = match (q.runout_before, within) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let q = &ListQuery {
            runout_before: before,
            runout_within: None,
            ..q.clone()
        };
        // The candidates in order, each with its cursor, starting after the
        // cursor; the rows are then filtered on what they show.
        let mut candidates: Box<dyn Iterator<Item = (u8, i64, &CompactString)> + '_> = match q.order
        {
            ListOrder::Id => self.ids_in_id_order(q, cursor.as_ref(), now),
            ListOrder::Runout => self.ids_in_runout_order(q, cursor.as_ref(), now),
        };
        let mut rows = Vec::new();
        let mut last: Option<Cursor> = None;
        let mut more = false;
        for (phase, runout, id) in &mut candidates {
            if !id.starts_with(prefix) {
                continue;
            }
            let Some(account) = ledger.account(id) else {
                continue;
            };
            let row = summary_of(account, now.max(account.since));
            if q.state.is_some_and(|s| s != row.state) {
                continue;
            }
            if let Some(before) = q.runout_before {
                if row.runout_at.is_none_or(|t| t >= before) {
                    continue;
                }
            }
            if rows.len() == size {
                more = true;
                break;
            }
            last = Some(Cursor {
                phase,
                runout,
                id: id.clone(),
            });
            rows.push(row);
        }
        Ok(ListPage {
            rows,
            next_page_token: match (more, last) {
                (true, Some(c)) => c.encode(fp),
                _ => String::new(),
            },
            at: now,
        })
    }

    fn ids_in_id_order<'a>(
        &'a self,
        q: &'a ListQuery,
        cursor: Option<&'a Cursor>,
        now: i64,
    ) -> Box<dyn Iterator<Item = (u8, i64, &'a CompactString)> + 'a> {
        let (from, exclusive) = match cursor {
            Some(c) if c.id.as_str() >= q.prefix.as_str() => (c.id.as_str(), true),
            _ => (q.prefix.as_str(), false),
        };
        let prefix = q.prefix.as_str();
        if let Some(before) = q.runout_before {
            // Only accruing accounts qualify: collect those in the window
            // (the matches, not the accounts) and sort them by id.
            let mut ids: Vec<&CompactString> = runout_range(
                &self.by_runout,
                Bound::Excluded((now, CompactString::default())),
                Bound::Excluded((before, CompactString::default())),
            )
            .map(|(_, id)| id)
            .filter(|id| id.starts_with(prefix))
            .filter(|id| {
                if exclusive {
                    id.as_str() > from
                } else {
                    id.as_str() >= from
                }
            })
            .collect();
            ids.sort_unstable();
            return Box::new(ids.into_iter().map(|id| (0, 0, id)));
        }
        let (classes, lapsed): (&[Class], bool) = match q.state {
            None => (
                &[
                    Class::Closed,
                    Class::Suspended,
                    Class::Idle,
                    Class::Flat,
                    Class::Accruing,
                ],
                false,
            ),
            Some(AccountState::Closed) => (&[Class::Closed], false),
            Some(AccountState::Idle) => (&[Class::Idle], false),
            Some(AccountState::Suspended) => (&[Class::Suspended], true),
            Some(AccountState::Active) => (&[Class::Flat, Class::Accruing], false),
        };
        let lapsed = lapsed.then(|| self.lapsed(now));
        Box::new(
            self.ids_from(classes, lapsed, from, exclusive)
                .take_while(move |id| id.starts_with(prefix))
                .map(|id| (0, 0, id)),
        )
    }

    fn ids_in_runout_order<'a>(
        &'a self,
        q: &'a ListQuery,
        cursor: Option<&'a Cursor>,
        now: i64,
    ) -> Box<dyn Iterator<Item = (u8, i64, &'a CompactString)> + 'a> {
        let prefix = q.prefix.as_str();
        let in_phase1 = cursor.is_some_and(|c| c.phase == 1);
        // Phase 0: runout after `now` (and before `runout_before`), by (runout, id).
        let phase0: Box<dyn Iterator<Item = (u8, i64, &'a CompactString)> + 'a> =
            if in_phase1 || !matches!(q.state, None | Some(AccountState::Active)) {
                Box::new(std::iter::empty())
            } else {
                let start = (now.saturating_add(1), CompactString::default());
                let lower = match cursor {
                    Some(c) if (c.runout, &c.id) >= (start.0, &start.1) => {
                        Bound::Excluded((c.runout, c.id.clone()))
                    }
                    _ => Bound::Included(start),
                };
                let upper = match q.runout_before {
                    Some(t) => Bound::Excluded((t, CompactString::default())),
                    None => Bound::Unbounded,
                };
                if prefix.is_empty() {
                    Box::new(runout_range(&self.by_runout, lower, upper).map(|(t, id)| (0, *t, id)))
                } else {
                    // With a prefix, walk the (fewer) ids under it instead.
                    let mut v: Vec<(i64, &'a CompactString)> = self
                        .all
                        .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                        .take_while(|id| id.starts_with(prefix))
                        .filter_map(|id| {
                            let e = self.entries.get(id)?;
                            (e.class == Class::Accruing).then_some(())?;
                            let t = e.runout?;
                            let key = (t, id.clone());
                            let after = match &lower {
                                Bound::Excluded(l) => key > *l,
                                Bound::Included(l) => key >= *l,
                                Bound::Unbounded => true,
                            };
                            let before = match &upper {
                                Bound::Excluded(u) => key < *u,
                                _ => true,
                            };
                            (after && before).then_some((t, id))
                        })
                        .collect();
                    v.sort_unstable();
                    Box::new(v.into_iter().map(|(t, id)| (0, t, id)))
                }
            };
        if q.runout_before.is_some() {
            return phase0;
        }
        // Phase 1: no runout after `now`, by id.
        let (classes, lapsed): (&[Class], bool) = match q.state {
            None => (
                &[Class::Closed, Class::Suspended, Class::Idle, Class::Flat],
                true,
            ),
            Some(AccountState::Closed) => (&[Class::Closed], false),
            Some(AccountState::Idle) => (&[Class::Idle], false),
            Some(AccountState::Suspended) => (&[Class::Suspended], true),
            Some(AccountState::Active) => (&[Class::Flat], false),
        };
        let lapsed = lapsed.then(|| self.lapsed(now));
        let (from, exclusive) = match cursor {
            Some(c) if c.phase == 1 && c.id.as_str() >= prefix => (c.id.as_str(), true),
            _ => (prefix, false),
        };
        let phase1 = self
            .ids_from(classes, lapsed, from, exclusive)
            .take_while(move |id| id.starts_with(prefix))
            .map(|id| (1, 0, id));
        Box::new(phase0.chain(phase1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sim::generate_history;

    /// What a listing must return, by brute force over every account.
    fn reference(ledger: &Ledger, q: &ListQuery, now: i64) -> Vec<String> {
        let before = match (q.runout_before, q.runout_within) {
            (a, Some(d)) => Some(a.unwrap_or(i64::MAX).min(now + d + 1)),
            (a, None) => a,
        };
        let mut rows: Vec<((u8, i64, String), AccountSummary)> = ledger
            .account_ids()
            .into_iter()
            .filter(|id| id.starts_with(q.prefix.as_str()))
            .filter_map(|id| {
                let a = ledger.account(id)?;
                let s = summary_of(a, now.max(a.since));
                let raw = a.runout().filter(|t| *t > now && !a.is_closed());
                let key = match (q.order, raw) {
                    (ListOrder::Runout, Some(t)) => (0, t, id.to_string()),
                    _ => (1, 0, id.to_string()),
                };
                Some((key, s))
            })
            .filter(|(_, s)| q.state.is_none_or(|st| st == s.state))
            .filter(|(_, s)| before.is_none_or(|b| s.runout_at.is_some_and(|t| t < b)))
            .collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows.into_iter().map(|(_, s)| s.account_id).collect()
    }

    fn paged(ix: &AccountIndex, ledger: &Ledger, q: &ListQuery, now: i64) -> Vec<String> {
        let mut q = q.clone();
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let page = ix.list(ledger, &q, now).unwrap();
            assert!(page.rows.len() <= q.page_size.max(1));
            out.extend(page.rows.into_iter().map(|r| r.account_id));
            if page.next_page_token.is_empty() {
                return out;
            }
            q.page_token = page.next_page_token;
        }
        panic!("listing never ended");
    }

    fn queries() -> Vec<ListQuery> {
        let mut v = Vec::new();
        let states = [
            None,
            Some(AccountState::Active),
            Some(AccountState::Suspended),
            Some(AccountState::Idle),
            Some(AccountState::Closed),
        ];
        for order in [ListOrder::Runout, ListOrder::Id] {
            for state in states {
                for prefix in ["", "acct-1", "acct-77"] {
                    for (before, within) in [
                        (None, None),
                        (None, Some(3 * 86_400)),
                        (Some(1_700_400_000), None),
                    ] {
                        v.push(ListQuery {
                            state,
                            runout_before: before,
                            runout_within: within,
                            prefix: prefix.into(),
                            order,
                            page_size: 7,
                            page_token: String::new(),
                        });
                    }
                }
            }
        }
        v
    }

    #[test]
    fn listings_equal_a_brute_force_sort_as_events_and_time_go_by() {
        let sim = generate_history(7, 150, 2_500);
        let mut ledger = Ledger::new(sim.ledger.policy().clone());
        let mut ix = AccountIndex::default();
        for (i, ev) in sim.log.iter().enumerate() {
            ledger.apply_quiet(i as u64 + 1, ev).unwrap();
            if let Some(id) = ev.account_id() {
                ix.update(&ledger, id);
            }
            if i % 700 == 699 || i + 1 == sim.log.len() {
                let last = ledger.last_at();
                // Expire lagging behind the query instant, as in the engine.
                ix.expire(last);
                for now in [last, last + 3_600, last + 5 * 86_400, last + 400 * 86_400] {
                    for q in queries() {
                        assert_eq!(
                            paged(&ix, &ledger, &q, now),
                            reference(&ledger, &q, now),
                            "at {now}: {q:?}"
                        );
                    }
                    let c = ix.counts(now);
                    let n = |s| {
                        reference(
                            &ledger,
                            &ListQuery {
                                state: Some(s),
                                ..queries()[0].clone()
                            },
                            now,
                        )
                        .len() as u64
                    };
                    assert_eq!(
                        (c.active, c.suspended, c.idle, c.closed),
                        (
                            n(AccountState::Active),
                            n(AccountState::Suspended),
                            n(AccountState::Idle),
                            n(AccountState::Closed)
                        )
                    );
                }
            }
        }
        // A rebuilt index (a restart) lists the same.
        let now = ledger.last_at() + 86_400;
        let rebuilt = AccountIndex::build(&ledger, ledger.last_at());
        for q in queries() {
            assert_eq!(
                paged(&rebuilt, &ledger, &q, now),
                paged(&ix, &ledger, &q, now)
            );
        }
    }

    #[test]
    fn tokens_are_checked() {
        let ledger = generate_history(3, 20, 200).ledger;
        let ix = AccountIndex::build(&ledger, ledger.last_at());
        let mut q = queries()[0].clone();
        q.page_size = 2;
        let now = ledger.last_at();
        let p = ix.list(&ledger, &q, now).unwrap();
        assert!(!p.next_page_token.is_empty());
        for bad in [
            "zz",
            "00",
            &p.next_page_token[..p.next_page_token.len() - 2],
            "01",
        ] {
            let mut q2 = q.clone();
            q2.page_token = bad.into();
            assert!(ix.list(&ledger, &q2, now).is_err(), "{bad}");
        }
        let mut other = q.clone();
        other.prefix = "acct".into();
        other.page_token = p.next_page_token.clone();
        assert!(ix.list(&ledger, &other, now).is_err());
        q.page_token = p.next_page_token;
        assert!(ix.list(&ledger, &q, now).is_ok());
    }
}
