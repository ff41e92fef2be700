//! The `CapabilityStatement` (`GET /fhir/metadata`): exactly what careledger's FHIR endpoint
//! offers, and nothing more.

use serde_json::{json, Value};

use crate::{CONTENT_TYPE, FHIR_VERSION};

/// The resource types a client can read by id, each also in `$everything`.
pub const READABLE: [&str; 13] = [
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "CareTeam",
    "CarePlan",
    "Goal",
    "MedicationRequest",
    "ServiceRequest",
    "Observation",
    "AllergyIntolerance",
    "Condition",
    "Communication",
    "Provenance",
];

/// When this statement last changed (it is a fact of the software, not of the clock).
const DATE: &str = "2026-12-03";

/// The statement, for a server whose FHIR base is `base`.
pub fn statement(base: &str, version: &str) -> Value {
    let resources: Vec<Value> = READABLE
        .iter()
        .map(|&t| {
            let mut resource = json!({
                "type": t,
                "interaction": [{"code": "read"}],
                "versioning": "versioned",
                "readHistory": false,
                "updateCreate": false,
            });
            if t == "Patient" {
                resource["interaction"] = json!([{"code": "read"}, {"code": "search-type"}]);
                resource["searchParam"] = json!([{
                    "name": "identifier",
                    "definition": "http://hl7.org/fhir/SearchParameter/Patient-identifier",
                    "type": "token",
                    "documentation": "only http://fhir.nl/fhir/NamingSystem/bsn|{bsn} (11-proof checked) or https://careledger.example/fhir/NamingSystem/patient-id|{id}; a patient the caller may not read is not found"
                }]);
                resource["operation"] = json!([{
                    "name": "everything",
                    "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
                    "documentation": "GET only, with _since (recording time; the Patient is always included); no start, end, _type or _count"
                }]);
            }
            resource
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": DATE,
        "publisher": "careledger",
        "kind": "instance",
        "software": {"name": "careledger", "version": version},
        "implementation": {
            "description": "careledger: the individual care plans (IZP) of shared CVRM care, read only",
            "url": base
        },
        "fhirVersion": FHIR_VERSION,
        "format": [CONTENT_TYPE, "json"],
        "rest": [{
            "mode": "server",
            "documentation": "Read only. Every request needs Authorization: Bearer <token>; a caller reads the patients the plan would let them read (care team, the patient themselves, auditors). Errors are OperationOutcome.",
            "security": {
                "cors": false,
                "description": "bearer tokens issued by the operator (careledger actors add)"
            },
            "resource": resources
        }]
    })
}
