//! The clinical catalogue beyond targets and medication: intolerances and contra-indications,
//! the problem list, the indication of a medication, smoking status, and the rules on them and
//! on lab orders (test-by-test closure, the annual panel with the specialist's additions).
//!
//! [`ClinicalState`] is the part of a patient's write-model state these rules need; `decide`
//! folds it next to its own and calls [`check`] for every command.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::decide::{Warning, WarningCode};
use crate::error::{InvalidInput, Rejection, RejectionCode};
use crate::event::{ChangeReason, Command, Event};
use crate::ids::{ActorId, AtcCode, ElementId, Text};
use crate::quantity::Measure;
use crate::record::{RecordedEvent, Timestamp};
use crate::role::Role;

/// An intolerance (the patient reacted badly) or a contra-indication (the substance must not be
/// given).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum IntoleranceKind {
    /// The patient had a reaction to the substance (e.g. myalgia on a statin).
    Intolerance,
    /// The substance must not be given (e.g. a beta blocker with severe asthma).
    ContraIndication,
}

impl IntoleranceKind {
    /// The snake-case code used in JSON.
    pub fn code(self) -> &'static str {
        match self {
            IntoleranceKind::Intolerance => "intolerance",
            IntoleranceKind::ContraIndication => "contra_indication",
        }
    }
}

impl std::fmt::Display for IntoleranceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IntoleranceKind::Intolerance => "intolerance",
            IntoleranceKind::ContraIndication => "contra-indication",
        })
    }
}

/// An intolerance or contra-indication recorded directly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intolerance {
    /// The substance (`C10AA05`) or group (`C10AA`), as an ATC code.
    pub atc: AtcCode,
    /// The substance's name ("atorvastatin").
    pub substance: Text,
    /// Intolerance or contra-indication.
    pub kind: IntoleranceKind,
    /// The reaction or the reason, in words ("myalgia, CK raised").
    pub reaction: Text,
}

/// The code system of a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProblemCodeSystem {
    /// ICPC-1-NL, the Dutch general-practice classification (`K75`, `T90.02`).
    Icpc1Nl,
    /// ICD-10, used in hospitals (`I21`, `I50.9`).
    Icd10,
}

impl ProblemCodeSystem {
    /// The FHIR system URI.
    pub fn uri(self) -> &'static str {
        match self {
            ProblemCodeSystem::Icpc1Nl => "http://hl7.org/fhir/sid/icpc-1-nl",
            ProblemCodeSystem::Icd10 => "http://hl7.org/fhir/sid/icd-10",
        }
    }

    /// The snake-case code used in JSON (`icpc_1_nl`, `icd_10`).
    pub fn code(self) -> &'static str {
        match self {
            ProblemCodeSystem::Icpc1Nl => "icpc_1_nl",
            ProblemCodeSystem::Icd10 => "icd_10",
        }
    }

    /// Parses the snake-case code or the FHIR system URI.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        [ProblemCodeSystem::Icpc1Nl, ProblemCodeSystem::Icd10]
            .into_iter()
            .find(|s| s.code() == raw || s.uri() == raw)
            .ok_or_else(|| {
                InvalidInput::new(
                    "code system",
                    format!(
                        "{raw:?} is unknown; use icpc_1_nl (general practice) or icd_10 (hospital)"
                    ),
                )
            })
    }
}

/// A problem code, valid in its system: ICPC-1-NL is a chapter letter and two digits with an
/// optional two-digit Dutch extension (`K75`, `T90.02`); ICD-10 a letter, two digits and an
/// optional subdivision (`I21`, `I50.9`, `E11.65`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ProblemCodeParts")]
pub struct ProblemCode {
    system: ProblemCodeSystem,
    code: String,
}

/// The stored parts of a [`ProblemCode`], validated again when read.
#[derive(Deserialize)]
struct ProblemCodeParts {
    system: ProblemCodeSystem,
    code: String,
}

impl TryFrom<ProblemCodeParts> for ProblemCode {
    type Error = InvalidInput;

    fn try_from(parts: ProblemCodeParts) -> Result<Self, Self::Error> {
        ProblemCode::parse(parts.system, &parts.code)
    }
}

impl ProblemCode {
    /// Parses a code of `system`, upper-casing it.
    pub fn parse(system: ProblemCodeSystem, raw: &str) -> Result<Self, InvalidInput> {
        let code = raw.trim().to_ascii_uppercase();
        let (stem, extension) = match code.split_once('.') {
            Some((stem, ext)) => (stem, Some(ext)),
            None => (code.as_str(), None),
        };
        let b = stem.as_bytes();
        let stem_ok =
            b.len() == 3 && b[0].is_ascii_uppercase() && b[1..].iter().all(u8::is_ascii_digit);
        let ok = stem_ok
            && match system {
                ProblemCodeSystem::Icpc1Nl => {
                    b"ABDFHKLNPRSTUWXZ".contains(&b[0])
                        && extension
                            .is_none_or(|e| e.len() == 2 && e.bytes().all(|c| c.is_ascii_digit()))
                }
                ProblemCodeSystem::Icd10 => extension.is_none_or(|e| {
                    (1..=4).contains(&e.len()) && e.bytes().all(|c| c.is_ascii_alphanumeric())
                }),
            };
        if !ok {
            let example = match system {
                ProblemCodeSystem::Icpc1Nl => "K75 or T90.02",
                ProblemCodeSystem::Icd10 => "I21 or I50.9",
            };
            return Err(InvalidInput::new(
                "problem code",
                format!(
                    "{raw:?} is not a {} code; expected a form like {example}",
                    system.code()
                ),
            ));
        }
        Ok(Self { system, code })
    }

    /// The code system.
    pub fn system(&self) -> ProblemCodeSystem {
        self.system
    }

    /// The code (`K75`).
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let system = match self.system {
            ProblemCodeSystem::Icpc1Nl => "ICPC",
            ProblemCodeSystem::Icd10 => "ICD-10",
        };
        write!(f, "{system} {}", self.code)
    }
}

/// A problem on the problem list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The writer's id for the problem, unique per patient; a medication's indication names it.
    pub problem: ElementId,
    /// The coded problem.
    pub code: ProblemCode,
    /// In words ("myocardial infarction 2024, anterior wall").
    pub description: Text,
}

/// A problem that is no longer active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemResolution {
    /// Which active problem.
    pub problem: ElementId,
}

/// Why a medication is given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Indication {
    /// A problem on the patient's problem list, by its id.
    Problem(ElementId),
    /// In words, when the problem is not on the list.
    Words(Text),
}

/// Tobacco smoking status, the answers of LOINC 72166-2 as SNOMED CT findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SmokingStatus {
    /// Never smoked tobacco.
    Never,
    /// Ex-smoker.
    Former,
    /// Smokes now.
    Current,
}

impl SmokingStatus {
    /// Every status.
    pub const ALL: [SmokingStatus; 3] = [
        SmokingStatus::Never,
        SmokingStatus::Former,
        SmokingStatus::Current,
    ];

    /// The LOINC code of the observation: tobacco smoking status.
    pub const LOINC: &'static str = "72166-2";

    /// The snake-case code used in JSON.
    pub fn code(self) -> &'static str {
        match self {
            SmokingStatus::Never => "never",
            SmokingStatus::Former => "former",
            SmokingStatus::Current => "current",
        }
    }

    /// The SNOMED CT finding.
    pub fn snomed(self) -> &'static str {
        match self {
            SmokingStatus::Never => "266919005",
            SmokingStatus::Former => "8517006",
            SmokingStatus::Current => "77176002",
        }
    }

    /// A human name ("ex-smoker").
    pub fn name(self) -> &'static str {
        match self {
            SmokingStatus::Never => "never smoked tobacco",
            SmokingStatus::Former => "ex-smoker",
            SmokingStatus::Current => "smoker",
        }
    }

    /// Parses the snake-case code.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Self::ALL
            .into_iter()
            .find(|s| s.code() == raw)
            .ok_or_else(|| {
                InvalidInput::new(
                    "smoking status",
                    format!("{raw:?} is unknown; use never, former or current"),
                )
            })
    }
}

/// A smoking-status observation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokingObservation {
    /// The status.
    pub status: SmokingStatus,
}

/// An intolerance or contra-indication as the rules know it: what, who, when and where from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownIntolerance {
    /// The substance or group.
    pub atc: AtcCode,
    /// Its name.
    pub substance: Text,
    /// Intolerance or contra-indication.
    pub kind: IntoleranceKind,
    /// The reaction in words.
    pub reaction: Text,
    /// Who recorded it (or stopped the medication for side effects).
    pub by: ActorId,
    /// Their display name.
    pub by_name: Text,
    /// Their role.
    pub role: Role,
    /// When, by the clinician's word.
    pub at: Timestamp,
    /// The position of the event that recorded it.
    pub position: u64,
}

impl KnownIntolerance {
    /// The intolerance a stop for side effects records: the reaction is the stop's reason in
    /// words, or "side effects" when none was given.
    pub fn from_stop(recorded: &RecordedEvent, atc: &AtcCode, substance: Option<&Text>) -> Self {
        let record = &recorded.record;
        let reaction = if record.reason.as_str().trim().is_empty() {
            Text::new("side effects").unwrap_or_default()
        } else {
            record.reason.clone()
        };
        Self {
            atc: atc.clone(),
            substance: substance
                .cloned()
                .unwrap_or_else(|| Text::new(atc.as_str()).unwrap_or_default()),
            kind: IntoleranceKind::Intolerance,
            reaction,
            by: record.actor.id.clone(),
            by_name: record.actor.name.clone(),
            role: record.actor.role,
            at: record.occurred_at,
            position: recorded.position,
        }
    }
}

/// The ATC level-4 prefix (chemical subgroup, e.g. `C10AA` for the statins) of a code, if the
/// code is that long.
pub fn atc_class(atc: &AtcCode) -> Option<&str> {
    atc.as_str().get(..5)
}

/// The part of a patient's write-model state the catalogue rules need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClinicalState {
    intolerances: Vec<KnownIntolerance>,
    /// Names of medications ever started, for the intolerance a stop records.
    medication_names: BTreeMap<AtcCode, Text>,
    /// Problems ever recorded: true while active; with the recording position.
    problems: BTreeMap<ElementId, (bool, u64)>,
    /// The specialist's panel additions, with the position that added each.
    panel_additions: BTreeMap<Measure, u64>,
    /// The tests of each lab order.
    order_tests: BTreeMap<ElementId, Vec<Measure>>,
}

impl ClinicalState {
    /// Intolerances and contra-indications known, in the order recorded.
    pub fn intolerances(&self) -> &[KnownIntolerance] {
        &self.intolerances
    }

    /// True when the problem was recorded and is not resolved.
    pub fn problem_active(&self, problem: &ElementId) -> bool {
        self.problems
            .get(problem)
            .is_some_and(|(active, _)| *active)
    }

    /// The specialist's additions to the annual panel.
    pub fn panel_additions(&self) -> impl Iterator<Item = Measure> + '_ {
        self.panel_additions.keys().copied()
    }

    /// Folds one recorded event of the patient in.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        let record = &recorded.record;
        match &record.event {
            Event::MedicationStarted(m) => {
                self.medication_names.insert(m.atc.clone(), m.name.clone());
            }
            Event::MedicationStopped(s) if s.reason == ChangeReason::SideEffects => {
                let name = self.medication_names.get(&s.atc);
                let known = KnownIntolerance::from_stop(recorded, &s.atc, name);
                self.intolerances.push(known);
            }
            Event::IntoleranceRecorded(i) => self.intolerances.push(KnownIntolerance {
                atc: i.atc.clone(),
                substance: i.substance.clone(),
                kind: i.kind,
                reaction: i.reaction.clone(),
                by: record.actor.id.clone(),
                by_name: record.actor.name.clone(),
                role: record.actor.role,
                at: record.occurred_at,
                position: recorded.position,
            }),
            Event::ProblemRecorded(p) => {
                self.problems
                    .insert(p.problem.clone(), (true, recorded.position));
            }
            Event::ProblemResolved(r) => {
                if let Some(entry) = self.problems.get_mut(&r.problem) {
                    entry.0 = false;
                }
            }
            Event::AnnualPanelExtended(ext) => {
                for test in &ext.tests {
                    self.panel_additions
                        .entry(*test)
                        .or_insert(recorded.position);
                }
            }
            Event::LabOrdered(o) => {
                self.order_tests.insert(o.order.clone(), o.tests.clone());
            }
            Event::EnteredInError(c) => self.forget(c.position),
            _ => {}
        }
    }

    /// An event marked as entered in error no longer counts: its intolerance, problem or panel
    /// addition is dropped.
    fn forget(&mut self, position: u64) {
        self.intolerances.retain(|i| i.position != position);
        self.problems.retain(|_, (_, at)| *at != position);
        self.panel_additions.retain(|_, at| *at != position);
    }
}

fn reject(code: RejectionCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

/// The catalogue's rules for `command`: rejections, or warnings for the writer.
pub fn check(state: &ClinicalState, command: &Command) -> Result<Vec<Warning>, Rejection> {
    match command {
        Command::StartMedication(m) => {
            if let Some(Indication::Problem(problem)) = &m.indication {
                if !state.problems.contains_key(problem) {
                    return Err(reject(
                        RejectionCode::UnknownProblem,
                        format!(
                            "the indication names problem {problem}, which is not on this \
                             patient's problem list; record it first (record_problem) or give \
                             the indication in words"
                        ),
                    ));
                }
            }
            Ok(intolerance_warnings(state, &m.atc))
        }
        Command::RecordProblem(p) if state.problems.contains_key(&p.problem) => Err(reject(
            RejectionCode::ProblemExists,
            format!("problem {} exists already; use a new problem id", p.problem),
        )),
        Command::ResolveProblem(r) if !state.problem_active(&r.problem) => Err(reject(
            RejectionCode::ProblemNotActive,
            format!(
                "problem {} is not an active problem of this patient",
                r.problem
            ),
        )),
        Command::OrderLab(order) if order.annual_panel => {
            Ok(missing_panel_additions(state, &order.tests)
                .into_iter()
                .collect())
        }
        Command::RecordLabResult(result) => {
            let Some(order) = &result.order else {
                return Ok(vec![]);
            };
            let test = result.value.measure();
            match state.order_tests.get(order) {
                Some(tests) if !tests.contains(&test) => Err(reject(
                    RejectionCode::TestNotInOrder,
                    format!(
                        "lab order {order} did not request {}; it requested {}; record the \
                         result without the order or with the order that requested it",
                        test.name(),
                        names(tests)
                    ),
                )),
                _ => Ok(vec![]),
            }
        }
        _ => Ok(vec![]),
    }
}

fn names(tests: &[Measure]) -> String {
    tests
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Starting a substance with a known intolerance or contra-indication is warned about; another
/// drug of the same class (ATC level 4) gets a milder warning.
pub fn intolerance_warnings(state: &ClinicalState, atc: &AtcCode) -> Vec<Warning> {
    let mut out = Vec::new();
    for known in &state.intolerances {
        let same = atc.as_str().starts_with(known.atc.as_str());
        let same_class = !same && atc_class(atc).is_some_and(|c| atc_class(&known.atc) == Some(c));
        let when = known.at.to_chrono().format("%Y-%m-%d");
        let who = format!("{} {} ({})", known.role, known.by_name, known.by);
        if same {
            out.push(Warning {
                code: match known.kind {
                    IntoleranceKind::Intolerance => WarningCode::KnownIntolerance,
                    IntoleranceKind::ContraIndication => WarningCode::KnownContraIndication,
                },
                message: format!(
                    "{} {} ({}) was recorded by {who} on {when}: {}; check before starting {atc}",
                    known.kind, known.substance, known.atc, known.reaction
                ),
            });
        } else if same_class {
            out.push(Warning {
                code: WarningCode::IntoleranceInSameClass,
                message: format!(
                    "{atc} is in the same class ({}) as {} ({}), for which {} was recorded by \
                     {who} on {when}: {}",
                    atc_class(atc).unwrap_or_default(),
                    known.substance,
                    known.atc,
                    known.kind,
                    known.reaction
                ),
            });
        }
    }
    out
}

/// Agreement 7 with agreement 2: the yearly CVRM lab includes the specialist's additions.
pub fn missing_panel_additions(state: &ClinicalState, tests: &[Measure]) -> Option<Warning> {
    let ordered: BTreeSet<&Measure> = tests.iter().collect();
    let missing: Vec<Measure> = state
        .panel_additions()
        .filter(|t| !ordered.contains(t))
        .collect();
    (!missing.is_empty()).then(|| Warning {
        code: WarningCode::AnnualPanelIncomplete,
        message: format!(
            "this annual CVRM lab leaves out {}, which the specialist added to the annual panel \
             (agreements 2 and 7); add them to this order to avoid a second blood draw",
            names(&missing)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icpc_and_icd10_codes_are_checked_in_their_own_shape() {
        let icpc = ProblemCodeSystem::Icpc1Nl;
        let icd = ProblemCodeSystem::Icd10;
        assert_eq!(ProblemCode::parse(icpc, "k75").unwrap().code(), "K75");
        assert!(ProblemCode::parse(icpc, "T90.02").is_ok());
        assert!(ProblemCode::parse(icd, "I50.9").is_ok());
        assert!(ProblemCode::parse(icd, "E11").is_ok());
        assert!(
            ProblemCode::parse(icpc, "I21.4").is_err(),
            "I is no ICPC chapter"
        );
        assert!(ProblemCode::parse(icpc, "K7").is_err());
        assert!(ProblemCode::parse(icd, "I2A").is_err());
        let err = ProblemCode::parse(icpc, "heart").unwrap_err().to_string();
        assert!(err.contains("K75"), "{err}");
    }

    #[test]
    fn atc_class_is_the_level_4_prefix() {
        let atorva = AtcCode::parse("C10AA05").unwrap();
        assert_eq!(atc_class(&atorva), Some("C10AA"));
        assert_eq!(atc_class(&AtcCode::parse("C10").unwrap()), None);
    }
}
