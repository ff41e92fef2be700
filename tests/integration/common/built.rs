//! Ledgers built through `Ledger::append` for the tests that need many events: notes by one
//! GP for eight patients.

use std::path::{Path, PathBuf};

use careledger_core::event::{Command, Note, NoteKind, SharedCare};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::role::Role;
use careledger_core::{
    Actor, AppendRequest, ExpectedRevision, Hash, Ledger, LedgerConfig, Submission,
};

pub fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-1").unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. GP").unwrap(),
        organisation: None,
    }
}

pub fn request(patient: &str, commands: Vec<Command>) -> AppendRequest {
    AppendRequest {
        patient: PatientId::parse(patient).unwrap(),
        expected: ExpectedRevision::Any,
        actor: gp(),
        submissions: commands
            .into_iter()
            .map(|command| Submission {
                command,
                occurred_at: None,
                reason: Text::new("consultation").unwrap(),
            })
            .collect(),
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

pub fn note(n: u64) -> Command {
    Command::AddNote(Note {
        kind: NoteKind::Note,
        subject: Text::new(format!("note {n}")).unwrap(),
        body: Text::new("blood pressure 158/92 at the practice").unwrap(),
    })
}

pub fn ledger_dir(data: &Path) -> PathBuf {
    data.join("ledger")
}

/// A ledger of about `events` events in `data/ledger` (anchor in `data/ledger-anchor`), for
/// eight patients, in appends of 1 to 40 events, opened three times; returns the hash of every event by position
/// (index 0 is position 1).
pub fn build(data: &Path, events: u64) -> Vec<Hash> {
    let mut ledger = Ledger::open(&ledger_dir(data), LedgerConfig::default()).unwrap();
    for p in 0..8 {
        let found = Command::StartSharedCare(SharedCare {
            arrangement: Text::new("CVRM by the GP").unwrap(),
        });
        ledger
            .append(request(&format!("patient-{p}"), vec![found]))
            .unwrap();
    }
    let mut n = 0;
    let mut restarted = false;
    while ledger.head().position < events {
        if !restarted && ledger.head().position > events / 2 {
            // A restart, as a server's: sled writes its snapshot (`snap.*`) when it opens.
            drop(ledger);
            ledger = Ledger::open(&ledger_dir(data), LedgerConfig::default()).unwrap();
            restarted = true;
        }
        let size = 1 + (n * 7) % 40;
        let commands = (0..size).map(note).collect();
        ledger
            .append(request(&format!("patient-{}", n % 8), commands))
            .unwrap();
        n += 1;
    }
    drop(ledger);
    let ledger = Ledger::open(&ledger_dir(data), LedgerConfig::default()).unwrap();
    let hashes = ledger
        .read_all(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.hash)
        .collect();
    hashes
}
