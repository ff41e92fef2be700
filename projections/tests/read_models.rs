//! Given/when/then for the plan, the audit trail, notifications and signals, over real ledger
//! events; and rebuilding from zero equals incremental application.

use careledger_core::event::*;
use careledger_core::ids::{ActorId, AtcCode, ElementId, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::{
    Actor, AppendOutcome, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission,
};
use careledger_projections::audit::{self, AuditFilter};
use careledger_projections::notifications::{self, NotificationStatus, Which};
use careledger_projections::plan::{EpisodeStatus, MedicationStepKind, TargetStatus};
use careledger_projections::{signals, PatientView, ProjectionConfig, Projections, ReadModel};
use proptest::prelude::*;

const PATIENT: &str = "999990007";
const DAY0: i64 = 1_772_355_600_000_000;

fn actor(id: &str, role: Role, name: &str) -> Actor {
    Actor {
        id: ActorId::parse(id).unwrap(),
        role,
        name: Text::new(name).unwrap(),
        organisation: None,
    }
}
fn gp() -> Actor {
    actor("gp-1", Role::Gp, "A. Jansen")
}
fn cardiologist() -> Actor {
    actor("card-1", Role::Cardiologist, "J. de Vries")
}
fn patient() -> Actor {
    actor("patient-1", Role::Patient, "P. de Boer")
}

fn member(a: &Actor, lead: Lead) -> Command {
    let practitioner = if a.role == Role::Patient {
        Practitioner::NotApplicable
    } else {
        Practitioner::Co
    };
    Command::AddCareTeamMember(Member {
        actor: a.id.clone(),
        name: a.name.clone(),
        agb: None,
        role: a.role,
        lead,
        practitioner,
    })
}

fn q(measure: Measure, scaled: i64) -> Quantity {
    Quantity::new(measure, scaled).unwrap()
}

fn target(measure: Measure, comparator: Comparator, scaled: i64) -> Command {
    Command::SetTarget(Target {
        comparator,
        value: q(measure, scaled),
        basis: TargetBasis::EscGuideline,
        rationale: Text::new("high risk").unwrap(),
    })
}

fn statin() -> AtcCode {
    AtcCode::parse("C10AA05").unwrap()
}

fn start_statin() -> Command {
    Command::StartMedication(Medication {
        atc: statin(),
        name: Text::new("atorvastatin").unwrap(),
        dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
        frequency: Text::new("1x daily").unwrap(),
        indication: None,
    })
}

fn measurement(measure: Measure, scaled: i64, source: MeasurementSource) -> Command {
    Command::RecordMeasurement(Measurement {
        value: q(measure, scaled),
        source,
    })
}

fn lab(measure: Measure, scaled: i64) -> Command {
    Command::RecordLabResult(LabResult {
        order: None,
        value: q(measure, scaled),
    })
}

struct Story {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    projections: Projections,
}

impl Story {
    /// Without shared care: the GP founds the team and adds the cardiologist and the patient.
    fn new(shared_care: bool) -> Story {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let projections =
            Projections::open(&dir.path().join("projections"), ProjectionConfig::default())
                .unwrap();
        let s = Story {
            _dir: dir,
            ledger,
            projections,
        };
        s.by(&gp(), vec![member(&gp(), Lead::Cvrm)], 0);
        s.by(
            &gp(),
            vec![
                member(&cardiologist(), Lead::OrganDisease),
                member(&patient(), Lead::None),
            ],
            0,
        );
        if shared_care {
            s.by(
                &gp(),
                vec![Command::StartSharedCare(SharedCare {
                    arrangement: Text::new("shared").unwrap(),
                })],
                0,
            );
        }
        s
    }

    /// Appends and returns the position of the first event.
    fn by(&self, who: &Actor, commands: Vec<Command>, day: i64) -> u64 {
        self.outcome(who, commands, day).events[0].position
    }

    /// Appends, catches the read models up and returns what the ledger answered.
    fn outcome(&self, who: &Actor, commands: Vec<Command>, day: i64) -> AppendOutcome {
        let outcome = self
            .ledger
            .append(AppendRequest {
                patient: PatientId::parse(PATIENT).unwrap(),
                expected: ExpectedRevision::Any,
                actor: who.clone(),
                submissions: commands
                    .into_iter()
                    .map(|command| Submission {
                        command,
                        occurred_at: Some(Timestamp::from_micros(DAY0).plus_days(day)),
                        reason: Text::new("clinical reason").unwrap(),
                    })
                    .collect(),
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap();
        self.projections.catch_up(&self.ledger).unwrap();
        outcome
    }

    fn view(&self) -> PatientView {
        (*self
            .projections
            .view(&PatientId::parse(PATIENT).unwrap())
            .unwrap()
            .unwrap())
        .clone()
    }

    fn notification_of(&self, position: u64) -> Option<notifications::Notification> {
        self.view()
            .notifications
            .into_iter()
            .find(|n| n.position == position)
    }
}

#[test]
fn medication_change_during_shared_care_notifies_the_other_line() {
    let s = Story::new(true);
    let started = s.by(&cardiologist(), vec![start_statin()], 1);
    assert_eq!(s.notification_of(started).unwrap().recipient, Line::First);
    let stopped = s.by(
        &gp(),
        vec![Command::StopMedication(MedicationStop {
            atc: statin(),
            reason: ChangeReason::SideEffects,
        })],
        2,
    );
    let n = s.notification_of(stopped).unwrap();
    assert_eq!(n.recipient, Line::Second);
    assert_eq!(n.id, format!("n-{stopped}-second"));
    assert_eq!(
        n.summary(),
        "GP A. Jansen stopped atorvastatin 40 mg 1x daily (C10AA05): side effects, clinical reason"
    );
    assert_eq!(n.message.template, "medication_stopped");
    assert_eq!(n.message.values["drug"], "atorvastatin");
    assert_eq!(n.message.values["amount"], "40");
    assert_eq!(n.message.values["unit"], "mg");
    assert_eq!(n.message.values["change_reason"], "side_effects");
    assert_eq!(n.reason, "clinical reason");
}

#[test]
fn seed_004_the_patient_is_told_of_a_medication_change_in_their_own_plan() {
    let s = Story::new(true);
    let started = s.by(&cardiologist(), vec![start_statin()], 1);
    let view = s.view();
    let told: Vec<(Line, &str)> = view
        .notifications
        .iter()
        .filter(|n| n.position == started)
        .map(|n| (n.recipient, n.id.as_str()))
        .collect();
    let first = format!("n-{started}-first");
    let patient = format!("n-{started}-patient");
    assert_eq!(
        told,
        vec![
            (Line::First, first.as_str()),
            (Line::Patient, patient.as_str())
        ]
    );
    let audit = view.audit.iter().find(|e| e.position() == started).unwrap();
    assert_eq!(audit.notified.len(), 2, "the audit shows both recipients");
}

#[test]
fn medication_change_outside_shared_care_notifies_no_other_line_only_the_patient() {
    let s = Story::new(false);
    let started = s.by(&gp(), vec![start_statin()], 1);
    let recipients: Vec<Line> = s
        .view()
        .notifications
        .iter()
        .filter(|n| n.position == started)
        .map(|n| n.recipient)
        .collect();
    assert_eq!(recipients, vec![Line::Patient]);
}

#[test]
fn specialist_target_notifies_the_gp_with_a_readable_summary() {
    let s = Story::new(false);
    let set = s.by(
        &cardiologist(),
        vec![target(Measure::LdlCholesterol, Comparator::AtMost, 18)],
        1,
    );
    let n = s.notification_of(set).unwrap();
    assert_eq!(n.recipient, Line::First);
    assert_eq!(n.summary(), "Cardiologist J. de Vries set the LDL cholesterol target to ≤ 1.8 mmol/L (ESC guideline): high risk, clinical reason");
    let withdrawn = s.by(
        &cardiologist(),
        vec![Command::WithdrawTarget(TargetWithdrawal {
            measure: Measure::LdlCholesterol,
        })],
        2,
    );
    assert_eq!(s.notification_of(withdrawn).unwrap().recipient, Line::First);
}

#[test]
fn panel_extension_and_second_line_results_notify_the_gp_first_line_results_do_not() {
    let s = Story::new(false);
    let ext = s.by(
        &cardiologist(),
        vec![Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::CreatineKinase],
        })],
        1,
    );
    assert_eq!(s.notification_of(ext).unwrap().recipient, Line::First);
    let hospital = s.by(&cardiologist(), vec![lab(Measure::LdlCholesterol, 24)], 2);
    assert_eq!(s.notification_of(hospital).unwrap().recipient, Line::First);
    let practice = s.by(
        &gp(),
        vec![measurement(
            Measure::SystolicBloodPressure,
            150,
            MeasurementSource::Practice,
        )],
        3,
    );
    assert!(s.notification_of(practice).is_none());
}

#[test]
fn acknowledgement_marks_the_notification_and_the_audit_entry() {
    let s = Story::new(true);
    let started = s.by(&cardiologist(), vec![start_statin()], 1);
    let acked = s.by(
        &gp(),
        vec![Command::AcknowledgeNotification(Acknowledgement {
            notification: started,
            recipient: Line::First,
        })],
        2,
    );
    let n = s.notification_of(started).unwrap();
    match n.status {
        NotificationStatus::Acknowledged { by, position, .. } => {
            assert_eq!(by, gp().id);
            assert_eq!(position, acked);
        }
        other => panic!("{other:?}"),
    }
    let view = s.view();
    let entry = view.audit.iter().find(|e| e.position() == started).unwrap();
    assert!(matches!(
        entry.notified[0].status,
        NotificationStatus::Acknowledged { .. }
    ));
}

#[test]
fn open_notification_becomes_overdue_after_the_configured_days() {
    let s = Story::new(true);
    let started = s.by(&cardiologist(), vec![start_statin()], 1);
    let view = s.view();
    let config = ProjectionConfig::default();
    let created = s.notification_of(started).unwrap().created_at;
    let soon = created.plus_days(i64::from(config.overdue_after_days) - 1);
    let late = created.plus_days(i64::from(config.overdue_after_days));
    assert!(notifications::for_line(&view, Line::First, Which::Overdue, &config, soon).is_empty());
    assert_eq!(
        notifications::for_line(&view, Line::First, Which::Overdue, &config, late).len(),
        1
    );
    assert!(
        notifications::for_line(&view, Line::Second, Which::All, &config, late)
            .iter()
            .all(|n| n.position != started),
        "the line that started it is not told"
    );
}

#[test]
fn specialist_target_overrides_the_guideline_and_withdrawal_restores_it() {
    let s = Story::new(false);
    let default = s.view().plan.targets[&Measure::LdlCholesterol].clone();
    assert_eq!(
        default.effective.value.scaled(),
        25,
        "NHG: LDL ≤ 2.5 mmol/L"
    );
    assert!(default.set.is_none());
    let set = s.by(
        &cardiologist(),
        vec![target(Measure::LdlCholesterol, Comparator::AtMost, 18)],
        1,
    );
    let t = s.view().plan.targets[&Measure::LdlCholesterol].clone();
    assert_eq!(t.effective.value.scaled(), 18);
    assert_eq!(t.replaced.unwrap().value.scaled(), 25);
    let provenance = t.set.unwrap();
    assert_eq!(
        (provenance.position, provenance.role, provenance.line),
        (set, Role::Cardiologist, Line::Second)
    );
    s.by(
        &cardiologist(),
        vec![Command::WithdrawTarget(TargetWithdrawal {
            measure: Measure::LdlCholesterol,
        })],
        2,
    );
    let back = s.view().plan.targets[&Measure::LdlCholesterol].clone();
    assert_eq!(back.effective.value.scaled(), 25);
    assert_eq!(back.replaced.unwrap().value.scaled(), 18);
}

#[test]
fn target_status_follows_the_latest_value() {
    let s = Story::new(false);
    s.by(
        &cardiologist(),
        vec![target(Measure::LdlCholesterol, Comparator::AtMost, 18)],
        1,
    );
    assert_eq!(
        s.view().plan.target_status(Measure::LdlCholesterol),
        TargetStatus::NoData
    );
    s.by(&gp(), vec![lab(Measure::LdlCholesterol, 24)], 2);
    assert_eq!(
        s.view().plan.target_status(Measure::LdlCholesterol),
        TargetStatus::NotMet
    );
    s.by(&gp(), vec![lab(Measure::LdlCholesterol, 17)], 100);
    assert_eq!(
        s.view().plan.target_status(Measure::LdlCholesterol),
        TargetStatus::Met
    );
}

#[test]
fn active_medication_shows_its_prescriber_line() {
    let s = Story::new(true);
    s.by(&cardiologist(), vec![start_statin()], 1);
    let plan = s.view().plan;
    let m = &plan.medications[&statin()];
    assert_eq!(m.started.line, Line::Second);
    assert_eq!(m.dose.to_string(), "40 mg");
}

#[test]
fn audit_trail_answers_who_changed_the_statin_and_filters() {
    let s = Story::new(true);
    s.by(&cardiologist(), vec![start_statin()], 1);
    let changed = s.by(
        &gp(),
        vec![Command::ChangeDose(DoseChange {
            atc: statin(),
            dose: Dose::parse("20", DoseUnit::Mg).unwrap(),
            frequency: Text::new("1x daily").unwrap(),
            reason: ChangeReason::SideEffects,
        })],
        2,
    );
    s.by(
        &gp(),
        vec![measurement(
            Measure::Weight,
            812,
            MeasurementSource::Practice,
        )],
        3,
    );
    let view = s.view();
    let filter = AuditFilter {
        element: Some("medication:C10AA05".into()),
        ..AuditFilter::default()
    };
    let entries = audit::query(&view, &filter);
    assert_eq!(entries.len(), 2);
    let change = entries.iter().find(|e| e.position() == changed).unwrap();
    assert_eq!(
        change.from().as_deref(),
        Some("atorvastatin 40 mg 1x daily")
    );
    assert_eq!(change.to().as_deref(), Some("20 mg 1x daily"));
    assert_eq!(
        (change.provenance.actor.clone(), change.provenance.line),
        (gp().id, Line::First)
    );
    assert_eq!(change.notified[0].recipient, Line::Second);
    let by_gp = audit::query(
        &view,
        &AuditFilter {
            actor: Some(gp().id),
            ..AuditFilter::default()
        },
    );
    assert!(by_gp.iter().all(|e| e.provenance.actor == gp().id));
    let second = audit::query(
        &view,
        &AuditFilter {
            line: Some(Line::Second),
            ..AuditFilter::default()
        },
    );
    assert!(second.iter().all(|e| e.provenance.line == Line::Second) && !second.is_empty());
    let day3 = Timestamp::from_micros(0).plus_days(1);
    let none = audit::query(
        &view,
        &AuditFilter {
            until: Some(day3),
            ..AuditFilter::default()
        },
    );
    assert!(none.is_empty(), "recorded-at filters use the server clock");
    let prefix = audit::query(
        &view,
        &AuditFilter {
            element: Some("measurement:".into()),
            ..AuditFilter::default()
        },
    );
    assert_eq!(prefix.len(), 1);
}

#[test]
fn correction_is_linked_both_ways_and_flagged_in_the_plan() {
    let s = Story::new(false);
    let wrong = s.by(
        &gp(),
        vec![measurement(
            Measure::Weight,
            912,
            MeasurementSource::Practice,
        )],
        1,
    );
    let correction = s.by(
        &gp(),
        vec![Command::MarkEnteredInError(Correction { position: wrong })],
        1,
    );
    let view = s.view();
    assert_eq!(
        view.audit
            .iter()
            .find(|e| e.position() == wrong)
            .unwrap()
            .corrected_by,
        Some(correction)
    );
    assert_eq!(
        view.audit
            .iter()
            .find(|e| e.position() == correction)
            .unwrap()
            .corrects,
        Some(wrong)
    );
    assert!(view.plan.is_entered_in_error(wrong));
}

#[test]
fn signals_flag_duplicate_lab_annual_lab_due_target_not_met_and_home_trend() {
    let s = Story::new(false);
    let config = ProjectionConfig::default();
    let now = Timestamp::from_micros(DAY0).plus_days(10);
    let codes = |s: &Story, now| {
        signals::signals(&s.view(), &config, now)
            .into_iter()
            .map(|x| x.code)
            .collect::<Vec<_>>()
    };
    assert!(
        codes(&s, now).contains(&"annual_lab_due".to_owned()),
        "no annual panel ordered yet"
    );
    let annual = Command::OrderLab(LabOrder {
        order: ElementId::parse("year-1").unwrap(),
        tests: vec![Measure::LdlCholesterol],
        annual_panel: true,
    });
    s.by(&gp(), vec![annual], 1);
    assert!(!codes(&s, now).contains(&"annual_lab_due".to_owned()));
    assert!(codes(&s, Timestamp::from_micros(DAY0).plus_days(400))
        .contains(&"annual_lab_due".to_owned()));
    let again = Command::OrderLab(LabOrder {
        order: ElementId::parse("extra").unwrap(),
        tests: vec![Measure::LdlCholesterol],
        annual_panel: false,
    });
    s.by(&cardiologist(), vec![again], 5);
    assert!(codes(&s, now).contains(&"duplicate_lab_work".to_owned()));
    s.by(&gp(), vec![lab(Measure::LdlCholesterol, 30)], 6);
    assert!(codes(&s, now).contains(&"target_not_met".to_owned()));
    for (day, value) in [(7, 150), (8, 148), (9, 152)] {
        s.by(
            &patient(),
            vec![measurement(
                Measure::SystolicBloodPressure,
                value,
                MeasurementSource::SelfMeasuredAtHome,
            )],
            day,
        );
    }
    assert!(codes(&s, now).contains(&"home_trend_off_target".to_owned()));
}

fn menu(i: u8) -> (Actor, Command) {
    match i % 8 {
        0 => (
            cardiologist(),
            target(Measure::LdlCholesterol, Comparator::AtMost, 18),
        ),
        1 => (gp(), lab(Measure::LdlCholesterol, 20 + i64::from(i % 10))),
        2 => (
            patient(),
            measurement(
                Measure::SystolicBloodPressure,
                100 + i64::from(i % 100),
                MeasurementSource::SelfMeasuredAtHome,
            ),
        ),
        3 => (cardiologist(), start_statin()),
        4 => (
            gp(),
            Command::StopMedication(MedicationStop {
                atc: statin(),
                reason: ChangeReason::SideEffects,
            }),
        ),
        5 => (
            gp(),
            Command::AcknowledgeNotification(Acknowledgement {
                notification: u64::from(i),
                recipient: Line::First,
            }),
        ),
        6 => (
            gp(),
            Command::AddNote(Note {
                kind: NoteKind::InterimLetter,
                subject: Text::new("letter").unwrap(),
                body: Text::default(),
            }),
        ),
        _ => (
            cardiologist(),
            Command::WithdrawTarget(TargetWithdrawal {
                measure: Measure::LdlCholesterol,
            }),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Rebuilding from zero equals incremental application with persistence and reopening between.
    #[test]
    fn rebuild_from_zero_equals_incremental_application(steps in proptest::collection::vec(any::<u8>(), 1..40), reopen_every in 1usize..6) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let incremental_dir = dir.path().join("incremental");
        let mut projections = Projections::open(&incremental_dir, ProjectionConfig::default()).unwrap();
        let story_start = vec![member(&gp(), Lead::Cvrm)];
        let append = |who: &Actor, commands: Vec<Command>| ledger.append(AppendRequest {
            patient: PatientId::parse(PATIENT).unwrap(),
            expected: ExpectedRevision::Any,
            actor: who.clone(),
            submissions: commands.into_iter().map(|command| Submission { command, occurred_at: None, reason: Text::default() }).collect(),
            idempotency_key: None, correlation_id: None, causation_id: None,
        });
        append(&gp(), story_start).unwrap();
        append(&gp(), vec![member(&cardiologist(), Lead::OrganDisease), member(&patient(), Lead::None),
            Command::StartSharedCare(SharedCare { arrangement: Text::new("shared").unwrap() })]).unwrap();
        for (i, step) in steps.iter().enumerate() {
            let (who, command) = menu(*step);
            let _ = append(&who, vec![command]); // rejected commands simply write nothing
            projections.apply_new(&ledger).unwrap();
            if i % reopen_every == 0 {
                projections.persist().unwrap();
                drop(projections);
                projections = Projections::open(&incremental_dir, ProjectionConfig::default()).unwrap();
                projections.catch_up(&ledger).unwrap();
            }
        }
        projections.catch_up(&ledger).unwrap();
        let incremental: ReadModel = projections.to_read_model().unwrap();
        let rebuilt = Projections::open(&dir.path().join("rebuilt"), ProjectionConfig::default()).unwrap();
        rebuilt.rebuild(&ledger, &mut |_, _| {}).unwrap();
        prop_assert_eq!(&rebuilt.to_read_model().unwrap(), &incremental);
        prop_assert_eq!(incremental.checkpoint, ledger.head().position);
        // Rebuilt in place, over the views it holds (its files replaced): the same again, and
        // it goes on taking events.
        projections.rebuild(&ledger, &mut |_, _| {}).unwrap();
        prop_assert_eq!(&projections.to_read_model().unwrap(), &incremental);
        append(&gp(), vec![Command::AddNote(Note { kind: NoteKind::Note, subject: Text::new("after").unwrap(), body: Text::new("a note after the rebuild").unwrap() })]).unwrap();
        projections.apply_new(&ledger).unwrap();
        rebuilt.apply_new(&ledger).unwrap();
        prop_assert_eq!(projections.to_read_model().unwrap(), rebuilt.to_read_model().unwrap());
    }
}

#[test]
fn state_in_an_earlier_layout_is_dropped_and_caught_up_again_from_the_ledger() {
    let s = Story::new(true);
    for day in 0..50 {
        s.by(
            &gp(),
            vec![Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new(format!("consultation {day} ").repeat(20)).unwrap(),
                body: Text::new("x".repeat(2000)).unwrap(),
            })],
            day,
        );
    }
    let expected = s.view();
    let dir = s._dir.path().to_owned();
    let Story {
        _dir,
        ledger,
        projections,
    } = s;
    drop(projections);
    // Reloaded from its chunks (the view is larger than one chunk): the same view.
    let reopened =
        Projections::open(&dir.join("projections"), ProjectionConfig::default()).unwrap();
    let patient = PatientId::parse(PATIENT).unwrap();
    assert_eq!(&*reopened.view(&patient).unwrap().unwrap(), &expected);
    drop(reopened);

    // A database in the earlier layout (sled's default segments, one value per patient, no
    // format key) opens empty and catches up from the ledger to the same state.
    let earlier = dir.join("earlier");
    {
        let db = sled::Config::new().path(&earlier).open().unwrap();
        db.insert(b"checkpoint", &ledger.head().position.to_be_bytes())
            .unwrap();
        db.insert(
            format!("p{PATIENT}").as_bytes(),
            b"not a view in the current layout".to_vec(),
        )
        .unwrap();
        db.flush().unwrap();
    }
    let projections = Projections::open(&earlier, ProjectionConfig::default()).unwrap();
    assert_eq!(
        projections.checkpoint(),
        0,
        "nothing of the earlier layout is trusted"
    );
    projections.catch_up(&ledger).unwrap();
    assert_eq!(&*projections.view(&patient).unwrap().unwrap(), &expected);
}

/// The server persists once a second while appends go on: whatever a persist and the appends
/// interleave, a restart catches up to exactly the state a rebuild from zero gives.
#[test]
fn persisting_while_appends_go_on_loses_nothing_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
    let at = dir.path().join("projections");
    let patients = ["999990007", "999990019", "999990020"];
    let append = |patient: &str, command: Command| {
        ledger
            .append(AppendRequest {
                patient: PatientId::parse(patient).unwrap(),
                expected: ExpectedRevision::Any,
                actor: gp(),
                submissions: vec![Submission {
                    command,
                    occurred_at: None,
                    reason: Text::new("routine CVRM check").unwrap(),
                }],
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap()
    };
    for patient in patients {
        append(patient, member(&gp(), Lead::Cvrm));
    }
    for round in 0..5 {
        let projections = Projections::open(&at, ProjectionConfig::default()).unwrap();
        projections.catch_up(&ledger).unwrap();
        std::thread::scope(|scope| {
            // A persist after every append, running while the next appends and applies: the
            // channel starts each one; when the appending side ends (or panics), the sender
            // drops and the persisting thread stops.
            let (tick, ticks) = std::sync::mpsc::channel::<()>();
            let persisted = &projections;
            scope.spawn(move || {
                while ticks.recv().is_ok() {
                    persisted.persist().unwrap();
                }
            });
            for i in 0..150 {
                let systolic = 120 + i % 40;
                append(
                    patients[i as usize % 3],
                    measurement(
                        Measure::SystolicBloodPressure,
                        systolic,
                        MeasurementSource::Practice,
                    ),
                );
                projections.apply_new(&ledger).unwrap();
                tick.send(()).unwrap();
            }
        });
        // Stop without a last persist, as a crash would, in some rounds.
        if round % 2 == 0 {
            projections.persist().unwrap();
        }
    }
    let reopened = Projections::open(&at, ProjectionConfig::default()).unwrap();
    reopened.catch_up(&ledger).unwrap();
    let rebuilt =
        Projections::open(&dir.path().join("rebuilt"), ProjectionConfig::default()).unwrap();
    rebuilt.rebuild(&ledger, &mut |_, _| {}).unwrap();
    assert_eq!(
        reopened.to_read_model().unwrap(),
        rebuilt.to_read_model().unwrap()
    );
    assert_eq!(reopened.checkpoint(), ledger.head().position);
}

// Corrections and clinical time in every derived fact (see docs/clinical-rules.md).

fn correct(position: u64) -> Command {
    Command::MarkEnteredInError(Correction { position })
}

fn codes(view: &PatientView, now_day: i64) -> Vec<String> {
    let now = Timestamp::from_micros(DAY0).plus_days(now_day);
    signals::signals(view, &ProjectionConfig::default(), now)
        .into_iter()
        .map(|s| s.code)
        .collect()
}

fn lab_order(id: &str, tests: &[Measure], annual_panel: bool) -> Command {
    Command::OrderLab(LabOrder {
        order: ElementId::parse(id).unwrap(),
        tests: tests.to_vec(),
        annual_panel,
    })
}

fn change_statin(dose: &str, reason: ChangeReason) -> Command {
    Command::ChangeDose(DoseChange {
        atc: statin(),
        dose: Dose::parse(dose, DoseUnit::Mg).unwrap(),
        frequency: Text::new("1x daily").unwrap(),
        reason,
    })
}

#[test]
fn corrections_a_corrected_ldl_is_not_the_latest_value_nor_meets_the_target() {
    let s = Story::new(false);
    s.by(
        &cardiologist(),
        vec![target(Measure::LdlCholesterol, Comparator::AtMost, 18)],
        0,
    );
    let high = s.by(&gp(), vec![lab(Measure::LdlCholesterol, 24)], 1);
    let low = s.by(&gp(), vec![lab(Measure::LdlCholesterol, 9)], 2);
    assert_eq!(
        s.view().plan.target_status(Measure::LdlCholesterol),
        TargetStatus::Met
    );
    let correction = s.by(&gp(), vec![correct(low)], 3);
    let plan = s.view().plan;
    assert_eq!(
        plan.target_status(Measure::LdlCholesterol),
        TargetStatus::NotMet
    );
    assert_eq!(
        plan.latest_value(Measure::LdlCholesterol)
            .unwrap()
            .recorded
            .position,
        high
    );
    assert_eq!(
        plan.lab_results[&Measure::LdlCholesterol].recorded.position,
        high
    );
    // Still in the series, marked with who corrected, when and why.
    let series = &plan.series[&Measure::LdlCholesterol];
    assert_eq!(series.len(), 2);
    let mark = &plan.corrections[&low];
    assert_eq!((mark.position, mark.actor.clone()), (correction, gp().id));
    assert!(codes(&s.view(), 4).contains(&"target_not_met".to_owned()));
}

#[test]
fn clinical_time_an_older_ldl_entered_later_is_not_the_latest() {
    let s = Story::new(false);
    let today = s.by(&gp(), vec![lab(Measure::LdlCholesterol, 17)], 0);
    let old = s.by(
        &cardiologist(),
        vec![lab(Measure::LdlCholesterol, 31)],
        -200,
    );
    let plan = s.view().plan;
    assert_eq!(
        plan.latest_value(Measure::LdlCholesterol)
            .unwrap()
            .recorded
            .position,
        today
    );
    assert_eq!(
        plan.target_status(Measure::LdlCholesterol),
        TargetStatus::Met
    );
    let series: Vec<u64> = plan.series[&Measure::LdlCholesterol]
        .iter()
        .map(|v| v.recorded.position)
        .collect();
    assert_eq!(
        series,
        vec![old, today],
        "ordered by when the blood was drawn"
    );
}

#[test]
fn clinical_time_a_late_entered_result_lies_in_its_duplicate_lab_window_by_when_it_was_drawn() {
    let s = Story::new(false);
    s.by(&gp(), vec![lab(Measure::Hba1c, 50)], 0);
    s.by(&gp(), vec![lab(Measure::Hba1c, 52)], -200);
    assert!(!codes(&s.view(), 1).contains(&"duplicate_lab_work".to_owned()));
    s.by(&cardiologist(), vec![lab(Measure::Hba1c, 51)], -10);
    assert!(codes(&s.view(), 1).contains(&"duplicate_lab_work".to_owned()));
}

/// Agreement 7 is one rule for the writer's warning and the plan's signal: a result of an order
/// counts as earlier lab work, and is never itself a duplicate of its order.
#[test]
fn duplicate_lab_the_plans_signal_names_the_lab_work_the_writers_warning_names() {
    let s = Story::new(false);
    let ordered = s.by(
        &gp(),
        vec![lab_order("lab-1", &[Measure::LdlCholesterol], false)],
        0,
    );
    let drawn = s.by(
        &gp(),
        vec![Command::RecordLabResult(LabResult {
            order: Some(ElementId::parse("lab-1").unwrap()),
            value: q(Measure::LdlCholesterol, 30),
        })],
        20,
    );
    assert!(
        !codes(&s.view(), 21).contains(&"duplicate_lab_work".to_owned()),
        "a result is its order's work"
    );
    // 35 days after the order, 15 after the blood of its result was drawn.
    let again = s.outcome(
        &cardiologist(),
        vec![lab_order("lab-2", &[Measure::LdlCholesterol], false)],
        35,
    );
    let warning = &again.warnings[0];
    assert_eq!(warning.code, "duplicate_lab_work");
    assert!(
        warning.message.contains(&format!("(position {drawn})")),
        "{}",
        warning.message
    );
    let now = Timestamp::from_micros(DAY0).plus_days(36);
    let signal = signals::signals(&s.view(), &ProjectionConfig::default(), now)
        .into_iter()
        .find(|signal| signal.code == "duplicate_lab_work")
        .expect("the signal");
    assert_eq!(signal.positions, [drawn, again.events[0].position]);
    assert!(ordered < drawn);
}

#[test]
fn series_keeps_every_value_with_clinical_time_source_and_provenance_and_a_home_trend() {
    let s = Story::new(false);
    s.by(
        &gp(),
        vec![measurement(
            Measure::SystolicBloodPressure,
            150,
            MeasurementSource::Practice,
        )],
        0,
    );
    let mut home = Vec::new();
    for (day, value) in [(1, 150), (2, 148), (3, 152)] {
        home.push(s.by(
            &patient(),
            vec![measurement(
                Measure::SystolicBloodPressure,
                value,
                MeasurementSource::SelfMeasuredAtHome,
            )],
            day,
        ));
    }
    let plan = s.view().plan;
    let series = &plan.series[&Measure::SystolicBloodPressure];
    assert_eq!(series.len(), 4);
    assert_eq!(series[0].source, Some(MeasurementSource::Practice));
    assert_eq!(series[3].recorded.role, Role::Patient);
    let trend = plan.home_trend(Measure::SystolicBloodPressure, 3).unwrap();
    assert_eq!(trend.positions, home, "the home readings behind the trend");
    assert_eq!(trend.mean_scaled, 150);
}

#[test]
fn corrections_a_corrected_home_reading_leaves_the_trend_signal() {
    let s = Story::new(false);
    let mut home = Vec::new();
    for (day, value) in [(1, 150), (2, 148), (3, 152)] {
        home.push(s.by(
            &patient(),
            vec![measurement(
                Measure::SystolicBloodPressure,
                value,
                MeasurementSource::SelfMeasuredAtHome,
            )],
            day,
        ));
    }
    assert!(codes(&s.view(), 4).contains(&"home_trend_off_target".to_owned()));
    s.by(&patient(), vec![correct(home[2])], 4);
    assert!(!codes(&s.view(), 4).contains(&"home_trend_off_target".to_owned()));
    assert!(s
        .view()
        .plan
        .home_trend(Measure::SystolicBloodPressure, 3)
        .is_none());
}

#[test]
fn corrections_a_corrected_start_leaves_active_medication_and_voids_its_dose_change_and_stop() {
    let s = Story::new(true);
    let start = s.by(&gp(), vec![start_statin()], 1);
    let change = s.by(
        &cardiologist(),
        vec![change_statin("20", ChangeReason::SideEffects)],
        2,
    );
    s.by(&gp(), vec![correct(start)], 3);
    let view = s.view();
    assert!(view.plan.medications.is_empty());
    let episode = &view.plan.medication_history[&statin()][0];
    assert_eq!(
        view.plan.episode_status(episode),
        EpisodeStatus::EnteredInError
    );
    assert_eq!(episode.steps.len(), 1);
    let voided = view.audit.iter().find(|e| e.position() == change).unwrap();
    assert_eq!(voided.voided_with, Some(start));
    // Started again: a new episode, at its own dose.
    s.by(&gp(), vec![start_statin()], 4);
    let plan = s.view().plan;
    assert_eq!(plan.medications[&statin()].dose.to_string(), "40 mg");
    assert_eq!(plan.medication_history[&statin()].len(), 2);
}

#[test]
fn medication_history_keeps_a_stopped_medication_with_who_when_why_and_its_dose_changes() {
    let s = Story::new(true);
    s.by(&cardiologist(), vec![start_statin()], 1);
    s.by(
        &gp(),
        vec![change_statin("20", ChangeReason::SideEffects)],
        5,
    );
    let stop = s.by(
        &gp(),
        vec![Command::StopMedication(MedicationStop {
            atc: statin(),
            reason: ChangeReason::SideEffects,
        })],
        9,
    );
    let plan = s.view().plan;
    assert!(plan.medications.is_empty());
    let episode = &plan.medication_history[&statin()][0];
    assert_eq!(plan.episode_status(episode), EpisodeStatus::Stopped);
    let stopped = plan.standing_stop(episode).unwrap();
    assert_eq!(stopped.reason, ChangeReason::SideEffects);
    assert_eq!(
        (
            stopped.recorded.position,
            stopped.recorded.actor.clone(),
            stopped.recorded.occurred_at
        ),
        (stop, gp().id, Timestamp::from_micros(DAY0).plus_days(9))
    );
    assert!(matches!(
        &episode.steps[0].kind,
        MedicationStepKind::DoseChanged { dose, .. } if dose.to_string() == "20 mg"
    ));
    // The stop corrected: the statin is active again, at the changed dose.
    s.by(&gp(), vec![correct(stop)], 10);
    let plan = s.view().plan;
    assert_eq!(plan.medications[&statin()].dose.to_string(), "20 mg");
}

#[test]
fn corrections_a_corrected_order_is_not_open_and_counts_no_duplicate_lab_work() {
    let s = Story::new(false);
    let first = s.by(
        &gp(),
        vec![lab_order("lab-1", &[Measure::LdlCholesterol], true)],
        0,
    );
    s.by(
        &cardiologist(),
        vec![lab_order("lab-2", &[Measure::LdlCholesterol], false)],
        3,
    );
    assert!(codes(&s.view(), 4).contains(&"duplicate_lab_work".to_owned()));
    assert!(!codes(&s.view(), 4).contains(&"annual_lab_due".to_owned()));
    s.by(&gp(), vec![correct(first)], 4);
    let view = s.view();
    assert!(!codes(&view, 4).contains(&"duplicate_lab_work".to_owned()));
    assert!(
        codes(&view, 4).contains(&"annual_lab_due".to_owned()),
        "the annual order was entered in error"
    );
    assert_eq!(
        view.plan
            .lab_orders
            .keys()
            .map(|k| k.as_str())
            .collect::<Vec<_>>(),
        vec!["lab-2"]
    );
}

#[test]
fn corrections_a_corrected_result_reopens_its_order() {
    let s = Story::new(false);
    s.by(
        &gp(),
        vec![lab_order("lab-1", &[Measure::LdlCholesterol], false)],
        0,
    );
    let result = s.by(
        &gp(),
        vec![Command::RecordLabResult(LabResult {
            order: Some(ElementId::parse("lab-1").unwrap()),
            value: q(Measure::LdlCholesterol, 24),
        })],
        1,
    );
    assert!(s.view().plan.lab_orders.is_empty());
    s.by(&gp(), vec![correct(result)], 2);
    let plan = s.view().plan;
    assert_eq!(
        plan.lab_orders[&ElementId::parse("lab-1").unwrap()].pending,
        vec![Measure::LdlCholesterol]
    );
}

#[test]
fn agreement_6_a_correction_tells_the_line_told_of_the_entry_and_withdraws_its_notification() {
    let s = Story::new(true);
    let start = s.by(&gp(), vec![start_statin()], 1);
    let correction = s.by(&gp(), vec![correct(start)], 2);
    let n = s.notification_of(correction).unwrap();
    assert_eq!(n.recipient, Line::Second);
    assert!(
        n.summary().contains("marked as entered in error"),
        "{}",
        n.summary()
    );
    assert!(n.summary().contains("atorvastatin"), "{}", n.summary());
    assert_eq!(
        s.notification_of(start).unwrap().status,
        NotificationStatus::Withdrawn { correction }
    );
    let view = s.view();
    let open = notifications::for_line(
        &view,
        Line::Second,
        Which::Open,
        &ProjectionConfig::default(),
        Timestamp::from_micros(DAY0),
    );
    assert_eq!(
        open.iter()
            .map(|n| n.position)
            .filter(|p| *p >= start)
            .collect::<Vec<_>>(),
        vec![correction]
    );
    let entry = view.audit.iter().find(|e| e.position() == start).unwrap();
    assert_eq!(entry.correction.as_ref().unwrap().position, correction);
}

#[test]
fn agreement_6_a_corrected_acknowledgement_opens_the_notification_again() {
    let s = Story::new(true);
    let start = s.by(&cardiologist(), vec![start_statin()], 1);
    let acked = s.by(
        &gp(),
        vec![Command::AcknowledgeNotification(Acknowledgement {
            notification: start,
            recipient: Line::First,
        })],
        2,
    );
    s.by(&gp(), vec![correct(acked)], 3);
    assert_eq!(
        s.notification_of(start).unwrap().status,
        NotificationStatus::Open
    );
    let view = s.view();
    let entry = view.audit.iter().find(|e| e.position() == start).unwrap();
    assert_eq!(entry.notified[0].status, NotificationStatus::Open);
}

#[test]
fn corrections_a_corrected_start_of_shared_care_and_care_team_addition_leave_the_plan() {
    let s = Story::new(true);
    let shared = s.view().plan.shared_care.as_ref().unwrap().1.position;
    let nurse = actor("nurse-1", Role::PracticeNurse, "N. Bakker");
    let added = s.by(&gp(), vec![member(&nurse, Lead::None)], 1);
    assert_eq!(s.view().plan.care_team.len(), 4);
    s.by(&gp(), vec![correct(shared)], 2);
    s.by(&gp(), vec![correct(added)], 2);
    let plan = s.view().plan;
    assert!(plan.shared_care.is_none());
    assert_eq!(plan.care_team.len(), 3);
    assert!(plan.care_team.iter().all(|m| m.actor != nurse.id));
    // Medication changes no longer notify the other line on shared-care grounds.
    let start = s.by(&gp(), vec![start_statin()], 3);
    assert!(s
        .view()
        .notifications
        .iter()
        .all(|n| n.position != start || n.recipient == Line::Patient));
}

// The property: appending an event that nothing later builds on, then its correction, derives
// what never appending it derives, apart from the correction marks and the correction's own
// notification.

const OTHER_PATIENT: &str = "999990019";

/// A ledger with its projections, for one run of the property.
struct Run {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    projections: Projections,
}

impl Run {
    fn new() -> Run {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let projections =
            Projections::open(&dir.path().join("projections"), ProjectionConfig::default())
                .unwrap();
        Run {
            _dir: dir,
            ledger,
            projections,
        }
    }

    /// Appends one command; the position, or `None` when the rules refused it.
    fn append(&self, patient: &str, who: &Actor, command: Command, day: i64) -> Option<u64> {
        let outcome = self.ledger.append(AppendRequest {
            patient: PatientId::parse(patient).unwrap(),
            expected: ExpectedRevision::Any,
            actor: who.clone(),
            submissions: vec![Submission {
                command,
                occurred_at: Some(Timestamp::from_micros(DAY0).plus_days(day)),
                reason: Text::new("clinical reason").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        });
        self.projections.catch_up(&self.ledger).unwrap();
        outcome.ok().map(|o| o.events.last().unwrap().position)
    }

    fn view(&self) -> PatientView {
        (*self
            .projections
            .view(&PatientId::parse(PATIENT).unwrap())
            .unwrap()
            .unwrap())
        .clone()
    }
}

/// The event under test: who writes it and what, given the patient's view so far.
fn candidate(kind: u8, param: u8, view: &PatientView) -> Option<(Actor, Command)> {
    let nurse = actor("nurse-1", Role::PracticeNurse, "N. Bakker");
    Some(match kind % 16 {
        0 => (
            gp(),
            lab(Measure::LdlCholesterol, 10 + i64::from(param % 30)),
        ),
        1 => (
            patient(),
            measurement(
                Measure::SystolicBloodPressure,
                100 + i64::from(param % 90),
                MeasurementSource::SelfMeasuredAtHome,
            ),
        ),
        2 => (
            cardiologist(),
            target(Measure::LdlCholesterol, Comparator::AtMost, 14),
        ),
        3 => (
            cardiologist(),
            Command::StartMedication(Medication {
                atc: AtcCode::parse("C08CA01").unwrap(),
                name: Text::new("amlodipine").unwrap(),
                dose: Dose::parse("5", DoseUnit::Mg).unwrap(),
                frequency: Text::new("1x daily").unwrap(),
                indication: None,
            }),
        ),
        4 => (
            gp(),
            lab_order(
                "x-order",
                &[Measure::LdlCholesterol],
                param.is_multiple_of(2),
            ),
        ),
        5 => (
            cardiologist(),
            Command::ExtendAnnualPanel(PanelExtension {
                tests: vec![Measure::CreatineKinase],
            }),
        ),
        6 => (
            cardiologist(),
            Command::RecordMedicationPreference(MedicationPreference {
                atc: statin(),
                name: Text::new("atorvastatin").unwrap(),
                preference: Text::new("prefer rosuvastatin if intolerant").unwrap(),
            }),
        ),
        7 => (
            gp(),
            Command::AddNote(Note {
                kind: NoteKind::InterimLetter,
                subject: Text::new("statin").unwrap(),
                body: Text::default(),
            }),
        ),
        8 => (
            patient(),
            Command::SetLifestyleGoal(LifestyleGoal {
                goal: ElementId::parse("x-goal").unwrap(),
                description: Text::new("walk daily").unwrap(),
            }),
        ),
        9 => (gp(), member(&nurse, Lead::None)),
        10 if view.plan.shared_care.is_some() => (
            gp(),
            Command::EndSharedCare(SharedCare {
                arrangement: Text::new("ended").unwrap(),
            }),
        ),
        10 => (
            gp(),
            Command::StartSharedCare(SharedCare {
                arrangement: Text::new("shared").unwrap(),
            }),
        ),
        11 => (gp(), change_statin("10", ChangeReason::SideEffects)),
        12 => (
            gp(),
            Command::StopMedication(MedicationStop {
                atc: statin(),
                reason: ChangeReason::SideEffects,
            }),
        ),
        13 => {
            let open = view
                .notifications
                .iter()
                .find(|n| n.recipient == Line::First && n.status == NotificationStatus::Open)?;
            (
                gp(),
                Command::AcknowledgeNotification(Acknowledgement {
                    notification: open.position,
                    recipient: Line::First,
                }),
            )
        }
        14 => (
            cardiologist(),
            Command::WithdrawTarget(TargetWithdrawal {
                measure: Measure::LdlCholesterol,
            }),
        ),
        _ => (
            gp(),
            measurement(
                Measure::Weight,
                700 + i64::from(param),
                MeasurementSource::Practice,
            ),
        ),
    })
}

/// Events in between that build on nothing: the other patient's, and this patient's notes, and
/// first-line values (which notify nobody).
fn unrelated(i: u8) -> (&'static str, Actor, Command) {
    match i % 4 {
        0 => (
            OTHER_PATIENT,
            gp(),
            Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new("other patient").unwrap(),
                body: Text::default(),
            }),
        ),
        1 => (
            PATIENT,
            gp(),
            lab(Measure::Creatinine, 60 + i64::from(i % 50)),
        ),
        2 => (
            PATIENT,
            gp(),
            Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new("consultation").unwrap(),
                body: Text::default(),
            }),
        ),
        _ => (
            PATIENT,
            gp(),
            measurement(
                Measure::Weight,
                800 + i64::from(i % 50),
                MeasurementSource::Practice,
            ),
        ),
    }
}

/// Positions of the run with the event and its correction, as they are in the run without.
fn renumber(value: &mut serde_json::Value, map: &dyn Fn(u64) -> u64) {
    use serde_json::Value;
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                match (key.as_str(), &*field) {
                    ("position" | "correction", Value::Number(n)) => {
                        *field = Value::from(map(n.as_u64().unwrap()));
                    }
                    // The server's clock and the chain differ between runs.
                    ("hash" | "recorded_at" | "created_at" | "at" | "id", _) => {
                        *field = Value::Null
                    }
                    _ => renumber(field, map),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| renumber(item, map)),
        _ => {}
    }
}

/// What a run derives for the patient, leaving out the entries at `dropped` (the event and its
/// correction) and the correction marks.
fn derived(view: &PatientView, dropped: &[u64], map: &dyn Fn(u64) -> u64) -> serde_json::Value {
    let plan = &view.plan;
    let kept = |p: &careledger_projections::Provenance| !dropped.contains(&p.position);
    let mut series = plan.series.clone();
    series
        .values_mut()
        .for_each(|values| values.retain(|v| kept(&v.recorded)));
    series.retain(|_, values| !values.is_empty());
    let mut history = plan.medication_history.clone();
    for episodes in history.values_mut() {
        episodes.retain(|e| kept(&e.started));
        episodes
            .iter_mut()
            .for_each(|e| e.steps.retain(|s| kept(&s.recorded)));
    }
    history.retain(|_, episodes| !episodes.is_empty());
    let mut orders = plan.lab_order_history.clone();
    orders.retain(|_, o| kept(&o.ordered));
    let now = Timestamp::from_micros(DAY0).plus_days(60);
    let signals: Vec<_> = signals::signals(view, &ProjectionConfig::default(), now)
        .into_iter()
        .map(|s| {
            (
                s.code,
                s.measure,
                s.positions.into_iter().map(map).collect::<Vec<_>>(),
            )
        })
        .collect();
    let notifications: Vec<_> = view
        .notifications
        .iter()
        .filter(|n| !dropped.contains(&n.position))
        .collect();
    let mut out = serde_json::json!({
        "care_team": plan.care_team, "shared_care": plan.shared_care, "targets": plan.targets,
        "medications": plan.medications, "medication_history": history,
        "preferences": plan.preferences, "lab_orders": plan.lab_orders, "lab_order_history": orders,
        "annual_panel": plan.annual_panel, "lab_results": plan.lab_results,
        "measurements": plan.measurements, "series": series, "goals": plan.goals, "notes": plan.notes,
        "notifications": notifications,
    });
    renumber(&mut out, map);
    out["signals"] = serde_json::to_value(signals).unwrap();
    out
}

/// The seed of a randomised test: from `CARELEDGER_SEED` when set, else from the clock; printed
/// either way so that a failing run can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("CARELEDGER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (replay with CARELEDGER_SEED={seed})");
    seed
}

#[test]
fn corrections_appending_an_event_then_its_correction_derives_what_never_appending_it_does() {
    use proptest::test_runner::{Config, RngSeed, TestRunner};
    let config = Config {
        cases: 32,
        rng_seed: RngSeed::Fixed(seed()),
        failure_persistence: None,
        ..Config::default()
    };
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..14),
        any::<bool>(),
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..6),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |(prefix, shared, kind, param, between)| {
        let with = Run::new();
        let without = Run::new();
        for run in [&with, &without] {
            run.append(PATIENT, &gp(), member(&gp(), Lead::Cvrm), 0);
            run.append(
                PATIENT,
                &gp(),
                member(&cardiologist(), Lead::OrganDisease),
                0,
            );
            run.append(PATIENT, &gp(), member(&patient(), Lead::None), 0);
            run.append(OTHER_PATIENT, &gp(), member(&gp(), Lead::Cvrm), 0);
            if shared {
                let arrangement = SharedCare {
                    arrangement: Text::new("shared").unwrap(),
                };
                run.append(PATIENT, &gp(), Command::StartSharedCare(arrangement), 0);
            }
            for (day, step) in prefix.iter().enumerate() {
                let (who, command) = menu(*step);
                run.append(PATIENT, &who, command, day as i64);
            }
        }
        let Some((author, command)) = candidate(kind, param, &with.view()) else {
            return Ok(());
        };
        let day = i64::from(param % 60) - 30;
        let Some(event) = with.append(PATIENT, &author, command, day) else {
            return Ok(()); // the rules refused it: nothing to correct
        };
        for (i, step) in between.iter().enumerate() {
            let (patient, who, command) = unrelated(*step);
            let day = 20 + i as i64;
            let a = with.append(patient, &who, command.clone(), day);
            let b = without.append(patient, &who, command, day);
            prop_assert_eq!(a.is_some(), b.is_some());
        }
        let correction = with.append(PATIENT, &author, correct(event), 40);
        prop_assert!(correction.is_some(), "the author corrects their own entry");
        let correction = correction.unwrap();
        let map = |p: u64| match p {
            p if p < event => p,
            p if p < correction => p - 1,
            p => p - 2,
        };
        let dropped = [event, correction];
        let with_view = with.view();
        prop_assert_eq!(
            derived(&with_view, &dropped, &map),
            derived(&without.view(), &[], &|p| p)
        );
        // The marks stay visible.
        prop_assert!(with_view.plan.is_entered_in_error(event));
        // The rules and the read models agree on which notifications are open.
        for run in [&with, &without] {
            let state = run
                .ledger
                .patient_state(&PatientId::parse(PATIENT).unwrap())
                .unwrap();
            for n in run.view().notifications {
                let by = match n.recipient {
                    Line::First => gp(),
                    Line::Second => cardiologist(),
                    _ => patient(),
                };
                let ack = Command::AcknowledgeNotification(Acknowledgement {
                    notification: n.position,
                    recipient: n.recipient,
                });
                let accepted = careledger_core::decide::decide(
                    &state,
                    &careledger_core::decide::Policy::default(),
                    &by,
                    &ack,
                    Timestamp::from_micros(DAY0),
                    Timestamp::from_micros(DAY0),
                )
                .is_ok();
                prop_assert_eq!(
                    accepted,
                    n.status == NotificationStatus::Open,
                    "notification {:?}",
                    n
                );
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---- The clinical catalogue: intolerances, problems, smoking status, lab orders ----

/// Appends with the reason in words, as a clinician gives it.
fn by_because(s: &Story, who: &Actor, command: Command, day: i64, reason: &str) -> u64 {
    let outcome = s
        .ledger
        .append(AppendRequest {
            patient: PatientId::parse(PATIENT).unwrap(),
            expected: ExpectedRevision::Any,
            actor: who.clone(),
            submissions: vec![Submission {
                command,
                occurred_at: Some(Timestamp::from_micros(DAY0).plus_days(day)),
                reason: Text::new(reason).unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
    s.projections.catch_up(&s.ledger).unwrap();
    outcome.events[0].position
}

fn signal_codes(view: &PatientView, now: Timestamp) -> Vec<String> {
    signals::signals(view, &ProjectionConfig::default(), now)
        .into_iter()
        .map(|x| x.code)
        .collect()
}

fn order_of(id: &str, tests: &[Measure], annual_panel: bool) -> Command {
    Command::OrderLab(LabOrder {
        order: ElementId::parse(id).unwrap(),
        tests: tests.to_vec(),
        annual_panel,
    })
}

fn result_for(order: &str, measure: Measure, scaled: i64) -> Command {
    Command::RecordLabResult(LabResult {
        order: Some(ElementId::parse(order).unwrap()),
        value: q(measure, scaled),
    })
}

#[test]
fn a_statin_stopped_for_side_effects_stays_in_the_plan_as_an_intolerance() {
    let s = Story::new(true);
    s.by(&cardiologist(), vec![start_statin()], 1);
    let stop = Command::StopMedication(MedicationStop {
        atc: statin(),
        reason: ChangeReason::SideEffects,
    });
    let stopped = by_because(&s, &gp(), stop, 2, "myalgia, CK raised");
    let plan = s.view().plan;
    assert!(!plan.medications.contains_key(&statin()));
    let known: Vec<_> = plan.active_intolerances().collect();
    assert_eq!(known.len(), 1);
    assert_eq!(known[0].atc, statin());
    assert_eq!(known[0].substance.as_str(), "atorvastatin");
    assert_eq!(known[0].reaction.as_str(), "myalgia, CK raised");
    assert!(known[0].from_stop);
    assert_eq!(known[0].recorded.actor.as_str(), "gp-1");
    assert_eq!(known[0].recorded.position, stopped);
}

#[test]
fn an_intolerance_entered_in_error_stays_listed_but_no_longer_counts() {
    use careledger_core::clinical::{Intolerance, IntoleranceKind};
    let s = Story::new(false);
    let recorded = s.by(
        &gp(),
        vec![Command::RecordIntolerance(Intolerance {
            atc: statin(),
            substance: Text::new("atorvastatin").unwrap(),
            kind: IntoleranceKind::Intolerance,
            reaction: Text::new("myalgia").unwrap(),
        })],
        1,
    );
    s.by(
        &gp(),
        vec![Command::MarkEnteredInError(Correction {
            position: recorded,
        })],
        2,
    );
    let plan = s.view().plan;
    assert_eq!(plan.intolerances.len(), 1);
    assert_eq!(plan.active_intolerances().count(), 0);
}

#[test]
fn problems_and_the_indication_of_a_medication_show_in_the_plan() {
    use careledger_core::clinical::{
        Indication, Problem, ProblemCode, ProblemCodeSystem, ProblemResolution,
    };
    let s = Story::new(true);
    let mi = ElementId::parse("mi").unwrap();
    s.by(
        &gp(),
        vec![Command::RecordProblem(Problem {
            problem: mi.clone(),
            code: ProblemCode::parse(ProblemCodeSystem::Icpc1Nl, "K75").unwrap(),
            description: Text::new("myocardial infarction 2024").unwrap(),
        })],
        1,
    );
    s.by(
        &cardiologist(),
        vec![Command::RecordProblem(Problem {
            problem: ElementId::parse("hf").unwrap(),
            code: ProblemCode::parse(ProblemCodeSystem::Icd10, "I50").unwrap(),
            description: Text::new("heart failure").unwrap(),
        })],
        1,
    );
    s.by(
        &gp(),
        vec![Command::StartMedication(Medication {
            indication: Some(Indication::Problem(mi.clone())),
            ..match start_statin() {
                Command::StartMedication(m) => m,
                _ => unreachable!(),
            }
        })],
        2,
    );
    s.by(
        &cardiologist(),
        vec![Command::ResolveProblem(ProblemResolution {
            problem: ElementId::parse("hf").unwrap(),
        })],
        3,
    );
    let plan = s.view().plan;
    assert_eq!(
        plan.indication(&statin()),
        Some(&Indication::Problem(mi.clone()))
    );
    let entry = &plan.problems[&mi];
    assert_eq!(entry.code.code(), "K75");
    assert_eq!(
        entry.code.system().uri(),
        "http://hl7.org/fhir/sid/icpc-1-nl"
    );
    assert!(entry.resolved.is_none());
    let hf = &plan.problems[&ElementId::parse("hf").unwrap()];
    assert_eq!(hf.resolved.as_ref().unwrap().actor.as_str(), "card-1");
}

#[test]
fn smoking_status_follows_clinical_time_and_skips_entries_in_error() {
    use careledger_core::clinical::{SmokingObservation, SmokingStatus};
    let s = Story::new(false);
    let status = |status| vec![Command::RecordSmokingStatus(SmokingObservation { status })];
    s.by(&gp(), status(SmokingStatus::Current), 5);
    // Entered later, but it held earlier: it is not the latest.
    s.by(&patient(), status(SmokingStatus::Never), 1);
    assert_eq!(
        s.view().plan.smoking_status().unwrap().status,
        SmokingStatus::Current
    );
    let wrong = s.by(&gp(), status(SmokingStatus::Former), 6);
    assert_eq!(
        s.view().plan.smoking_status().unwrap().status,
        SmokingStatus::Former
    );
    s.by(
        &gp(),
        vec![Command::MarkEnteredInError(Correction { position: wrong })],
        6,
    );
    assert_eq!(
        s.view().plan.smoking_status().unwrap().status,
        SmokingStatus::Current
    );
}

#[test]
fn a_lab_order_closes_test_by_test_and_when_every_test_has_a_result() {
    let s = Story::new(false);
    let id = ElementId::parse("lab-1").unwrap();
    s.by(
        &gp(),
        vec![order_of(
            "lab-1",
            &[Measure::LdlCholesterol, Measure::HdlCholesterol],
            false,
        )],
        1,
    );
    s.by(
        &gp(),
        vec![result_for("lab-1", Measure::LdlCholesterol, 24)],
        2,
    );
    let plan = s.view().plan;
    assert_eq!(plan.lab_orders[&id].pending, vec![Measure::HdlCholesterol]);
    s.by(
        &gp(),
        vec![result_for("lab-1", Measure::HdlCholesterol, 120)],
        2,
    );
    assert!(!s.view().plan.lab_orders.contains_key(&id));
}

#[test]
fn an_order_with_tests_pending_expires_and_shows_pending_since_its_date() {
    let s = Story::new(false);
    s.by(
        &gp(),
        vec![order_of("lab-1", &[Measure::NtProBnp], false)],
        1,
    );
    let view = s.view();
    let config = ProjectionConfig::default();
    let soon = Timestamp::from_micros(DAY0).plus_days(10);
    let late = Timestamp::from_micros(DAY0).plus_days(1 + i64::from(config.lab_order_expiry_days));
    let open = careledger_projections::lab::open_orders(&view.plan, &config, soon);
    assert_eq!(open.len(), 1);
    assert!(!open[0].expired);
    let expired = careledger_projections::lab::open_orders(&view.plan, &config, late);
    assert!(expired[0].expired);
    let signal = signals::signals(&view, &config, late)
        .into_iter()
        .find(|x| x.code == "lab_order_expired")
        .unwrap();
    assert!(
        signal.message.contains("pending since 2 Mar 2026"),
        "{}",
        signal.message
    );
    let dutch = careledger_projections::labels::signal_message(
        &signal.code,
        &signal.values,
        careledger_projections::labels::Lang::Nl,
    )
    .unwrap();
    assert!(dutch.contains("open sinds 2 mrt 2026"), "{dutch}");
}

#[test]
fn agreement_7_a_lab_order_of_one_line_is_signalled_to_the_other_at_once() {
    let s = Story::new(true);
    let now = Timestamp::from_micros(DAY0).plus_days(1);
    assert!(!signal_codes(&s.view(), now).contains(&"lab_order_open".to_owned()));
    let ordered = s.by(
        &gp(),
        vec![order_of("lab-1", &[Measure::LdlCholesterol], false)],
        1,
    );
    let signal = signals::signals(&s.view(), &ProjectionConfig::default(), now)
        .into_iter()
        .find(|x| x.code == "lab_order_open")
        .unwrap();
    assert_eq!(signal.positions, vec![ordered]);
    assert!(signal.message.contains("A. Jansen"), "{}", signal.message);
    assert!(signal.message.contains("first line"), "{}", signal.message);
    s.by(
        &gp(),
        vec![result_for("lab-1", Measure::LdlCholesterol, 24)],
        2,
    );
    assert!(!signal_codes(&s.view(), now).contains(&"lab_order_open".to_owned()));
}

#[test]
fn agreement_7_an_annual_order_without_the_specialists_additions_is_signalled_until_covered() {
    let s = Story::new(true);
    let now = Timestamp::from_micros(DAY0).plus_days(20);
    s.by(
        &cardiologist(),
        vec![Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::NtProBnp],
        })],
        1,
    );
    s.by(
        &gp(),
        vec![order_of("year-1", &[Measure::LdlCholesterol], true)],
        2,
    );
    let signal = signals::signals(&s.view(), &ProjectionConfig::default(), now)
        .into_iter()
        .find(|x| x.code == "annual_panel_incomplete")
        .unwrap();
    assert!(signal.message.contains("NT-proBNP"), "{}", signal.message);
    s.by(
        &gp(),
        vec![order_of("extra", &[Measure::NtProBnp], false)],
        3,
    );
    assert!(!signal_codes(&s.view(), now).contains(&"annual_panel_incomplete".to_owned()));
}

#[test]
fn the_catalogue_in_the_plan_survives_persisting_and_equals_a_rebuild_from_zero() {
    use careledger_core::clinical::{
        Indication, Intolerance, IntoleranceKind, Problem, ProblemCode, ProblemCodeSystem,
        SmokingObservation, SmokingStatus,
    };
    let s = Story::new(true);
    s.by(
        &gp(),
        vec![
            Command::RecordProblem(Problem {
                problem: ElementId::parse("mi").unwrap(),
                code: ProblemCode::parse(ProblemCodeSystem::Icpc1Nl, "K75").unwrap(),
                description: Text::new("myocardial infarction").unwrap(),
            }),
            Command::RecordIntolerance(Intolerance {
                atc: AtcCode::parse("C09AA").unwrap(),
                substance: Text::new("ACE inhibitors").unwrap(),
                kind: IntoleranceKind::ContraIndication,
                reaction: Text::new("angio-oedema").unwrap(),
            }),
            Command::RecordSmokingStatus(SmokingObservation {
                status: SmokingStatus::Current,
            }),
            Command::StartMedication(Medication {
                atc: statin(),
                name: Text::new("atorvastatin").unwrap(),
                dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
                frequency: Text::new("1x daily").unwrap(),
                indication: Some(Indication::Problem(ElementId::parse("mi").unwrap())),
            }),
            order_of(
                "year-1",
                &[Measure::LdlCholesterol, Measure::NtProBnp],
                true,
            ),
        ],
        1,
    );
    let expected = s.view();
    assert_eq!(expected.plan.problems.len(), 1);
    let dir = s._dir.path().to_owned();
    let Story {
        _dir,
        ledger,
        projections,
    } = s;
    projections.persist().unwrap();
    drop(projections);
    let patient = PatientId::parse(PATIENT).unwrap();
    let reopened =
        Projections::open(&dir.join("projections"), ProjectionConfig::default()).unwrap();
    assert_eq!(&*reopened.view(&patient).unwrap().unwrap(), &expected);
    let rebuilt = Projections::open(&dir.join("rebuilt"), ProjectionConfig::default()).unwrap();
    rebuilt.rebuild(&ledger, &mut |_, _| {}).unwrap();
    assert_eq!(&*rebuilt.view(&patient).unwrap().unwrap(), &expected);
}

/// One change to the care team, chosen by `i`, among three GPs and two cardiologists; a
/// correction of any earlier position (`target` picks it).
fn team_menu(i: u8, target: u64) -> (Actor, Command) {
    let gps = [
        gp(),
        actor("gp-2", Role::Gp, "B. Smit"),
        actor("gp-3", Role::Gp, "C. Visser"),
    ];
    let cardiologists = [
        cardiologist(),
        actor("card-2", Role::Cardiologist, "D. Bakker"),
    ];
    let who = |k: u8| -> Actor {
        match k % 5 {
            k @ 0..=2 => gps[usize::from(k)].clone(),
            k => cardiologists[usize::from(k - 3)].clone(),
        }
    };
    let subject = who(i / 5);
    let lead = if subject.role == Role::Gp {
        Lead::Cvrm
    } else {
        Lead::OrganDisease
    };
    let author = if (i / 4).is_multiple_of(2) {
        gp()
    } else {
        cardiologist()
    };
    match i % 4 {
        0 => (author, member(&subject, lead)),
        1 => (
            author,
            Command::RemoveCareTeamMember(MemberRemoval {
                actor: subject.id.clone(),
            }),
        ),
        // Taking an unassigned lead is a handover to oneself; handing it on is by its main.
        2 => (
            if i % 8 < 4 { subject.clone() } else { author },
            Command::HandOverLead(LeadHandover {
                lead,
                to: subject.id.clone(),
            }),
        ),
        _ => (author, correct(target)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The plan's care team is the team the rules authorise writes with: after any sequence of
    /// additions, removals, handovers and corrections (of any of them), core's state and the read
    /// model name the same members in the same roles, leads and places.
    #[test]
    fn the_plans_care_team_is_the_team_the_rules_authorise_with(steps in proptest::collection::vec((any::<u8>(), any::<u64>()), 1..40)) {
        let s = Story::new(true);
        let patient_id = PatientId::parse(PATIENT).unwrap();
        for (i, target) in steps {
            let head = s.ledger.head().position;
            // Corrections mostly of the last few events, where the team changes just were.
            let (mut author, command) = team_menu(i, head.saturating_sub(target % 6).max(1));
            if let Command::HandOverLead(h) = &command {
                // Half the handovers by the lead's main practitioner, as the rules require.
                let state = s.ledger.patient_state(&patient_id).unwrap();
                let main = state.members().find(|(_, m)| m.lead == h.lead && m.practitioner == Practitioner::Main);
                if let (Some((id, _)), true) = (main, i % 8 >= 4) {
                    author = actor(id.as_str(), if h.lead == Lead::Cvrm { Role::Gp } else { Role::Cardiologist }, "main");
                }
            }
            let request = AppendRequest {
                patient: patient_id.clone(),
                expected: ExpectedRevision::Any,
                actor: author,
                submissions: vec![Submission {
                    command,
                    occurred_at: None,
                    reason: Text::new("team change").unwrap(),
                }],
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            };
            let _ = s.ledger.append(request); // rejected commands simply write nothing
            s.projections.catch_up(&s.ledger).unwrap();
            let state = s.ledger.patient_state(&patient_id).unwrap();
            let mut rules: Vec<(String, String)> = state
                .members()
                .map(|(id, m)| (id.to_string(), format!("{:?} {:?} {:?}", m.role, m.lead, m.practitioner)))
                .collect();
            let mut plan: Vec<(String, String)> = s
                .view()
                .plan
                .care_team
                .iter()
                .map(|m| (m.actor.to_string(), format!("{:?} {:?} {:?}", m.role, m.lead, m.practitioner)))
                .collect();
            rules.sort();
            plan.sort();
            prop_assert_eq!(&rules, &plan, "after position {}", s.ledger.head().position);
        }
    }
}

#[test]
fn corrections_a_corrected_addition_stays_out_of_the_team_after_a_handover_that_touched_it() {
    let s = Story::new(true);
    let gp2 = actor("gp-2", Role::Gp, "B. Smit");
    // gp-1 takes the unassigned CVRM lead as its main practitioner.
    s.by(
        &gp(),
        vec![Command::HandOverLead(LeadHandover {
            lead: Lead::Cvrm,
            to: gp().id,
        })],
        1,
    );
    let added = s.by(&gp(), vec![member(&gp2, Lead::Cvrm)], 1);
    // gp-2 takes the CVRM lead: gp-1, its main practitioner, becomes co-practitioner.
    s.by(
        &gp(),
        vec![Command::HandOverLead(LeadHandover {
            lead: Lead::Cvrm,
            to: gp2.id.clone(),
        })],
        2,
    );
    // gp-2's addition was entered in error: gp-2 is no member, and the handover to them
    // changed nothing, so gp-1 is the CVRM main practitioner again.
    let outcome = s.outcome(&gp(), vec![correct(added)], 3);
    assert_eq!(outcome.events.len(), 1);
    let patient_id = PatientId::parse(PATIENT).unwrap();
    let state = s.ledger.patient_state(&patient_id).unwrap();
    assert!(
        state.member(&gp2.id).is_none(),
        "the rules still count gp-2"
    );
    assert_eq!(
        state.member(&gp().id).map(|m| m.practitioner),
        Some(Practitioner::Main)
    );
    let view = s.view();
    assert!(view.plan.care_team.iter().all(|m| m.actor != gp2.id));
    let gp1 = view
        .plan
        .care_team
        .iter()
        .find(|m| m.actor == gp().id)
        .unwrap();
    assert_eq!(gp1.practitioner, Practitioner::Main);
    // And gp-2 cannot write as a member.
    let refused = s.ledger.append(AppendRequest {
        patient: patient_id,
        expected: ExpectedRevision::Any,
        actor: gp2.clone(),
        submissions: vec![Submission {
            command: Command::AddNote(Note {
                kind: NoteKind::InterimLetter,
                subject: Text::new("letter").unwrap(),
                body: Text::default(),
            }),
            occurred_at: None,
            reason: Text::default(),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    });
    assert!(refused.is_err(), "{refused:?}");
}
