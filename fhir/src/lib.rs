//! careledger-fhir: each patient's plan, history and provenance as HL7 FHIR R4 (4.0.1) JSON,
//! with the Dutch code and naming systems of Nictiz.
//!
//! - [`model`]: the FHIR JSON shapes careledger writes, serde types of its own, kept to what it
//!   exports;
//! - [`codes`]: every code system, naming system and extension URL, once;
//! - [`bundle`]: the mapping from the read models (and the patient's recorded events, for
//!   `Provenance`) to a `searchset` Bundle, and reads of single resources;
//! - [`capability`]: the `CapabilityStatement` of what is offered.
//!
//! **Invariant:** this crate does no IO and reads no clock: a Bundle is a function of the
//! patient's read models and recorded events (and the `_since` the caller passes).
//! docs/fhir.md gives the mapping element by element.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod bundle;
pub mod capability;
pub mod codes;
pub mod model;

pub use bundle::{everything, patient_key, Request};
pub use model::{Bundle, Resource};

/// The media type of FHIR JSON.
pub const CONTENT_TYPE: &str = "application/fhir+json";

/// The FHIR version written.
pub const FHIR_VERSION: &str = "4.0.1";
