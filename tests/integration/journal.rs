//! The write-ahead journal as a power cut tests it: a group commit syncs the journal alone, so
//! sled's files on disk may lack every event since the last checkpoint. The tests copy the data
//! directory's files while the ledger is still open (what a power cut leaves on disk: sled
//! flushes only at a checkpoint), open the copy, and find every acknowledged event there, with
//! the chain, the anchor and the tree intact; without the journal the same copy lacks them,
//! which shows it is the journal that kept them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use careledger_core::anchor::anchor_path;
use careledger_core::checkpoint::check_tree;
use careledger_core::clock::ManualClock;
use careledger_core::event::{Command, SharedCare};
use careledger_core::ids::{PatientId, Text};
use careledger_core::journal::journal_path;
use careledger_core::log::CHECKPOINT_INTERVAL;
use careledger_core::{Ledger, LedgerConfig, Timestamp};

use crate::common::built::{note, request};

/// Appends a note for `patient` (founding its care team first when it has none); the last
/// position written.
fn append(ledger: &Ledger, patient: &str, n: u64) -> u64 {
    let id = PatientId::parse(patient).unwrap();
    let mut commands = Vec::new();
    if ledger.read_stream(&id, 1, 1).unwrap().is_empty() {
        commands.push(Command::StartSharedCare(SharedCare {
            arrangement: Text::new("shared care").unwrap(),
        }));
    }
    commands.push(note(n));
    let outcome = ledger.append(request(patient, commands)).unwrap();
    outcome.events.last().unwrap().position
}

/// A ledger's settings with a clock the test moves, and the clock.
fn with_manual_clock() -> (LedgerConfig, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
        1_772_355_600_000_000,
    )));
    let config = LedgerConfig {
        clock: clock.clone(),
        ..LedgerConfig::default()
    };
    (config, clock)
}

/// Copies the ledger's directory, anchor and (when `with_journal`) journal as they are on disk
/// now into `to`, as a power cut would leave them.
fn copy_as_on_disk(ledger_dir: &Path, to: &Path, with_journal: bool) -> PathBuf {
    let target = to.join("ledger");
    copy_dir(ledger_dir, &target);
    std::fs::copy(anchor_path(ledger_dir), anchor_path(&target)).unwrap();
    if with_journal {
        std::fs::copy(journal_path(ledger_dir), journal_path(&target)).unwrap();
    }
    target
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

fn assert_whole(ledger: &Ledger, head: u64) {
    assert_eq!(ledger.head().position, head);
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.verified, head);
    assert!(ledger.damage().is_none(), "{:?}", ledger.damage());
    ledger.health().unwrap();
    let tree = check_tree(ledger, None).unwrap();
    assert_eq!(tree.size, head);
    assert!(tree.problem.is_none(), "{:?}", tree.problem);
}

#[test]
fn acknowledged_events_only_in_the_journal_survive_a_power_cut_and_the_copy_takes_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let ledger = Ledger::open(&ledger_dir, LedgerConfig::default()).unwrap();
    assert_eq!(ledger.journal_file(), Some(journal_path(&ledger_dir)));
    let mut head = 0;
    for n in 0..60 {
        head = append(&ledger, &format!("patient-{}", n % 4), n);
    }

    let cut = tempfile::tempdir().unwrap();
    let copy = copy_as_on_disk(&ledger_dir, cut.path(), true);
    let bare = tempfile::tempdir().unwrap();
    let without_journal = copy_as_on_disk(&ledger_dir, bare.path(), false);
    drop(ledger);

    let restored = Ledger::open(&copy, LedgerConfig::default()).unwrap();
    assert_whole(&restored, head);
    // The copy goes on taking writes, and a clean close leaves storage and anchor whole alone.
    let next = append(&restored, "patient-1", 99);
    assert_eq!(next, head + 1);
    drop(restored);
    std::fs::remove_file(journal_path(&copy)).unwrap();
    let reopened = Ledger::open(&copy, LedgerConfig::default()).unwrap();
    assert_whole(&reopened, head + 1);

    // The same files without the journal: sled had not been synced since the ledger opened.
    let lost = Ledger::open(&without_journal, LedgerConfig::default()).unwrap();
    assert!(
        lost.head().position < head,
        "sled's files alone held {} of {head} events: the test did not cut anything",
        lost.head().position
    );
}

#[test]
fn a_checkpoint_puts_the_journal_s_events_into_sled_and_the_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let (config, clock) = with_manual_clock();
    let ledger = Ledger::open(&ledger_dir, config.clone()).unwrap();
    let mut head = 0;
    for n in 0..20 {
        head = append(&ledger, "patient-1", n);
    }
    // The next group commit after the checkpoint interval checkpoints.
    clock.advance(CHECKPOINT_INTERVAL + Duration::from_millis(1));
    head = head.max(append(&ledger, "patient-2", 20));

    let cut = tempfile::tempdir().unwrap();
    let without_journal = copy_as_on_disk(&ledger_dir, cut.path(), false);
    drop(ledger);
    let copy = Ledger::open(&without_journal, config).unwrap();
    assert_whole(&copy, head);
}

#[test]
fn a_cut_sled_file_under_a_journal_is_named_as_damage_with_the_journal_s_events_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let (config, clock) = with_manual_clock();
    let ledger = Ledger::open(&ledger_dir, config.clone()).unwrap();
    for n in 0..30 {
        append(&ledger, "patient-1", n);
    }
    clock.advance(CHECKPOINT_INTERVAL + Duration::from_millis(1));
    let checkpointed = append(&ledger, "patient-1", 30);
    let mut head = checkpointed;
    for n in 31..40 {
        head = append(&ledger, "patient-1", n);
    }
    let cut = tempfile::tempdir().unwrap();
    let copy = copy_as_on_disk(&ledger_dir, cut.path(), true);
    drop(ledger);
    // Sled's directory lost wholesale (a restore of an empty directory, say): the anchor holds
    // the checkpointed events and the journal the rest; both are counted as missing.
    std::fs::remove_dir_all(&copy).unwrap();
    std::fs::create_dir_all(&copy).unwrap();
    let damaged = Ledger::open(&copy, config).unwrap();
    let damage = damaged.damage().expect("the loss is named");
    assert_eq!(damage.last_anchored, head, "{damage}");
    assert_eq!(damage.missing, head, "{damage}");
    assert!(damaged.head_problem().is_some());
}
