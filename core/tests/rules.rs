//! The business rules of `decide`, as given/when/then over a real ledger.

use careledger_core::event::*;
use careledger_core::ids::{ActorId, AtcCode, ElementId, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::{
    Actor, AppendOutcome, AppendRequest, Error, ExpectedRevision, Ledger, LedgerConfig, Submission,
};

const PATIENT: &str = "999990007";

fn actor(id: &str, role: Role) -> Actor {
    Actor {
        id: ActorId::parse(id).unwrap(),
        role,
        name: Text::new(id).unwrap(),
    }
}

fn gp() -> Actor {
    actor("gp-1", Role::Gp)
}
fn cardiologist() -> Actor {
    actor("card-1", Role::Cardiologist)
}
fn nurse() -> Actor {
    actor("nurse-1", Role::PracticeNurse)
}
fn patient() -> Actor {
    actor("patient-1", Role::Patient)
}
fn outsider() -> Actor {
    actor("gp-9", Role::Gp)
}

fn member(a: &Actor, lead: Lead, practitioner: Practitioner) -> Command {
    Command::AddCareTeamMember(Member {
        actor: a.id.clone(),
        name: a.name.clone(),
        agb: None,
        role: a.role,
        lead,
        practitioner,
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
    })
}

fn stop_statin(reason: ChangeReason) -> Command {
    Command::StopMedication(MedicationStop {
        atc: statin(),
        reason,
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

fn ldl_target() -> Command {
    Command::SetTarget(Target {
        comparator: Comparator::AtMost,
        value: Quantity::new(Measure::LdlCholesterol, 18).unwrap(),
        basis: TargetBasis::EscGuideline,
        rationale: Text::new("high risk").unwrap(),
    })
}

fn order(id: &str, tests: &[Measure]) -> Command {
    Command::OrderLab(LabOrder {
        order: ElementId::parse(id).unwrap(),
        tests: tests.to_vec(),
        annual_panel: false,
    })
}

fn home_bp(value: i64) -> Command {
    Command::RecordMeasurement(Measurement {
        value: Quantity::new(Measure::SystolicBloodPressure, value).unwrap(),
        source: MeasurementSource::SelfMeasuredAtHome,
    })
}

fn ack(position: u64) -> Command {
    Command::AcknowledgeNotification(Acknowledgement {
        notification: position,
    })
}

/// A ledger on a temporary directory, with the patient's history given.
struct Given {
    _dir: tempfile::TempDir,
    ledger: Ledger,
}

fn append_at(
    ledger: &Ledger,
    by: &Actor,
    commands: Vec<Command>,
    day: i64,
    patient: &str,
) -> Result<AppendOutcome, Error> {
    let at = Timestamp::from_micros(1_772_355_600_000_000).plus_days(day);
    ledger.append(AppendRequest {
        patient: PatientId::parse(patient).unwrap(),
        expected: ExpectedRevision::Any,
        actor: by.clone(),
        submissions: commands
            .into_iter()
            .map(|command| Submission {
                command,
                occurred_at: Some(at),
                reason: Text::new("because").unwrap(),
            })
            .collect(),
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    })
}

impl Given {
    fn empty() -> Given {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        Given { _dir: dir, ledger }
    }

    /// Shared care founded by the GP, with cardiologist, nurse and patient in the team.
    fn shared_care() -> Given {
        let g = Given::empty();
        g.by(
            &gp(),
            vec![Command::StartSharedCare(SharedCare {
                arrangement: Text::new("shared").unwrap(),
            })],
        );
        g.by(
            &gp(),
            vec![
                member(&cardiologist(), Lead::OrganDisease, Practitioner::Co),
                member(&nurse(), Lead::None, Practitioner::Co),
                member(&patient(), Lead::None, Practitioner::NotApplicable),
            ],
        );
        g
    }

    fn by(&self, who: &Actor, commands: Vec<Command>) -> AppendOutcome {
        append_at(&self.ledger, who, commands, 0, PATIENT).unwrap()
    }

    fn when(&self, who: &Actor, command: Command) -> Result<AppendOutcome, Error> {
        append_at(&self.ledger, who, vec![command], 0, PATIENT)
    }

    fn when_on_day(&self, who: &Actor, command: Command, day: i64) -> Result<AppendOutcome, Error> {
        append_at(&self.ledger, who, vec![command], day, PATIENT)
    }
}

/// Then: rejected with this code, and nothing was written.
fn rejected(given: &Given, result: Result<AppendOutcome, Error>, code: &str) -> String {
    let head = given.ledger.head().position;
    match result {
        Err(Error::Rejected(r)) => {
            assert_eq!(r.code, code, "{}", r.message);
            assert_eq!(given.ledger.head().position, head);
            r.message
        }
        other => panic!("expected rejection {code}, got {other:?}"),
    }
}

#[test]
fn first_event_must_found_the_team() {
    let g = Given::empty();
    rejected(&g, g.when(&gp(), ldl_target()), "no_care_team");
    rejected(
        &g,
        g.when(
            &patient(),
            member(&patient(), Lead::None, Practitioner::NotApplicable),
        ),
        "not_in_care_team",
    );
    let founded = g
        .when(&gp(), member(&gp(), Lead::Cvrm, Practitioner::Main))
        .unwrap();
    assert_eq!(founded.revision, 1);
}

#[test]
fn only_care_team_members_append() {
    let g = Given::shared_care();
    let message = rejected(&g, g.when(&outsider(), ldl_target()), "not_in_care_team");
    assert!(message.contains("gp-9"), "{message}");
    rejected(
        &g,
        g.when(&actor("card-1", Role::Gp), ldl_target()),
        "role_mismatch",
    );
}

#[test]
fn patient_records_home_measurements_goals_and_notes_but_not_targets() {
    let g = Given::shared_care();
    g.when(&patient(), home_bp(135)).unwrap();
    g.when(
        &patient(),
        Command::SetLifestyleGoal(LifestyleGoal {
            goal: ElementId::parse("walk").unwrap(),
            description: Text::new("walk").unwrap(),
        }),
    )
    .unwrap();
    rejected(&g, g.when(&patient(), ldl_target()), "role_not_permitted");
    rejected(&g, g.when(&patient(), start_statin()), "role_not_permitted");
    let practice = Command::RecordMeasurement(Measurement {
        value: Quantity::new(Measure::SystolicBloodPressure, 135).unwrap(),
        source: MeasurementSource::Practice,
    });
    rejected(&g, g.when(&patient(), practice), "patient_measures_at_home");
    let letter = Command::AddNote(Note {
        kind: NoteKind::ReturnLetter,
        subject: Text::new("x").unwrap(),
        body: Text::default(),
    });
    rejected(&g, g.when(&patient(), letter), "patient_writes_notes");
}

#[test]
fn practice_nurse_may_not_set_targets_and_only_the_second_line_extends_the_panel() {
    let g = Given::shared_care();
    rejected(&g, g.when(&nurse(), ldl_target()), "role_not_permitted");
    let extension = Command::ExtendAnnualPanel(PanelExtension {
        tests: vec![Measure::CreatineKinase],
    });
    let message = rejected(&g, g.when(&gp(), extension.clone()), "role_not_permitted");
    assert!(message.contains("agreement 2"), "{message}");
    g.when(&cardiologist(), extension).unwrap();
}

#[test]
fn gp_cannot_stop_cardiologists_statin_without_reason() {
    let g = Given::shared_care();
    g.by(&cardiologist(), vec![start_statin()]);
    let message = rejected(
        &g,
        g.when(&gp(), stop_statin(ChangeReason::PatientPreference)),
        "agreement_4",
    );
    assert!(message.contains("agreement 4"), "{message}");
    rejected(
        &g,
        g.when(
            &gp(),
            stop_statin(ChangeReason::Other(Text::new("cheaper").unwrap())),
        ),
        "agreement_4",
    );
    rejected(
        &g,
        g.when(&gp(), change_statin("20", ChangeReason::PatientPreference)),
        "agreement_4",
    );
    g.when(&gp(), change_statin("20", ChangeReason::SideEffects))
        .unwrap();
    g.when(&gp(), change_statin("40", ChangeReason::TargetNotReached))
        .unwrap();
    g.when(&gp(), stop_statin(ChangeReason::SideEffects))
        .unwrap();
}

#[test]
fn cardiologist_keeps_the_gps_medication_the_same_way() {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    rejected(
        &g,
        g.when(
            &cardiologist(),
            stop_statin(ChangeReason::PatientPreference),
        ),
        "agreement_4",
    );
    g.when(&cardiologist(), stop_statin(ChangeReason::TargetNotReached))
        .unwrap();
}

#[test]
fn own_line_changes_its_own_medication_for_any_reason() {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    g.when(&gp(), change_statin("20", ChangeReason::PatientPreference))
        .unwrap();
    g.when(
        &gp(),
        stop_statin(ChangeReason::Other(Text::new("no longer needed").unwrap())),
    )
    .unwrap();
}

#[test]
fn medication_must_be_active_to_change_and_inactive_to_start() {
    let g = Given::shared_care();
    rejected(
        &g,
        g.when(&gp(), stop_statin(ChangeReason::SideEffects)),
        "medication_not_active",
    );
    rejected(
        &g,
        g.when(&gp(), change_statin("20", ChangeReason::SideEffects)),
        "medication_not_active",
    );
    g.by(&gp(), vec![start_statin()]);
    rejected(
        &g,
        g.when(&gp(), start_statin()),
        "medication_already_active",
    );
    rejected(
        &g,
        g.when(&gp(), change_statin("40", ChangeReason::SideEffects)),
        "dose_unchanged",
    );
}

#[test]
fn withdrawing_a_target_that_is_not_set_is_rejected() {
    let g = Given::shared_care();
    let withdraw = Command::WithdrawTarget(TargetWithdrawal {
        measure: Measure::LdlCholesterol,
    });
    rejected(
        &g,
        g.when(&cardiologist(), withdraw.clone()),
        "target_not_set",
    );
    g.by(&cardiologist(), vec![ldl_target()]);
    g.when(&cardiologist(), withdraw).unwrap();
}

#[test]
fn notification_is_acknowledged_once_by_its_recipient_line() {
    let g = Given::shared_care();
    let target = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    rejected(
        &g,
        g.when(&cardiologist(), ack(target)),
        "not_the_recipient",
    );
    g.when(&gp(), ack(target)).unwrap();
    rejected(&g, g.when(&nurse(), ack(target)), "already_acknowledged");
    rejected(&g, g.when(&gp(), ack(1)), "unknown_notification");
}

#[test]
fn corrections_stay_within_the_patient_and_happen_once() {
    let g = Given::shared_care();
    let reading = g.by(&nurse(), vec![home_bp(150)]).events[0].position;
    append_at(
        &g.ledger,
        &gp(),
        vec![member(&gp(), Lead::Cvrm, Practitioner::Main)],
        0,
        "pat-other",
    )
    .unwrap();
    let other_patients = g.ledger.head().position;
    let correct = |position| Command::MarkEnteredInError(Correction { position });
    rejected(
        &g,
        g.when(&gp(), correct(other_patients)),
        "not_this_patients_event",
    );
    g.when(&gp(), correct(reading)).unwrap();
    rejected(&g, g.when(&gp(), correct(reading)), "already_corrected");
}

#[test]
fn duplicate_lab_work_within_the_window_is_a_warning_not_a_rejection() {
    let g = Given::shared_care();
    g.when_on_day(
        &gp(),
        order("lab-1", &[Measure::LdlCholesterol, Measure::Hba1c]),
        0,
    )
    .unwrap();
    let again = g
        .when_on_day(
            &cardiologist(),
            order("lab-2", &[Measure::LdlCholesterol]),
            10,
        )
        .unwrap();
    assert_eq!(again.warnings.len(), 1);
    assert_eq!(again.warnings[0].code, "duplicate_lab_work");
    assert!(again.warnings[0].message.contains("agreement 7"));
    let later = g
        .when_on_day(&gp(), order("lab-3", &[Measure::LdlCholesterol]), 60)
        .unwrap();
    assert!(
        later.warnings.is_empty(),
        "outside the 30-day window: {:?}",
        later.warnings
    );
    rejected(
        &g,
        g.when(&gp(), order("lab-3", &[Measure::Egfr])),
        "lab_order_exists",
    );
    rejected(&g, g.when(&gp(), order("lab-4", &[])), "no_tests");
}

#[test]
fn lab_result_must_answer_a_known_order() {
    let g = Given::shared_care();
    let result = Command::RecordLabResult(LabResult {
        order: Some(ElementId::parse("never").unwrap()),
        value: Quantity::new(Measure::LdlCholesterol, 24).unwrap(),
    });
    rejected(&g, g.when(&gp(), result), "unknown_lab_order");
}

#[test]
fn lead_must_fit_the_line() {
    let g = Given::shared_care();
    let wrong = member(
        &actor("card-2", Role::Cardiologist),
        Lead::Cvrm,
        Practitioner::Co,
    );
    rejected(&g, g.when(&gp(), wrong), "lead_does_not_fit_line");
    rejected(
        &g,
        g.when(&gp(), member(&nurse(), Lead::None, Practitioner::Co)),
        "already_in_care_team",
    );
}

#[test]
fn lifestyle_goals_are_set_once_and_closed_while_open() {
    let g = Given::shared_care();
    let goal = ElementId::parse("walk").unwrap();
    let close = Command::CloseLifestyleGoal(GoalClosure {
        goal: goal.clone(),
        outcome: GoalOutcome::Achieved,
    });
    rejected(&g, g.when(&patient(), close.clone()), "goal_not_open");
    g.when(
        &patient(),
        Command::SetLifestyleGoal(LifestyleGoal {
            goal: goal.clone(),
            description: Text::new("walk").unwrap(),
        }),
    )
    .unwrap();
    g.when(&patient(), close.clone()).unwrap();
    rejected(&g, g.when(&patient(), close), "goal_not_open");
    rejected(
        &g,
        g.when(
            &patient(),
            Command::SetLifestyleGoal(LifestyleGoal {
                goal,
                description: Text::new("again").unwrap(),
            }),
        ),
        "goal_exists",
    );
}

#[test]
fn batch_with_a_rejected_command_writes_nothing() {
    let g = Given::shared_care();
    let head = g.ledger.head().position;
    let result = append_at(
        &g.ledger,
        &gp(),
        vec![
            home_bp(120),
            ldl_target(),
            stop_statin(ChangeReason::SideEffects),
        ],
        0,
        PATIENT,
    );
    assert!(
        matches!(result, Err(Error::Rejected(ref r)) if r.code == "medication_not_active"),
        "{result:?}"
    );
    assert_eq!(g.ledger.head().position, head);
}

#[test]
fn expected_revision_conflicts_write_nothing() {
    let g = Given::shared_care();
    let head = g.ledger.head();
    let request = |expected| AppendRequest {
        patient: PatientId::parse(PATIENT).unwrap(),
        expected,
        actor: gp(),
        submissions: vec![Submission {
            command: home_bp(120),
            occurred_at: None,
            reason: Text::default(),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    };
    assert!(matches!(
        g.ledger.append(request(ExpectedRevision::NoStream)),
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        g.ledger.append(request(ExpectedRevision::Exact(2))),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(g.ledger.head(), head);
    let ok = g
        .ledger
        .append(request(ExpectedRevision::Exact(head.position)))
        .unwrap();
    assert_eq!(ok.revision, head.position + 1);
}

#[test]
fn idempotency_key_replays_the_same_request_and_refuses_different_content() {
    let g = Given::shared_care();
    let request = |value| AppendRequest {
        patient: PatientId::parse(PATIENT).unwrap(),
        expected: ExpectedRevision::Any,
        actor: gp(),
        submissions: vec![Submission {
            command: home_bp(value),
            occurred_at: None,
            reason: Text::default(),
        }],
        idempotency_key: Some("req-1".into()),
        correlation_id: None,
        causation_id: None,
    };
    let first = g.ledger.append(request(120)).unwrap();
    let head = g.ledger.head();
    let again = g.ledger.append(request(120)).unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(again.events, first.events);
    assert_eq!(g.ledger.head(), head, "the replay wrote nothing");
    assert!(matches!(
        g.ledger.append(request(121)),
        Err(Error::IdempotencyMismatch { .. })
    ));
    assert_eq!(g.ledger.head(), head);
}
