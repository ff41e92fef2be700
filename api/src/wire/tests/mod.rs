//! Tests of the wire types against the hand-written JSON they replaced (`legacy_dto.rs`,
//! `legacy_view.rs`, `legacy_openapi.rs`: the API's JSON and request parser as they were before the typed layer,
//! kept only as the oracle these tests compare with, and the `json!` bodies of the handlers,
//! copied where they were inline), of the request parser against the old one, of round trips,
//! and of the schemas.

mod equivalence;
mod history;
mod legacy_dto;
mod legacy_openapi;
mod legacy_view;
mod parse;
mod query;
mod roundtrip;
mod schema;

use crate::error::ApiError;
use crate::wire::{WireError, WireErrorKind};

/// What a refusal is: malformed (400) or an invalid value (422).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Malformed,
    Invalid,
}

/// The class of the old parser's refusal.
fn old_class(e: &ApiError) -> Class {
    match e {
        ApiError::Malformed(_) => Class::Malformed,
        ApiError::Unprocessable { code, .. } => {
            assert_eq!(code, "invalid_value", "{e}");
            Class::Invalid
        }
        other => panic!("the old parser refused with {other:?}"),
    }
}

/// The class of the new parser's refusal.
fn new_class(e: &WireError) -> Class {
    match e.kind {
        WireErrorKind::Malformed => Class::Malformed,
        WireErrorKind::Invalid { code } => {
            assert_eq!(code, "invalid_value", "{e}");
            Class::Invalid
        }
    }
}
