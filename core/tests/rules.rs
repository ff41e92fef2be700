//! The business rules of `decide`, as given/when/then over a real ledger.

use careledger_core::decide::WarningCode;
use careledger_core::event::*;
use careledger_core::ids::{ActorId, AtcCode, ElementId, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::{
    Actor, AppendOutcome, AppendRequest, Error, ExpectedRevision, Ledger, LedgerConfig,
    RejectionCode, RejectionKind, Submission,
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

/// An acknowledgement of the notification of `position` to the `recipient` line.
fn ack_to(position: u64, recipient: Line) -> Command {
    Command::AcknowledgeNotification(Acknowledgement {
        notification: position,
        recipient,
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
        Given::empty_with(LedgerConfig::default())
    }

    fn empty_with(config: LedgerConfig) -> Given {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), config).unwrap();
        Given { _dir: dir, ledger }
    }

    /// Shared care founded by the GP, with cardiologist, nurse and patient in the team.
    fn shared_care() -> Given {
        Given::shared_care_with(LedgerConfig::default())
    }

    fn shared_care_with(config: LedgerConfig) -> Given {
        let g = Given::empty_with(config);
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
fn rejected(
    given: &Given,
    when: impl FnOnce() -> Result<AppendOutcome, Error>,
    code: RejectionCode,
) -> String {
    let head = given.ledger.head();
    let result = when();
    assert_eq!(given.ledger.head(), head, "nothing was written");
    match result {
        Err(Error::Rejected(r)) => {
            assert_eq!(r.code, code, "{}", r.message);
            r.message
        }
        other => panic!("expected rejection {code}, got {other:?}"),
    }
}

#[test]
fn first_event_must_found_the_team() {
    let g = Given::empty();
    rejected(
        &g,
        || g.when(&gp(), ldl_target()),
        RejectionCode::NoCareTeam,
    );
    rejected(
        &g,
        || {
            g.when(
                &patient(),
                member(&patient(), Lead::None, Practitioner::NotApplicable),
            )
        },
        RejectionCode::NotInCareTeam,
    );
    let founded = g
        .when(&gp(), member(&gp(), Lead::Cvrm, Practitioner::Main))
        .unwrap();
    assert_eq!(founded.revision, 1);
}

#[test]
fn only_care_team_members_append() {
    let g = Given::shared_care();
    let message = rejected(
        &g,
        || g.when(&outsider(), ldl_target()),
        RejectionCode::NotInCareTeam,
    );
    assert!(message.contains("gp-9"), "{message}");
    rejected(
        &g,
        || g.when(&actor("card-1", Role::Gp), ldl_target()),
        RejectionCode::RoleMismatch,
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
    rejected(
        &g,
        || g.when(&patient(), ldl_target()),
        RejectionCode::RoleNotPermitted,
    );
    rejected(
        &g,
        || g.when(&patient(), start_statin()),
        RejectionCode::RoleNotPermitted,
    );
    let practice = Command::RecordMeasurement(Measurement {
        value: Quantity::new(Measure::SystolicBloodPressure, 135).unwrap(),
        source: MeasurementSource::Practice,
    });
    rejected(
        &g,
        || g.when(&patient(), practice),
        RejectionCode::PatientMeasuresAtHome,
    );
    let letter = Command::AddNote(Note {
        kind: NoteKind::ReturnLetter,
        subject: Text::new("x").unwrap(),
        body: Text::default(),
    });
    rejected(
        &g,
        || g.when(&patient(), letter),
        RejectionCode::PatientWritesNotes,
    );
}

#[test]
fn practice_nurse_may_not_set_targets_and_only_the_second_line_extends_the_panel() {
    let g = Given::shared_care();
    rejected(
        &g,
        || g.when(&nurse(), ldl_target()),
        RejectionCode::RoleNotPermitted,
    );
    let extension = Command::ExtendAnnualPanel(PanelExtension {
        tests: vec![Measure::CreatineKinase],
    });
    let message = rejected(
        &g,
        || g.when(&gp(), extension.clone()),
        RejectionCode::RoleNotPermitted,
    );
    assert!(message.contains("agreement 2"), "{message}");
    g.when(&cardiologist(), extension).unwrap();
}

#[test]
fn gp_cannot_stop_cardiologists_statin_without_reason() {
    let g = Given::shared_care();
    g.by(&cardiologist(), vec![start_statin()]);
    let message = rejected(
        &g,
        || g.when(&gp(), stop_statin(ChangeReason::PatientPreference)),
        RejectionCode::Agreement4,
    );
    assert!(message.contains("agreement 4"), "{message}");
    rejected(
        &g,
        || {
            g.when(
                &gp(),
                stop_statin(ChangeReason::Other(Text::new("cheaper").unwrap())),
            )
        },
        RejectionCode::Agreement4,
    );
    rejected(
        &g,
        || g.when(&gp(), change_statin("20", ChangeReason::PatientPreference)),
        RejectionCode::Agreement4,
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
        || {
            g.when(
                &cardiologist(),
                stop_statin(ChangeReason::PatientPreference),
            )
        },
        RejectionCode::Agreement4,
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
        || g.when(&gp(), stop_statin(ChangeReason::SideEffects)),
        RejectionCode::MedicationNotActive,
    );
    rejected(
        &g,
        || g.when(&gp(), change_statin("20", ChangeReason::SideEffects)),
        RejectionCode::MedicationNotActive,
    );
    g.by(&gp(), vec![start_statin()]);
    rejected(
        &g,
        || g.when(&gp(), start_statin()),
        RejectionCode::MedicationAlreadyActive,
    );
    rejected(
        &g,
        || g.when(&gp(), change_statin("40", ChangeReason::SideEffects)),
        RejectionCode::DoseUnchanged,
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
        || g.when(&cardiologist(), withdraw.clone()),
        RejectionCode::TargetNotSet,
    );
    g.by(&cardiologist(), vec![ldl_target()]);
    g.when(&cardiologist(), withdraw).unwrap();
}

#[test]
fn notification_is_acknowledged_once_by_its_recipient_line() {
    let g = Given::shared_care();
    let target = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    let refusal = g
        .when(&cardiologist(), ack_to(target, Line::First))
        .unwrap_err();
    match refusal {
        Error::Rejected(r) => {
            assert_eq!(r.code, RejectionCode::NotTheRecipient);
            assert_eq!(r.kind, RejectionKind::NotPermitted, "a role refusal: 403");
        }
        other => panic!("{other:?}"),
    }
    rejected(
        &g,
        || g.when(&cardiologist(), ack_to(target, Line::Second)),
        RejectionCode::NotTheRecipient,
    );
    g.when(&gp(), ack_to(target, Line::First)).unwrap();
    rejected(
        &g,
        || g.when(&nurse(), ack_to(target, Line::First)),
        RejectionCode::AlreadyAcknowledged,
    );
    rejected(
        &g,
        || g.when(&gp(), ack_to(1, Line::First)),
        RejectionCode::UnknownNotification,
    );
}

#[test]
fn seed_004_the_patient_in_the_team_is_told_of_a_new_target_and_acknowledges_it_alone() {
    let g = Given::shared_care(); // the patient is in the team
    let target = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    // One event, two recipients, each acknowledged on its own.
    g.when(&gp(), ack_to(target, Line::First)).unwrap();
    rejected(
        &g,
        || g.when(&gp(), ack_to(target, Line::Patient)),
        RejectionCode::NotTheRecipient,
    );
    g.when(&patient(), ack_to(target, Line::Patient)).unwrap();
    rejected(
        &g,
        || g.when(&patient(), ack_to(target, Line::Patient)),
        RejectionCode::AlreadyAcknowledged,
    );
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
        || g.when(&gp(), correct(other_patients)),
        RejectionCode::NotThisPatientsEvent,
    );
    g.when(&gp(), correct(reading)).unwrap();
    rejected(
        &g,
        || g.when(&gp(), correct(reading)),
        RejectionCode::AlreadyCorrected,
    );
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
    assert_eq!(again.warnings[0].code, WarningCode::DuplicateLabWork);
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
        || g.when(&gp(), order("lab-3", &[Measure::Egfr])),
        RejectionCode::LabOrderExists,
    );
    rejected(
        &g,
        || g.when(&gp(), order("lab-4", &[])),
        RejectionCode::NoTests,
    );
}

#[test]
fn lab_result_must_answer_a_known_order() {
    let g = Given::shared_care();
    let result = Command::RecordLabResult(LabResult {
        order: Some(ElementId::parse("never").unwrap()),
        value: Quantity::new(Measure::LdlCholesterol, 24).unwrap(),
    });
    rejected(&g, || g.when(&gp(), result), RejectionCode::UnknownLabOrder);
}

#[test]
fn lead_must_fit_the_line() {
    let g = Given::shared_care();
    let wrong = member(
        &actor("card-2", Role::Cardiologist),
        Lead::Cvrm,
        Practitioner::Co,
    );
    rejected(
        &g,
        || g.when(&gp(), wrong),
        RejectionCode::LeadDoesNotFitLine,
    );
    rejected(
        &g,
        || g.when(&gp(), member(&nurse(), Lead::None, Practitioner::Co)),
        RejectionCode::AlreadyInCareTeam,
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
    rejected(
        &g,
        || g.when(&patient(), close.clone()),
        RejectionCode::GoalNotOpen,
    );
    g.when(
        &patient(),
        Command::SetLifestyleGoal(LifestyleGoal {
            goal: goal.clone(),
            description: Text::new("walk").unwrap(),
        }),
    )
    .unwrap();
    g.when(&patient(), close.clone()).unwrap();
    rejected(&g, || g.when(&patient(), close), RejectionCode::GoalNotOpen);
    rejected(
        &g,
        || {
            g.when(
                &patient(),
                Command::SetLifestyleGoal(LifestyleGoal {
                    goal,
                    description: Text::new("again").unwrap(),
                }),
            )
        },
        RejectionCode::GoalExists,
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
        matches!(result, Err(Error::Rejected(ref r)) if r.code == RejectionCode::MedicationNotActive),
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

// Care-team governance (agreement 1, seed 001).

fn assistant() -> Actor {
    actor("assistant-1", Role::PracticeAssistant)
}
fn second_gp() -> Actor {
    actor("gp-2", Role::Gp)
}
fn admin() -> Actor {
    actor("admin-1", Role::CareGroupAdmin)
}

fn hand_over(lead: Lead, to: &Actor) -> Command {
    Command::HandOverLead(LeadHandover {
        lead,
        to: to.id.clone(),
    })
}

fn remove(a: &Actor) -> Command {
    Command::RemoveCareTeamMember(MemberRemoval {
        actor: a.id.clone(),
    })
}

/// A refusal by a rule on who may do what: its code, a 403 kind, and nothing written.
fn not_permitted(
    given: &Given,
    when: impl FnOnce() -> Result<AppendOutcome, Error>,
    code: RejectionCode,
) {
    let head = given.ledger.head();
    let result = when();
    assert_eq!(given.ledger.head(), head, "nothing was written");
    match result {
        Err(Error::Rejected(r)) => {
            assert_eq!(r.code, code, "{}", r.message);
            assert_eq!(r.kind, RejectionKind::NotPermitted, "{code} is a 403");
        }
        other => panic!("expected refusal {code}, got {other:?}"),
    }
}

/// The GP founds the team as main practitioner for CVRM and adds the cardiologist as main
/// practitioner for the organ disease, and the practice assistant.
fn governed_team() -> Given {
    let g = Given::empty();
    g.by(&gp(), vec![member(&gp(), Lead::Cvrm, Practitioner::Main)]);
    g.by(
        &gp(),
        vec![
            member(&cardiologist(), Lead::OrganDisease, Practitioner::Main),
            member(&assistant(), Lead::None, Practitioner::Co),
        ],
    );
    g
}

#[test]
fn agreement_1_only_a_gp_or_a_specialist_founds_a_care_team() {
    for founder in [actor("pharm-1", Role::Pharmacist), assistant(), nurse()] {
        let g = Given::empty();
        not_permitted(
            &g,
            || g.when(&founder, member(&founder, Lead::None, Practitioner::Main)),
            RejectionCode::FounderNotPermitted,
        );
        not_permitted(
            &g,
            || {
                g.when(
                    &founder,
                    Command::StartSharedCare(SharedCare {
                        arrangement: Text::new("x").unwrap(),
                    }),
                )
            },
            RejectionCode::FounderNotPermitted,
        );
    }
    let g = Given::empty();
    g.when(
        &cardiologist(),
        member(&cardiologist(), Lead::OrganDisease, Practitioner::Main),
    )
    .unwrap();
}

#[test]
fn agreement_1_a_practice_assistant_cannot_remove_the_main_gp_nor_add_a_second_main() {
    let g = governed_team();
    not_permitted(
        &g,
        || g.when(&assistant(), remove(&gp())),
        RejectionCode::OnlyMainPractitionerRemoves,
    );
    rejected(
        &g,
        || {
            g.when(
                &assistant(),
                member(&second_gp(), Lead::Cvrm, Practitioner::Main),
            )
        },
        RejectionCode::LeadHasMainPractitioner,
    );
}

#[test]
fn agreement_1_only_the_main_practitioner_hands_the_lead_over_and_removes_their_lines_practitioners(
) {
    let g = governed_team();
    g.by(
        &gp(),
        vec![member(&second_gp(), Lead::None, Practitioner::Co)],
    );
    not_permitted(
        &g,
        || g.when(&second_gp(), hand_over(Lead::Cvrm, &second_gp())),
        RejectionCode::OnlyMainPractitionerHandsOver,
    );
    not_permitted(
        &g,
        || g.when(&cardiologist(), remove(&second_gp())),
        RejectionCode::OtherLinesMember,
    );
    // The main GP hands CVRM over and stays as co-practitioner; now only the new main removes.
    let handed = g
        .by(&gp(), vec![hand_over(Lead::Cvrm, &second_gp())])
        .events[0]
        .position;
    not_permitted(
        &g,
        || g.when(&gp(), remove(&assistant())),
        RejectionCode::OnlyMainPractitionerRemoves,
    );
    g.when(&second_gp(), remove(&assistant())).unwrap();
    // The other line was told of the handover.
    g.when(&cardiologist(), ack_to(handed, Line::Second))
        .unwrap();
}

#[test]
fn agreement_1_a_main_practitioner_hands_the_lead_over_before_leaving() {
    let g = governed_team();
    g.by(
        &gp(),
        vec![member(&second_gp(), Lead::None, Practitioner::Co)],
    );
    rejected(
        &g,
        || g.when(&gp(), remove(&gp())),
        RejectionCode::MainPractitionerHandsOverFirst,
    );
    g.by(&gp(), vec![hand_over(Lead::Cvrm, &second_gp())]);
    g.when(&gp(), remove(&gp())).unwrap();
}

#[test]
fn agreement_1_a_plan_founded_by_the_cardiologist_has_no_cvrm_lead_until_a_gp_takes_it() {
    let g = Given::empty();
    g.by(
        &cardiologist(),
        vec![Command::StartSharedCare(SharedCare {
            arrangement: Text::new("heart failure by cardiology").unwrap(),
        })],
    );
    let added = g
        .by(
            &cardiologist(),
            vec![
                member(&gp(), Lead::None, Practitioner::Co),
                member(&second_gp(), Lead::None, Practitioner::Co),
            ],
        )
        .events[0]
        .position;
    // The GP's line is told it was added to the team.
    g.when(&gp(), ack_to(added, Line::First)).unwrap();
    // The cardiologist cannot take CVRM; a GP takes it by handing it to themselves.
    rejected(
        &g,
        || g.when(&cardiologist(), hand_over(Lead::Cvrm, &cardiologist())),
        RejectionCode::LeadDoesNotFitLine,
    );
    not_permitted(
        &g,
        || g.when(&second_gp(), hand_over(Lead::Cvrm, &gp())),
        RejectionCode::OnlyMainPractitionerHandsOver,
    );
    g.when(&gp(), hand_over(Lead::Cvrm, &gp())).unwrap();
    not_permitted(
        &g,
        || g.when(&second_gp(), hand_over(Lead::Cvrm, &second_gp())),
        RejectionCode::OnlyMainPractitionerHandsOver,
    );
}

#[test]
fn agreement_1_a_care_group_admin_corrects_a_wrongly_founded_team_with_a_reason_and_both_lines_are_told(
) {
    let g = governed_team();
    // The admin is in no team and corrects only who is in it and who leads.
    not_permitted(
        &g,
        || g.when(&admin(), ldl_target()),
        RejectionCode::CareGroupAdminCorrectsTheTeam,
    );
    let without_reason = || {
        g.ledger.append(AppendRequest {
            patient: PatientId::parse(PATIENT).unwrap(),
            expected: ExpectedRevision::Any,
            actor: admin(),
            submissions: vec![Submission {
                command: member(&second_gp(), Lead::None, Practitioner::Co),
                occurred_at: None,
                reason: Text::default(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
    };
    rejected(&g, without_reason, RejectionCode::ReasonRequired);
    let fixed = g.by(
        &admin(),
        vec![
            member(&second_gp(), Lead::None, Practitioner::Co),
            hand_over(Lead::Cvrm, &second_gp()),
            remove(&gp()),
        ],
    );
    let removal = fixed.events[2].position;
    // Both lines are told of the correction.
    g.when(&second_gp(), ack_to(removal, Line::First)).unwrap();
    g.when(&cardiologist(), ack_to(removal, Line::Second))
        .unwrap();
    // The removed GP is out of the team.
    not_permitted(
        &g,
        || g.when(&gp(), ldl_target()),
        RejectionCode::NotInCareTeam,
    );
}

// Corrections (agreements 4 and 6): what an entry marked entered in error still counts for in
// the rules, and who may mark it.

fn correct(position: u64) -> Command {
    Command::MarkEnteredInError(Correction { position })
}

fn amlodipine() -> Command {
    Command::StartMedication(Medication {
        atc: AtcCode::parse("C08CA01").unwrap(),
        name: Text::new("amlodipine").unwrap(),
        dose: Dose::parse("5", DoseUnit::Mg).unwrap(),
        frequency: Text::new("1x daily").unwrap(),
        indication: None,
    })
}

fn lab_result(measure: Measure, scaled: i64) -> Command {
    Command::RecordLabResult(LabResult {
        order: None,
        value: Quantity::new(measure, scaled).unwrap(),
    })
}

#[test]
fn corrections_a_drug_whose_start_was_corrected_can_be_started_again_and_its_dose_changes_go_with_it(
) {
    let g = Given::shared_care();
    let start = g.by(&gp(), vec![start_statin()]).events[0].position;
    g.when(&gp(), change_statin("20", ChangeReason::PatientPreference))
        .unwrap();
    rejected(
        &g,
        || g.when(&gp(), start_statin()),
        RejectionCode::MedicationAlreadyActive,
    );
    g.when(&gp(), correct(start)).unwrap();
    rejected(
        &g,
        || g.when(&gp(), change_statin("10", ChangeReason::PatientPreference)),
        RejectionCode::MedicationNotActive,
    );
    g.when(&gp(), start_statin()).unwrap();
    // The new start is the active episode, at its own dose: the voided change does not carry over.
    rejected(
        &g,
        || g.when(&gp(), change_statin("40", ChangeReason::PatientPreference)),
        RejectionCode::DoseUnchanged,
    );
}

#[test]
fn corrections_a_corrected_order_raises_no_duplicate_lab_warning() {
    let g = Given::shared_care();
    let first = g
        .when_on_day(&gp(), order("lab-1", &[Measure::LdlCholesterol]), 0)
        .unwrap()
        .events[0]
        .position;
    g.when(&gp(), correct(first)).unwrap();
    let again = g
        .when_on_day(
            &cardiologist(),
            order("lab-2", &[Measure::LdlCholesterol]),
            3,
        )
        .unwrap();
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
    rejected(
        &g,
        || g.when(&gp(), order("lab-1", &[Measure::Egfr])),
        RejectionCode::LabOrderExists,
    );
}

#[test]
fn clinical_time_a_result_entered_late_is_compared_by_when_the_blood_was_drawn() {
    let g = Given::shared_care();
    g.when_on_day(&gp(), lab_result(Measure::LdlCholesterol, 24), -200)
        .unwrap();
    let today = g
        .when_on_day(&gp(), order("lab-1", &[Measure::LdlCholesterol]), 0)
        .unwrap();
    assert!(today.warnings.is_empty(), "{:?}", today.warnings);
    let late = g
        .when_on_day(&cardiologist(), lab_result(Measure::LdlCholesterol, 22), -5)
        .unwrap();
    assert_eq!(late.warnings.len(), 1, "the order lies 5 days after it");
    assert!(
        late.warnings[0].message.contains("5 day(s) later"),
        "{}",
        late.warnings[0].message
    );
}

#[test]
fn agreement_4_the_other_line_cannot_mark_a_prescription_entered_in_error() {
    let g = Given::shared_care();
    let start = g.by(&gp(), vec![amlodipine()]).events[0].position;
    let message = rejected(
        &g,
        || g.when(&cardiologist(), correct(start)),
        RejectionCode::CorrectionByOtherLine,
    );
    assert!(message.contains("stop_medication"), "{message}");
    assert!(message.contains("agreement 4"), "{message}");
}

#[test]
fn agreement_4_an_entry_is_corrected_by_its_author_or_their_own_line() {
    let g = Given::shared_care();
    let by_gp = g.by(&gp(), vec![ldl_target()]).events[0].position;
    let by_gp_too = g.by(&gp(), vec![order("lab-1", &[Measure::Hba1c])]).events[0].position;
    let by_patient = g.by(&patient(), vec![home_bp(210)]).events[0].position;
    rejected(
        &g,
        || g.when(&gp(), correct(by_patient)),
        RejectionCode::CorrectionByOtherLine,
    );
    g.when(&patient(), correct(by_patient)).unwrap();
    g.when(&gp(), correct(by_gp)).unwrap();
    g.when(&nurse(), correct(by_gp_too)).unwrap();
    let by_card = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    rejected(
        &g,
        || g.when(&patient(), correct(by_card)),
        RejectionCode::CorrectionByOtherLine,
    );
    rejected(
        &g,
        || g.when(&nurse(), correct(by_card)),
        RejectionCode::CorrectionByOtherLine,
    );
    g.when(&cardiologist(), correct(by_card)).unwrap();
}

#[test]
fn agreement_6_an_acknowledgement_is_corrected_only_by_its_author_and_the_notification_opens_again()
{
    let g = Given::shared_care();
    let target = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    let acked = g.by(&gp(), vec![ack_to(target, Line::First)]).events[0].position;
    rejected(
        &g,
        || g.when(&nurse(), correct(acked)),
        RejectionCode::AcknowledgementByItsAuthor,
    );
    rejected(
        &g,
        || g.when(&cardiologist(), correct(acked)),
        RejectionCode::AcknowledgementByItsAuthor,
    );
    g.when(&gp(), correct(acked)).unwrap();
    g.when(&nurse(), ack_to(target, nurse().line())).unwrap();
}

#[test]
fn agreement_6_correcting_an_entry_the_other_line_was_told_of_tells_that_line() {
    let g = Given::shared_care();
    let target = g.by(&cardiologist(), vec![ldl_target()]).events[0].position;
    let correction = g.by(&cardiologist(), vec![correct(target)]).events[0].position;
    rejected(
        &g,
        || g.when(&gp(), ack_to(target, gp().line())),
        RejectionCode::NotificationWithdrawn,
    );
    rejected(
        &g,
        || g.when(&cardiologist(), ack_to(correction, cardiologist().line())),
        RejectionCode::NotTheRecipient,
    );
    g.when(&gp(), ack_to(correction, gp().line())).unwrap();
    // An entry nobody else was told of: its correction tells nobody.
    let reading = g.by(&nurse(), vec![home_bp(150)]).events[0].position;
    let quiet = g.by(&gp(), vec![correct(reading)]).events[0].position;
    rejected(
        &g,
        || g.when(&cardiologist(), ack_to(quiet, cardiologist().line())),
        RejectionCode::UnknownNotification,
    );
}

#[test]
fn agreement_6_correcting_a_start_tells_the_line_that_changed_its_dose() {
    // No shared care: the GP's start told nobody, but the cardiologist's dose change (for side
    // effects, agreement 4) is voided with it, so the cardiologist is told.
    let g = Given::empty();
    g.by(&gp(), vec![member(&gp(), Lead::Cvrm, Practitioner::Main)]);
    g.by(
        &gp(),
        vec![member(
            &cardiologist(),
            Lead::OrganDisease,
            Practitioner::Co,
        )],
    );
    let start = g.by(&gp(), vec![start_statin()]).events[0].position;
    g.by(
        &cardiologist(),
        vec![change_statin("20", ChangeReason::SideEffects)],
    );
    let correction = g.by(&gp(), vec![correct(start)]).events[0].position;
    g.when(&cardiologist(), ack_to(correction, cardiologist().line()))
        .unwrap();
}

#[test]
fn corrections_are_final_a_correction_is_not_itself_corrected() {
    let g = Given::shared_care();
    let reading = g.by(&nurse(), vec![home_bp(150)]).events[0].position;
    let correction = g.by(&nurse(), vec![correct(reading)]).events[0].position;
    let message = rejected(
        &g,
        || g.when(&nurse(), correct(correction)),
        RejectionCode::CorrectionIsFinal,
    );
    assert!(message.contains("record that fact again"), "{message}");
}

#[test]
fn corrections_a_stop_followed_by_a_new_start_stays_until_that_start_is_corrected() {
    let g = Given::shared_care();
    g.by(&gp(), vec![start_statin()]);
    let stop = g
        .by(&gp(), vec![stop_statin(ChangeReason::PatientPreference)])
        .events[0]
        .position;
    let restart = g.by(&gp(), vec![start_statin()]).events[0].position;
    rejected(
        &g,
        || g.when(&gp(), correct(stop)),
        RejectionCode::RestartedAfterStop,
    );
    g.when(&gp(), correct(restart)).unwrap();
    g.when(&gp(), correct(stop)).unwrap();
    // The first episode stands again: the statin is active.
    rejected(
        &g,
        || g.when(&gp(), start_statin()),
        RejectionCode::MedicationAlreadyActive,
    );
}

#[test]
fn corrections_a_corrected_start_of_shared_care_ends_its_notifications() {
    let g = Given::empty();
    g.by(&gp(), vec![member(&gp(), Lead::Cvrm, Practitioner::Main)]);
    g.by(
        &gp(),
        vec![member(
            &cardiologist(),
            Lead::OrganDisease,
            Practitioner::Co,
        )],
    );
    let shared = g
        .by(
            &gp(),
            vec![Command::StartSharedCare(SharedCare {
                arrangement: Text::new("shared").unwrap(),
            })],
        )
        .events[0]
        .position;
    let told = g.by(&gp(), vec![start_statin()]).events[0].position;
    g.by(&gp(), vec![correct(shared)]);
    let untold = g.by(&gp(), vec![amlodipine()]).events[0].position;
    // What was told while shared care stood in the record stays told.
    g.when(&cardiologist(), ack_to(told, cardiologist().line()))
        .unwrap();
    rejected(
        &g,
        || g.when(&cardiologist(), ack_to(untold, cardiologist().line())),
        RejectionCode::UnknownNotification,
    );
    rejected(
        &g,
        || {
            g.when(
                &gp(),
                Command::EndSharedCare(SharedCare {
                    arrangement: Text::new("x").unwrap(),
                }),
            )
        },
        RejectionCode::SharedCareInactive,
    );
}

#[test]
fn corrections_a_corrected_care_team_addition_takes_the_member_out_of_the_team() {
    let g = Given::empty();
    let founded = g
        .by(&gp(), vec![member(&gp(), Lead::Cvrm, Practitioner::Main)])
        .events[0]
        .position;
    let added = g
        .by(
            &gp(),
            vec![member(
                &cardiologist(),
                Lead::OrganDisease,
                Practitioner::Co,
            )],
        )
        .events[0]
        .position;
    g.by(&cardiologist(), vec![ldl_target()]);
    g.by(&gp(), vec![correct(added)]);
    rejected(
        &g,
        || g.when(&cardiologist(), ldl_target()),
        RejectionCode::NotInCareTeam,
    );
    rejected(
        &g,
        || g.when(&gp(), correct(founded)),
        RejectionCode::NoPractitionerLeft,
    );
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

fn codes(outcome: &AppendOutcome) -> Vec<WarningCode> {
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
    assert_eq!(codes(&again), [WarningCode::KnownIntolerance]);
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
    assert_eq!(codes(&rosuva), [WarningCode::IntoleranceInSameClass]);
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
    rejected(
        &g,
        || g.when(&patient(), record.clone()),
        RejectionCode::RoleNotPermitted,
    );
    g.by(&cardiologist(), vec![record]);
    let metoprolol = g.when(&gp(), start("C07AB02", "metoprolol", None)).unwrap();
    assert_eq!(codes(&metoprolol), [WarningCode::KnownContraIndication]);
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
    assert_eq!(codes(&incomplete), [WarningCode::AnnualPanelIncomplete]);
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
    let message = rejected(&g, || g.when(&gp(), wrong), RejectionCode::TestNotInOrder);
    assert!(message.contains("LDL cholesterol"), "{message}");
}

#[test]
fn problems_are_recorded_once_resolved_while_active_and_named_by_an_indication() {
    use careledger_core::clinical::{Indication, ProblemCodeSystem, ProblemResolution};
    let g = Given::shared_care();
    let mi = problem("mi", ProblemCodeSystem::Icpc1Nl, "K75");
    rejected(
        &g,
        || g.when(&nurse(), mi.clone()),
        RejectionCode::RoleNotPermitted,
    );
    g.by(&gp(), vec![mi.clone()]);
    g.by(
        &cardiologist(),
        vec![problem("hf", ProblemCodeSystem::Icd10, "I50")],
    );
    rejected(&g, || g.when(&gp(), mi), RejectionCode::ProblemExists);
    let unknown = Some(Indication::Problem(ElementId::parse("dm").unwrap()));
    rejected(
        &g,
        || g.when(&gp(), start("C10AA05", "atorvastatin", unknown)),
        RejectionCode::UnknownProblem,
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
    rejected(
        &g,
        || g.when(&cardiologist(), resolve),
        RejectionCode::ProblemNotActive,
    );
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

#[test]
fn agreement_1_a_corrected_handover_gives_the_lead_back_to_its_main_practitioner() {
    let g = governed_team();
    g.by(
        &gp(),
        vec![member(&second_gp(), Lead::None, Practitioner::Co)],
    );
    let handover = g
        .by(&gp(), vec![hand_over(Lead::Cvrm, &second_gp())])
        .events[0]
        .position;
    // The new main practitioner removes; the former one may not.
    not_permitted(
        &g,
        || g.when(&gp(), remove(&assistant())),
        RejectionCode::OnlyMainPractitionerRemoves,
    );
    g.when(&gp(), correct(handover)).unwrap();
    // The handover counts for nothing: the GP leads CVRM again, gp-2 is a co-practitioner.
    not_permitted(
        &g,
        || g.when(&second_gp(), remove(&assistant())),
        RejectionCode::OnlyMainPractitionerRemoves,
    );
    g.when(&gp(), remove(&assistant())).unwrap();
}

fn break_glass(hours: u8) -> Command {
    Command::BreakGlass(EmergencyAccess { hours })
}

#[test]
fn seed_002_breaking_the_glass_opens_the_record_for_acute_interventions_until_it_ends() {
    use careledger_core::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;
    // The ledger's clock an hour after the clinical times the helpers write.
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
        1_772_355_600_000_000 + 3_600_000_000,
    )));
    let config = LedgerConfig {
        clock: clock.clone(),
        ..LedgerConfig::default()
    };
    let g = Given::shared_care_with(config);
    g.by(&cardiologist(), vec![start_statin()]);
    let post = actor("ooh-1", Role::OutOfHoursGp);
    // Outside the team, nothing is written before the glass is broken.
    rejected(
        &g,
        || g.when(&post, stop_statin(ChangeReason::PatientPreference)),
        RejectionCode::NotInCareTeam,
    );
    let opened = g.by(&post, vec![break_glass(2)]).events[0].position;
    // Both lines are told at once of the access.
    g.when(&gp(), ack_to(opened, Line::First)).unwrap();
    g.when(&cardiologist(), ack_to(opened, Line::Second))
        .unwrap();
    // Agreement 4 yields to acute need: a first-line practitioner stops the cardiologist's
    // statin for a reason agreement 4 would refuse from the GP; both lines are told.
    let stop = g
        .when(&post, stop_statin(ChangeReason::PatientPreference))
        .unwrap()
        .events[0]
        .position;
    g.when(&gp(), ack_to(stop, Line::First)).unwrap();
    g.when(&cardiologist(), ack_to(stop, Line::Second)).unwrap();
    g.when(&post, home_bp(190)).unwrap();
    // The team's own governance stays with the team.
    rejected(
        &g,
        || g.when(&post, ldl_target()),
        RejectionCode::EmergencyAccessLimited,
    );
    rejected(
        &g,
        || g.when(&post, member(&post, Lead::None, Practitioner::Co)),
        RejectionCode::EmergencyAccessLimited,
    );
    // A broken glass stays on the record.
    rejected(
        &g,
        || {
            g.when(
                &gp(),
                Command::MarkEnteredInError(Correction { position: opened }),
            )
        },
        RejectionCode::EmergencyAccessStays,
    );
    // After two hours the access has ended.
    clock.advance(Duration::from_secs(2 * 3600 + 1));
    rejected(
        &g,
        || g.when(&post, home_bp(180)),
        RejectionCode::NotInCareTeam,
    );
    // Breaking it again opens it again.
    g.by(&post, vec![break_glass(1)]);
    g.when(&post, home_bp(180)).unwrap();
}

#[test]
fn seed_002_only_a_practitioner_outside_the_team_breaks_the_glass_for_a_day_at_most() {
    let g = Given::shared_care();
    let emergency = actor("seh-1", Role::EmergencyPhysician);
    rejected(
        &g,
        || g.when(&gp(), break_glass(4)),
        RejectionCode::AlreadyInCareTeam,
    );
    rejected(
        &g,
        || g.when(&patient(), break_glass(4)),
        RejectionCode::EmergencyAccessRefused,
    );
    rejected(
        &g,
        || g.when(&admin(), break_glass(4)),
        RejectionCode::EmergencyAccessRefused,
    );
    for hours in [0, 25] {
        rejected(
            &g,
            || g.when(&emergency, break_glass(hours)),
            RejectionCode::EmergencyAccessRefused,
        );
    }
    // The reason is the access's justification: required.
    let head = g.ledger.head();
    let refused = g.ledger.append(AppendRequest {
        patient: PatientId::parse(PATIENT).unwrap(),
        expected: ExpectedRevision::Any,
        actor: emergency.clone(),
        submissions: vec![Submission {
            command: break_glass(4),
            occurred_at: None,
            reason: Text::default(),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    });
    match refused {
        Err(Error::Rejected(r)) => assert_eq!(r.code, RejectionCode::ReasonRequired),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.ledger.head(), head);
    // A patient without a record is refused as any outsider is.
    rejected(
        &g,
        || append_at(&g.ledger, &emergency, vec![break_glass(4)], 0, "999990019"),
        RejectionCode::NoCareTeam,
    );
    g.by(&emergency, vec![break_glass(24)]);
}
