//! Reads a parsed JSON body into the wire types with typed errors, each at its path.
//!
//! `serde_json` reports a missing or unknown field only as a message; this deserializer over a
//! [`serde_json::Value`] gets serde's structured calls (`missing_field`, `unknown_field`,
//! `invalid_type`) as a typed [`Shape`], and `serde_path_to_error` adds the path, so that
//! [`read`] can say `commands[0].name is required` without reading any message text. It also
//! refuses strings longer than [`Text::MAX_LEN`] bytes, and hands an object's `type` key to the
//! visitor first, so that a command is dispatched on its type without buffering (and its fields'
//! paths stay known).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Unexpected};
use serde::de::{value::BorrowedStrDeserializer, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use serde_path_to_error::Segment;

use careledger_core::ids::Text;

use super::error::{WireError, WireErrorKind};

/// Reads `value` as a `T`, naming the path of the first problem.
pub(crate) fn read<'de, T: Deserialize<'de>>(value: &'de Value) -> Result<T, WireError> {
    serde_path_to_error::deserialize(Json(value)).map_err(|e| {
        let path = render(e.path());
        shape_error(path, e.into_inner())
    })
}

/// A problem with a body's shape, as serde reports it.
#[derive(Debug)]
pub(crate) enum Shape {
    /// A required field is absent.
    Missing(&'static str),
    /// A field the type does not have.
    Unknown {
        field: String,
        known: &'static [&'static str],
    },
    /// A value of the wrong JSON type.
    Type { expected: String, got: String },
    /// A string longer than [`Text::MAX_LEN`] bytes.
    TooLong(usize),
    /// Anything else, as a sentence (an unknown command type, a bad expected revision).
    Custom(String),
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Missing(field) => write!(f, "{field} is required"),
            Shape::Unknown { field, .. } => write!(f, "{field} is not a known field here"),
            Shape::Type { expected, got } => write!(f, "must be {expected}, got {got}"),
            Shape::TooLong(bytes) => write!(
                f,
                "is {bytes} bytes; at most {} are accepted",
                Text::MAX_LEN
            ),
            Shape::Custom(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Shape {}

impl de::Error for Shape {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Shape::Custom(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Shape::Missing(field)
    }

    fn unknown_field(field: &str, known: &'static [&'static str]) -> Self {
        Shape::Unknown {
            field: field.to_owned(),
            known,
        }
    }

    fn invalid_type(got: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Shape::Type {
            expected: expected.to_string(),
            got: unexpected(got).to_owned(),
        }
    }
}

/// The sentence for a shape problem at `path`.
fn shape_error(path: String, shape: Shape) -> WireError {
    let at = |path: &str| {
        if path.is_empty() {
            "the body".to_owned()
        } else {
            path.to_owned()
        }
    };
    let (path, message) = match shape {
        Shape::Missing(field) => {
            let path = join(&path, field);
            let message = format!("{} is required", at(&path));
            (path, message)
        }
        Shape::Unknown { field, known } => {
            let ends_with_field = path == field || path.ends_with(&format!(".{field}"));
            let path = if ends_with_field {
                path
            } else {
                join(&path, &field)
            };
            let message = format!(
                "{} is not a known field here; known fields: {}",
                at(&path),
                known.join(", ")
            );
            (path, message)
        }
        Shape::Custom(sentence) => {
            let message = if path.is_empty() {
                sentence
            } else {
                format!("{path}: {sentence}")
            };
            (path, message)
        }
        other @ (Shape::Type { .. } | Shape::TooLong(_)) => {
            let message = format!("{} {other}", at(&path));
            (path, message)
        }
    };
    WireError {
        path,
        message,
        kind: WireErrorKind::Malformed,
    }
}

/// `base.field`, or `field` at the top.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_owned()
    } else {
        format!("{base}.{field}")
    }
}

/// A path as `commands[3].value`.
fn render(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { .. } => {}
            Segment::Unknown => out.push_str(if out.is_empty() { "?" } else { ".?" }),
        }
    }
    out
}

/// What a JSON value is, for messages ("got a number").
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// What serde found, in the same words as [`kind`].
fn unexpected(got: Unexpected<'_>) -> &'static str {
    match got {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Str(_) | Unexpected::Char(_) => "a string",
        Unexpected::Unit | Unexpected::Option => "null",
        Unexpected::Seq => "an array",
        Unexpected::Map => "an object",
        _ => "another value",
    }
}

fn wrong_type(expected: &str, value: &Value) -> Shape {
    Shape::Type {
        expected: expected.to_owned(),
        got: kind(value).to_owned(),
    }
}

fn bounded(s: &str) -> Result<&str, Shape> {
    if s.len() > Text::MAX_LEN {
        return Err(Shape::TooLong(s.len()));
    }
    Ok(s)
}

/// A deserializer over a borrowed JSON value whose errors are [`Shape`]s.
struct Json<'de>(&'de Value);

impl<'de> Deserializer<'de> for Json<'de> {
    type Error = Shape;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(bounded(s)?),
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            Value::Object(map) => visitor.visit_map(Object::new(map)),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            other => Err(wrong_type("true or false", other)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Number(n) if n.as_u64().is_some() => {
                visitor.visit_u64(n.as_u64().unwrap_or_default())
            }
            other => Err(wrong_type("a non-negative whole number", other)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(bounded(s)?),
            other => Err(wrong_type("a string", other)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        self.deserialize_str(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(Seq(items.iter())),
            other => Err(wrong_type("an array", other)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(Object::new(map)),
            other => Err(wrong_type("a JSON object", other)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Shape> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Shape> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(BorrowedStrDeserializer::new(bounded(s)?)),
            other => Err(wrong_type("a string", other)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Shape> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct identifier
    }
}

/// The items of an array.
struct Seq<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Shape;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Shape> {
        self.0.next().map(|v| seed.deserialize(Json(v))).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

/// The entries of an object, its `type` first.
struct Object<'de> {
    entries: std::vec::IntoIter<(&'de String, &'de Value)>,
    value: Option<&'de Value>,
}

impl<'de> Object<'de> {
    fn new(map: &'de Map<String, Value>) -> Self {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_by_key(|(key, _)| key.as_str() != "type");
        Object {
            entries: entries.into_iter(),
            value: None,
        }
    }
}

impl<'de> MapAccess<'de> for Object<'de> {
    type Error = Shape;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Shape> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Shape> {
        match self.value.take() {
            Some(value) => seed.deserialize(Json(value)),
            None => Err(Shape::Custom("a value was read before its key".into())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}
