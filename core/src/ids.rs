//! Identifiers with validating constructors: a value of these types is always well formed.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

use crate::error::InvalidInput;

/// Longest identifier accepted for patients, actors, medications and the like.
pub const MAX_ID_LEN: usize = 64;

fn check_token(kind: &'static str, raw: &str) -> Result<(), InvalidInput> {
    if raw.is_empty() || raw.len() > MAX_ID_LEN {
        return Err(InvalidInput::new(
            kind,
            format!(
                "must be 1 to {MAX_ID_LEN} characters long, got {}",
                raw.len()
            ),
        ));
    }
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':');
    if !raw.bytes().all(allowed) {
        let bad = raw
            .chars()
            .find(|c| !c.is_ascii() || !allowed(*c as u8))
            .unwrap_or_default();
        return Err(InvalidInput::new(
            kind,
            format!("may hold only letters, digits, '-', '_', '.' and ':'; found {bad:?}"),
        ));
    }
    Ok(())
}

/// The opaque id of a patient, naming the patient's stream in the ledger.
///
/// A Dutch citizen service number is accepted only when it passes the 11-proof
/// (see [`Bsn`]); other ids are opaque tokens of letters, digits and `-_.:`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PatientId(String);

impl PatientId {
    /// Parses a patient id. Nine digits are taken as a BSN and must pass the 11-proof.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        check_token("patient id", raw)?;
        if raw.len() == 9 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Bsn::parse(raw)?;
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id the ledger reserves for itself ([`crate::signing_keys::KEY_STREAM`]), known valid.
    pub(crate) fn reserved(id: &'static str) -> Self {
        debug_assert!(check_token("patient id", id).is_ok());
        Self(id.to_owned())
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Dutch citizen service number (BSN): nine digits that pass the 11-proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bsn([u8; 9]);

impl Bsn {
    /// Parses a BSN; leading zeros count, so `"012345672"` has nine digits.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let bytes = raw.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(InvalidInput::new("BSN", "must be exactly 9 digits"));
        }
        let mut digits = [0u8; 9];
        for (slot, b) in digits.iter_mut().zip(bytes) {
            *slot = b - b'0';
        }
        // 11-proof: 9*d1 + 8*d2 + ... + 2*d8 - 1*d9 is divisible by 11 (and not zero).
        let sum: i64 = digits[..8]
            .iter()
            .enumerate()
            .map(|(i, d)| (9 - i as i64) * i64::from(*d))
            .sum::<i64>()
            - i64::from(digits[8]);
        if sum == 0 || sum % 11 != 0 {
            return Err(InvalidInput::new(
                "BSN",
                format!("{raw} fails the 11-proof; check the number for a typing error"),
            ));
        }
        Ok(Self(digits))
    }
}

impl fmt::Display for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.0 {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The id of a practitioner, a patient acting on their own plan, or a system actor.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ActorId(String);

impl ActorId {
    /// An id the ledger reserves for itself ([`crate::signing_keys::OPERATOR`]), known valid.
    pub(crate) fn reserved(id: &'static str) -> Self {
        debug_assert!(check_token("actor id", id).is_ok());
        Self(id.to_owned())
    }

    /// Parses an actor id: 1 to 64 letters, digits or `-_.:`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        check_token("actor id", raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Dutch healthcare provider code (AGB-code): exactly eight digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AgbCode(String);

impl AgbCode {
    /// Parses an AGB code.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        if raw.len() != 8 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidInput::new(
                "AGB code",
                format!("must be exactly 8 digits, got {raw:?}"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A short identifier chosen by the writer for an element of the plan (a lab order,
/// a lifestyle goal), or an ATC code: same rules as other ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementId(String);

impl ElementId {
    /// Parses an element id: 1 to 64 letters, digits or `-_.:`.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        check_token("element id", raw)?;
        Ok(Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ElementId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ATC code (Anatomical Therapeutic Chemical classification), e.g. `C10AA05` for
/// atorvastatin: a letter, two digits, two letters, two digits; shorter group codes
/// (`C10AA`) are accepted too.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AtcCode(String);

impl AtcCode {
    /// Parses an ATC code, upper-casing it.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let code = raw.trim().to_ascii_uppercase();
        let b = code.as_bytes();
        let shape_ok = [1usize, 3, 4, 5, 7].contains(&b.len())
            && b.iter().enumerate().all(|(i, c)| match i {
                0 | 3 | 4 => c.is_ascii_uppercase(),
                _ => c.is_ascii_digit(),
            });
        if !shape_ok {
            return Err(InvalidInput::new(
                "ATC code",
                format!("{raw:?} is not an ATC code; expected a form like C10AA05"),
            ));
        }
        Ok(Self(code))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AtcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 128-bit identifier: event ids, correlation and causation ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Uid(pub [u8; 16]);

impl Uid {
    /// A fresh random (version 4) id.
    pub fn random() -> Self {
        Self(*uuid::Uuid::new_v4().as_bytes())
    }

    /// Parses the hyphenated or simple hexadecimal form.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        uuid::Uuid::parse_str(raw)
            .map(|u| Self(*u.as_bytes()))
            .map_err(|_| InvalidInput::new("id", format!("{raw:?} is not a UUID")))
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        uuid::Uuid::from_bytes(self.0).hyphenated().fmt(f)
    }
}

/// Free text with a length bound, for reasons, rationales, notes and names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Text(String);

impl Text {
    /// Text the ledger writes itself, known valid.
    pub(crate) fn fixed(text: &'static str) -> Self {
        debug_assert!(Self::check(text).is_ok());
        Self(text.to_owned())
    }

    /// Longest free text accepted, in bytes.
    pub const MAX_LEN: usize = 8 * 1024;

    /// Accepts text up to [`Text::MAX_LEN`] bytes without control characters other
    /// than newline and tab.
    pub fn new(raw: impl Into<String>) -> Result<Self, InvalidInput> {
        let raw = raw.into();
        Self::check(&raw)?;
        Ok(Self(raw))
    }

    /// As [`Text::new`], copying the text only once it is accepted.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Self::check(raw)?;
        Ok(Self(raw.to_owned()))
    }

    fn check(raw: &str) -> Result<(), InvalidInput> {
        if raw.len() > Self::MAX_LEN {
            return Err(InvalidInput::new(
                "text",
                format!(
                    "is {} bytes; at most {} are accepted",
                    raw.len(),
                    Self::MAX_LEN
                ),
            ));
        }
        if has_control_character(raw) {
            return Err(InvalidInput::new(
                "text",
                "must not contain control characters",
            ));
        }
        Ok(())
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `text` holds a control character (Unicode category Cc) other than newline and tab,
/// checked on the bytes: C0 and DEL are single bytes, C1 (U+0080 to U+009F) is `0xC2` followed by
/// `0x80..=0x9F`. Every stored record's texts are checked again when it is decoded, so this is
/// on the path of verification and reads.
fn has_control_character(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Most texts are printable: one pass the compiler vectorises clears them, and only a text
    // holding a candidate byte (C0, DEL or 0xC2, the lead byte of C1) is looked at closely.
    let candidate = |b: u8| b < 0x20 || b == 0x7F || b == 0xC2;
    if !bytes.iter().fold(false, |seen, &b| seen | candidate(b)) {
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && b != b'\n' && b != b'\t')
            || b == 0x7F
            || (b == 0xC2 && matches!(bytes.get(i + 1), Some(0x80..=0x9F)))
    })
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serde for a validated string type: stored as the plain string (the same bytes as a
/// `String`), read back through its parser from the borrowed text, so that decoding a
/// stored record copies each string once and checks it on the way.
macro_rules! serde_as_checked_str {
    ($($ty:ident => $parse:path),+ $(,)?) => {$(
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Checked;
                impl Visitor<'_> for Checked {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str(concat!("a string holding a valid ", stringify!($ty)))
                    }
                    fn visit_str<E: de::Error>(self, raw: &str) -> Result<$ty, E> {
                        $parse(raw).map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Checked)
            }
        }
    )+};
}

serde_as_checked_str! {
    PatientId => PatientId::parse,
    ActorId => ActorId::parse,
    AgbCode => AgbCode::parse,
    ElementId => ElementId::parse,
    AtcCode => AtcCode::parse,
    Text => Text::parse,
}

#[cfg(test)]
mod control_character_tests {
    use super::has_control_character;

    #[test]
    fn the_byte_check_agrees_with_the_unicode_category_for_every_character_up_to_u_0800() {
        for code in 0u32..0x800 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            let expected = c.is_control() && c != '\n' && c != '\t';
            for text in [
                format!("{c}"),
                format!("ab{c}"),
                format!("é{c}z"),
                format!("{c}{c}"),
            ] {
                assert_eq!(
                    has_control_character(&text),
                    expected,
                    "U+{code:04X} in {text:?}"
                );
            }
        }
        assert!(!has_control_character(
            "Dr. J. de Vries — cardioloog, ß, 日本"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsn_passing_the_eleven_proof_is_accepted() {
        assert!(Bsn::parse("111222333").is_ok());
        assert!(Bsn::parse("123456782").is_ok());
    }

    #[test]
    fn bsn_failing_the_eleven_proof_is_rejected_with_a_reason() {
        let err = Bsn::parse("123456789").unwrap_err();
        assert!(err.to_string().contains("11-proof"), "{err}");
        assert!(Bsn::parse("12345678").is_err());
        assert!(Bsn::parse("00000000a").is_err());
        assert!(Bsn::parse("000000000").is_err());
    }

    #[test]
    fn nine_digit_patient_id_must_be_a_valid_bsn() {
        assert!(PatientId::parse("111222333").is_ok());
        assert!(PatientId::parse("123456789").is_err());
        assert!(PatientId::parse("pat-0001").is_ok());
        assert!(PatientId::parse("has space").is_err());
        assert!(PatientId::parse("").is_err());
    }

    #[test]
    fn agb_code_is_eight_digits() {
        assert!(AgbCode::parse("01234567").is_ok());
        assert!(AgbCode::parse("1234567").is_err());
        assert!(AgbCode::parse("1234567x").is_err());
    }

    #[test]
    fn atc_code_is_normalised_and_checked() {
        assert_eq!(AtcCode::parse("c10aa05").unwrap().as_str(), "C10AA05");
        assert!(AtcCode::parse("C10").is_ok());
        assert!(AtcCode::parse("10AA05").is_err());
        assert!(AtcCode::parse("C10AA0").is_err());
    }

    #[test]
    fn text_rejects_control_characters_and_oversize() {
        assert!(Text::new("side effects:\nmyalgia").is_ok());
        assert!(Text::new("bell\u{7}").is_err());
        assert!(Text::new("x".repeat(Text::MAX_LEN + 1)).is_err());
    }
}
