//! Damage is never silent: a ledger whose files lost or changed acknowledged events (a cut
//! `db` file with or without sled's snapshot, flipped bytes, the newest events removed, an old
//! event rewritten with every later hash recomputed, a deleted index entry) is never reported
//! intact, never panics, and refuses writes, so that positions are never re-used. Real sled,
//! real files: a ledger is built through `Ledger::append`, copies of its files are damaged, and
//! the copies are opened and verified.

use std::path::{Path, PathBuf};

use crate::common::built::{build, ledger_dir, note, request};
use crate::common::process::{careledger, prepare_demo, ServerProcess};
use crate::common::tamper;
use careledger_core::chain::{encode_frame, event_hash, Frame};
use careledger_core::event::{Command, Note, NoteKind};
use careledger_core::ids::Text;
use careledger_core::verify::{Problem, ProblemKind, VerifyReport};
use careledger_core::{Error, Hash, Ledger, LedgerConfig};
use serde_json::{json, Value};

/// Copies a data directory (ledger and anchor) into a new temporary one.
fn copy_data(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    copy_tree(from, to.path());
    to
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Opens the damaged copy and verifies it. Panics only through the test's own assertions:
/// either the open fails with an error naming the damage, or the ledger opens, and then it is
/// reported intact only when it still holds every acknowledged event with its hash.
fn assert_never_silent(data: &Path, acknowledged: &[Hash], case: &str) {
    let opened = Ledger::open(&ledger_dir(data), LedgerConfig::default());
    let ledger = match opened {
        Err(e) => {
            let message = e.to_string();
            eprintln!("{case}: open failed: {message}");
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{case}: {message}"
            );
            return;
        }
        Ok(ledger) => ledger,
    };
    let report = ledger.verify(&mut |_, _| {});
    let holds_everything = || {
        ledger
            .read_all(0, usize::MAX)
            .is_ok_and(|events| events.iter().map(|e| e.hash).collect::<Vec<_>>() == acknowledged)
    };
    eprintln!(
        "{case}: opened (damage: {:?}); verify: {:?}",
        ledger.damage().map(|d| d.to_string()),
        report
            .as_ref()
            .map(|r| r.problem.as_ref().map(|p| p.to_string()))
    );
    match report {
        Err(e) => assert!(!e.to_string().is_empty(), "{case}"),
        Ok(report) if report.is_intact() => {
            assert!(
                holds_everything(),
                "{case}: reported intact ({} events) while acknowledged events are missing or changed",
                report.verified
            );
            assert!(ledger.damage().is_none(), "{case}: {:?}", ledger.damage());
        }
        Ok(report) => {
            let problem = report.problem.unwrap();
            assert!(!problem.to_string().contains('\n'), "{case}: {problem}");
            if ledger.damage().is_some() || !holds_everything() {
                let refused = ledger.append(request("patient-0", vec![note(0)]));
                assert!(refused.is_err(), "{case}: a damaged ledger took a write");
            }
        }
    }
}

fn snapshots(ledger: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(ledger)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
        })
        .collect()
}

#[test]
fn a_cut_db_file_with_or_without_its_snapshot_is_never_reported_intact_and_never_panics() {
    let built = tempfile::tempdir().unwrap();
    let acknowledged = build(built.path(), 3000);
    let db = ledger_dir(built.path()).join("db");
    let size = std::fs::metadata(&db).unwrap().len();
    assert!(
        !snapshots(&ledger_dir(built.path())).is_empty(),
        "sled keeps a snapshot to remove"
    );
    for fraction in [0.0, 0.1, 0.3, 0.5, 0.8, 0.95, 0.999] {
        for remove_snapshot in [false, true] {
            let copy = copy_data(built.path());
            let cut = (size as f64 * fraction) as u64;
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(ledger_dir(copy.path()).join("db"))
                .unwrap();
            file.set_len(cut).unwrap();
            if remove_snapshot {
                for snap in snapshots(&ledger_dir(copy.path())) {
                    std::fs::remove_file(snap).unwrap();
                }
            }
            let case =
                format!("db cut to {cut} of {size} bytes, snapshot removed: {remove_snapshot}");
            assert_never_silent(copy.path(), &acknowledged, &case);
        }
    }
}

#[test]
fn flipped_bytes_in_the_stored_files_are_never_reported_intact_and_never_panic() {
    let built = tempfile::tempdir().unwrap();
    let acknowledged = build(built.path(), 3000);
    let ledger = ledger_dir(built.path());
    let mut files = vec![ledger.join("db"), built.path().join("ledger-anchor")];
    assert!(
        !snapshots(&ledger).is_empty(),
        "sled keeps a snapshot to damage"
    );
    files.extend(snapshots(&ledger));
    for file in files {
        let size = std::fs::metadata(&file).unwrap().len();
        for fraction in [0.05, 0.3, 0.6, 0.9, 0.99] {
            let copy = copy_data(built.path());
            let relative = file.strip_prefix(built.path()).unwrap();
            let target = copy.path().join(relative);
            let mut bytes = std::fs::read(&target).unwrap();
            let at = ((size as f64 * fraction) as usize).min(bytes.len() - 1);
            bytes[at] ^= 0x5a;
            std::fs::write(&target, &bytes).unwrap();
            let case = format!("byte {at} of {} flipped", relative.display());
            assert_never_silent(copy.path(), &acknowledged, &case);
        }
    }
}

#[test]
fn missing_blob_files_are_never_reported_intact_and_never_panic() {
    let built = tempfile::tempdir().unwrap();
    let mut acknowledged = build(built.path(), 300);
    {
        // Appends of 16 notes of 8 KiB: each stored value (~130 KiB) is over a quarter of sled's
        // 512 KiB segment, so sled writes it as a blob file of its own.
        let ledger = Ledger::open(&ledger_dir(built.path()), LedgerConfig::default()).unwrap();
        for n in 0..4 {
            let big = Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new(format!("letter {n}")).unwrap(),
                body: Text::new("x".repeat(Text::MAX_LEN)).unwrap(),
            });
            let outcome = ledger.append(request("patient-2", vec![big; 16])).unwrap();
            acknowledged.extend(outcome.events.iter().map(|e| e.hash));
        }
    }
    let blobs: Vec<PathBuf> = std::fs::read_dir(ledger_dir(built.path()).join("blobs"))
        .map(|dir| dir.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        !blobs.is_empty(),
        "sled stored the large values as blob files"
    );
    for (i, blob) in blobs.iter().enumerate() {
        for all in [false, true] {
            let copy = copy_data(built.path());
            let relative = blob.strip_prefix(built.path()).unwrap();
            if all {
                for other in &blobs {
                    let _ = std::fs::remove_file(
                        copy.path().join(other.strip_prefix(built.path()).unwrap()),
                    );
                }
            } else {
                std::fs::remove_file(copy.path().join(relative)).unwrap();
            }
            let case = format!("blob {i} of {} removed (all of them: {all})", blobs.len());
            assert_never_silent(copy.path(), &acknowledged, &case);
        }
    }
}

/// Opens the ledger's sled database directly, as someone tampering with it would.
fn open_raw(data: &Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(ledger_dir(data)) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    panic!("the ledger's database stayed locked");
}

#[test]
fn removed_newest_events_open_read_only_name_what_is_missing_and_positions_are_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 300);
    let head = acknowledged.len() as u64;
    let first_removed = {
        let db = open_raw(dir.path());
        // The last two stored values: the newest appends' frames.
        let (key, _, _) = tamper::locate(&db, head);
        let last_first = u64::from_be_bytes(key[1..9].try_into().unwrap());
        tamper::remove_value(&db, head);
        let (key, _, _) = tamper::locate(&db, last_first - 1);
        tamper::remove_value(&db, last_first - 1);
        u64::from_be_bytes(key[1..9].try_into().unwrap())
    };
    let missing = head - first_removed + 1;

    let ledger = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    let damage = ledger.damage().expect("the anchor shows the loss on open");
    assert_eq!(damage.last_anchored, head);
    assert_eq!(damage.missing, missing);
    assert_eq!(ledger.head().position, first_removed - 1);

    let report = ledger.verify(&mut |_, _| {}).unwrap();
    let problem = report.problem.expect("never reported intact");
    assert_eq!(problem.position, first_removed);
    assert!(
        matches!(problem.kind, ProblemKind::Missing { last_anchored, missing: m } if last_anchored == head && m == missing),
        "{problem}"
    );

    let refused = ledger
        .append(request("patient-0", vec![note(1)]))
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Damaged(d) if d.missing == missing),
        "{refused}"
    );
    assert_eq!(
        ledger.head().position,
        first_removed - 1,
        "no position re-used"
    );
    drop(ledger);
    // Still refused after another open: the anchor is not rewritten to the shorter ledger.
    let again = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    assert_eq!(again.damage().map(|d| d.missing), Some(missing));
}

/// Rewrites the record of the event at `position` (one byte of its reason) and every later
/// frame with recomputed hashes and links, through sled: a chain that verifies by itself.
fn rewrite_consistently(db: &sled::Db, position: u64, head: u64) {
    let mut prev = None;
    for p in position..=head {
        tamper::change(db, p, |frame| {
            let parsed = Frame::parse(frame).unwrap();
            let mut record = parsed.record.to_vec();
            if p == position {
                let at = record.len() - 3;
                record[at] ^= 0x01;
            }
            let link = prev.unwrap_or(parsed.prev_hash);
            let hash = event_hash(p, parsed.format_version, &link, &record);
            let rewritten = encode_frame(parsed.format_version, &link, &hash, &record);
            frame.copy_from_slice(&rewritten);
            prev = Some(hash);
        });
    }
}

#[test]
fn an_old_event_rewritten_with_every_later_hash_recomputed_is_found_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 200);
    let head = acknowledged.len() as u64;
    let changed = 17;
    rewrite_consistently(&open_raw(dir.path()), changed, head);

    let ledger = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    let damage = ledger
        .damage()
        .expect("the head differs from the anchored hash");
    assert_eq!(damage.last_anchored, head);
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    let problem = report.problem.expect("never reported intact");
    assert_eq!(problem.position, changed, "{problem}");
    assert!(
        matches!(problem.kind, ProblemKind::DiffersFromAnchor { anchored, .. } if anchored == acknowledged[changed as usize - 1]),
        "{problem}"
    );
    assert!(matches!(
        ledger.append(request("patient-0", vec![note(1)])),
        Err(Error::Damaged(_))
    ));
}

#[test]
fn a_deleted_per_patient_index_entry_is_reported_at_its_event() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 200);
    let removed_position = {
        let db = open_raw(dir.path());
        // The index entry of patient-3's second run (its first is the founding event).
        let (key, run) = db
            .scan_prefix(index_prefix("patient-3"))
            .nth(1)
            .unwrap()
            .unwrap();
        db.remove(key).unwrap();
        db.flush().unwrap();
        u64::from_be_bytes(run[..8].try_into().unwrap())
    };
    let (_, problem) = index_problem(dir.path(), removed_position);
    assert!(problem.to_string().contains("patient-3"), "{problem}");
    assert!(removed_position <= acknowledged.len() as u64);
}

/// Two of a patient's index entries swapped: as many entries as events, each position listed
/// once, only the revisions they map to are wrong.
#[test]
fn swapped_per_patient_index_entries_are_reported_at_the_first_of_them() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), 200);
    let first = {
        let db = open_raw(dir.path());
        let (key, run) = db
            .scan_prefix(index_prefix("patient-3"))
            .map(Result::unwrap)
            .find(|(_, run)| run.len() >= 16)
            .expect("a run of two positions or more");
        let mut swapped = run.to_vec();
        swapped[..16].rotate_left(8);
        db.insert(key, swapped).unwrap();
        db.flush().unwrap();
        u64::from_be_bytes(run[..8].try_into().unwrap())
    };
    let (report, _) = index_problem(dir.path(), first);
    assert_eq!(report.verified, first - 1);
}

/// The key prefix of a patient's runs in sled's per-patient index.
fn index_prefix(patient: &str) -> Vec<u8> {
    let mut prefix = vec![b's', patient.len() as u8];
    prefix.extend_from_slice(patient.as_bytes());
    prefix
}

/// Verifies the ledger in `dir`, which must find the per-patient index wrong at `position`.
fn index_problem(dir: &Path, position: u64) -> (VerifyReport, Problem) {
    let ledger = Ledger::open(&ledger_dir(dir), LedgerConfig::default()).unwrap();
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    let problem = report
        .problem
        .clone()
        .expect("the index's problem is found");
    assert_eq!(problem.position, position, "{problem}");
    assert!(matches!(problem.kind, ProblemKind::Index(_)), "{problem}");
    (report, problem)
}

#[test]
fn an_intact_ledger_verifies_against_its_anchor_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 500);
    let ledger = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    assert!(ledger.damage().is_none());
    assert!(ledger.health().is_ok());
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    assert_eq!(report.verified, acknowledged.len() as u64);
    ledger.append(request("patient-1", vec![note(1)])).unwrap();
}

#[test]
fn a_ledger_older_than_the_anchor_is_anchored_from_its_head_on_first_open() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 100);
    let anchor = dir.path().join("ledger-anchor");
    std::fs::remove_file(&anchor).unwrap();
    let ledger = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    assert!(
        ledger.damage().is_none(),
        "the first open trusts what it finds"
    );
    assert!(anchor.exists());
    ledger.append(request("patient-1", vec![note(1)])).unwrap();
    drop(ledger);
    // From now on the anchor holds the old head and every later event: removing the newest
    // event is found.
    {
        let db = open_raw(dir.path());
        tamper::remove_value(&db, acknowledged.len() as u64 + 1);
    }
    let ledger = Ledger::open(&ledger_dir(dir.path()), LedgerConfig::default()).unwrap();
    assert_eq!(ledger.damage().map(|d| d.missing), Some(1));
}

/// The byte offsets where the anchor's entries start (its layout: `docs/hash-format.md`).
fn anchor_entries(anchor: &Path) -> Vec<usize> {
    let bytes = std::fs::read(anchor).unwrap();
    let mut at = 20;
    let mut starts = Vec::new();
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        starts.push(at);
        at += 4 + len + 8;
    }
    starts
}

#[test]
fn a_crash_between_the_ledger_sync_and_the_anchor_sync_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged = build(dir.path(), 300);
    let anchor = dir.path().join("ledger-anchor");
    // The last group commit's events reached sled, its anchor entry did not (never
    // acknowledged): cut the entry off, or leave half of it (a torn write).
    let entries = anchor_entries(&anchor);
    let last = *entries.last().unwrap();
    for keep in [0, 30] {
        let copy = copy_data(dir.path());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.path().join("ledger-anchor"))
            .unwrap();
        file.set_len((last + keep) as u64).unwrap();
        drop(file);
        let ledger = Ledger::open(&ledger_dir(copy.path()), LedgerConfig::default()).unwrap();
        assert!(
            ledger.damage().is_none(),
            "keep {keep}: {:?}",
            ledger.damage()
        );
        let report = ledger.verify(&mut |_, _| {}).unwrap();
        assert!(report.is_intact(), "keep {keep}: {:?}", report.problem);
        assert_eq!(report.verified, acknowledged.len() as u64);
        ledger.append(request("patient-1", vec![note(1)])).unwrap();
        drop(ledger);
        // The anchor caught up with the ledger: removing the newest event is now found.
        let db = open_raw(copy.path());
        tamper::remove_value(&db, acknowledged.len() as u64 + 1);
        drop(db);
        let ledger = Ledger::open(&ledger_dir(copy.path()), LedgerConfig::default()).unwrap();
        assert_eq!(ledger.damage().map(|d| d.missing), Some(1), "keep {keep}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_missing_acknowledged_events_is_unhealthy_refuses_writes_and_verify_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let (auditor, gp, head) = prepare_demo(dir.path());
    let first_removed = {
        let db = open_raw(dir.path());
        let (key, _, _) = tamper::locate(&db, head);
        tamper::remove_value(&db, head);
        u64::from_be_bytes(key[1..9].try_into().unwrap())
    };
    let missing = head - first_removed + 1;

    let verify = careledger(&["verify", "--data", dir.path().to_str().unwrap()]);
    assert!(!verify.status.success());
    let stdout = String::from_utf8(verify.stdout).unwrap();
    let line = stdout.lines().next().unwrap();
    assert!(
        line.contains(&format!("up to position {head}"))
            && line.contains(&format!("{missing} acknowledged events are missing")),
        "{stdout}"
    );

    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path(), &client).await;
    // Anyone learns that the ledger is damaged; only an auditor learns where and how much.
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body, json!({"status": "unhealthy", "class": "damaged"}));
    let health = client
        .get(format!("{}/health", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["class"], "damaged", "{body}");
    assert_eq!(body["last_anchored_position"], head, "{body}");
    assert_eq!(body["missing_events"], missing, "{body}");

    let write = client
        .post(format!("{}/patients/pat-0003/events", server.base))
        .bearer_auth(&gp)
        .json(&json!({"commands": [{"type": "add_note", "subject": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 503);
    let problem: Value = write.json().await.unwrap();
    assert_eq!(problem["code"], "ledger_damaged", "{problem}");
    assert_eq!(problem["last_anchored_position"], head, "{problem}");
    assert_eq!(problem["missing_events"], missing, "{problem}");

    let verified = client
        .get(format!("{}/verify", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(verified.status(), 409);
    let problem: Value = verified.json().await.unwrap();
    assert_eq!(problem["code"], "ledger_not_intact", "{problem}");
    assert_eq!(problem["position"], first_removed, "{problem}");
}
