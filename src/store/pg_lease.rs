//! The writer lease of a multi-node ledger on PostgreSQL: one row saying
//! which node may append, until when, under which fencing epoch.
//!
//! Owns: the lease table, its SQL (acquire, renew, release, read, and the
//! fence every append transaction runs), and [`LeaseKeeper`], the loop that
//! keeps a node's role (standby or writer) in step with that row.
//!
//! Must not: append, read the log or know the domain. The engine reads the
//! role the keeper publishes and switches itself (see `engine`).
//!
//! Rules (ARCHITECTURE.md, "Several nodes"):
//! - Time is the database's (`clock_timestamp()`), so nodes' clocks do not
//!   matter for expiry. A node measures its own deadline from the moment it
//!   *sent* the renewal (`sent + lease`), which is never later than the
//!   database's expiry: a writer stops before any standby can start.
//! - Every acquisition increments `epoch`. An append transaction locks the
//!   row `FOR SHARE` and checks the epoch ([`FENCE_SQL`]); a takeover's
//!   `UPDATE` waits for such transactions and later ones see the new epoch,
//!   so no append of an old writer commits after a newer writer started.
//!   The dense seq primary key refuses a fork anyway.
//! - The holder is a random id per process: a restarted node is a new
//!   node and waits for the old lease to expire like any other.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;

use super::pg_conn::PgConfig;

/// Default lease (`serve --lease`).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);
/// Shortest lease accepted: renewals run every third of it.
pub const MIN_LEASE: Duration = Duration::from_millis(300);
/// Longest lease accepted (an hour of unavailability after a crash is a
/// misconfiguration, not a choice).
pub const MAX_LEASE: Duration = Duration::from_secs(3600);

/// The lease table: one row (`id = 1`). Portable SQL (no extensions).
pub const SCHEMA_SQL: &str = "
CREATE TABLE IF NOT EXISTS isc_writer_lease (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    epoch      BIGINT NOT NULL,
    holder     TEXT NOT NULL,
    advertise  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO isc_writer_lease (id, epoch, holder, advertise, expires_at)
VALUES (1, 0, '', '', TIMESTAMPTZ '1970-01-01 00:00:00+00')
ON CONFLICT (id) DO NOTHING;
";

/// Run first in every append transaction of a fenced writer: `$1` is the
/// epoch the writer holds; the row comes back only if it still holds it.
/// `FOR SHARE` makes a takeover wait until this transaction ends.
pub const FENCE_SQL: &str =
    "SELECT epoch FROM isc_writer_lease WHERE id = 1 AND epoch = $1 FOR SHARE";

const ACQUIRE_SQL: &str = "
UPDATE isc_writer_lease
   SET epoch = epoch + 1, holder = $1, advertise = $2,
       expires_at = clock_timestamp() + CAST($3 AS BIGINT) * INTERVAL '1 millisecond'
 WHERE id = 1 AND expires_at <= clock_timestamp()
RETURNING epoch";

const RENEW_SQL: &str = "
UPDATE isc_writer_lease
   SET expires_at = clock_timestamp() + CAST($3 AS BIGINT) * INTERVAL '1 millisecond'
 WHERE id = 1 AND holder = $1 AND epoch = $2
RETURNING epoch";

const RELEASE_SQL: &str = "
UPDATE isc_writer_lease SET expires_at = clock_timestamp()
 WHERE id = 1 AND holder = $1 AND epoch = $2";

const READ_SQL: &str = "
SELECT epoch, holder, advertise,
       CAST(EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000 AS BIGINT)
  FROM isc_writer_lease WHERE id = 1";

/// The lease row as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    /// Fencing epoch of the last acquisition (0: never held).
    pub epoch: u64,
    /// Node id of the holder.
    pub holder: String,
    /// Where the holder serves writes (`serve --advertise`).
    pub advertise: String,
    /// Milliseconds until expiry by the database's clock (≤ 0: expired).
    pub remaining_ms: i64,
}

impl LeaseRow {
    /// Whether the lease is held right now.
    pub fn live(&self) -> bool {
        self.remaining_ms > 0
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn epoch_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Creates the lease table and its row if missing (idempotent).
pub async fn ensure_schema(c: &Client) -> Result<(), tokio_postgres::Error> {
    c.batch_execute(SCHEMA_SQL).await
}

/// Takes the lease if it has expired; returns the new epoch.
pub async fn try_acquire(
    c: &Client,
    node: &str,
    advertise: &str,
    lease: Duration,
) -> Result<Option<u64>, tokio_postgres::Error> {
    let row = c
        .query_opt(ACQUIRE_SQL, &[&node, &advertise, &ms(lease)])
        .await?;
    Ok(row.map(|r| epoch_of(r.get(0))))
}

/// Extends the lease held under `epoch`; false if it is no longer ours.
pub async fn renew(
    c: &Client,
    node: &str,
    epoch: u64,
    lease: Duration,
) -> Result<bool, tokio_postgres::Error> {
    let e = i64::try_from(epoch).unwrap_or(i64::MAX);
    Ok(c.query_opt(RENEW_SQL, &[&node, &e, &ms(lease)])
        .await?
        .is_some())
}

/// Ends the lease now (clean shutdown), so a standby need not wait.
pub async fn release(c: &Client, node: &str, epoch: u64) -> Result<bool, tokio_postgres::Error> {
    let e = i64::try_from(epoch).unwrap_or(i64::MAX);
    Ok(c.execute(RELEASE_SQL, &[&node, &e]).await? == 1)
}

/// Reads the lease row.
pub async fn read(c: &Client) -> Result<LeaseRow, tokio_postgres::Error> {
    let r = c.query_one(READ_SQL, &[]).await?;
    Ok(LeaseRow {
        epoch: epoch_of(r.get(0)),
        holder: r.get(1),
        advertise: r.get(2),
        remaining_ms: r.get(3),
    })
}

/// A node's role as the keeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not the writer. `writer` is the holder's advertised address while
    /// its lease is live (for the UNAVAILABLE message of a refused write).
    Standby {
        /// `(epoch, address)` of the live writer, if any.
        writer: Option<(u64, String)>,
    },
    /// This node holds the lease under `epoch` until `valid_until` (its
    /// own monotonic clock; the database's expiry is never earlier).
    Writer {
        /// Fencing epoch every append must carry.
        epoch: u64,
        /// Stop acknowledging writes at this instant unless renewed.
        valid_until: Instant,
    },
}

impl Role {
    /// The epoch, if this node may write at `now`.
    pub fn writable(&self, now: Instant) -> Option<u64> {
        match self {
            Role::Writer { epoch, valid_until } if now < *valid_until => Some(*epoch),
            _ => None,
        }
    }
}

/// How a node takes part in the lease.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// This process's id (random per start: a restart is a new node).
    pub node_id: String,
    /// Where this node serves (shown to clients a standby refuses).
    pub advertise: String,
    /// Lease length.
    pub lease: Duration,
}

impl LeaseConfig {
    /// A config with a fresh random node id.
    pub fn new(advertise: String, lease: Duration) -> LeaseConfig {
        let mut b = [0u8; 8];
        // A node id only has to differ from other processes'; if the OS
        // refuses randomness, the pid and the time are different enough.
        if getrandom::getrandom(&mut b).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            b = (t ^ u64::from(std::process::id())).to_be_bytes();
        }
        LeaseConfig {
            node_id: hex::encode(b),
            advertise,
            lease: lease.clamp(MIN_LEASE, MAX_LEASE),
        }
    }

    /// How often the writer renews and standbys look at the row.
    pub fn period(&self) -> Duration {
        self.lease / 4
    }
}

/// Something that gives the keeper a database connection (and a fresh
/// one after a failure). Lets tests and the service connect their own way.
pub trait Connect: Send + Sync + 'static {
    /// Opens a connection whose driver task is already spawned.
    fn connect(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + '_>,
    >;
}

/// Connects with a parsed connection string (`store::pg_conn::parse`, TLS
/// as it asks); its own statements are bounded by `statement_timeout` (see
/// [`keeper_config`]).
impl Connect for PgConfig {
    fn connect(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + '_>,
    > {
        Box::pin(async move {
            let (c, conn) = PgConfig::connect(self).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("lease connection ended: {e}");
                }
            });
            Ok(c)
        })
    }
}

/// The keeper's connection settings: the log's, with every statement
/// bounded by the lease (a takeover waiting on a frozen writer's fence
/// lock gives up and looks again instead of hanging).
pub fn keeper_config(base: &PgConfig, lease: Duration) -> PgConfig {
    let mut db = base.clone();
    let mut options = base.cfg.get_options().unwrap_or("").to_string();
    options.push_str(&format!(" -c statement_timeout={}", ms(lease)));
    db.cfg.options(options.trim_start());
    db.cfg.application_name("isc-ledger lease");
    db
}

/// Keeps a node's [`Role`] in step with the lease row: as a standby, looks
/// at the row every [`LeaseConfig::period`] and takes the lease when it
/// expired (only while `may_acquire` says the node is ready); as the
/// writer, renews it, and steps down when a renewal says the lease is
/// someone else's or no renewal succeeded before `valid_until`.
pub struct LeaseKeeper {
    config: LeaseConfig,
    connect: Box<dyn Connect>,
    role: watch::Sender<Role>,
    client: Option<Client>,
    backoff: Duration,
}

/// First and longest wait between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl LeaseKeeper {
    /// A keeper starting as a standby; the receiver follows its role.
    pub fn new(
        config: LeaseConfig,
        connect: Box<dyn Connect>,
    ) -> (LeaseKeeper, watch::Receiver<Role>) {
        let (role, rx) = watch::channel(Role::Standby { writer: None });
        (
            LeaseKeeper {
                config,
                connect,
                role,
                client: None,
                backoff: BACKOFF_MIN,
            },
            rx,
        )
    }

    /// The node's id and settings.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// A receiver of the role (also after `new`).
    pub fn subscribe(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// Drops to standby at once (the engine found its epoch fenced).
    pub fn step_down(&self, why: &str) {
        self.role.send_if_modified(|r| {
            if matches!(r, Role::Writer { .. }) {
                tracing::warn!("stepping down to standby: {why}");
                *r = Role::Standby { writer: None };
                true
            } else {
                false
            }
        });
    }

    /// Connects if there is no live connection; false if that failed.
    async fn ensure_client(&mut self) -> bool {
        if self.client.as_ref().is_some_and(|c| c.is_closed()) {
            self.client = None;
        }
        if self.client.is_none() {
            match self.connect.connect().await {
                Ok(c) => {
                    self.backoff = BACKOFF_MIN;
                    self.client = Some(c);
                }
                Err(e) => {
                    use std::error::Error;
                    match e.source() {
                        Some(why) => {
                            tracing::warn!("lease: cannot connect to the database: {e}: {why}")
                        }
                        None => tracing::warn!("lease: cannot connect to the database: {e}"),
                    }
                    return false;
                }
            }
        }
        true
    }

    /// One step of the loop; returns how long to wait before the next.
    /// `may_acquire`: whether this node may take the lease now (it has
    /// started and is not stopping).
    pub async fn step(&mut self, may_acquire: bool) -> Duration {
        let period = self.config.period();
        let current = self.role.borrow().clone();
        let sent = Instant::now();
        let node = self.config.node_id.clone();
        let lease = self.config.lease;
        if !self.ensure_client().await {
            self.check_deadline();
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            return wait.min(period);
        }
        let Some(c) = self.client.as_ref() else {
            return period;
        };
        let result = match current {
            Role::Writer { epoch, .. } => renew(c, &node, epoch, lease).await.map(|ok| {
                if ok {
                    self.role.send_modify(|r| {
                        if let Role::Writer {
                            epoch: e,
                            valid_until,
                        } = r
                        {
                            if *e == epoch {
                                *valid_until = sent + lease;
                            }
                        }
                    });
                } else {
                    self.step_down("the lease was taken over (renewal refused)");
                }
            }),
            Role::Standby { .. } => {
                let advertise = self.config.advertise.clone();
                match read(c).await {
                    Ok(row) if !row.live() && may_acquire => {
                        match try_acquire(c, &node, &advertise, lease).await {
                            Ok(Some(epoch)) => {
                                tracing::info!(epoch, "writer lease acquired");
                                self.role.send_replace(Role::Writer {
                                    epoch,
                                    valid_until: sent + lease,
                                });
                                Ok(())
                            }
                            Ok(None) => Ok(()), // someone else was faster
                            Err(e) => Err(e),
                        }
                    }
                    Ok(row) => {
                        let writer = (row.live() && !row.advertise.is_empty())
                            .then_some((row.epoch, row.advertise));
                        self.role.send_if_modified(|r| {
                            let new = Role::Standby { writer };
                            if matches!(r, Role::Standby { .. }) && *r != new {
                                *r = new;
                                true
                            } else {
                                false
                            }
                        });
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!("lease: database error: {e}");
            self.client = None;
            self.check_deadline();
            return BACKOFF_MIN.min(period);
        }
        self.check_deadline();
        period
    }

    /// A writer whose renewals failed until its deadline steps down.
    fn check_deadline(&self) {
        let expired = matches!(&*self.role.borrow(),
            Role::Writer { valid_until, .. } if Instant::now() >= *valid_until);
        if expired {
            self.step_down("no renewal succeeded within the lease");
        }
    }

    /// Ends the lease if this node holds it (clean shutdown).
    pub async fn release(&mut self) {
        let current = self.role.borrow().clone();
        if let Role::Writer { epoch, .. } = current {
            self.role.send_replace(Role::Standby { writer: None });
            let node = self.config.node_id.clone();
            if !self.ensure_client().await {
                return;
            }
            if let Some(c) = self.client.as_ref() {
                match release(c, &node, epoch).await {
                    Ok(_) => tracing::info!(epoch, "writer lease released"),
                    Err(e) => tracing::warn!("lease: cannot release: {e}"),
                }
            }
        }
    }

    /// Runs until `stop` resolves, then releases the lease.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let wait = self.step(true).await;
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.release().await;
    }
}
