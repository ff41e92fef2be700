//! One patient's record as a FHIR `searchset` Bundle (`Patient/{id}/$everything`): the plan of
//! the read models, the notifications, and a `Provenance` per recorded event.
//!
//! Resource ids are stable: each is the patient's key ([`patient_key`]) followed by what names
//! the resource in the ledger (`-med-42`: the medication agreement started at position 42).
//! `meta.versionId` is the ledger position of the last event that changed a resource, and
//! `meta.lastUpdated` when the ledger recorded it.

use std::collections::{BTreeMap, BTreeSet};

use careledger_core::event::Event;
use careledger_core::ids::{ActorId, AgbCode, Bsn, PatientId};
use careledger_core::quantity::{Measure, Quantity as MeasureQuantity};
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::{Line, Role};
use careledger_projections::notifications::NotificationStatus;
use careledger_projections::plan::{
    CarePlan as Plan, EpisodeStatus, MedicationEpisode, MedicationStepKind, TargetValue,
};
use careledger_projections::{PatientView, Provenance as Prov};

use crate::codes;
use crate::model::*;

/// A patient's key: the first 16 hex digits of the hash of the patient's first event. It names
/// the patient in FHIR without the BSN, never changes (an event is never rewritten), and cannot
/// be derived from the BSN by anyone without the ledger.
pub fn patient_key(view: &PatientView) -> Option<String> {
    let first = view.audit.first()?;
    Some(first.provenance.hash.to_hex()[..16].to_owned())
}

/// The patient key an id starts with (`0f3a...-med-42` gives `0f3a...`), if it has the form.
pub fn key_of_id(id: &str) -> Option<&str> {
    let key = id.get(..16)?;
    let valid = key
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    (valid && matches!(id.as_bytes().get(16), None | Some(b'-'))).then_some(key)
}

/// A FHIR `instant` or `dateTime`, to the microsecond, in UTC.
pub fn instant(t: Timestamp) -> String {
    t.to_chrono()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A FHIR `date`.
fn date(t: Timestamp) -> String {
    t.to_chrono().format("%Y-%m-%d").to_string()
}

/// What to export.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The FHIR base the `fullUrl`s start with (`https://host/fhir`).
    pub base: &'a str,
    /// The request's own URL, for the Bundle's `self` link.
    pub self_url: &'a str,
    /// Only resources whose last change was recorded at or after this time (`_since`); the
    /// Patient is always included.
    pub since: Option<Timestamp>,
}

/// The patient's `$everything` Bundle. `events` are the patient's recorded events in order;
/// those beyond what the read models have applied are left out, so that plan and provenance
/// agree.
pub fn everything(
    patient: &PatientId,
    view: &PatientView,
    events: &[RecordedEvent],
    request: Request<'_>,
) -> Bundle {
    let resources = resources(patient, view, events);
    let last = view.audit.last().map(|e| &e.provenance);
    let mut entry = Vec::with_capacity(resources.len());
    for versioned in resources {
        let is_patient = matches!(versioned.resource, Resource::Patient(_));
        if !is_patient
            && request
                .since
                .is_some_and(|since| versioned.recorded_at < since)
        {
            continue;
        }
        let full_url = format!(
            "{}/{}/{}",
            request.base,
            versioned.resource.type_name(),
            versioned.resource.id().unwrap_or_default()
        );
        entry.push(BundleEntry {
            full_url,
            resource: versioned.resource,
            search: BundleSearch {
                mode: if is_patient { "match" } else { "include" }.into(),
            },
        });
    }
    Bundle {
        resource_type: "Bundle".into(),
        meta: Meta {
            version_id: last.map(|p| p.position.to_string()),
            last_updated: last.map(|p| instant(p.recorded_at)),
        },
        type_: "searchset".into(),
        total: entry.len() as u64,
        link: vec![BundleLink {
            relation: "self".into(),
            url: request.self_url.to_owned(),
        }],
        entry,
    }
}

/// A Bundle of the patient alone, the answer to a search by identifier.
pub fn patient_search(
    patient: &PatientId,
    view: &PatientView,
    events: &[RecordedEvent],
    request: Request<'_>,
) -> Bundle {
    let mut bundle = everything(patient, view, events, request);
    bundle.entry.retain(|e| e.search.mode == "match");
    bundle.total = bundle.entry.len() as u64;
    bundle
}

/// An empty search result.
pub fn empty_search(self_url: &str) -> Bundle {
    Bundle {
        resource_type: "Bundle".into(),
        meta: Meta::default(),
        type_: "searchset".into(),
        total: 0,
        link: vec![BundleLink {
            relation: "self".into(),
            url: self_url.to_owned(),
        }],
        entry: Vec::new(),
    }
}

/// The resource of `resource_type` with `id` in the patient's record.
pub fn read(
    patient: &PatientId,
    view: &PatientView,
    events: &[RecordedEvent],
    resource_type: &str,
    id: &str,
) -> Option<Resource> {
    resources(patient, view, events)
        .into_iter()
        .map(|v| v.resource)
        .find(|r| r.type_name() == resource_type && r.id() == Some(id))
}

/// A resource with its version.
struct Versioned {
    resource: Resource,
    recorded_at: Timestamp,
}

/// Every resource of the patient's record, each with its `meta` filled in.
fn resources(patient: &PatientId, view: &PatientView, events: &[RecordedEvent]) -> Vec<Versioned> {
    let Some(key) = patient_key(view) else {
        return Vec::new();
    };
    let applied = view.audit.last().map_or(0, |e| e.position());
    let mut b = Builder {
        key,
        plan: &view.plan,
        events: events
            .iter()
            .filter(|e| e.position <= applied)
            .map(|e| (e.position, e))
            .collect(),
        produced: BTreeMap::new(),
        practitioners: BTreeMap::new(),
        organisations: BTreeMap::new(),
        built: Vec::new(),
    };
    b.patient(patient);
    b.practitioners();
    b.care_team();
    b.targets();
    b.lifestyle_goals();
    b.medication();
    b.lab_orders();
    b.observations();
    b.intolerances();
    b.problems();
    b.care_plan(view);
    b.communications(view);
    b.provenance(view);
    b.finish()
}

/// A resource as built, with the ledger positions that made it what it is.
struct Built {
    resource: Resource,
    positions: Vec<u64>,
}

/// A practitioner (or the patient) who appears in the record.
struct Person {
    id: String,
    name: String,
    agb: Option<AgbCode>,
    role: Role,
    first_position: u64,
}

struct Builder<'a> {
    key: String,
    plan: &'a Plan,
    events: BTreeMap<u64, &'a RecordedEvent>,
    /// The resources each position produced or changed, for its `Provenance`.
    produced: BTreeMap<u64, Vec<Reference>>,
    practitioners: BTreeMap<ActorId, Person>,
    /// The organisation each actor recorded for, as their records name it.
    organisations: BTreeMap<ActorId, AgbCode>,
    built: Vec<Built>,
}

impl Builder<'_> {
    fn id(&self, local: &str) -> String {
        format!("{}-{local}", self.key)
    }

    fn patient_ref(&self) -> Reference {
        Reference::to("Patient", &self.key)
    }

    fn push(&mut self, resource: Resource, positions: Vec<u64>) {
        let id = resource.id().unwrap_or_default().to_owned();
        let reference = Reference::to(resource.type_name(), &id);
        for p in &positions {
            let produced = self.produced.entry(*p).or_default();
            if !produced.contains(&reference) {
                produced.push(reference.clone());
            }
        }
        self.built.push(Built {
            resource,
            positions,
        });
    }

    /// Who: the patient's own entries point at the Patient, everyone else's at a Practitioner.
    fn who(&self, actor: &ActorId, role: Role) -> Reference {
        match self.practitioners.get(actor) {
            Some(person) if role != Role::Patient => {
                Reference::named("Practitioner", &person.id, &person.name)
            }
            _ if role == Role::Patient => self.patient_ref(),
            _ => Reference {
                identifier: Some(Identifier::new(codes::ACTOR_ID, actor.as_str())),
                ..Reference::default()
            },
        }
    }

    fn by(&self, p: &Prov) -> Reference {
        self.who(&p.actor, p.role)
    }

    fn organisation(&self, actor: &ActorId) -> Option<Reference> {
        let agb = self.organisations.get(actor)?;
        Some(Reference::logical(
            "Organization",
            Identifier::new(codes::AGB, agb.as_str()),
        ))
    }

    fn corrected(&self, position: u64) -> bool {
        self.plan.is_entered_in_error(position)
    }

    fn patient(&mut self, patient: &PatientId) {
        let identifier = if Bsn::parse(patient.as_str()).is_ok() {
            Identifier {
                use_: Some("official".into()),
                ..Identifier::new(codes::BSN, patient.as_str())
            }
        } else {
            Identifier {
                use_: Some("usual".into()),
                ..Identifier::new(codes::PATIENT_ID, patient.as_str())
            }
        };
        let mut positions: Vec<u64> = self.events.keys().next().copied().into_iter().collect();
        positions.extend(
            self.events
                .values()
                .filter(|e| matches!(e.event(), Event::GlassBroken(_)))
                .map(|e| e.position),
        );
        let resource = Resource::Patient(Patient {
            id: self.key.clone(),
            meta: Meta::default(),
            identifier: vec![identifier],
        });
        self.push(resource, positions);
    }

    /// A Practitioner for everyone added to the team or writing to the record, numbered by
    /// first appearance in the ledger.
    fn practitioners(&mut self) {
        for e in self.events.values() {
            let actor = &e.record.actor;
            if let Some(org) = &actor.organisation {
                self.organisations
                    .entry(actor.id.clone())
                    .or_insert_with(|| org.clone());
            }
            let mut seen = vec![(actor.id.clone(), actor.name.as_str(), None, actor.role)];
            if let Event::CareTeamMemberAdded(m) = e.event() {
                seen.push((m.actor.clone(), m.name.as_str(), m.agb.clone(), m.role));
            }
            for (id, name, agb, role) in seen {
                if role == Role::Patient {
                    continue;
                }
                let n = self.practitioners.len() + 1;
                let person = self.practitioners.entry(id).or_insert_with(|| Person {
                    id: format!("{}-prac-{n}", self.key),
                    name: name.to_owned(),
                    agb: None,
                    role,
                    first_position: e.position,
                });
                if person.agb.is_none() {
                    person.agb = agb;
                }
            }
        }
        let mut people: Vec<(&ActorId, &Person)> = self.practitioners.iter().collect();
        people.sort_by_key(|(_, p)| p.first_position);
        let resources: Vec<(Resource, u64)> = people
            .into_iter()
            .map(|(actor, p)| {
                let mut identifier = Vec::new();
                if let Some(agb) = &p.agb {
                    identifier.push(Identifier::new(codes::AGB, agb.as_str()));
                }
                identifier.push(Identifier::new(codes::ACTOR_ID, actor.as_str()));
                let resource = Resource::Practitioner(Practitioner {
                    id: p.id.clone(),
                    meta: Meta::default(),
                    identifier,
                    name: vec![HumanName {
                        text: Some(p.name.clone()),
                    }],
                });
                debug_assert!(p.role != Role::Patient);
                (resource, p.first_position)
            })
            .collect();
        // A Practitioner is who acted, not what an event produced: versioned, not a target.
        for (resource, position) in resources {
            self.built.push(Built {
                resource,
                positions: vec![position],
            });
        }
    }

    fn role_concept(role: Role) -> CodeableConcept {
        CodeableConcept::coded(Coding::new(codes::ROLE, role.as_str(), &role.to_string()))
    }

    /// The positions of the team's changes; of those concerning `actor` only, when given.
    fn team_positions(&self, actor: Option<&ActorId>) -> Vec<u64> {
        self.events
            .values()
            .filter(|e| {
                let concerned = match e.event() {
                    Event::CareTeamMemberAdded(m) => &m.actor,
                    Event::CareTeamMemberRemoved(r) => &r.actor,
                    Event::LeadHandedOver(h) => &h.to,
                    _ => return false,
                };
                actor.is_none_or(|a| a == concerned)
            })
            .map(|e| e.position)
            .collect()
    }

    fn care_team(&mut self) {
        let positions = self.team_positions(None);
        let mut participant = Vec::new();
        let mut roles = Vec::new();
        for m in &self.plan.care_team {
            let extension = vec![
                Extension::code(codes::EXT_LINE, codes::line(m.line)),
                Extension::code(codes::EXT_LEAD, codes::lead(m.lead)),
                Extension::code(codes::EXT_PRACTITIONER, codes::practitioner(m.practitioner)),
            ];
            let member = if m.role == Role::Patient {
                self.patient_ref()
            } else {
                let role_id = self.id(&format!("role-{}", m.added.position));
                let organization = self.organisation(&m.actor);
                let practitioner = self.who(&m.actor, m.role);
                roles.push((
                    self.team_positions(Some(&m.actor)),
                    PractitionerRole {
                        id: role_id.clone(),
                        meta: Meta::default(),
                        extension: extension.clone(),
                        practitioner,
                        organization,
                        code: vec![Self::role_concept(m.role)],
                    },
                ));
                Reference::named("PractitionerRole", &role_id, m.name.as_str())
            };
            participant.push(CareTeamParticipant {
                extension,
                role: vec![Self::role_concept(m.role)],
                member,
                on_behalf_of: self.organisation(&m.actor),
                period: Some(Period {
                    start: Some(instant(m.added.occurred_at)),
                    end: None,
                }),
            });
        }
        for (role_positions, role) in roles {
            self.push(Resource::PractitionerRole(role), role_positions);
        }
        let team = Resource::CareTeam(CareTeam {
            id: self.id("careteam"),
            meta: Meta::default(),
            status: "active".into(),
            subject: self.patient_ref(),
            participant,
        });
        self.push(team, positions);
    }

    fn target_quantity(value: &TargetValue) -> Quantity {
        Quantity {
            comparator: Some(codes::comparator(value.comparator).into()),
            ..ucum(&value.value)
        }
    }

    fn targets(&mut self) {
        let mut positions: BTreeMap<Measure, Vec<u64>> = BTreeMap::new();
        for e in self.events.values() {
            let measure = match e.event() {
                Event::TargetSet(t) => t.value.measure(),
                Event::TargetWithdrawn(w) => w.measure,
                _ => continue,
            };
            positions.entry(measure).or_default().push(e.position);
        }
        let measures: BTreeSet<Measure> = self
            .plan
            .targets
            .keys()
            .chain(positions.keys())
            .copied()
            .collect();
        for measure in measures {
            let entry = self.plan.targets.get(&measure);
            let mut extension = Vec::new();
            let (lifecycle, target) = match entry {
                Some(entry) => {
                    extension.push(Extension::code(
                        codes::EXT_TARGET_BASIS,
                        codes::target_basis(entry.effective.basis),
                    ));
                    if let Some(replaced) = &entry.replaced {
                        extension.push(Extension::quantity(
                            codes::EXT_TARGET_REPLACES,
                            Self::target_quantity(replaced),
                        ));
                    }
                    if let Some(set) = &entry.set {
                        extension.push(Extension::code(codes::EXT_LINE, codes::line(set.line)));
                        // The setter's lead on the care team, while they are in it.
                        let member = self.plan.care_team.iter().find(|m| m.actor == set.actor);
                        if let Some(member) = member {
                            extension
                                .push(Extension::code(codes::EXT_LEAD, codes::lead(member.lead)));
                        }
                    }
                    ("active", Some(Self::target_quantity(&entry.effective)))
                }
                // Withdrawn, and the guideline has no default for the measure.
                None => ("cancelled", None),
            };
            let description = match &target {
                Some(q) => format!(
                    "{} {} {} {}",
                    measure.name(),
                    q.comparator.as_deref().unwrap_or_default(),
                    q.value.map(|v| v.to_string()).unwrap_or_default(),
                    measure.unit()
                ),
                None => format!("{}: no target", measure.name()),
            };
            let set = entry.and_then(|e| e.set.as_ref());
            let goal = Goal {
                id: self.id(&format!("target-{}", measure.code().replace('_', "-"))),
                meta: Meta::default(),
                extension,
                lifecycle_status: lifecycle.into(),
                achievement_status: None,
                description: CodeableConcept::text(&description),
                subject: self.patient_ref(),
                target: vec![GoalTarget {
                    measure: Some(loinc(measure)),
                    detail_quantity: target,
                }],
                status_date: set.map(|p| date(p.occurred_at)),
                status_reason: entry
                    .filter(|e| !e.rationale.is_empty())
                    .map(|e| e.rationale.as_str().to_owned()),
                expressed_by: set.map(|p| self.by(p)),
            };
            let positions = positions.remove(&measure).unwrap_or_default();
            self.push(Resource::Goal(goal), positions);
        }
    }

    fn lifestyle_goals(&mut self) {
        let mut goals = Vec::new();
        for e in self.events.values() {
            let Event::LifestyleGoalSet(g) = e.event() else {
                continue;
            };
            let mut positions = vec![e.position];
            let standing = self
                .plan
                .goals
                .get(&g.goal)
                .filter(|entry| entry.set.position == e.position);
            let (lifecycle, achievement) = match standing {
                None => ("entered-in-error", None),
                Some(entry) => match (&entry.outcome, &entry.closed) {
                    (Some(outcome), Some(closed)) => {
                        positions.push(closed.position);
                        let (status, achieved) = codes::goal_outcome(*outcome);
                        (status, Some(achieved))
                    }
                    _ => ("active", None),
                },
            };
            let goal = Goal {
                id: self.id(&format!("goal-{}", e.position)),
                meta: Meta::default(),
                extension: Vec::new(),
                lifecycle_status: lifecycle.into(),
                achievement_status: achievement.map(|code| {
                    CodeableConcept::coded(Coding::new(codes::GOAL_ACHIEVEMENT, code, ""))
                }),
                description: CodeableConcept::text(g.description.as_str()),
                subject: self.patient_ref(),
                target: Vec::new(),
                status_date: Some(date(e.record.occurred_at)),
                status_reason: None,
                expressed_by: Some(self.who(&e.record.actor.id, e.record.actor.role)),
            };
            goals.push((goal, positions));
        }
        for (goal, positions) in goals {
            self.push(Resource::Goal(goal), positions);
        }
    }

    fn medication(&mut self) {
        let mut requests = Vec::new();
        for (atc, episodes) in &self.plan.medication_history {
            let latest = episodes.last().map(|e| e.started.position);
            for episode in episodes {
                let indication = (latest == Some(episode.started.position))
                    .then(|| self.plan.indication(atc))
                    .flatten();
                requests.push(self.medication_request(atc.as_str(), episode, indication));
            }
        }
        for (request, positions) in requests {
            self.push(Resource::MedicationRequest(request), positions);
        }
    }

    fn medication_request(
        &self,
        atc: &str,
        episode: &MedicationEpisode,
        indication: Option<&careledger_core::clinical::Indication>,
    ) -> (MedicationRequest, Vec<u64>) {
        let status = match self.plan.episode_status(episode) {
            EpisodeStatus::Active => "active",
            EpisodeStatus::Stopped => "stopped",
            EpisodeStatus::EnteredInError => "entered-in-error",
        };
        let mut positions = vec![episode.started.position];
        let mut dose = episode.dose;
        let mut frequency = episode.frequency.as_str().to_owned();
        let mut status_reason = None;
        let mut extension = vec![Extension::code(
            codes::EXT_LINE,
            codes::line(episode.started.line),
        )];
        for step in &episode.steps {
            positions.push(step.recorded.position);
            let corrected = self.corrected(step.recorded.position);
            let (reason_code, reason_words) = codes::change_reason(&step.reason);
            let kind = match &step.kind {
                MedicationStepKind::DoseChanged {
                    dose: d,
                    frequency: f,
                } => {
                    if !corrected {
                        dose = *d;
                        frequency = f.as_str().to_owned();
                    }
                    "dose-changed"
                }
                MedicationStepKind::Stopped => {
                    if !corrected {
                        status_reason = Some(CodeableConcept {
                            coding: vec![Coding::new(
                                codes::CHANGE_REASON,
                                reason_code,
                                &reason_words,
                            )],
                            text: (!step.recorded.reason.is_empty())
                                .then(|| step.recorded.reason.as_str().to_owned()),
                        });
                    }
                    "stopped"
                }
            };
            let mut parts = vec![
                Extension::code("kind", kind),
                Extension::coding(
                    "reason",
                    Coding::new(codes::CHANGE_REASON, reason_code, &reason_words),
                ),
                Extension::date_time("occurred", instant(step.recorded.occurred_at)),
                Extension::reference("by", self.by(&step.recorded)),
                Extension::positive_int(codes::EXT_POSITION, step.recorded.position),
            ];
            if let MedicationStepKind::DoseChanged { dose, frequency } = &step.kind {
                parts.push(Extension::string(
                    "dosage",
                    &format!("{dose} {}", frequency.as_str()),
                ));
            }
            if corrected {
                parts.push(Extension::boolean("entered-in-error", true));
            }
            if !step.recorded.reason.is_empty() {
                parts.push(Extension::string("words", step.recorded.reason.as_str()));
            }
            extension.push(Extension::complex(codes::EXT_MEDICATION_CHANGE, parts));
        }
        let (unit_code, unit) = codes::dose_unit(dose.unit());
        let (reason_code, reason_reference) = match indication {
            Some(careledger_core::clinical::Indication::Problem(problem)) => (
                Vec::new(),
                self.plan
                    .problems
                    .get(problem)
                    .map(|p| {
                        vec![Reference::to(
                            "Condition",
                            &self.id(&format!("cond-{}", p.recorded.position)),
                        )]
                    })
                    .unwrap_or_default(),
            ),
            Some(careledger_core::clinical::Indication::Words(words)) => {
                (vec![CodeableConcept::text(words.as_str())], Vec::new())
            }
            None => (Vec::new(), Vec::new()),
        };
        let request = MedicationRequest {
            id: self.id(&format!("med-{}", episode.started.position)),
            meta: Meta::default(),
            extension,
            status: status.into(),
            status_reason,
            intent: "order".into(),
            medication_codeable_concept: CodeableConcept {
                coding: vec![Coding::new(codes::ATC, atc, episode.name.as_str())],
                text: Some(episode.name.as_str().to_owned()),
            },
            subject: self.patient_ref(),
            authored_on: Some(instant(episode.started.occurred_at)),
            requester: self.by(&episode.started),
            reason_code,
            reason_reference,
            dosage_instruction: vec![Dosage {
                text: format!("{dose} {frequency}"),
                patient_instruction: None,
                dose_and_rate: vec![DoseAndRate {
                    dose_quantity: Quantity {
                        value: Some(Decimal::new(
                            i64::try_from(dose.amount_milli()).unwrap_or(i64::MAX),
                            3,
                        )),
                        comparator: None,
                        unit: Some(unit.into()),
                        system: Some(codes::UCUM.into()),
                        code: Some(unit_code.into()),
                    },
                }],
            }],
        };
        (request, positions)
    }

    fn lab_orders(&mut self) {
        let mut requests = Vec::new();
        for (order, record) in &self.plan.lab_order_history {
            let position = record.ordered.position;
            let mut positions = vec![position];
            positions.extend(
                record
                    .tests
                    .iter()
                    .flat_map(|t| self.plan.series.get(t).into_iter().flatten())
                    .filter(|v| v.order.as_ref() == Some(order))
                    .map(|v| v.recorded.position),
            );
            let status = if self.corrected(position) {
                "entered-in-error"
            } else if self.plan.lab_orders.contains_key(order) {
                "active"
            } else {
                "completed"
            };
            let names: Vec<&str> = record.tests.iter().map(|t| t.name()).collect();
            let text = if record.annual_panel {
                format!("annual CVRM lab panel: {}", names.join(", "))
            } else {
                format!("lab order: {}", names.join(", "))
            };
            requests.push((
                ServiceRequest {
                    id: self.id(&format!("lab-{position}")),
                    meta: Meta::default(),
                    extension: vec![Extension::boolean(
                        codes::EXT_ANNUAL_PANEL,
                        record.annual_panel,
                    )],
                    requisition: Some(Identifier::new(codes::LAB_ORDER_ID, order.as_str())),
                    status: status.into(),
                    intent: "order".into(),
                    category: vec![CodeableConcept::coded(Coding::new(
                        codes::SNOMED,
                        "108252007",
                        "Laboratory procedure",
                    ))],
                    code: CodeableConcept::text(&text),
                    order_detail: record.tests.iter().map(|t| loinc(*t)).collect(),
                    subject: self.patient_ref(),
                    authored_on: Some(instant(record.ordered.occurred_at)),
                    requester: self.by(&record.ordered),
                },
                positions,
            ));
        }
        for (request, positions) in requests {
            self.push(Resource::ServiceRequest(request), positions);
        }
    }

    fn status(&self, position: u64) -> &'static str {
        if self.corrected(position) {
            "entered-in-error"
        } else {
            "final"
        }
    }

    fn observations(&mut self) {
        let mut observations = Vec::new();
        for (measure, series) in &self.plan.series {
            for value in series {
                let p = &value.recorded;
                let (category, extension, method) = match value.source {
                    None => ("laboratory", Vec::new(), None),
                    Some(source) => {
                        let vital = matches!(
                            measure,
                            Measure::SystolicBloodPressure
                                | Measure::DiastolicBloodPressure
                                | Measure::Weight
                                | Measure::HeartRate
                                | Measure::Bmi
                        );
                        let home =
                            source == careledger_core::event::MeasurementSource::SelfMeasuredAtHome;
                        (
                            if vital { "vital-signs" } else { "exam" },
                            vec![Extension::code(
                                codes::EXT_MEASUREMENT_SOURCE,
                                codes::measurement_source(source),
                            )],
                            home.then(|| CodeableConcept::text("self-measured at home")),
                        )
                    }
                };
                let based_on = value
                    .order
                    .as_ref()
                    .and_then(|o| self.plan.lab_order_history.get(o))
                    .map(|r| {
                        Reference::to(
                            "ServiceRequest",
                            &self.id(&format!("lab-{}", r.ordered.position)),
                        )
                    })
                    .into_iter()
                    .collect();
                observations.push(Observation {
                    id: self.id(&format!("obs-{}", p.position)),
                    meta: Meta::default(),
                    extension,
                    based_on,
                    status: self.status(p.position).into(),
                    category: vec![observation_category(category)],
                    code: loinc(*measure),
                    subject: self.patient_ref(),
                    effective_date_time: Some(instant(p.occurred_at)),
                    issued: Some(instant(p.recorded_at)),
                    performer: vec![self.by(p)],
                    value_quantity: Some(ucum(&value.value)),
                    value_codeable_concept: None,
                    method,
                });
            }
        }
        for s in &self.plan.smoking_history {
            let p = &s.recorded;
            observations.push(Observation {
                id: self.id(&format!("obs-{}", p.position)),
                meta: Meta::default(),
                extension: Vec::new(),
                based_on: Vec::new(),
                status: self.status(p.position).into(),
                category: vec![observation_category("social-history")],
                code: CodeableConcept::coded(Coding::new(
                    codes::LOINC,
                    careledger_core::clinical::SmokingStatus::LOINC,
                    "Tobacco smoking status",
                )),
                subject: self.patient_ref(),
                effective_date_time: Some(instant(p.occurred_at)),
                issued: Some(instant(p.recorded_at)),
                performer: vec![self.by(p)],
                value_quantity: None,
                value_codeable_concept: Some(CodeableConcept::coded(Coding::new(
                    codes::SNOMED,
                    s.status.snomed(),
                    s.status.name(),
                ))),
                method: None,
            });
        }
        for o in observations {
            let position =
                o.id.rsplit('-')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
            self.push(Resource::Observation(o), vec![position]);
        }
    }

    fn verification(&self, system: &str, position: u64) -> CodeableConcept {
        let code = if self.corrected(position) {
            "entered-in-error"
        } else {
            "confirmed"
        };
        CodeableConcept::coded(Coding::new(system, code, ""))
    }

    fn intolerances(&mut self) {
        let mut resources = Vec::new();
        for i in &self.plan.intolerances {
            let p = &i.recorded;
            let corrected = self.corrected(p.position);
            let contra = i.kind == careledger_core::clinical::IntoleranceKind::ContraIndication;
            let mut extension = vec![Extension::code(
                codes::EXT_INTOLERANCE_KIND,
                if contra {
                    "contra-indication"
                } else {
                    "intolerance"
                },
            )];
            if i.from_stop {
                extension.push(Extension::boolean(codes::EXT_RECORDED_BY_STOP, true));
            }
            resources.push((
                AllergyIntolerance {
                    id: self.id(&format!("allergy-{}", p.position)),
                    meta: Meta::default(),
                    extension,
                    clinical_status: (!corrected).then(|| {
                        CodeableConcept::coded(Coding::new(codes::ALLERGY_CLINICAL, "active", ""))
                    }),
                    verification_status: self.verification(codes::ALLERGY_VERIFICATION, p.position),
                    type_: (!contra).then(|| "intolerance".into()),
                    category: vec!["medication".into()],
                    code: CodeableConcept {
                        coding: vec![Coding::new(
                            codes::ATC,
                            i.atc.as_str(),
                            i.substance.as_str(),
                        )],
                        text: Some(i.substance.as_str().to_owned()),
                    },
                    patient: self.patient_ref(),
                    recorded_date: Some(instant(p.occurred_at)),
                    recorder: self.by(p),
                    reaction: (!i.reaction.is_empty())
                        .then(|| Reaction {
                            manifestation: vec![CodeableConcept::text(i.reaction.as_str())],
                        })
                        .into_iter()
                        .collect(),
                },
                p.position,
            ));
        }
        for (r, position) in resources {
            self.push(Resource::AllergyIntolerance(r), vec![position]);
        }
    }

    fn problems(&mut self) {
        let mut resources = Vec::new();
        for problem in self.plan.problems.values() {
            let p = &problem.recorded;
            let corrected = self.corrected(p.position);
            let resolved = problem
                .resolved
                .as_ref()
                .filter(|r| !self.corrected(r.position));
            let mut positions = vec![p.position];
            positions.extend(problem.resolved.as_ref().map(|r| r.position));
            let system = problem.code.system().uri();
            resources.push((
                Condition {
                    id: self.id(&format!("cond-{}", p.position)),
                    meta: Meta::default(),
                    clinical_status: (!corrected).then(|| {
                        let code = if resolved.is_some() {
                            "resolved"
                        } else {
                            "active"
                        };
                        CodeableConcept::coded(Coding::new(codes::CONDITION_CLINICAL, code, ""))
                    }),
                    verification_status: self
                        .verification(codes::CONDITION_VERIFICATION, p.position),
                    category: vec![CodeableConcept::coded(Coding::new(
                        codes::CONDITION_CATEGORY,
                        "problem-list-item",
                        "Problem List Item",
                    ))],
                    code: CodeableConcept {
                        coding: vec![Coding::new(system, problem.code.code(), "")],
                        text: Some(problem.description.as_str().to_owned()),
                    },
                    subject: self.patient_ref(),
                    abatement_date_time: resolved.map(|r| instant(r.occurred_at)),
                    recorded_date: Some(instant(p.occurred_at)),
                    recorder: self.by(p),
                },
                positions,
            ));
        }
        for (r, positions) in resources {
            self.push(Resource::Condition(r), positions);
        }
    }

    fn care_plan(&mut self, view: &PatientView) {
        let of = |t: &str| -> Vec<Reference> {
            self.built
                .iter()
                .filter(|b| b.resource.type_name() == t)
                .filter_map(|b| b.resource.id().map(|id| Reference::to(t, id)))
                .collect()
        };
        let mut extension = Vec::new();
        if let Some((arrangement, _)) = &self.plan.shared_care {
            extension.push(Extension::string(
                codes::EXT_SHARED_CARE,
                arrangement.as_str(),
            ));
        }
        for test in &self.plan.annual_panel {
            let coding = Coding::new(codes::LOINC, test.test.loinc(), test.test.name());
            extension.push(Extension::coding(codes::EXT_ANNUAL_PANEL_TEST, coding));
        }
        let addresses = self
            .built
            .iter()
            .filter_map(|b| match &b.resource {
                Resource::Condition(c)
                    if c.verification_status.code_of(codes::CONDITION_VERIFICATION)
                        == Some("confirmed") =>
                {
                    Some(Reference::to("Condition", &c.id))
                }
                _ => None,
            })
            .collect();
        let activity = of("MedicationRequest")
            .into_iter()
            .chain(of("ServiceRequest"))
            .map(|reference| CarePlanActivity { reference })
            .collect();
        let first = view.audit.first().map(|e| &e.provenance);
        let plan = CarePlan {
            id: self.id("careplan"),
            meta: Meta::default(),
            extension,
            status: "active".into(),
            intent: "plan".into(),
            category: vec![CodeableConcept::coded(Coding::new(
                codes::PLAN_CATEGORY,
                "izp",
                "individueel zorgplan",
            ))],
            title: Some("Individual care plan (IZP)".into()),
            subject: self.patient_ref(),
            created: first.map(|p| instant(p.occurred_at)),
            author: first.map(|p| self.by(p)),
            care_team: vec![Reference::to("CareTeam", &self.id("careteam"))],
            addresses,
            goal: of("Goal"),
            activity,
        };
        let positions = view
            .audit
            .last()
            .map(|e| e.position())
            .into_iter()
            .collect();
        self.push(Resource::CarePlan(plan), positions);
        // What the plan holds that has no resource of its own is the plan's.
        let plan_ref = Reference::to("CarePlan", &self.id("careplan"));
        for e in self.events.values() {
            if matches!(
                e.event(),
                Event::SharedCareStarted(_)
                    | Event::SharedCareEnded(_)
                    | Event::AnnualPanelExtended(_)
                    | Event::NoteAdded(_)
                    | Event::MedicationPreferenceRecorded(_)
            ) {
                self.produced
                    .entry(e.position)
                    .or_default()
                    .push(plan_ref.clone());
            }
        }
    }

    fn communications(&mut self, view: &PatientView) {
        let mut resources = Vec::new();
        for n in &view.notifications {
            let mut positions = vec![n.position];
            let local = format!("comm-{}", n.id.replace('_', "-"));
            let mut extension = vec![Extension::code(codes::EXT_LINE, codes::line(n.recipient))];
            let (status, status_reason, received) = match &n.status {
                NotificationStatus::Open => ("completed", None, None),
                NotificationStatus::Acknowledged { by, at, position } => {
                    positions.push(*position);
                    let role = self
                        .events
                        .get(position)
                        .map_or(Role::Patient, |e| e.record.actor.role);
                    extension.push(Extension::complex(
                        codes::EXT_ACKNOWLEDGEMENT,
                        vec![
                            Extension::reference("by", self.who(by, role)),
                            Extension::positive_int(codes::EXT_POSITION, *position),
                        ],
                    ));
                    ("completed", None, Some(instant(*at)))
                }
                NotificationStatus::Withdrawn { correction } => {
                    positions.push(*correction);
                    (
                        "stopped",
                        Some(CodeableConcept::text(&format!(
                            "withdrawn: the change was marked entered in error at position {correction} before anyone acknowledged it"
                        ))),
                        None,
                    )
                }
            };
            let recipient = if n.recipient == Line::Patient {
                self.patient_ref()
            } else {
                Reference {
                    display: Some(format!(
                        "the {} line of the care team",
                        n.recipient.as_str()
                    )),
                    ..Reference::to("CareTeam", &self.id("careteam"))
                }
            };
            let causing = self.events.get(&n.position);
            resources.push((
                Communication {
                    id: self.id(&local),
                    meta: Meta::default(),
                    extension,
                    identifier: vec![Identifier::new(codes::NOTIFICATION_ID, &n.id)],
                    status: status.into(),
                    status_reason,
                    subject: self.patient_ref(),
                    about: self.produced.get(&n.position).cloned().unwrap_or_default(),
                    sent: Some(instant(n.created_at)),
                    received,
                    recipient: vec![recipient],
                    sender: causing.map(|e| self.who(&e.record.actor.id, e.record.actor.role)),
                    payload: vec![CommunicationPayload {
                        content_string: n.message.english(),
                    }],
                },
                positions,
            ));
        }
        for (r, positions) in resources {
            self.push(Resource::Communication(r), positions);
        }
    }

    fn provenance(&mut self, view: &PatientView) {
        let mut resources = Vec::new();
        for entry in &view.audit {
            let p = &entry.provenance;
            let Some(event) = self.events.get(&p.position) else {
                continue;
            };
            let target_position = entry.corrects.unwrap_or(p.position);
            let mut target = self
                .produced
                .get(&target_position)
                .cloned()
                .unwrap_or_default();
            if let Event::NotificationAcknowledged(_) = event.event() {
                target = self.produced.get(&p.position).cloned().unwrap_or_default();
            }
            if target.is_empty() {
                target.push(Reference::to("CarePlan", &self.id("careplan")));
            }
            let mut entity = vec![
                ProvenanceEntity {
                    role: "source".into(),
                    what: Reference {
                        identifier: Some(Identifier::new(
                            codes::LEDGER_POSITION,
                            &p.position.to_string(),
                        )),
                        display: Some(format!("ledger event at position {}", p.position)),
                        ..Reference::default()
                    },
                },
                ProvenanceEntity {
                    role: "source".into(),
                    what: Reference {
                        identifier: Some(Identifier::new(codes::EVENT_HASH, &p.hash.to_hex())),
                        ..Reference::default()
                    },
                },
            ];
            if let Some(corrected) = entry.corrects {
                entity.push(ProvenanceEntity {
                    role: "removal".into(),
                    what: Reference::to("Provenance", &self.id(&format!("prov-{corrected}"))),
                });
            }
            let actor = &event.record.actor;
            resources.push(Provenance {
                id: self.id(&format!("prov-{}", p.position)),
                meta: Meta::default(),
                target,
                occurred_date_time: Some(instant(p.occurred_at)),
                recorded: instant(p.recorded_at),
                reason: (!p.reason.is_empty())
                    .then(|| CodeableConcept::text(p.reason.as_str()))
                    .into_iter()
                    .collect(),
                activity: Some(CodeableConcept::coded(Coding::new(
                    codes::EVENT_KIND,
                    &entry.kind,
                    "",
                ))),
                agent: vec![ProvenanceAgent {
                    type_: Some(CodeableConcept::coded(Coding::new(
                        codes::PROVENANCE_PARTICIPANT_TYPE,
                        "author",
                        "Author",
                    ))),
                    role: vec![Self::role_concept(actor.role)],
                    who: self.who(&actor.id, actor.role),
                    on_behalf_of: actor.organisation.as_ref().map(|agb| {
                        Reference::logical(
                            "Organization",
                            Identifier::new(codes::AGB, agb.as_str()),
                        )
                    }),
                }],
                entity,
            });
        }
        for r in resources {
            let position =
                r.id.rsplit('-')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
            self.built.push(Built {
                resource: Resource::Provenance(r),
                positions: vec![position],
            });
        }
    }

    /// Each resource's version: the last position among those that made it and the corrections
    /// of those.
    fn finish(self) -> Vec<Versioned> {
        let Builder {
            built,
            events,
            plan,
            ..
        } = self;
        built
            .into_iter()
            .map(|mut b| {
                let version = b
                    .positions
                    .iter()
                    .flat_map(|p| {
                        [Some(*p), plan.corrections.get(p).map(|c| c.position)]
                            .into_iter()
                            .flatten()
                    })
                    .max()
                    .unwrap_or(0);
                let recorded_at = events
                    .get(&version)
                    .map_or(Timestamp::from_micros(0), |e| e.record.recorded_at);
                if let Some(meta) = b.resource.meta_mut() {
                    meta.version_id = Some(version.to_string());
                    meta.last_updated = Some(instant(recorded_at));
                }
                Versioned {
                    resource: b.resource,
                    recorded_at,
                }
            })
            .collect()
    }
}

/// A measure's LOINC code.
pub fn loinc(measure: Measure) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding::new(codes::LOINC, measure.loinc(), "")],
        text: Some(measure.name().to_owned()),
    }
}

/// A value in its measure's UCUM unit.
pub fn ucum(value: &MeasureQuantity) -> Quantity {
    let measure = value.measure();
    Quantity {
        value: Some(Decimal::new(value.scaled(), measure.decimals())),
        comparator: None,
        unit: Some(measure.unit().into()),
        system: Some(codes::UCUM.into()),
        code: Some(measure.unit().into()),
    }
}

fn observation_category(code: &str) -> CodeableConcept {
    CodeableConcept::coded(Coding::new(codes::OBSERVATION_CATEGORY, code, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_patient_by_the_key_it_starts_with() {
        assert_eq!(key_of_id("0123456789abcdef"), Some("0123456789abcdef"));
        assert_eq!(
            key_of_id("0123456789abcdef-med-42"),
            Some("0123456789abcdef")
        );
        assert_eq!(key_of_id("0123456789ABCDEF"), None);
        assert_eq!(key_of_id("0123456789abcdefx"), None);
        assert_eq!(key_of_id("999990007"), None);
    }
}
