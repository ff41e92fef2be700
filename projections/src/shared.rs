//! One provenance per event in a stored view.
//!
//! An event's [`Provenance`] stands beside everything the event made in a patient's view: its
//! audit entry, the plan element it set, the series entry of a value, a correction's mark. In
//! memory they share one; encoded as plain serde, every one of them would be a full copy
//! (about 100 bytes each: the hash, the actor, their name and the reason). While a view is
//! encoded for the store ([`writing`]) a provenance whose position the same view has encoded
//! before is written as a reference to that position; while a stored view is decoded
//! ([`reading`]) the reference takes the provenance decoded earlier, shared as it was.
//!
//! Outside these two scopes (JSON answers, the team index) a provenance is its plain fields.
//! The stored form of a provenance in a view is, in bincode: variant `0` ‖ position (an earlier
//! one of this view), or variant `1` ‖ the plain fields; a reference names the provenance last
//! written in full at that position.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cell::RefCell;
use std::collections::HashMap;

use careledger_core::record::Hash;

use crate::{Provenance, ProvenanceFields};

thread_local! {
    /// While a view is written: the position of every provenance written in full, with its
    /// event's hash.
    static WRITTEN: RefCell<Option<HashMap<u64, Hash>>> = const { RefCell::new(None) };
    /// While a view is read: every provenance read in full, by position.
    static READ: RefCell<Option<HashMap<u64, Provenance>>> = const { RefCell::new(None) };
}

/// Runs `encode` (the encoding of one view for the store) with provenances written once per
/// position.
pub(crate) fn writing<R>(encode: impl FnOnce() -> R) -> R {
    let _scope = Scope::enter(&WRITTEN);
    encode()
}

/// Runs `decode` (the decoding of one view [`writing`] encoded), with references resolved.
pub(crate) fn reading<R>(decode: impl FnOnce() -> R) -> R {
    let _scope = Scope::enter(&READ);
    decode()
}

/// One scope's table, emptied when the scope ends, however it ends.
struct Scope<T: 'static> {
    table: &'static std::thread::LocalKey<RefCell<Option<HashMap<u64, T>>>>,
}

impl<T: 'static> Scope<T> {
    fn enter(table: &'static std::thread::LocalKey<RefCell<Option<HashMap<u64, T>>>>) -> Self {
        table.with_borrow_mut(|t| {
            assert!(t.is_none(), "a view is encoded or decoded within another");
            *t = Some(HashMap::new());
        });
        Scope { table }
    }
}

impl<T: 'static> Drop for Scope<T> {
    fn drop(&mut self) {
        self.table.with_borrow_mut(|t| *t = None);
    }
}

/// A provenance as stored in a view.
#[derive(Serialize)]
enum Written<'a> {
    Earlier(u64),
    Here(&'a ProvenanceFields),
}

#[derive(Deserialize)]
enum Read {
    Earlier(u64),
    Here(ProvenanceFields),
}

impl Serialize for Provenance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let earlier = WRITTEN.with_borrow_mut(|written| {
            written.as_mut().map(|written| {
                // The same position with another hash (never within one patient's view) is
                // written in full again, and references name that one from then on.
                let before = written.insert(self.position, self.hash);
                before == Some(self.hash)
            })
        });
        match earlier {
            None => ProvenanceFields::serialize(self, s),
            Some(true) => Written::Earlier(self.position).serialize(s),
            Some(false) => Written::Here(self).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if READ.with_borrow(Option::is_none) {
            return ProvenanceFields::deserialize(d).map(Provenance::new);
        }
        match Read::deserialize(d)? {
            Read::Here(fields) => {
                let p = Provenance::new(fields);
                READ.with_borrow_mut(|read| {
                    if let Some(read) = read.as_mut() {
                        read.insert(p.position, p.clone());
                    }
                });
                Ok(p)
            }
            Read::Earlier(position) => READ
                .with_borrow(|read| read.as_ref().and_then(|read| read.get(&position).cloned()))
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "a provenance refers to position {position}, which the view has not given before"
                    ))
                }),
        }
    }
}
