//! Deterministic workload generation: a seeded history of valid commands run
//! through `decide` + `apply`, for property tests, benchmarks and the store's
//! tests. The same seed always gives the same log (TigerBeetle-style).

use super::event::{Command, Decision, Event, LicenseLine, Policy, Receipt};
use super::ledger::Ledger;
use super::prices::{PriceEntryInput, TierInput};
use super::{Hosting, Rejection};

/// A ledger and the log of what it accepted.
#[derive(Debug, Clone)]
pub struct Sim {
    pub ledger: Ledger,
    pub log: Vec<Event>,
}

impl Sim {
    pub fn new(policy: Policy) -> Sim {
        Sim {
            ledger: Ledger::new(policy),
            log: Vec::new(),
        }
    }

    /// Decides and, if accepted, applies `cmd` at `now`, as the service does.
    pub fn run(&mut self, cmd: &Command, now: i64) -> Result<Receipt, Rejection> {
        match self.ledger.decide(cmd, now)? {
            Decision::Retry(receipt) => Ok(receipt),
            Decision::Append(event) => {
                let seq = self.ledger.last_seq() + 1;
                let applied = self
                    .ledger
                    .apply(seq, &event)
                    .unwrap_or_else(|e| panic!("decide produced an event apply refuses: {e}"));
                self.log.push(event);
                Ok(applied.receipt)
            }
        }
    }
}

/// Price-list entries from `(type, [(from_qty, monthly price)])` literals:
/// the shorthand of tests, benches and examples.
pub fn price_entries(entries: &[(&str, &[(u32, &str)])]) -> Vec<PriceEntryInput> {
    entries
        .iter()
        .map(|(license_type, tiers)| PriceEntryInput {
            license_type: license_type.to_string(),
            tiers: tiers
                .iter()
                .map(|(from_qty, price)| TierInput {
                    from_qty: *from_qty,
                    monthly_price: price.to_string(),
                })
                .collect(),
        })
        .collect()
}

/// A configuration from `(type, quantity)` literals.
pub fn license_lines(lines: &[(&str, u32)]) -> Vec<LicenseLine> {
    lines
        .iter()
        .map(|(license_type, quantity)| LicenseLine {
            license_type: (*license_type).into(),
            quantity: *quantity,
        })
        .collect()
}

/// A tiny deterministic PRNG (splitmix64): no dependency, stable forever.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`0..1` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The rentable types of the generated catalogue and their tiers.
pub fn sample_price_list(version: u32, effective_at: i64, factor: u32) -> Command {
    let tier = |q: u32, p: u32| TierInput {
        from_qty: q,
        monthly_price: format!("{}.{:02}", p * factor / 100, p * factor % 100),
    };
    let entries = vec![
        PriceEntryInput {
            license_type: "PBX-Port13".into(),
            tiers: vec![
                tier(1, 150),
                tier(501, 120),
                tier(1001, 100),
                tier(2001, 80),
                tier(5001, 60),
            ],
        },
        PriceEntryInput {
            license_type: "PBX-UC13".into(),
            tiers: vec![tier(1, 250)],
        },
        PriceEntryInput {
            license_type: "App(phone)13".into(),
            tiers: vec![tier(1, 50)],
        },
        PriceEntryInput {
            license_type: "PBX-Standby13".into(),
            tiers: vec![tier(1, 40)],
        },
    ];
    Command::PublishPriceList {
        version,
        effective_at,
        entries,
        catalogue: None,
        ext: Default::default(),
    }
}

/// A realistic history: `accounts` accounts with 1–3 PBXs each, then a mix
/// of config changes (60%), top-ups (35%) and price lists / closes (rare),
/// one command every few seconds, until `events` records exist.
pub fn generate_history(seed: u64, accounts: usize, events: usize) -> Sim {
    let policy = Policy {
        min_activation_runtime_s: 0,
        ..Policy::default()
    };
    let mut sim = Sim::new(policy);
    let mut rng = Rng(seed);
    let mut now: i64 = 1_700_000_000;
    let mut version = 1;
    let mut key_counter: u64 = 0;
    let _ = sim.run(&sample_price_list(version, now, 100), now);
    for a in 0..accounts {
        if sim.log.len() >= events {
            break;
        }
        let _ = sim.run(
            &Command::OpenAccount {
                account_id: format!("acct-{a}"),
            },
            now,
        );
    }
    while sim.log.len() < events {
        now += rng.below(4) as i64;
        let a = rng.below(accounts.max(1) as u64);
        let account_id = format!("acct-{a}");
        let roll = rng.below(1000);
        let cmd = if roll < 600 {
            let mut licenses = vec![LicenseLine {
                license_type: "PBX-Port13".into(),
                quantity: 1 + rng.below(1200) as u32,
            }];
            if rng.below(2) == 0 {
                licenses.push(LicenseLine {
                    license_type: "PBX-UC13".into(),
                    quantity: 1 + rng.below(100) as u32,
                });
            }
            if rng.below(20) == 0 {
                licenses.clear();
            }
            Command::ChangeConfig {
                account_id,
                pbx_id: format!("pbx-{a}-{}", rng.below(3)),
                licenses,
                firmware_major: 13,
                hosting: Hosting::Gateway,
            }
        } else if roll < 995 {
            key_counter += 1;
            Command::TopUp {
                account_id,
                activation_key: format!("KEY-{seed:x}-{key_counter:010}"),
                amount: format!("{}.{:03}", 100 + rng.below(100_000), rng.below(1000)),
            }
        } else if roll < 998 {
            version += 1;
            sample_price_list(version, now + rng.below(86_400) as i64, 100 + version)
        } else {
            Command::CloseAccount { account_id }
        };
        let _ = sim.run(&cmd, now);
    }
    sim
}
