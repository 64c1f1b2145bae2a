//! The writer lease against a real throwaway PostgreSQL cluster: the SQL
//! (acquire, renew, fence, release) and the keeper's state machine.

mod common;

use std::time::{Duration, Instant};

use common::pg::PgCluster;
use isc_ledger::store::pg_lease::{self, Connect, LeaseConfig, LeaseKeeper, Role, FENCE_SQL};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (c, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

struct Url(String);

impl Connect for Url {
    fn connect(
        &self,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Client, tokio_postgres::Error>> + Send + '_>,
    > {
        Box::pin(async move {
            let (c, conn) = tokio_postgres::connect(&self.0, NoTls).await?;
            tokio::spawn(conn);
            Ok(c)
        })
    }
}

const LEASE: Duration = Duration::from_millis(400);

#[tokio::test]
async fn lease_sql_acquire_renew_expire_fence_release() {
    let pg = PgCluster::start();
    let c = connect(&pg.primary.conninfo()).await;
    pg_lease::ensure_schema(&c).await.unwrap();
    pg_lease::ensure_schema(&c).await.unwrap(); // idempotent
    let row = pg_lease::read(&c).await.unwrap();
    assert_eq!((row.epoch, row.live()), (0, false));

    let e1 = pg_lease::try_acquire(&c, "a", "http://a", LEASE)
        .await
        .unwrap();
    assert_eq!(e1, Some(1));
    assert_eq!(
        pg_lease::try_acquire(&c, "b", "http://b", LEASE)
            .await
            .unwrap(),
        None
    );
    let row = pg_lease::read(&c).await.unwrap();
    assert!(row.live() && row.holder == "a" && row.advertise == "http://a");
    assert!(pg_lease::renew(&c, "a", 1, LEASE).await.unwrap());
    assert!(
        !pg_lease::renew(&c, "b", 1, LEASE).await.unwrap(),
        "not b's"
    );
    assert!(
        !pg_lease::renew(&c, "a", 7, LEASE).await.unwrap(),
        "wrong epoch"
    );
    assert_eq!(c.query(FENCE_SQL, &[&1i64]).await.unwrap().len(), 1);

    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
    assert!(!pg_lease::read(&c).await.unwrap().live());
    assert_eq!(
        pg_lease::try_acquire(&c, "b", "http://b", LEASE)
            .await
            .unwrap(),
        Some(2)
    );
    // The old writer's renewal and fence both fail now.
    assert!(!pg_lease::renew(&c, "a", 1, LEASE).await.unwrap());
    assert!(c.query(FENCE_SQL, &[&1i64]).await.unwrap().is_empty());
    assert_eq!(c.query(FENCE_SQL, &[&2i64]).await.unwrap().len(), 1);
    // A clean release lets the next node in at once.
    assert!(
        !pg_lease::release(&c, "a", 2).await.unwrap(),
        "not a's to release"
    );
    assert!(pg_lease::release(&c, "b", 2).await.unwrap());
    assert_eq!(
        pg_lease::try_acquire(&c, "a", "http://a", LEASE)
            .await
            .unwrap(),
        Some(3)
    );
}

#[tokio::test]
async fn a_takeover_waits_for_an_open_append_and_fences_the_next() {
    let pg = PgCluster::start();
    let a = connect(&pg.primary.conninfo()).await;
    let b = connect(&pg.primary.conninfo()).await;
    pg_lease::ensure_schema(&a).await.unwrap();
    a.batch_execute("CREATE TABLE log (seq BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    assert_eq!(
        pg_lease::try_acquire(&a, "a", "x", LEASE).await.unwrap(),
        Some(1)
    );

    // Writer a is inside an append transaction when its lease expires.
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(a.query(FENCE_SQL, &[&1i64]).await.unwrap().len(), 1);
    a.execute("INSERT INTO log VALUES (1)", &[]).await.unwrap();
    tokio::time::sleep(LEASE + Duration::from_millis(100)).await;
    let takeover = tokio::spawn(async move {
        let e = pg_lease::try_acquire(&b, "b", "y", LEASE).await.unwrap();
        (e, b)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !takeover.is_finished(),
        "the takeover waits for the open append"
    );
    a.batch_execute("COMMIT").await.unwrap();
    let (e, b) = takeover.await.unwrap();
    assert_eq!(e, Some(2));
    // The new writer sees the append that committed before its epoch...
    let n: i64 = b
        .query_one("SELECT count(*) FROM log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // ...and the old writer's next append is fenced.
    a.batch_execute("BEGIN").await.unwrap();
    assert!(a.query(FENCE_SQL, &[&1i64]).await.unwrap().is_empty());
    a.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn a_frozen_writer_inside_a_transaction_does_not_block_the_takeover() {
    // A writer stopped (SIGSTOP) between its fence and its COMMIT holds the
    // row lock; idle_in_transaction_session_timeout (set on the log's
    // connection to the lease) ends its session and the takeover proceeds.
    let pg = PgCluster::start();
    let url = format!(
        "{} options='-c idle_in_transaction_session_timeout={}'",
        pg.primary.conninfo(),
        LEASE.as_millis()
    );
    let a = connect(&url).await;
    let b = connect(&pg.primary.conninfo()).await;
    pg_lease::ensure_schema(&a).await.unwrap();
    assert_eq!(
        pg_lease::try_acquire(&a, "a", "x", LEASE).await.unwrap(),
        Some(1)
    );
    a.batch_execute("BEGIN").await.unwrap();
    assert_eq!(a.query(FENCE_SQL, &[&1i64]).await.unwrap().len(), 1);
    let t0 = Instant::now();
    // The lease expires at ~LEASE; the frozen session is cut at ~LEASE idle.
    let mut e = None;
    while e.is_none() {
        e = pg_lease::try_acquire(&b, "b", "y", LEASE).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(t0.elapsed() < Duration::from_secs(5), "takeover blocked");
    }
    assert_eq!(e, Some(2));
    // When the frozen writer wakes up, its COMMIT cannot succeed.
    assert!(a.batch_execute("COMMIT").await.is_err() || a.is_closed());
}

#[tokio::test]
async fn keepers_hand_over_the_lease_and_the_loser_steps_down() {
    let pg = PgCluster::start();
    let c = connect(&pg.primary.conninfo()).await;
    pg_lease::ensure_schema(&c).await.unwrap();
    let url = pg.primary.conninfo();
    let (mut ka, ra) = LeaseKeeper::new(
        LeaseConfig::new("http://a".into(), LEASE),
        Box::new(Url(url.clone())),
    );
    let (mut kb, rb) = LeaseKeeper::new(
        LeaseConfig::new("http://b".into(), LEASE),
        Box::new(Url(url.clone())),
    );
    assert_ne!(ka.config().node_id, kb.config().node_id);
    // A node not ready (still replaying) never takes the lease.
    ka.step(false).await;
    assert!(matches!(*ra.borrow(), Role::Standby { writer: None }));
    ka.step(true).await;
    let Role::Writer { epoch, .. } = *ra.borrow() else {
        panic!("a is the writer");
    };
    assert!(ra.borrow().writable(Instant::now()).is_some());
    kb.step(true).await;
    assert_eq!(
        *rb.borrow(),
        Role::Standby {
            writer: Some((epoch, "http://a".into()))
        },
        "b knows where the writer is"
    );
    // a renews while b looks: nothing changes for several leases.
    for _ in 0..6 {
        ka.step(true).await;
        kb.step(true).await;
        tokio::time::sleep(LEASE / 4).await;
    }
    assert!(matches!(*ra.borrow(), Role::Writer { .. }));
    assert!(matches!(*rb.borrow(), Role::Standby { .. }));
    // a freezes (no renewal): its own deadline passes before b can take
    // over, so it never believes it writes while b does.
    tokio::time::sleep(LEASE + Duration::from_millis(50)).await;
    assert_eq!(ra.borrow().writable(Instant::now()), None);
    kb.step(true).await;
    let Role::Writer { epoch: eb, .. } = *rb.borrow() else {
        panic!("b took over");
    };
    assert_eq!(eb, epoch + 1);
    ka.step(true).await;
    assert!(
        matches!(*ra.borrow(), Role::Standby { .. }),
        "a stepped down"
    );
    // A clean stop releases: a takes over at once.
    kb.release().await;
    assert!(matches!(*rb.borrow(), Role::Standby { .. }));
    ka.step(true).await;
    assert!(matches!(*ra.borrow(), Role::Writer { epoch: e, .. } if e == eb + 1));
}

#[tokio::test]
async fn a_writer_that_cannot_reach_the_database_steps_down_at_its_deadline() {
    let mut pg = PgCluster::start();
    let c = connect(&pg.primary.conninfo()).await;
    pg_lease::ensure_schema(&c).await.unwrap();
    let (mut k, r) = LeaseKeeper::new(
        LeaseConfig::new("http://a".into(), LEASE),
        Box::new(Url(format!("{} connect_timeout=1", pg.primary.conninfo()))),
    );
    k.step(true).await;
    assert!(matches!(*r.borrow(), Role::Writer { .. }));
    pg.primary.kill();
    let t0 = Instant::now();
    while matches!(*r.borrow(), Role::Writer { .. }) {
        let wait = k.step(true).await;
        tokio::time::sleep(wait).await;
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
    assert!(t0.elapsed() <= LEASE + Duration::from_millis(200));
}

#[tokio::test]
async fn the_multi_host_url_finds_the_promoted_standby() {
    // The harness's synchronous standby (pg_basebackup) and tokio-postgres's
    // multi-host `target_session_attrs=read-write`: before the failover the
    // URL reaches the primary; after SIGKILL of the primary and promotion
    // it reaches the standby, with every committed row there.
    let mut pg = PgCluster::start_with_standby(true);
    let url = pg.multi_host_url();
    let c = connect(&url).await;
    pg_lease::ensure_schema(&c).await.unwrap();
    assert_eq!(
        pg_lease::try_acquire(&c, "a", "x", LEASE).await.unwrap(),
        Some(1)
    );
    let standby = pg.standby.as_ref().unwrap();
    // Read-only until promoted: a direct write there is refused.
    assert_eq!(
        standby
            .psql("postgres", "SELECT pg_is_in_recovery()")
            .unwrap()
            .trim(),
        "t"
    );
    pg.primary.kill();
    assert!(
        tokio_postgres::connect(&url, NoTls).await.is_err(),
        "no read-write server yet"
    );
    pg.standby.as_ref().unwrap().promote().expect("promote");
    let c = connect(&url).await;
    let row = pg_lease::read(&c).await.unwrap();
    assert_eq!(row.epoch, 1, "the synchronous standby had the commit");
}
