//! Any submission, written as a command body and read back, is the same submission, and the old
//! parser reads the same body to it too.

use proptest::prelude::*;
use proptest::strategy::Union;

use careledger_core::clinical::{
    Indication, Intolerance, IntoleranceKind, Problem, ProblemCode, ProblemCodeSystem,
    ProblemResolution, SmokingObservation, SmokingStatus,
};
use careledger_core::event::*;
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::{Submission, Timestamp};

use super::legacy_dto as dto;
use crate::wire::{parse_append_body, AppendBody, CommandBody, ExpectedRevisionWire};

fn text() -> impl Strategy<Value = Text> {
    prop_oneof![
        "\\PC{0,24}",
        "[a-z \n\t]{0,12}",
        Just(String::new()),
        Just("é".repeat(Text::MAX_LEN / 2)),
    ]
    .prop_map(|t| Text::new(t).unwrap())
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._:-]{1,64}"
}

fn element() -> impl Strategy<Value = ElementId> {
    id().prop_map(|i| ElementId::parse(&i).unwrap())
}

fn actor() -> impl Strategy<Value = ActorId> {
    id().prop_map(|i| ActorId::parse(&i).unwrap())
}

fn atc() -> impl Strategy<Value = AtcCode> {
    "[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?".prop_map(|a| AtcCode::parse(&a).unwrap())
}

fn pick<T: Clone + std::fmt::Debug + 'static>(all: Vec<T>) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

fn measure() -> impl Strategy<Value = Measure> {
    pick(Measure::ALL.to_vec())
}

fn quantity() -> impl Strategy<Value = Quantity> {
    measure().prop_flat_map(|m| {
        let (min, max) = m.range_scaled();
        (min..=max).prop_map(move |scaled| Quantity::new(m, scaled).unwrap())
    })
}

fn dose() -> impl Strategy<Value = Dose> {
    (
        1..=Dose::MAX_MILLI,
        pick(vec![
            DoseUnit::Mg,
            DoseUnit::Microgram,
            DoseUnit::Ml,
            DoseUnit::Unit,
            DoseUnit::Tablet,
        ]),
    )
        .prop_map(|(milli, unit)| Dose::new(milli, unit).unwrap())
}

fn change_reason() -> impl Strategy<Value = ChangeReason> {
    prop_oneof![
        Just(ChangeReason::SideEffects),
        Just(ChangeReason::TargetNotReached),
        Just(ChangeReason::PatientPreference),
        text().prop_map(ChangeReason::Other),
    ]
}

fn tests() -> impl Strategy<Value = Vec<Measure>> {
    proptest::collection::vec(measure(), 0..=42)
}

fn line() -> impl Strategy<Value = Line> {
    pick(vec![
        Line::First,
        Line::Second,
        Line::Patient,
        Line::CareGroup,
    ])
}

fn lead() -> impl Strategy<Value = Lead> {
    pick(vec![Lead::Cvrm, Lead::OrganDisease, Lead::None])
}

fn problem_code() -> impl Strategy<Value = ProblemCode> {
    prop_oneof![
        "[ABDFHKLNPRSTUWXZ][0-9]{2}(\\.[0-9]{2})?".prop_map(|c| ProblemCode::parse(
            ProblemCodeSystem::Icpc1Nl,
            &c
        )
        .unwrap()),
        "[A-Z][0-9]{2}(\\.[A-Z0-9]{1,4})?".prop_map(|c| ProblemCode::parse(
            ProblemCodeSystem::Icd10,
            &c
        )
        .unwrap()),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let members = (
        actor(),
        text(),
        proptest::option::of("[0-9]{8}"),
        pick(Role::ALL.to_vec()),
        lead(),
        pick(vec![
            Practitioner::Main,
            Practitioner::Co,
            Practitioner::NotApplicable,
        ]),
    )
        .prop_map(|(actor, name, agb, role, lead, practitioner)| {
            Command::AddCareTeamMember(Member {
                actor,
                name,
                agb: agb.map(|a| AgbCode::parse(&a).unwrap()),
                role,
                lead,
                practitioner,
            })
        });
    let indication = prop_oneof![
        Just(None),
        element().prop_map(|p| Some(Indication::Problem(p))),
        text().prop_map(|w| Some(Indication::Words(w))),
    ];
    let bases = pick(vec![
        TargetBasis::NhgGuideline,
        TargetBasis::EscGuideline,
        TargetBasis::Individual,
    ]);
    let comparators = pick(vec![
        Comparator::AtMost,
        Comparator::Below,
        Comparator::AtLeast,
        Comparator::Above,
    ]);
    Union::new(vec![
        members.boxed(),
        actor()
            .prop_map(|actor| Command::RemoveCareTeamMember(MemberRemoval { actor }))
            .boxed(),
        text()
            .prop_map(|arrangement| Command::StartSharedCare(SharedCare { arrangement }))
            .boxed(),
        text()
            .prop_map(|arrangement| Command::EndSharedCare(SharedCare { arrangement }))
            .boxed(),
        (comparators, quantity(), bases, text())
            .prop_map(|(comparator, value, basis, rationale)| {
                Command::SetTarget(Target {
                    comparator,
                    value,
                    basis,
                    rationale,
                })
            })
            .boxed(),
        measure()
            .prop_map(|measure| Command::WithdrawTarget(TargetWithdrawal { measure }))
            .boxed(),
        (atc(), text(), dose(), text(), indication)
            .prop_map(|(atc, name, dose, frequency, indication)| {
                Command::StartMedication(Medication {
                    atc,
                    name,
                    dose,
                    frequency,
                    indication,
                })
            })
            .boxed(),
        (atc(), dose(), text(), change_reason())
            .prop_map(|(atc, dose, frequency, reason)| {
                Command::ChangeDose(DoseChange {
                    atc,
                    dose,
                    frequency,
                    reason,
                })
            })
            .boxed(),
        (atc(), change_reason())
            .prop_map(|(atc, reason)| Command::StopMedication(MedicationStop { atc, reason }))
            .boxed(),
        (atc(), text(), text())
            .prop_map(|(atc, name, preference)| {
                Command::RecordMedicationPreference(MedicationPreference {
                    atc,
                    name,
                    preference,
                })
            })
            .boxed(),
        (element(), tests(), any::<bool>())
            .prop_map(|(order, tests, annual_panel)| {
                Command::OrderLab(LabOrder {
                    order,
                    tests,
                    annual_panel,
                })
            })
            .boxed(),
        tests()
            .prop_map(|tests| Command::ExtendAnnualPanel(PanelExtension { tests }))
            .boxed(),
        (proptest::option::of(element()), quantity())
            .prop_map(|(order, value)| Command::RecordLabResult(LabResult { order, value }))
            .boxed(),
        (
            quantity(),
            pick(vec![
                MeasurementSource::Practice,
                MeasurementSource::Hospital,
                MeasurementSource::SelfMeasuredAtHome,
            ]),
        )
            .prop_map(|(value, source)| Command::RecordMeasurement(Measurement { value, source }))
            .boxed(),
        (element(), text())
            .prop_map(|(goal, description)| {
                Command::SetLifestyleGoal(LifestyleGoal { goal, description })
            })
            .boxed(),
        (
            element(),
            pick(vec![
                GoalOutcome::Achieved,
                GoalOutcome::Abandoned,
                GoalOutcome::Replaced,
            ]),
        )
            .prop_map(|(goal, outcome)| Command::CloseLifestyleGoal(GoalClosure { goal, outcome }))
            .boxed(),
        (
            pick(vec![
                NoteKind::Note,
                NoteKind::ReturnLetter,
                NoteKind::InterimLetter,
            ]),
            text(),
            text(),
        )
            .prop_map(|(kind, subject, body)| {
                Command::AddNote(Note {
                    kind,
                    subject,
                    body,
                })
            })
            .boxed(),
        (any::<u64>(), line())
            .prop_map(|(notification, recipient)| {
                Command::AcknowledgeNotification(Acknowledgement {
                    notification,
                    recipient,
                })
            })
            .boxed(),
        any::<u64>()
            .prop_map(|position| Command::MarkEnteredInError(Correction { position }))
            .boxed(),
        (lead(), actor())
            .prop_map(|(lead, to)| Command::HandOverLead(LeadHandover { lead, to }))
            .boxed(),
        (
            atc(),
            text(),
            pick(vec![
                IntoleranceKind::Intolerance,
                IntoleranceKind::ContraIndication,
            ]),
            text(),
        )
            .prop_map(|(atc, substance, kind, reaction)| {
                Command::RecordIntolerance(Intolerance {
                    atc,
                    substance,
                    kind,
                    reaction,
                })
            })
            .boxed(),
        (element(), problem_code(), text())
            .prop_map(|(problem, code, description)| {
                Command::RecordProblem(Problem {
                    problem,
                    code,
                    description,
                })
            })
            .boxed(),
        element()
            .prop_map(|problem| Command::ResolveProblem(ProblemResolution { problem }))
            .boxed(),
        pick(SmokingStatus::ALL.to_vec())
            .prop_map(|status| Command::RecordSmokingStatus(SmokingObservation { status }))
            .boxed(),
    ])
}

/// Any time from year 1 to 9999, to the microsecond.
fn time() -> impl Strategy<Value = Timestamp> {
    (-62_135_596_800_000_000i64..=253_402_300_799_999_999).prop_map(Timestamp::from_micros)
}

fn submission() -> impl Strategy<Value = Submission> {
    (command(), proptest::option::of(time()), text()).prop_map(|(command, occurred_at, reason)| {
        Submission {
            command,
            occurred_at,
            reason,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn any_submission_written_as_a_body_reads_back_the_same(
        submissions in proptest::collection::vec(submission(), 1..4),
        acting in line(),
        expected in prop_oneof![
            Just(None),
            Just(Some(ExpectedRevisionWire::Any)),
            Just(Some(ExpectedRevisionWire::NoStream)),
            any::<u64>().prop_map(|n| Some(ExpectedRevisionWire::Exact(n))),
        ],
    ) {
        let body = AppendBody {
            expected_revision: expected,
            commands: submissions.iter().map(|s| CommandBody::try_from(s).unwrap()).collect(),
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        let (read_expected, read) = parse_append_body(&bytes, acting).unwrap();
        prop_assert_eq!(read_expected, expected.map(Into::into));
        prop_assert_eq!(&read, &submissions);
        // The old parser reads the same body to the same submissions.
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let old = dto::append_body(&value, acting).unwrap();
        prop_assert_eq!(&old.submissions, &submissions);
        // And the body itself reads back through serde to the same body.
        let again: AppendBody = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(again, body);
    }
}
