//! Restart with a snapshot gives exactly the state of a full replay
//! (issue 4), over random histories, batchings and snapshot periods.

use isc_ledger::domain::{Ledger, Policy};
use isc_ledger::store::ledger::{commit, open_ledger_with};
use isc_ledger::store::workload::Workload;
use isc_ledger::store::{LogStore, StoreOptions};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn snapshot_restart_equals_full_replay(
        seed in any::<u64>(),
        len in 1usize..400,
        batches in proptest::collection::vec(1usize..80, 1..20),
        every in 1u64..150,
        reopen_at in 0usize..400,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut reference = Ledger::new(Policy::default());
        let events = Workload::history(seed, len, &mut reference);
        let opts = StoreOptions { snapshot_every_records: every, fdatasync: false };
        let (mut log, mut ledger) =
            open_ledger_with(tmp.path(), Policy::default(), opts.clone()).expect("open");
        let mut pos = 0;
        let mut reopened = false;
        for size in batches.iter().cycle() {
            if pos >= events.len() {
                break;
            }
            let end = (pos + size).min(events.len());
            commit(&mut log, &mut ledger, events[pos..end].to_vec()).expect("commit");
            pos = end;
            if !reopened && pos >= reopen_at {
                // Restart in the middle too: the tail after the snapshot replays.
                drop(log);
                let (l, again) =
                    open_ledger_with(tmp.path(), Policy::default(), opts.clone()).expect("reopen");
                prop_assert_eq!(&again, &ledger);
                log = l;
                reopened = true;
            }
        }
        prop_assert_eq!(&ledger, &reference);
        let snap = log.load_snapshot::<Ledger>().expect("load");
        if len as u64 >= every {
            prop_assert!(snap.is_some());
        }
        drop(log);
        let (_, restarted) = open_ledger_with(tmp.path(), Policy::default(), opts).expect("reopen");
        prop_assert_eq!(restarted, Ledger::replay(Policy::default(), &events).expect("replay"));
    }
}
