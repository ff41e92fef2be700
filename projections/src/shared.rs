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

/// What a view stores once, and how the tables find it again.
trait Once: Sized {
    /// Its plain serde form.
    type Fields: Serialize;
    /// What a reference that names nothing is a reference of, for the error.
    const WHAT: &'static str;
    fn fields(&self) -> &Self::Fields;
    fn from_fields(fields: Self::Fields) -> Self;
    /// While writing: the reference to this value when the view has written it before;
    /// otherwise notes it as written (in full, by the caller) and gives `None`.
    fn written_before(&self, writing: &mut Writing) -> Option<u64>;
    /// While reading: keeps this value, just read in full, for the references after it.
    fn keep(&self, reading: &mut Reading);
    fn find(reading: &Reading, reference: u64) -> Option<Self>;
}

fn write_once<T: Once, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    let earlier =
        WRITING.with_borrow_mut(|writing| writing.as_mut().map(|w| value.written_before(w)));
    match earlier {
        None => value.fields().serialize(s),
        Some(Some(reference)) => Written::<T::Fields>::Earlier(reference).serialize(s),
        Some(None) => Written::Here(value.fields()).serialize(s),
    }
}

fn read_once<'de, T: Once, D: Deserializer<'de>>(d: D) -> Result<T, D::Error>
where
    T::Fields: Deserialize<'de>,
{
    if READING.with_borrow(Option::is_none) {
        return T::Fields::deserialize(d).map(T::from_fields);
    }
    match Read::<T::Fields>::deserialize(d)? {
        Read::Here(fields) => {
            let value = T::from_fields(fields);
            READING.with_borrow_mut(|reading| {
                if let Some(reading) = reading.as_mut() {
                    value.keep(reading);
                }
            });
            Ok(value)
        }
        Read::Earlier(reference) => READING
            .with_borrow(|reading| reading.as_ref().and_then(|r| T::find(r, reference)))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "a {} refers to {reference}, which the view has not given before",
                    T::WHAT
                ))
            }),
    }
}

/// A provenance is named by its event's position.
impl Once for Provenance {
    type Fields = ProvenanceFields;
    const WHAT: &'static str = "provenance";

    fn fields(&self) -> &ProvenanceFields {
        self
    }

    fn from_fields(fields: ProvenanceFields) -> Self {
        Provenance::new(fields)
    }

    fn written_before(&self, writing: &mut Writing) -> Option<u64> {
        // The same position with another hash (never within one patient's view) is written in
        // full again, and references name that one from then on.
        let before = writing.provenances.insert(self.position, self.hash);
        (before == Some(self.hash)).then_some(self.position)
    }

    fn keep(&self, reading: &mut Reading) {
        reading.provenances.insert(self.position, self.clone());
    }

    fn find(reading: &Reading, position: u64) -> Option<Self> {
        reading.provenances.get(&position).cloned()
    }
}

impl Serialize for Provenance {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        write_once(self, s)
    }
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read_once(d)
    }
}

/// A message is named by its number among those written in full: the same value in memory
/// (its address) is the same message.
impl Once for Arc<Message> {
    type Fields = Message;
    const WHAT: &'static str = "message";

    fn fields(&self) -> &Message {
        self
    }

    fn from_fields(fields: Message) -> Self {
        Arc::new(fields)
    }

    fn written_before(&self, writing: &mut Writing) -> Option<u64> {
        let next = writing.messages.len() as u64;
        let number = *writing
            .messages
            .entry(Arc::as_ptr(self) as usize)
            .or_insert(next);
        (number != next).then_some(number)
    }

    fn keep(&self, reading: &mut Reading) {
        reading.messages.push(Arc::clone(self));
    }

    fn find(reading: &Reading, number: u64) -> Option<Self> {
        usize::try_from(number)
            .ok()
            .and_then(|n| reading.messages.get(n).cloned())
    }
}

/// `#[serde(with = "crate::shared::message")]` for an `Arc<Message>` field: in a stored view,
/// each message once.
pub(crate) mod message {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(m: &Arc<Message>, s: S) -> Result<S::Ok, S::Error> {
        write_once(m, s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Message>, D::Error> {
        read_once(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Told(
        #[serde(with = "message")] Arc<Message>,
        #[serde(with = "message")] Arc<Message>,
    );

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .map(|(value, _)| value)
            .map_err(|e| e.to_string())
    }

    fn sentence() -> Arc<Message> {
        let mut m = Message::new("note_added");
        m.values.insert("subject".into(), "CVRM follow-up".into());
        Arc::new(m)
    }

    #[test]
    fn one_message_in_two_places_is_stored_once_and_read_back_shared() {
        let m = sentence();
        let plain = encode(&Told(Arc::clone(&m), Arc::clone(&m)));
        let stored = writing(|| encode(&Told(Arc::clone(&m), Arc::clone(&m))));
        assert!(
            stored.len() < plain.len() * 2 / 3,
            "{} of {}",
            stored.len(),
            plain.len()
        );
        let read: Told = reading(|| decode(&stored)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*read.0, *m);
        assert!(Arc::ptr_eq(&read.0, &read.1));
        // Two equal messages that are not one in memory are two messages, each in full behind
        // its one-byte variant.
        let apart = writing(|| encode(&Told(sentence(), sentence())));
        assert_eq!(apart.len(), plain.len() + 2);
        // Outside a stored view a message is its fields.
        let read: Told = decode(&plain).unwrap_or_else(|e| panic!("{e}"));
        assert!(!Arc::ptr_eq(&read.0, &read.1));
    }

    #[test]
    fn a_message_referring_to_one_not_given_before_is_unreadable() {
        let m = sentence();
        // The first place holds message 0 in full; the second names message 3.
        let told = [
            encode(&Written::Here(&*m)),
            encode(&Written::<Message>::Earlier(3)),
        ]
        .concat();
        let error = reading(|| decode::<Told>(&told)).err().unwrap_or_default();
        assert!(error.contains("a message refers to 3"), "{error}");
        let fine = [
            encode(&Written::Here(&*m)),
            encode(&Written::<Message>::Earlier(0)),
        ]
        .concat();
        assert!(reading(|| decode::<Told>(&fine)).is_ok());
    }
}
