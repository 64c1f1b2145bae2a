//! A deterministic synthetic workload (same seed, same history): valid
//! domain events produced through `decide`, for benchmarks, the crash test
//! and the golden log. Not used by the service.

use crate::domain::{
    Command, Decision, Event, Hosting, Ledger, LicenseLine, PriceEntryInput, TierInput,
};

pub use crate::domain::sim::Rng;

/// Produces a plausible billing history: a price list, accounts opened,
/// PBXs configured, top-ups, now and then a close.
pub struct Workload {
    rng: Rng,
    accounts: Vec<String>,
    serial: u64,
}

/// First instant of synthetic histories (2025-01-01T00:00:00Z).
pub const WORKLOAD_START_AT: i64 = 1_735_689_600;

impl Workload {
    /// A workload continuing from `ledger` (accounts already opened are reused).
    pub fn new(seed: u64, ledger: &Ledger) -> Workload {
        let accounts = ledger
            .account_ids()
            .into_iter()
            .filter(|id| ledger.account(id).is_some_and(|a| !a.is_closed()))
            .map(str::to_owned)
            .collect();
        Workload {
            rng: Rng::new(seed ^ ledger.last_seq()),
            accounts,
            serial: ledger.last_seq(),
        }
    }

    fn command(&mut self, ledger: &Ledger) -> Command {
        self.serial += 1;
        if ledger.prices().is_empty() {
            return Command::PublishPriceList {
                version: 1,
                effective_at: WORKLOAD_START_AT,
                entries: vec![
                    PriceEntryInput {
                        license_type: "PBX-Port13".into(),
                        tiers: vec![
                            TierInput {
                                from_qty: 1,
                                monthly_price: "1.25".into(),
                            },
                            TierInput {
                                from_qty: 501,
                                monthly_price: "1.1".into(),
                            },
                        ],
                    },
                    PriceEntryInput {
                        license_type: "PBX-UC13".into(),
                        tiers: vec![TierInput {
                            from_qty: 1,
                            monthly_price: "0.5".into(),
                        }],
                    },
                ],
                catalogue: None,
                ext: Default::default(),
            };
        }
        let roll = self.rng.below(1000);
        if self.accounts.is_empty() || roll < 40 {
            let id = format!("acct-{:06}", ledger.account_count());
            return Command::OpenAccount { account_id: id };
        }
        let idx = self.rng.below(self.accounts.len() as u64) as usize;
        let account_id = self.accounts[idx].clone();
        if roll < 43 {
            return Command::CloseAccount { account_id };
        }
        if roll < 550 {
            let amount = format!("{}.{:02}", 10 + self.rng.below(990), self.rng.below(100));
            return Command::TopUp {
                activation_key: format!("K{:010}{:04}", self.serial, self.rng.below(10_000)),
                account_id,
                amount,
            };
        }
        let mut licenses = vec![LicenseLine {
            license_type: "PBX-Port13".into(),
            quantity: 1 + self.rng.below(60) as u32,
        }];
        if self.rng.below(2) == 0 {
            licenses.push(LicenseLine {
                license_type: "PBX-UC13".into(),
                quantity: 1 + self.rng.below(20) as u32,
            });
        }
        Command::ChangeConfig {
            pbx_id: format!("{}-p{}", &account_id[5..], self.rng.below(3)),
            account_id,
            licenses,
            firmware_major: 13 + self.rng.below(2) as u32,
            hosting: Hosting::Gateway,
        }
    }

    /// The next accepted event at or after `ledger.last_at()`; the caller
    /// applies it (rejected commands are skipped, like a real client's).
    pub fn next_event(&mut self, ledger: &Ledger) -> Event {
        let base = ledger.last_at().max(WORKLOAD_START_AT);
        loop {
            let now = base + self.rng.below(40) as i64;
            let cmd = self.command(ledger);
            if let Ok(Decision::Append(ev)) = ledger.decide(&cmd, now) {
                match &cmd {
                    Command::OpenAccount { account_id } => self.accounts.push(account_id.clone()),
                    Command::CloseAccount { account_id } => {
                        self.accounts.retain(|a| a != account_id)
                    }
                    _ => {}
                }
                return ev;
            }
        }
    }

    /// `n` events from an empty ledger, with the ledger they fold into.
    pub fn history(seed: u64, n: usize, ledger: &mut Ledger) -> Vec<Event> {
        let mut w = Workload::new(seed, ledger);
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let ev = w.next_event(ledger);
            let seq = ledger.last_seq() + 1;
            if let Err(e) = ledger.apply(seq, &ev) {
                panic!("a decided event must apply: {e}");
            }
            out.push(ev);
        }
        out
    }
}
