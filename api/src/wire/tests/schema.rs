//! The schemas: every reference resolves, each command has the fields the hand-written document
//! lists (`openapi.rs`) with at least its enumerations, and every enumeration is the one its
//! wire type reads and writes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, PartialSchema};

use careledger_core::event::Event;
use careledger_core::quantity::{Comparator as CoreComparator, Measure};
use careledger_core::role::Role as CoreRole;

use crate::wire::names::*;
use crate::wire::scalar::Time;
use crate::wire::{
    schemas, AuditQuery, CommandBody, NotificationQuery, PageQuery, StreamQuery, COMMAND_TYPES,
};

fn documented() -> BTreeMap<String, Value> {
    schemas()
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap()))
        .collect()
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.push(r.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_to_a_schema_of_the_wire_types() {
    let schemas = documented();
    let mut found = Vec::new();
    schemas.values().for_each(|s| refs(s, &mut found));
    assert!(found.len() > 100);
    for r in found {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "{r} is not defined");
    }
}

/// The schema at `value`, following a reference and looking past `null` in a `oneOf`.
fn resolve<'a>(schemas: &'a BTreeMap<String, Value>, value: &'a Value) -> &'a Value {
    if let Some(Value::String(r)) = value.get("$ref") {
        return resolve(
            schemas,
            &schemas[r.trim_start_matches("#/components/schemas/")],
        );
    }
    if let Some(Value::Array(options)) = value.get("oneOf") {
        let not_null: Vec<&Value> = options.iter().filter(|o| o["type"] != "null").collect();
        if not_null.len() == 1 {
            return resolve(schemas, not_null[0]);
        }
    }
    value
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The enumeration a schema allows: its own, or that of its array's items.
fn enumeration(schemas: &BTreeMap<String, Value>, value: &Value) -> BTreeSet<String> {
    let schema = resolve(schemas, value);
    match schema.get("items") {
        Some(items) => strings(&resolve(schemas, items)["enum"]),
        None => strings(&schema["enum"]),
    }
}

#[test]
fn each_command_has_the_fields_of_the_old_document_and_at_least_its_enumerations() {
    let old = super::legacy_openapi::document();
    let schemas = documented();
    let mut wider = Vec::new();
    for kind in COMMAND_TYPES {
        let before = &old["components"]["schemas"][format!("Command_{kind}")];
        if *kind == "break_glass" {
            // Added after the old document was frozen: its schema is checked by the others.
            assert!(before.is_null());
            continue;
        }
        let name = CommandBody::schema_name(kind);
        let now = &schemas[&name];
        let keys = |s: &Value| -> BTreeSet<String> {
            s["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(keys(now), keys(before), "the fields of {kind}");
        assert_eq!(
            strings(&now["required"]),
            strings(&before["required"]),
            "required in {kind}"
        );
        assert_eq!(
            now["additionalProperties"], false,
            "{kind} refuses unknown fields"
        );
        assert_eq!(
            strings(&now["properties"]["type"]["enum"]),
            BTreeSet::from([kind.to_string()])
        );
        for (field, was) in before["properties"].as_object().unwrap() {
            let was = match (&was["enum"], &was["items"]["enum"]) {
                (Value::Array(_), _) => strings(&was["enum"]),
                (_, Value::Array(_)) => strings(&was["items"]["enum"]),
                _ => continue,
            };
            let is = enumeration(&schemas, &now["properties"][field]);
            assert!(
                is.is_superset(&was),
                "{kind}.{field}: {is:?} lacks some of {was:?}"
            );
            if is != was {
                wider.push(format!(
                    "{kind}.{field}: {:?}",
                    is.difference(&was).collect::<Vec<_>>()
                ));
            }
        }
    }
    // What the new schemas list beyond the old document: names the parser accepts that the
    // old document left out.
    assert_eq!(
        wider,
        [
            "add_care_team_member.role: [\"care_group_admin\", \"emergency_physician\", \"out_of_hours_gp\"]",
            "set_target.comparator: [\"above\", \"at_least\", \"at_most\", \"below\", \"≤\", \"≥\"]",
            "acknowledge_notification.recipient: [\"care_group\"]",
            "hand_over_lead.lead: [\"none\"]",
        ]
    );
}

#[test]
fn the_schemas_state_the_parser_s_limits() {
    let schemas = documented();
    let commands = &schemas["AppendBody"]["properties"]["commands"];
    assert_eq!(commands["minItems"], 1);
    assert_eq!(commands["maxItems"], careledger_core::ledger::MAX_BATCH);
    for kind in ["order_lab", "extend_annual_panel"] {
        let tests = &schemas[&CommandBody::schema_name(kind)]["properties"]["tests"];
        assert_eq!(tests["maxItems"], crate::wire::MAX_TESTS, "{kind}");
    }
    assert_eq!(
        schemas["Text"]["maxLength"],
        careledger_core::ids::Text::MAX_LEN
    );
}

#[test]
fn the_command_schema_is_a_one_of_every_command_with_a_type_discriminator() {
    let schema = serde_json::to_value(CommandBody::schema()).unwrap();
    let options = schema["oneOf"].as_array().unwrap();
    assert_eq!(options.len(), COMMAND_TYPES.len());
    assert_eq!(schema["discriminator"]["propertyName"], "type");
    for kind in COMMAND_TYPES {
        let target = format!("#/components/schemas/{}", CommandBody::schema_name(kind));
        assert_eq!(schema["discriminator"]["mapping"][kind], target.as_str());
    }
}

#[test]
fn recorded_events_are_tagged_by_every_kind_of_the_catalogue() {
    let schemas = documented();
    let data = &schemas["EventData"];
    let kinds: Vec<String> = data["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|o| strings(&o["properties"]["type"]["enum"]))
        .collect();
    assert_eq!(kinds, Event::KINDS);
}

/// Each variant's JSON name, through serde, parse and the schema.
fn assert_named<T: WireName + serde::Serialize + serde::de::DeserializeOwned + PartialSchema>() {
    let names = names::<T>();
    let distinct: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    for value in T::all() {
        let json = serde_json::to_value(value).unwrap();
        assert_eq!(json, value.as_str(), "serde writes the name");
        assert_eq!(
            serde_json::from_value::<T>(json).unwrap(),
            value,
            "serde reads it"
        );
        assert_eq!(T::parse(value.as_str()), Some(value));
    }
    assert_eq!(T::parse("no such name"), None);
    let schema = serde_json::to_value(T::schema()).unwrap();
    let listed: Vec<&str> = schema["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        &listed[..names.len()],
        &names[..],
        "the schema lists the names first"
    );
    for extra in &listed[names.len()..] {
        assert!(
            T::parse(extra).is_some(),
            "{extra} is listed, so it is read"
        );
    }
}

#[test]
fn every_enumeration_is_written_read_and_listed_by_the_same_names() {
    assert_named::<Role>();
    assert_named::<Line>();
    assert_named::<MeasureCode>();
    assert_named::<SmokingStatus>();
    assert_named::<IntoleranceKind>();
    assert_named::<CodeSystem>();
    assert_named::<CodeSystemUri>();
    assert_named::<DoseUnit>();
    assert_named::<Comparator>();
    assert_named::<Lead>();
    assert_named::<Practitioner>();
    assert_named::<TargetBasis>();
    assert_named::<TargetStatus>();
    assert_named::<MeasurementSource>();
    assert_named::<NoteKind>();
    assert_named::<GoalOutcome>();
    assert_named::<ChangeReasonCode>();
    assert_named::<EpisodeStatus>();
    assert_named::<TrendBasis>();
    assert_named::<Direction>();
    assert_named::<LeadStatus>();
    assert_named::<ValueKind>();
    assert_named::<NotificationFilter>();
    assert_named::<AuditLine>();
    assert_named::<HealthStatus>();
    assert_named::<UnhealthyClass>();
    assert_named::<StreamEventType>();
}

#[test]
fn the_stream_s_own_event_types_are_no_kind_of_recorded_event() {
    for name in names::<StreamEventType>() {
        assert!(
            !Event::KINDS.contains(&name),
            "{name} is also an event kind: a subscriber could not tell them apart"
        );
    }
}

#[test]
fn binary_fields_are_documented_as_base64() {
    let schemas = documented();
    // A recorded event's own fields sit beside its flattened `type` and `data`.
    let object = |name: &str| -> Value {
        let schema = &schemas[name];
        match schema["allOf"].as_array() {
            Some(parts) => parts
                .iter()
                .find(|p| p.get("properties").is_some())
                .cloned()
                .unwrap(),
            None => schema.clone(),
        }
    };
    for (name, field) in [
        ("RecordedEventView", "frame"),
        ("ExportedEventView", "frame"),
        ("CheckpointEventView", "root_base64"),
    ] {
        let holder = object(name);
        let schema = resolve(&schemas, &holder["properties"][field]);
        assert_eq!(schema["format"], "byte", "{name}.{field}");
        assert_eq!(schema["contentEncoding"], "base64", "{name}.{field}");
    }
    let required = strings(&object("RecordedEventView")["required"]);
    assert!(required.contains("frame"), "every event has its frame");
}

#[test]
fn names_core_owns_are_core_s() {
    let roles: Vec<&str> = CoreRole::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(names::<Role>(), roles);
    let measures: Vec<&str> = Measure::ALL.iter().map(|m| m.code()).collect();
    assert_eq!(names::<MeasureCode>(), measures);
    for spelling in crate::wire::names::COMPARATOR_SPELLINGS {
        assert!(CoreComparator::parse(spelling).is_ok(), "{spelling}");
    }
    assert_eq!(names::<Comparator>(), ["≤", "<", "≥", ">"]);
}

#[test]
fn times_are_date_times() {
    let schema = serde_json::to_value(Time::schema()).unwrap();
    assert_eq!(schema["format"], "date-time");
}

fn parameters<T: IntoParams>() -> BTreeMap<String, Value> {
    T::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| (p.name.clone(), serde_json::to_value(&p).unwrap()))
        .collect()
}

#[test]
fn query_parameters_declare_their_ranges_patterns_and_enumerations() {
    let page = parameters::<PageQuery>();
    assert_eq!(page["limit"]["schema"]["minimum"], 1);
    assert_eq!(page["limit"]["schema"]["maximum"], 1000);
    assert_eq!(page["after"]["schema"]["minimum"], 0);
    assert_eq!(
        page["patient"]["schema"]["pattern"],
        "^[A-Za-z0-9._:-]{1,64}$"
    );
    assert!(page
        .values()
        .all(|p| p["in"] == "query" && p["required"] == false));
    let stream = parameters::<StreamQuery>();
    assert_eq!(stream["from_revision"]["schema"]["minimum"], 1);
    assert_eq!(stream["limit"]["schema"]["maximum"], 1000);
    let audit = parameters::<AuditQuery>();
    let schemas = documented();
    assert_eq!(
        enumeration(&schemas, &audit["line"]["schema"]),
        BTreeSet::from(["first".into(), "second".into(), "patient".into()])
    );
    for time in ["from", "until"] {
        let text = audit[time]["schema"].to_string();
        assert!(text.contains("Timestamp"), "{time}: {text}");
    }
    let notifications = parameters::<NotificationQuery>();
    assert_eq!(
        enumeration(&schemas, &notifications["status"]["schema"]),
        BTreeSet::from(["open".into(), "overdue".into(), "all".into()])
    );
}
