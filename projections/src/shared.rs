//! What an event gives several places of a stored view is stored once.
//!
//! An event's [`Provenance`] stands beside everything the event made in a patient's view: its
//! audit entry, the plan element it set, the series entry of a value, a correction's mark. Its
//! [`Message`] is its audit entry's sentence and the text of each notification it caused. In
//! memory each is one value, shared; encoded as plain serde, every place would hold a full copy
//! (about 100 bytes for a provenance: the hash, the actor, their name and the reason; a message
//! about as much). While a view is encoded for the store ([`writing`]):
//! - a provenance whose position the same view has encoded before is written as a reference to
//!   that position;
//! - a message the view has encoded before (the same value in memory) is written as a reference
//!   to its number among the messages written in full, counted from 0 in encoding order.
//!
//! While a stored view is decoded ([`reading`]) a reference takes the value decoded earlier,
//! shared as it was when folded. A reference to something the view has not given before makes
//! the view unreadable.
//!
//! Outside these two scopes (JSON answers, the team index) both are their plain fields. The
//! stored form of each in a view is, in bincode: variant `0` ‖ the reference (a varint), or
//! variant `1` ‖ the plain fields; a provenance reference names the provenance last written in
//! full at that position.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use careledger_core::record::Hash;

use crate::message::Message;
use crate::{Provenance, ProvenanceFields};

/// What a view being written has written in full so far.
#[derive(Default)]
struct Writing {
    /// Every provenance's position, with its event's hash.
    provenances: HashMap<u64, Hash>,
    /// Every message's address in memory, with its number.
    messages: HashMap<usize, u64>,
}

/// What a view being read has read in full so far.
#[derive(Default)]
struct Reading {
    provenances: HashMap<u64, Provenance>,
    messages: Vec<Arc<Message>>,
}

thread_local! {
    static WRITING: RefCell<Option<Writing>> = const { RefCell::new(None) };
    static READING: RefCell<Option<Reading>> = const { RefCell::new(None) };
}

/// Runs `encode` (the encoding of one view for the store) with each provenance and message
/// written once.
pub(crate) fn writing<R>(encode: impl FnOnce() -> R) -> R {
    let _scope = Scope::enter(&WRITING);
    encode()
}

/// Runs `decode` (the decoding of one view [`writing`] encoded), with references resolved.
pub(crate) fn reading<R>(decode: impl FnOnce() -> R) -> R {
    let _scope = Scope::enter(&READING);
    decode()
}

/// One scope's tables, dropped when the scope ends, however it ends.
struct Scope<T: Default + 'static> {
    tables: &'static std::thread::LocalKey<RefCell<Option<T>>>,
}

impl<T: Default + 'static> Scope<T> {
    fn enter(tables: &'static std::thread::LocalKey<RefCell<Option<T>>>) -> Self {
        tables.with_borrow_mut(|t| {
            assert!(t.is_none(), "a view is encoded or decoded within another");
            *t = Some(T::default());
        });
        Scope { tables }
    }
}

impl<T: Default + 'static> Drop for Scope<T> {
    fn drop(&mut self) {
        self.tables.with_borrow_mut(|t| *t = None);
    }
}

/// A provenance or message as stored in a view.
#[derive(Serialize)]
enum Written<'a, T> {
    Earlier(u64),
    Here(&'a T),
}

#[derive(Deserialize)]
enum Read<T> {
    Earlier(u64),
    Here(T),
}

fn unknown<E: serde::de::Error>(what: &str, reference: u64) -> E {
    E::custom(format!(
        "a {what} refers to {reference}, which the view has not given before"
    ))
}

impl Serialize for Provenance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let earlier = WRITING.with_borrow_mut(|writing| {
            writing.as_mut().map(|writing| {
                // The same position with another hash (never within one patient's view) is
                // written in full again, and references name that one from then on.
                let before = writing.provenances.insert(self.position, self.hash);
                before == Some(self.hash)
            })
        });
        match earlier {
            None => ProvenanceFields::serialize(self, s),
            Some(true) => Written::<ProvenanceFields>::Earlier(self.position).serialize(s),
            Some(false) => Written::Here(&**self).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if READING.with_borrow(Option::is_none) {
            return ProvenanceFields::deserialize(d).map(Provenance::new);
        }
        match Read::deserialize(d)? {
            Read::Here(fields) => {
                let p = Provenance::new(fields);
                READING.with_borrow_mut(|reading| {
                    if let Some(reading) = reading.as_mut() {
                        reading.provenances.insert(p.position, p.clone());
                    }
                });
                Ok(p)
            }
            Read::Earlier(position) => READING
                .with_borrow(|reading| {
                    reading
                        .as_ref()
                        .and_then(|reading| reading.provenances.get(&position).cloned())
                })
                .ok_or_else(|| unknown("provenance", position)),
        }
    }
}

/// `#[serde(with = "crate::shared::message")]` for an `Arc<Message>` field: in a stored view,
/// each message once.
pub(crate) mod message {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(m: &Arc<Message>, s: S) -> Result<S::Ok, S::Error> {
        let address = Arc::as_ptr(m) as usize;
        let earlier = WRITING.with_borrow_mut(|writing| {
            writing.as_mut().map(|writing| {
                let next = writing.messages.len() as u64;
                match writing.messages.entry(address) {
                    std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(next);
                        None
                    }
                }
            })
        });
        match earlier {
            None => Message::serialize(m, s),
            Some(Some(number)) => Written::<Message>::Earlier(number).serialize(s),
            Some(None) => Written::Here(&**m).serialize(s),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Message>, D::Error> {
        if READING.with_borrow(Option::is_none) {
            return Message::deserialize(d).map(Arc::new);
        }
        match Read::deserialize(d)? {
            Read::Here(m) => {
                let m = Arc::new(m);
                READING.with_borrow_mut(|reading| {
                    if let Some(reading) = reading.as_mut() {
                        reading.messages.push(Arc::clone(&m));
                    }
                });
                Ok(m)
            }
            Read::Earlier(number) => READING
                .with_borrow(|reading| {
                    reading.as_ref().and_then(|reading| {
                        usize::try_from(number)
                            .ok()
                            .and_then(|n| reading.messages.get(n).cloned())
                    })
                })
                .ok_or_else(|| unknown("message", number)),
        }
    }
}
