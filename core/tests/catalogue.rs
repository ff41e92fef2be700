//! The event catalogue in `docs/hash-format.md` held to the code.
//!
//! The layouts are not copied by hand into the test: they are traced from the types' own serde
//! implementations with `serde-reflection`, by serializing one sample of every event variant and
//! of every variant of every enum a payload uses, and compared with the doc's tables both ways
//! (every traced type, field and variant is documented, and everything documented exists).
//! The variant indices are the ones serde hands to bincode, which writes them as varints.
//! Samples are built with exhaustive `match`es or checked against `Event::KINDS` and the types'
//! `ALL` lists, so a variant added without a sample fails to compile or fails here.

use std::collections::{BTreeMap, BTreeSet};

use careledger_core::clinical::{
    Indication, Intolerance, IntoleranceKind, Problem, ProblemCode, ProblemCodeSystem,
    ProblemResolution, SmokingObservation, SmokingStatus,
};
use careledger_core::event::*;
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, PatientId, Text, Uid};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::{Actor, Hash, Record, Timestamp};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use serde::Serialize;
use serde_reflection::{
    ContainerFormat, Format, Registry, Samples, Tracer, TracerConfig, VariantFormat,
};

const DOC: &str = include_str!("../../docs/hash-format.md");

// ---------------------------------------------------------------------------------------------
// Samples

/// Every variant of a unit-only enum; the `match` stops compiling when a variant is added.
macro_rules! every {
    ($ty:ident: $($variant:ident),+ $(,)?) => {{
        #[allow(dead_code)]
        fn exhaustive(v: $ty) {
            match v { $($ty::$variant => {}),+ }
        }
        vec![$($ty::$variant),+]
    }};
}

fn text(s: &str) -> Text {
    Text::new(s).unwrap()
}

fn element(s: &str) -> ElementId {
    ElementId::parse(s).unwrap()
}

fn atc(s: &str) -> AtcCode {
    AtcCode::parse(s).unwrap()
}

fn dose() -> Dose {
    Dose::parse("40", DoseUnit::Mg).unwrap()
}

fn ldl(scaled: i64) -> Quantity {
    Quantity::new(Measure::LdlCholesterol, scaled).unwrap()
}

fn change_reasons() -> Vec<ChangeReason> {
    let all = vec![
        ChangeReason::SideEffects,
        ChangeReason::TargetNotReached,
        ChangeReason::PatientPreference,
        ChangeReason::Other(text("moved abroad")),
    ];
    for r in &all {
        match r {
            ChangeReason::SideEffects
            | ChangeReason::TargetNotReached
            | ChangeReason::PatientPreference
            | ChangeReason::Other(_) => {}
        }
    }
    all
}

fn indications() -> Vec<Indication> {
    let all = vec![
        Indication::Problem(element("mi-2024")),
        Indication::Words(text("secondary prevention")),
    ];
    for i in &all {
        match i {
            Indication::Problem(_) | Indication::Words(_) => {}
        }
    }
    all
}

/// One event of every variant, in variant order, with every `Option` set and every `Vec`
/// non-empty so that the inner types are traced too.
fn events() -> Vec<Event> {
    let member = Member {
        actor: ActorId::parse("gp-jansen").unwrap(),
        name: text("A. Jansen"),
        agb: Some(AgbCode::parse("01012345").unwrap()),
        role: Role::Gp,
        lead: Lead::Cvrm,
        practitioner: Practitioner::Main,
    };
    let shared = SharedCare {
        arrangement: text("CVRM by GP"),
    };
    let commands = vec![
        Command::AddCareTeamMember(member),
        Command::RemoveCareTeamMember(MemberRemoval {
            actor: ActorId::parse("gp-jansen").unwrap(),
        }),
        Command::StartSharedCare(shared.clone()),
        Command::EndSharedCare(shared),
        Command::SetTarget(Target {
            comparator: Comparator::AtMost,
            value: ldl(18),
            basis: TargetBasis::EscGuideline,
            rationale: text("high risk"),
        }),
        Command::WithdrawTarget(TargetWithdrawal {
            measure: Measure::LdlCholesterol,
        }),
        Command::StartMedication(Medication {
            atc: atc("C10AA05"),
            name: text("atorvastatin"),
            dose: dose(),
            frequency: text("1x daily"),
            indication: Some(Indication::Problem(element("mi-2024"))),
        }),
        Command::ChangeDose(DoseChange {
            atc: atc("C10AA05"),
            dose: dose(),
            frequency: text("1x daily"),
            reason: ChangeReason::TargetNotReached,
        }),
        Command::StopMedication(MedicationStop {
            atc: atc("C10AA05"),
            reason: ChangeReason::SideEffects,
        }),
        Command::RecordMedicationPreference(MedicationPreference {
            atc: atc("C10AA07"),
            name: text("rosuvastatin"),
            preference: text("if intolerant"),
        }),
        Command::OrderLab(LabOrder {
            order: element("lab-1"),
            tests: vec![Measure::LdlCholesterol],
            annual_panel: true,
        }),
        Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::NtProBnp],
        }),
        Command::RecordLabResult(LabResult {
            order: Some(element("lab-1")),
            value: ldl(21),
        }),
        Command::RecordMeasurement(Measurement {
            value: Quantity::new(Measure::SystolicBloodPressure, 138).unwrap(),
            source: MeasurementSource::Practice,
        }),
        Command::SetLifestyleGoal(LifestyleGoal {
            goal: element("walk"),
            description: text("walk 30 minutes a day"),
        }),
        Command::CloseLifestyleGoal(GoalClosure {
            goal: element("walk"),
            outcome: GoalOutcome::Achieved,
        }),
        Command::AddNote(Note {
            kind: NoteKind::ReturnLetter,
            subject: text("return letter"),
            body: text("seen in clinic"),
        }),
        Command::AcknowledgeNotification(Acknowledgement {
            notification: 3,
            recipient: Line::First,
        }),
        Command::MarkEnteredInError(Correction { position: 7 }),
        Command::HandOverLead(LeadHandover {
            lead: Lead::Cvrm,
            to: ActorId::parse("gp-bakker").unwrap(),
        }),
        Command::RecordIntolerance(Intolerance {
            atc: atc("C10AA05"),
            substance: text("atorvastatin"),
            kind: IntoleranceKind::Intolerance,
            reaction: text("myalgia"),
        }),
        Command::RecordProblem(Problem {
            problem: element("mi-2024"),
            code: ProblemCode::parse(ProblemCodeSystem::Icpc1Nl, "K75").unwrap(),
            description: text("myocardial infarction"),
        }),
        Command::ResolveProblem(ProblemResolution {
            problem: element("mi-2024"),
        }),
        Command::RecordSmokingStatus(SmokingObservation {
            status: SmokingStatus::Former,
        }),
        Command::RegisterSigningKey(careledger_core::event::SigningKey {
            actor: ActorId::parse("gp-jansen").unwrap(),
            key_id: element("his-2026"),
            public_key: [0x3b; 32],
            system: text("HIS of practice Jansen"),
        }),
        Command::RevokeSigningKey(careledger_core::event::SigningKeyRevocation {
            actor: ActorId::parse("gp-jansen").unwrap(),
            key_id: element("his-2026"),
        }),
        Command::BreakGlass(careledger_core::event::EmergencyAccess { hours: 4 }),
    ];
    commands.into_iter().map(Command::into_event).collect()
}

fn record(event: Event) -> Record {
    Record {
        patient: PatientId::parse("999990007").unwrap(),
        revision: 1,
        event_id: Uid([1; 16]),
        recorded_at: Timestamp::from_micros(1_772_355_601_000_000),
        occurred_at: Timestamp::from_micros(1_772_355_600_000_000),
        actor: Actor {
            id: ActorId::parse("gp-jansen").unwrap(),
            role: Role::Gp,
            name: text("A. Jansen"),
            organisation: Some(AgbCode::parse("01012345").unwrap()),
        },
        reason: text("founds the care team"),
        correlation_id: Uid([0xc0; 16]),
        causation_id: Some(Uid([0xca; 16])),
        idempotency_key: Some("letter-2026-03-01".into()),
        signed_request: Some(Hash([0x5e; 32])),
        event,
    }
}

/// The formats of every type a record holds, traced from their serde implementations.
fn traced() -> Registry {
    let mut tracer = Tracer::new(TracerConfig::default());
    let mut samples = Samples::new();
    let events = events();
    assert_eq!(
        events.iter().map(Event::kind).collect::<Vec<_>>(),
        Event::KINDS,
        "one sample event per variant, in variant order"
    );
    macro_rules! trace {
        ($($values:expr),+ $(,)?) => {$(
            for value in $values {
                tracer.trace_value(&mut samples, &value).unwrap();
            }
        )+};
    }
    trace!(events.into_iter().map(record));
    trace!(
        Role::ALL,
        Measure::ALL,
        SmokingStatus::ALL,
        change_reasons(),
        indications(),
        every!(Line: First, Second, Patient, CareGroup),
        every!(Lead: Cvrm, OrganDisease, None),
        every!(Practitioner: Main, Co, NotApplicable),
        every!(Comparator: AtMost, Below, AtLeast, Above),
        every!(TargetBasis: NhgGuideline, EscGuideline, Individual),
        every!(DoseUnit: Mg, Microgram, Ml, Unit, Tablet),
        every!(MeasurementSource: Practice, Hospital, SelfMeasuredAtHome),
        every!(GoalOutcome: Achieved, Abandoned, Replaced),
        every!(NoteKind: Note, ReturnLetter, InterimLetter),
        every!(IntoleranceKind: Intolerance, ContraIndication),
        every!(ProblemCodeSystem: Icpc1Nl, Icd10),
    );
    tracer.registry().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The doc's tables

/// One row of a catalogue table: column header → cell, backticks removed.
type Row = BTreeMap<String, String>;

/// The rows of the table between `<!-- catalogue:NAME -->` and `<!-- /catalogue:NAME -->`; a
/// blank first cell repeats the first cell of the row above.
fn table(name: &str) -> Vec<Row> {
    let open = format!("<!-- catalogue:{name} -->");
    let close = format!("<!-- /catalogue:{name} -->");
    let start = DOC
        .find(&open)
        .unwrap_or_else(|| panic!("docs/hash-format.md has no {open}"))
        + open.len();
    let end = start
        + DOC[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("docs/hash-format.md has no {close}"));
    let mut lines = DOC[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'));
    let header = cells(lines.next().expect("a header row"));
    let rule = lines.next().expect("a separator row");
    assert!(rule.contains("---"), "{name}: {rule}");
    let mut first = String::new();
    lines
        .map(|line| {
            let mut row = cells(line);
            assert_eq!(row.len(), header.len(), "catalogue:{name}: {line}");
            if row[0].is_empty() {
                row[0].clone_from(&first);
            } else {
                first.clone_from(&row[0]);
            }
            header.iter().cloned().zip(row).collect()
        })
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner
        .split('|')
        .map(|c| c.trim().replace('`', ""))
        .collect()
}

fn cell<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column)
        .unwrap_or_else(|| panic!("no column {column:?} in {row:?}"))
}

/// The doc's structs: name → fields in order, each (field, type as the doc writes it).
fn documented_structs() -> BTreeMap<String, Vec<(String, String)>> {
    let mut structs: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let tables = [
        ("record", Some("Record")),
        ("actor", Some("Actor")),
        ("structs", None),
    ];
    for (name, fixed) in tables {
        for row in table(name) {
            let owner = fixed.map_or_else(|| cell(&row, "struct").to_owned(), str::to_owned);
            let field = (
                cell(&row, "field").to_owned(),
                cell(&row, "type").to_owned(),
            );
            structs.entry(owner).or_default().push(field);
        }
    }
    structs
}

/// The doc's enums: name → variants in order, each (index, variant, payload).
fn documented_enums() -> BTreeMap<String, Vec<(u32, String, String)>> {
    let mut enums: BTreeMap<String, Vec<(u32, String, String)>> = BTreeMap::new();
    let index = |row: &Row| -> u32 { cell(row, "index").parse().unwrap() };
    for row in table("events") {
        let variant = (
            index(&row),
            cell(&row, "variant").into(),
            cell(&row, "payload").into(),
        );
        enums.entry("Event".into()).or_default().push(variant);
    }
    for row in table("enums") {
        let variant = (
            index(&row),
            cell(&row, "variant").into(),
            cell(&row, "payload").into(),
        );
        enums
            .entry(cell(&row, "enum").into())
            .or_default()
            .push(variant);
    }
    enums
}

// ---------------------------------------------------------------------------------------------
// The code's layouts in the doc's notation

/// A traced format in the doc's notation (`option<Uid>`, `vec<Measure>`, `[u8; 16]`).
fn notation(format: &Format) -> String {
    match format {
        Format::TypeName(name) => name.clone(),
        Format::Bool => "bool".into(),
        Format::U8 => "u8".into(),
        Format::U64 => "u64".into(),
        Format::I64 => "i64".into(),
        Format::Str => "str".into(),
        Format::Option(inner) => format!("option<{}>", notation(inner)),
        Format::Seq(inner) => format!("vec<{}>", notation(inner)),
        Format::TupleArray { content, size } => format!("[{}; {size}]", notation(content)),
        other => panic!("{other:?} has no notation in docs/hash-format.md; add one"),
    }
}

/// A documented type with the names of the types that serialize as a plain string (`ActorId`,
/// `Text`, ...) replaced by `str`, which is all their serde implementations tell.
fn as_traced(documented: &str, registry: &Registry) -> String {
    let plain: BTreeMap<String, String> = table("scalars")
        .iter()
        .filter(|row| !registry.contains_key(cell(row, "type")))
        .map(|row| (cell(row, "type").into(), cell(row, "encoded as").into()))
        .collect();
    let mut out = String::new();
    let mut word = String::new();
    for c in documented.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            out.push_str(plain.get(&word).unwrap_or(&word));
            word.clear();
            out.push(c);
        }
    }
    out.pop();
    out
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap()
}

/// The variant index a unit variant is stored with: its one-byte encoding.
fn index_of<T: Serialize>(value: &T) -> u32 {
    let bytes = encode(value);
    assert_eq!(bytes.len(), 1, "a unit variant below 251 is one byte");
    u32::from(bytes[0])
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_catalogue_lists_every_event_variant_with_its_index_and_kind() {
    let rows = table("events");
    assert_eq!(
        rows.len(),
        Event::KINDS.len(),
        "docs/hash-format.md lists {} events, the code has {}",
        rows.len(),
        Event::KINDS.len()
    );
    for (i, (row, kind)) in rows.iter().zip(Event::KINDS).enumerate() {
        assert_eq!(cell(row, "index"), i.to_string(), "row {i}: {row:?}");
        assert_eq!(cell(row, "kind"), *kind, "the kind of variant {i}");
    }
}

#[test]
fn every_struct_in_the_catalogue_has_the_fields_and_types_the_code_writes() {
    let registry = traced();
    let documented = documented_structs();
    let mut traced_structs = BTreeSet::new();
    for (name, container) in &registry {
        let ContainerFormat::Struct(fields) = container else {
            continue;
        };
        traced_structs.insert(name.clone());
        let doc = documented
            .get(name)
            .unwrap_or_else(|| panic!("docs/hash-format.md does not list the struct {name}"));
        let want: Vec<(String, String)> = fields
            .iter()
            .map(|f| (f.name.clone(), notation(&f.value)))
            .collect();
        let got: Vec<(String, String)> = doc
            .iter()
            .map(|(field, ty)| (field.clone(), as_traced(ty, &registry)))
            .collect();
        assert_eq!(got, want, "the fields of {name} in docs/hash-format.md");
    }
    let stale: Vec<_> = documented
        .keys()
        .filter(|name| !traced_structs.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "documented but not in the code: {stale:?}"
    );
}

#[test]
fn every_enum_in_the_catalogue_has_the_variants_and_indices_the_code_writes() {
    let registry = traced();
    let documented = documented_enums();
    let mut traced_enums = BTreeSet::new();
    for (name, container) in &registry {
        let ContainerFormat::Enum(variants) = container else {
            continue;
        };
        traced_enums.insert(name.clone());
        let doc = documented
            .get(name)
            .unwrap_or_else(|| panic!("docs/hash-format.md does not list the enum {name}"));
        let want: Vec<(u32, String, String)> = variants
            .iter()
            .map(|(index, v)| {
                let payload = match &v.value {
                    VariantFormat::Unit => "—".to_owned(),
                    VariantFormat::NewType(f) => notation(f),
                    other => panic!("{name}::{}: {other:?} has no notation", v.name),
                };
                (*index, v.name.clone(), payload)
            })
            .collect();
        let got: Vec<(u32, String, String)> = doc
            .iter()
            .map(|(i, v, payload)| (*i, v.clone(), as_traced(payload, &registry)))
            .collect();
        assert_eq!(got, want, "the variants of {name} in docs/hash-format.md");
    }
    let stale: Vec<_> = documented
        .keys()
        .filter(|name| !traced_enums.contains(*name))
        .collect();
    assert!(
        stale.is_empty(),
        "documented but not in the code: {stale:?}"
    );
}

#[test]
fn the_catalogue_gives_each_variant_the_code_unit_and_symbol_the_code_gives_it() {
    // (enum, index) → (code, notes) where the code defines them.
    let mut want: BTreeMap<(String, u32), (Option<String>, Option<String>)> = BTreeMap::new();
    let mut put = |ty: &str, index, code: Option<&str>, notes: Option<String>| {
        want.insert((ty.to_owned(), index), (code.map(str::to_owned), notes));
    };
    for v in Role::ALL {
        put("Role", index_of(&v), Some(v.as_str()), None);
    }
    for v in every!(Line: First, Second, Patient, CareGroup) {
        put("Line", index_of(&v), Some(v.as_str()), None);
    }
    for m in Measure::ALL {
        let decimals = match m.decimals() {
            1 => "1 decimal".to_owned(),
            n => format!("{n} decimals"),
        };
        let notes = format!("{}, {decimals}", m.unit());
        put("Measure", index_of(&m), Some(m.code()), Some(notes));
    }
    for v in every!(DoseUnit: Mg, Microgram, Ml, Unit, Tablet) {
        put("DoseUnit", index_of(&v), None, Some(v.symbol().into()));
    }
    for v in every!(Comparator: AtMost, Below, AtLeast, Above) {
        put("Comparator", index_of(&v), None, Some(v.symbol().into()));
    }
    for v in every!(IntoleranceKind: Intolerance, ContraIndication) {
        put("IntoleranceKind", index_of(&v), Some(v.code()), None);
    }
    for v in every!(ProblemCodeSystem: Icpc1Nl, Icd10) {
        put(
            "ProblemCodeSystem",
            index_of(&v),
            Some(v.code()),
            Some(v.uri().into()),
        );
    }
    for v in SmokingStatus::ALL {
        let notes = format!("SNOMED CT {}", v.snomed());
        put("SmokingStatus", index_of(&v), Some(v.code()), Some(notes));
    }
    for row in table("enums") {
        let ty = cell(&row, "enum");
        let index: u32 = cell(&row, "index").parse().unwrap();
        let (code, notes) = want.remove(&(ty.to_owned(), index)).unwrap_or((None, None));
        let documented = cell(&row, "code");
        assert_eq!(
            documented,
            code.as_deref().unwrap_or("—"),
            "the code of {ty} {index}"
        );
        if let Some(notes) = notes {
            assert_eq!(cell(&row, "notes"), notes, "the notes of {ty} {index}");
        }
    }
    assert!(want.is_empty(), "variants missing from the doc: {want:?}");
}

#[test]
fn types_that_encode_themselves_produce_the_bytes_the_catalogue_states() {
    let registry = traced();
    let mut listed = BTreeSet::new();
    for row in table("scalars") {
        let ty = cell(&row, "type");
        let (encoded_as, got, want): (&str, Vec<u8>, Vec<u8>) = match ty {
            "PatientId" => (
                "str",
                encode(&PatientId::parse("999990007").unwrap()),
                encode("999990007"),
            ),
            "ActorId" => (
                "str",
                encode(&ActorId::parse("gp-jansen").unwrap()),
                encode("gp-jansen"),
            ),
            "ElementId" => ("str", encode(&element("lab-1")), encode("lab-1")),
            "AgbCode" => (
                "str",
                encode(&AgbCode::parse("01012345").unwrap()),
                encode("01012345"),
            ),
            "AtcCode" => ("str", encode(&atc("c10aa05")), encode("C10AA05")),
            "Text" => ("str", encode(&text("é\n")), [3, 0xc3, 0xa9, b'\n'].into()),
            "Uid" => ("[u8; 16]", encode(&Uid([7; 16])), [7; 16].into()),
            "Timestamp" => ("i64", encode(&Timestamp::from_micros(-2)), [3].into()),
            "Hash" => ("[u8; 32]", encode(&Hash([9; 32])), [9; 32].into()),
            other => panic!("docs/hash-format.md lists {other}, which this test does not know"),
        };
        assert_eq!(cell(&row, "encoded as"), encoded_as, "{ty}");
        assert_eq!(got, want, "the bytes of a {ty}");
        if let Some(container) = registry.get(ty) {
            let ContainerFormat::NewTypeStruct(inner) = container else {
                panic!("{ty} is traced as {container:?}");
            };
            assert_eq!(notation(inner), encoded_as, "{ty} as traced");
        }
        listed.insert(ty.to_owned());
    }
    // Every newtype the records hold is listed.
    for (name, container) in &registry {
        if matches!(container, ContainerFormat::NewTypeStruct(_)) {
            assert!(
                listed.contains(name),
                "docs/hash-format.md does not list {name}"
            );
        }
    }
    assert_eq!(listed.len(), 9, "{listed:?}");
}

#[test]
fn the_worked_format_2_example_is_the_committed_golden_vector() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/data/golden-v2.json")).unwrap();
    let vector = &golden["vectors"][3];
    assert_eq!(vector["position"], 4);
    let section = &DOC[DOC
        .find("## A worked example (record format 2)")
        .expect("the section")..];
    let block = section.split("```").nth(1).expect("a code block");
    let hex: String = block
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(hex, vector["frame_hex"].as_str().unwrap());
}

// ---------------------------------------------------------------------------------------------
// A decoder that knows only the doc

/// Reads record bytes as `docs/hash-format.md` says, with no Rust type of the ledger: what a
/// verifier in another language does. Values come out as serde_json renders the Rust types, so
/// that they can be compared with the records the code decodes.
struct DocDecoder<'a> {
    bytes: &'a [u8],
    at: usize,
    structs: BTreeMap<String, Vec<(String, String)>>,
    enums: BTreeMap<String, Vec<(u32, String, String)>>,
    scalars: BTreeMap<String, String>,
}

impl<'a> DocDecoder<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let scalars = table("scalars")
            .iter()
            .map(|row| (cell(row, "type").into(), cell(row, "encoded as").into()))
            .collect();
        Self {
            bytes,
            at: 0,
            structs: documented_structs(),
            enums: documented_enums(),
            scalars,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let out = &self.bytes[self.at..self.at + n];
        self.at += n;
        out
    }

    /// bincode's varint: below 251 one byte, else a marker for 2, 4, 8 or 16 bytes little-endian.
    fn varint(&mut self) -> u128 {
        let width = match self.take(1)[0] {
            small @ 0..=250 => return u128::from(small),
            251 => 2,
            252 => 4,
            253 => 8,
            _ => 16,
        };
        let mut le = [0u8; 16];
        le[..width].copy_from_slice(self.take(width));
        u128::from_le_bytes(le)
    }

    fn value(&mut self, ty: &str) -> serde_json::Value {
        use serde_json::{json, Value};
        if let Some(inner) = ty.strip_prefix("option<").and_then(|t| t.strip_suffix('>')) {
            return match self.take(1)[0] {
                0 => Value::Null,
                1 => self.value(inner),
                tag => panic!("option tag {tag}"),
            };
        }
        if let Some(inner) = ty.strip_prefix("vec<").and_then(|t| t.strip_suffix('>')) {
            let count = self.varint();
            return (0..count).map(|_| self.value(inner)).collect();
        }
        if let Some(size) = ty.strip_prefix("[u8; ").and_then(|t| t.strip_suffix(']')) {
            return json!(self.take(size.parse().unwrap()));
        }
        match ty {
            "u8" => json!(self.take(1)[0]),
            "bool" => json!(match self.take(1)[0] {
                0 => false,
                1 => true,
                b => panic!("bool {b}"),
            }),
            "u64" => json!(u64::try_from(self.varint()).unwrap()),
            "i64" => {
                let z = u64::try_from(self.varint()).unwrap();
                json!((z >> 1) as i64 ^ -((z & 1) as i64))
            }
            "str" => {
                let len = usize::try_from(self.varint()).unwrap();
                json!(std::str::from_utf8(self.take(len)).unwrap())
            }
            name => self.named(name),
        }
    }

    fn named(&mut self, name: &str) -> serde_json::Value {
        if let Some(encoded_as) = self.scalars.get(name).cloned() {
            return self.value(&encoded_as);
        }
        if let Some(fields) = self.structs.get(name).cloned() {
            let mut object = serde_json::Map::new();
            for (field, ty) in fields {
                object.insert(field, self.value(&ty));
            }
            return object.into();
        }
        let variants = self
            .enums
            .get(name)
            .unwrap_or_else(|| panic!("the doc does not define {name}"))
            .clone();
        let index = self.varint();
        let (_, variant, payload) = variants
            .iter()
            .find(|(i, _, _)| u128::from(*i) == index)
            .unwrap_or_else(|| panic!("{name} has no variant {index}"));
        if payload == "—" {
            return variant.as_str().into();
        }
        let mut object = serde_json::Map::new();
        object.insert(variant.clone(), self.value(payload));
        object.into()
    }

    /// A whole record; every byte must be used.
    fn record(bytes: &[u8]) -> serde_json::Value {
        let mut decoder = DocDecoder::new(bytes);
        let value = decoder.value("Record");
        assert_eq!(decoder.at, bytes.len(), "bytes left after the record");
        value
    }
}

#[test]
fn a_decoder_that_follows_only_the_doc_reads_every_format_2_record_as_the_code_does() {
    let golden: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/data/golden-v2.json")).unwrap();
    for vector in golden["vectors"].as_array().unwrap() {
        let position = vector["position"].as_u64().unwrap();
        let bytes = hex::decode(vector["record_hex"].as_str().unwrap()).unwrap();
        let record = careledger_core::record::decode_record(position, 2, &bytes).unwrap();
        assert_eq!(
            DocDecoder::record(&bytes),
            serde_json::to_value(&record).unwrap(),
            "golden-v2 position {position}"
        );
    }
    for event in events() {
        let record = record(event);
        let bytes = careledger_core::record::encode_record(&record).unwrap();
        assert_eq!(
            DocDecoder::record(&bytes),
            serde_json::to_value(&record).unwrap(),
            "{}",
            record.event.kind()
        );
    }
}
