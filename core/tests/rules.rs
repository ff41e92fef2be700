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
        organisation: None,
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
        indication: None,
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
        let ledger = Ledger::open(dir.path(), LedgerConfig::default()).unwrap();
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

// ---- The clinical catalogue: intolerances, problems, smoking status, lab orders ----

fn start(
    atc: &str,
    name: &str,
    indication: Option<careledger_core::clinical::Indication>,
) -> Command {
    Command::StartMedication(Medication {
        atc: AtcCode::parse(atc).unwrap(),
        name: Text::new(name).unwrap(),
        dose: Dose::parse("10", DoseUnit::Mg).unwrap(),
        frequency: Text::new("1x daily").unwrap(),
        indication,
    })
}

fn stop_with_reason_text(g: &Given, who: &Actor, reason: ChangeReason, words: &str) {
    g.ledger
        .append(AppendRequest {
            patient: PatientId::parse(PATIENT).unwrap(),
            expected: ExpectedRevision::Any,
            actor: who.clone(),
            submissions: vec![Submission {
                command: stop_statin(reason),
                occurred_at: Some(Timestamp::from_micros(1_772_355_600_000_000)),
                reason: Text::new(words).unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
}

fn codes(outcome: &AppendOutcome) -> Vec<&'static str> {
    outcome.warnings.iter().map(|w| w.code).collect()
}

fn problem(id: &str, system: careledger_core::clinical::ProblemCodeSystem, code: &str) -> Command {
    use careledger_core::clinical::{Problem, ProblemCode};
    Command::RecordProblem(Problem {
        problem: ElementId::parse(id).unwrap(),
        code: ProblemCode::parse(system, code).unwrap(),
        description: Text::new("myocardial infarction").unwrap(),
    })
}

#[test]
fn a_statin_stopped_for_side_effects_stays_known_and_restarting_it_is_warned_with_who_when_and_reaction(
) {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    stop_with_reason_text(&g, &gp(), ChangeReason::SideEffects, "myalgia, CK raised");
    let again = g.when(&gp(), start_statin()).unwrap();
    assert_eq!(codes(&again), ["known_intolerance"]);
    let message = &again.warnings[0].message;
    for part in [
        "atorvastatin",
        "C10AA05",
        "myalgia, CK raised",
        "gp-1",
        "2026-03-01",
    ] {
        assert!(message.contains(part), "{part} missing in {message}");
    }
}

#[test]
fn another_drug_of_the_same_class_gets_a_milder_warning_and_another_class_none() {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    stop_with_reason_text(&g, &gp(), ChangeReason::SideEffects, "myalgia");
    let rosuva = g
        .when(&cardiologist(), start("C10AA07", "rosuvastatin", None))
        .unwrap();
    assert_eq!(codes(&rosuva), ["intolerance_in_same_class"]);
    assert!(rosuva.warnings[0].message.contains("C10AA"));
    let ezetimibe = g
        .when(&cardiologist(), start("C10AX09", "ezetimibe", None))
        .unwrap();
    assert!(ezetimibe.warnings.is_empty(), "{:?}", ezetimibe.warnings);
}

#[test]
fn a_stop_for_another_reason_records_no_intolerance() {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    stop_with_reason_text(&g, &gp(), ChangeReason::PatientPreference, "prefers none");
    let again = g.when(&gp(), start_statin()).unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}

#[test]
fn a_contra_indication_recorded_for_a_group_warns_on_every_substance_in_it() {
    use careledger_core::clinical::{Intolerance, IntoleranceKind};
    let g = Given::shared_care();
    let record = Command::RecordIntolerance(Intolerance {
        atc: AtcCode::parse("C07").unwrap(),
        substance: Text::new("beta blocking agents").unwrap(),
        kind: IntoleranceKind::ContraIndication,
        reaction: Text::new("severe asthma").unwrap(),
    });
    rejected(&g, g.when(&patient(), record.clone()), "role_not_permitted");
    g.by(&cardiologist(), vec![record]);
    let metoprolol = g.when(&gp(), start("C07AB02", "metoprolol", None)).unwrap();
    assert_eq!(codes(&metoprolol), ["known_contra_indication"]);
    assert!(metoprolol.warnings[0].message.contains("severe asthma"));
}

#[test]
fn an_intolerance_entered_in_error_no_longer_warns() {
    use careledger_core::clinical::{Intolerance, IntoleranceKind};
    let g = Given::shared_care();
    let recorded = g.by(
        &gp(),
        vec![Command::RecordIntolerance(Intolerance {
            atc: statin(),
            substance: Text::new("atorvastatin").unwrap(),
            kind: IntoleranceKind::Intolerance,
            reaction: Text::new("myalgia").unwrap(),
        })],
    );
    let position = recorded.events[0].position;
    g.by(
        &gp(),
        vec![Command::MarkEnteredInError(Correction { position })],
    );
    let start = g.when(&gp(), start_statin()).unwrap();
    assert!(start.warnings.is_empty(), "{:?}", start.warnings);
}

#[test]
fn agreement_2_the_specialist_adds_nt_probnp_to_the_annual_panel() {
    let g = Given::shared_care();
    let extend = Command::ExtendAnnualPanel(PanelExtension {
        tests: vec![Measure::NtProBnp, Measure::UrineAlbuminCreatinineRatio],
    });
    g.when(&cardiologist(), extend).unwrap();
}

#[test]
fn agreement_7_an_annual_order_without_the_specialists_additions_is_warned_not_refused() {
    let g = Given::shared_care();
    g.by(
        &cardiologist(),
        vec![Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::NtProBnp],
        })],
    );
    let annual = |id: &str, tests: &[Measure]| {
        Command::OrderLab(LabOrder {
            order: ElementId::parse(id).unwrap(),
            tests: tests.to_vec(),
            annual_panel: true,
        })
    };
    let incomplete = g
        .when(&gp(), annual("year-1", &[Measure::LdlCholesterol]))
        .unwrap();
    assert_eq!(codes(&incomplete), ["annual_panel_incomplete"]);
    assert!(incomplete.warnings[0].message.contains("NT-proBNP"));
    let complete = g
        .when(
            &gp(),
            annual("year-2", &[Measure::HdlCholesterol, Measure::NtProBnp]),
        )
        .unwrap();
    assert!(complete.warnings.is_empty(), "{:?}", complete.warnings);
}

#[test]
fn a_result_naming_an_order_must_be_one_of_its_tests() {
    let g = Given::shared_care();
    g.by(&gp(), vec![order("lab-1", &[Measure::LdlCholesterol])]);
    let wrong = Command::RecordLabResult(LabResult {
        order: Some(ElementId::parse("lab-1").unwrap()),
        value: Quantity::new(Measure::Sodium, 140).unwrap(),
    });
    let message = rejected(&g, g.when(&gp(), wrong), "test_not_in_order");
    assert!(message.contains("LDL cholesterol"), "{message}");
}

#[test]
fn problems_are_recorded_once_resolved_while_active_and_named_by_an_indication() {
    use careledger_core::clinical::{Indication, ProblemCodeSystem, ProblemResolution};
    let g = Given::shared_care();
    let mi = problem("mi", ProblemCodeSystem::Icpc1Nl, "K75");
    rejected(&g, g.when(&nurse(), mi.clone()), "role_not_permitted");
    g.by(&gp(), vec![mi.clone()]);
    g.by(
        &cardiologist(),
        vec![problem("hf", ProblemCodeSystem::Icd10, "I50")],
    );
    rejected(&g, g.when(&gp(), mi), "problem_exists");
    let unknown = Some(Indication::Problem(ElementId::parse("dm").unwrap()));
    rejected(
        &g,
        g.when(&gp(), start("C10AA05", "atorvastatin", unknown)),
        "unknown_problem",
    );
    let known = Some(Indication::Problem(ElementId::parse("mi").unwrap()));
    g.when(&gp(), start("C10AA05", "atorvastatin", known))
        .unwrap();
    let words = Some(Indication::Words(Text::new("hypertension").unwrap()));
    g.when(&gp(), start("C09AA02", "enalapril", words)).unwrap();
    let resolve = Command::ResolveProblem(ProblemResolution {
        problem: ElementId::parse("hf").unwrap(),
    });
    g.when(&cardiologist(), resolve.clone()).unwrap();
    rejected(&g, g.when(&cardiologist(), resolve), "problem_not_active");
}

#[test]
fn smoking_status_is_a_coded_observation_any_member_records() {
    use careledger_core::clinical::{SmokingObservation, SmokingStatus};
    let g = Given::shared_care();
    let outcome = g
        .when(
            &patient(),
            Command::RecordSmokingStatus(SmokingObservation {
                status: SmokingStatus::Former,
            }),
        )
        .unwrap();
    assert!(outcome.warnings.is_empty());
    assert_eq!(SmokingStatus::Former.snomed(), "8517006");
    assert_eq!(SmokingStatus::LOINC, "72166-2");
}

#[test]
fn a_panel_addition_entered_in_error_is_no_longer_asked_of_the_annual_order() {
    let g = Given::shared_care();
    let added = g.by(
        &cardiologist(),
        vec![Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::NtProBnp],
        })],
    );
    g.by(
        &cardiologist(),
        vec![Command::MarkEnteredInError(Correction {
            position: added.events[0].position,
        })],
    );
    let annual = g
        .when(
            &gp(),
            Command::OrderLab(LabOrder {
                order: ElementId::parse("year-1").unwrap(),
                tests: vec![Measure::LdlCholesterol],
                annual_panel: true,
            }),
        )
        .unwrap();
    assert!(annual.warnings.is_empty(), "{:?}", annual.warnings);
}
