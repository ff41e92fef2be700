//! HTTP Message Signatures (RFC 9421) with ed25519, and `Content-Digest` (RFC 9530), for the
//! appends a client system signs.
//!
//! The server reads `Signature-Input`, `Signature` and `Content-Digest`, checks what the request
//! itself shows (the covered components, the digest of the body) and builds the signature base
//! (RFC 9421 §2.5) from the request as received; the ledger checks the rest against its key
//! stream and clock ([`careledger_core::signed_request`]). [`sign`] is the client's side, for
//! integrators and tests; [`check_stored`] checks a stored request again for `verify-export`.
//!
//! Supported: one signature (label `sig1`, or the only one), `alg="ed25519"`, parameters
//! `created` (required), `keyid` (required), `alg`, `expires` and `nonce`; components `@method`,
//! `@path`, `@authority`, `@target-uri` and the header fields `content-digest`, `date`,
//! `content-type`, `content-length`, without component parameters.

use base64::Engine;
use sha2::Digest;

use careledger_core::ids::ElementId;
use careledger_core::signed_request::SignedRequest;

/// The components a signed append must cover; `date` may be covered besides, `created` is
/// required as a parameter.
pub const REQUIRED_COMPONENTS: [&str; 3] = ["@method", "@path", "content-digest"];

/// The `Accept-Signature` value (RFC 9421 §5.1) a 401 for a bad signature carries: what a
/// signature the server accepts looks like.
pub const ACCEPT_SIGNATURE: &str =
    r#"sig1=("@method" "@path" "content-digest" "date");created;keyid;alg="ed25519""#;

const SUPPORTED_COMPONENTS: [&str; 8] = [
    "@method",
    "@path",
    "@authority",
    "@target-uri",
    "content-digest",
    "date",
    "content-type",
    "content-length",
];

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard base64 with padding, decoded.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// What is wrong with a signed request, for a 401 problem: a stable code and a sentence that
/// says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SignatureError {
    /// `signature_malformed`, `signature_unsupported`, `content_digest_mismatch`, ….
    pub code: &'static str,
    /// The sentence.
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> SignatureError {
    SignatureError {
        code,
        message: message.into(),
    }
}

/// A parameter value of the signature parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// An integer (`created=1618884473`).
    Integer(i64),
    /// A string (`keyid="test-key-ed25519"`).
    String(String),
}

/// The signature parameters (RFC 9421 §2.3): the covered components in order, and the
/// parameters in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureParams {
    /// Component identifiers, lower case, without quotes.
    pub components: Vec<String>,
    /// Parameters in the order given.
    pub params: Vec<(String, ParamValue)>,
}

impl SignatureParams {
    /// The value of the `@signature-params` line: the inner list serialised as a structured
    /// field (RFC 8941 §4.1.1.1).
    pub fn serialize(&self) -> String {
        let mut out = String::from("(");
        for (i, c) in self.components.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&sf_string(c));
        }
        out.push(')');
        for (name, value) in &self.params {
            out.push(';');
            out.push_str(name);
            out.push('=');
            match value {
                ParamValue::Integer(n) => out.push_str(&n.to_string()),
                ParamValue::String(s) => out.push_str(&sf_string(s)),
            }
        }
        out
    }

    fn string(&self, name: &str) -> Option<&str> {
        self.params.iter().find_map(|(n, v)| match v {
            ParamValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    fn integer(&self, name: &str) -> Option<i64> {
        self.params.iter().find_map(|(n, v)| match v {
            ParamValue::Integer(i) if n == name => Some(*i),
            _ => None,
        })
    }
}

fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The signature base (RFC 9421 §2.5): one line `"<component>": <value>` per covered
/// component, in order, then the `"@signature-params"` line; lines end with LF, the last has
/// none.
pub fn signature_base(values: &[(String, String)], params: &SignatureParams) -> String {
    let mut base = String::new();
    for (component, value) in values {
        base.push_str(&sf_string(component));
        base.push_str(": ");
        base.push_str(value);
        base.push('\n');
    }
    base.push_str("\"@signature-params\": ");
    base.push_str(&params.serialize());
    base
}

/// A small reader of the structured fields (RFC 8941) these headers use: dictionaries of
/// inner lists or byte sequences, with string and integer parameters.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text: text.as_bytes(),
            at: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn key(&mut self) -> Option<String> {
        let start = self.at;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.at += 1,
            _ => return None,
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit() || b"_-.*".contains(&c))
        {
            self.at += 1;
        }
        std::str::from_utf8(&self.text[start..self.at])
            .ok()
            .map(str::to_owned)
    }

    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = String::new();
        loop {
            match self.peek()? {
                b'\\' => {
                    self.at += 1;
                    let c = self.peek()?;
                    if c != b'"' && c != b'\\' {
                        return None;
                    }
                    out.push(c as char);
                    self.at += 1;
                }
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                c if (0x20..0x7f).contains(&c) => {
                    out.push(c as char);
                    self.at += 1;
                }
                _ => return None,
            }
        }
    }

    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        self.eat(b'-');
        while matches!(self.peek(), Some(c) if c.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        if digits.trim_start_matches('-').is_empty() || digits.len() > 16 {
            return None;
        }
        digits.parse().ok()
    }

    fn params(&mut self) -> Option<Vec<(String, ParamValue)>> {
        let mut params = Vec::new();
        while self.eat(b';') {
            self.skip_spaces();
            let name = self.key()?;
            if !self.eat(b'=') {
                return None;
            }
            let value = match self.peek()? {
                b'"' => ParamValue::String(self.string()?),
                _ => ParamValue::Integer(self.integer()?),
            };
            params.push((name, value));
        }
        Some(params)
    }

    /// `("a" "b");x=1`.
    fn inner_list(&mut self) -> Option<SignatureParams> {
        if !self.eat(b'(') {
            return None;
        }
        let mut components = Vec::new();
        loop {
            self.skip_spaces();
            if self.eat(b')') {
                break;
            }
            components.push(self.string()?);
            if self.peek() == Some(b';') {
                // Component parameters (`;sf`, `;key=`, `;req`) are not supported.
                return None;
            }
            if !matches!(self.peek(), Some(b' ' | b')')) {
                return None;
            }
        }
        let params = self.params()?;
        Some(SignatureParams { components, params })
    }

    /// `:base64:`.
    fn bytes(&mut self) -> Option<Vec<u8>> {
        if !self.eat(b':') {
            return None;
        }
        let start = self.at;
        while self.peek()? != b':' {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        self.at += 1;
        base64_decode(text)
    }

    /// A dictionary whose members are read by `member`.
    fn dictionary<T>(
        mut self,
        member: impl Fn(&mut Self) -> Option<T>,
    ) -> Option<Vec<(String, T)>> {
        let mut out = Vec::new();
        self.skip_spaces();
        while self.at < self.text.len() {
            let key = self.key()?;
            if !self.eat(b'=') {
                return None;
            }
            out.push((key, member(&mut self)?));
            self.skip_spaces();
            if self.at == self.text.len() {
                break;
            }
            if !self.eat(b',') {
                return None;
            }
            self.skip_spaces();
        }
        Some(out)
    }
}

/// The header values a request carries, joined as RFC 9421 §2.1 says (multiple field lines by
/// `, `), trimmed.
fn header_value(
    headers: &axum::http::HeaderMap,
    name: &str,
) -> Result<Option<String>, SignatureError> {
    let mut values = Vec::new();
    for v in headers.get_all(name) {
        let v = v.to_str().map_err(|_| {
            err(
                "signature_malformed",
                format!("the {name} header is not visible ASCII"),
            )
        })?;
        values.push(v.trim());
    }
    Ok((!values.is_empty()).then(|| values.join(", ")))
}

/// The `sha-256` digest of `body` as a `Content-Digest` value (RFC 9530).
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", base64_encode(&sha2::Sha256::digest(body)))
}

/// True when a `Content-Digest` value has a `sha-256` member equal to the body's digest; other
/// members are ignored, a missing `sha-256` fails.
fn digest_matches(value: &str, body: &[u8]) -> Result<bool, SignatureError> {
    let members = Reader::new(value)
        .dictionary(|r| r.bytes())
        .ok_or_else(|| {
            err(
                "signature_malformed",
                "Content-Digest is not a dictionary of byte sequences (RFC 9530): send \
             Content-Digest: sha-256=:<base64 of the SHA-256 of the body>:",
            )
        })?;
    let Some((_, digest)) = members.iter().find(|(k, _)| k == "sha-256") else {
        return Err(err(
            "signature_unsupported",
            "Content-Digest holds no sha-256 digest; send sha-256=:<base64>:",
        ));
    };
    Ok(digest.as_slice() == sha2::Sha256::digest(body).as_slice())
}

/// The request as the signature sees it.
pub struct RequestParts<'a> {
    /// The method, upper case (`POST`).
    pub method: &'a str,
    /// The path, as received (`/patients/999990007/events`).
    pub path: &'a str,
    /// The `Host` the request was sent to, for `@authority` and `@target-uri`.
    pub authority: Option<&'a str>,
    /// The header fields.
    pub headers: &'a axum::http::HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// The signed request a request carries, checked as far as the request shows: `None` when it
/// carries neither `Signature-Input` nor `Signature`. The ledger checks the key, the signature,
/// `created` and replays.
pub fn from_request(parts: &RequestParts<'_>) -> Result<Option<SignedRequest>, SignatureError> {
    let input = header_value(parts.headers, "signature-input")?;
    let signature = header_value(parts.headers, "signature")?;
    let (input, signature) = match (input, signature) {
        (None, None) => return Ok(None),
        (Some(i), Some(s)) => (i, s),
        _ => {
            return Err(err(
                "signature_malformed",
                "a signed request carries both Signature-Input and Signature (RFC 9421)",
            ))
        }
    };
    let inputs = Reader::new(&input)
        .dictionary(|r| r.inner_list())
        .ok_or_else(|| {
            err(
                "signature_malformed",
                format!(
                    "Signature-Input is not a dictionary of signature parameters (RFC 9421 \
                     §4.1), or a component has parameters, which are not supported; expected \
                     e.g. {ACCEPT_SIGNATURE}"
                ),
            )
        })?;
    let signatures = Reader::new(&signature)
        .dictionary(|r| r.bytes())
        .ok_or_else(|| {
            err(
                "signature_malformed",
                "Signature is not a dictionary of byte sequences (sig1=:<base64>:)",
            )
        })?;
    let (label, params) = match inputs.as_slice() {
        [one] => one.clone(),
        many => many
            .iter()
            .find(|(label, _)| label == "sig1")
            .cloned()
            .ok_or_else(|| {
                err(
                    "signature_malformed",
                    "Signature-Input holds several signatures and none is labelled sig1",
                )
            })?,
    };
    let signature = signatures
        .iter()
        .find(|(l, _)| *l == label)
        .map(|(_, s)| s.clone())
        .ok_or_else(|| {
            err(
                "signature_malformed",
                format!("Signature holds no signature labelled {label}"),
            )
        })?;
    let (key_id, created) = check_params(&params)?;
    let mut values = Vec::with_capacity(params.components.len());
    for component in &params.components {
        values.push((component.clone(), component_value(parts, component)?));
    }
    let digest = header_value(parts.headers, "content-digest")?.unwrap_or_default();
    if !digest_matches(&digest, parts.body)? {
        return Err(err(
            "content_digest_mismatch",
            "Content-Digest does not match the body: send the SHA-256 of the body exactly as \
             sent (sha-256=:<base64>:)",
        ));
    }
    Ok(Some(SignedRequest {
        key_id,
        created,
        signature_input: format!("{label}={}", params.serialize()),
        signature,
        signature_base: signature_base(&values, &params),
        body: parts.body.to_vec(),
    }))
}

/// The key id and `created` of acceptable parameters.
fn check_params(params: &SignatureParams) -> Result<(ElementId, i64), SignatureError> {
    for required in REQUIRED_COMPONENTS {
        if !params.components.iter().any(|c| c == required) {
            return Err(err(
                "signature_unsupported",
                format!(
                    "the signature must cover \"{required}\"; cover at least \"@method\", \
                     \"@path\" and \"content-digest\" (and \"date\"): {ACCEPT_SIGNATURE}"
                ),
            ));
        }
    }
    for (i, c) in params.components.iter().enumerate() {
        if !SUPPORTED_COMPONENTS.contains(&c.as_str()) {
            return Err(err(
                "signature_unsupported",
                format!(
                    "component \"{c}\" is not supported; cover only {}",
                    SUPPORTED_COMPONENTS.join(", ")
                ),
            ));
        }
        if params.components[..i].contains(c) {
            return Err(err(
                "signature_malformed",
                format!("component \"{c}\" is covered twice"),
            ));
        }
    }
    for (name, _) in &params.params {
        if !["created", "keyid", "alg", "expires", "nonce"].contains(&name.as_str()) {
            return Err(err(
                "signature_unsupported",
                format!("signature parameter {name} is not supported"),
            ));
        }
    }
    if params.string("alg") != Some("ed25519") {
        return Err(err(
            "signature_unsupported",
            "the signature must name alg=\"ed25519\", the only algorithm accepted",
        ));
    }
    let created = params.integer("created").ok_or_else(|| {
        err(
            "signature_malformed",
            "the signature must carry created=<seconds since 1970>, the time it was made",
        )
    })?;
    let key_id = params.string("keyid").ok_or_else(|| {
        err(
            "signature_malformed",
            "the signature must carry keyid=\"<the key id registered for you>\"",
        )
    })?;
    let key_id = ElementId::parse(key_id)
        .map_err(|e| err("signature_malformed", format!("keyid is not a key id: {e}")))?;
    Ok((key_id, created))
}

fn component_value(parts: &RequestParts<'_>, component: &str) -> Result<String, SignatureError> {
    let authority = || {
        parts.authority.map(str::to_ascii_lowercase).ok_or_else(|| {
            err(
                "signature_malformed",
                "the request has no Host for \"@authority\"",
            )
        })
    };
    match component {
        "@method" => Ok(parts.method.to_owned()),
        "@path" => Ok(parts.path.to_owned()),
        "@authority" => authority(),
        "@target-uri" => Ok(format!("http://{}{}", authority()?, parts.path)),
        header => header_value(parts.headers, header)?.ok_or_else(|| {
            err(
                "signature_malformed",
                format!("the signature covers \"{header}\" but the request has no such header"),
            )
        }),
    }
}

/// The headers of a signed request (`Content-Digest`, `Signature-Input`, `Signature`), as
/// [`sign`] makes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureHeaders {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// Signs a request as a client system does: covers `@method`, `@path`, `content-digest` and
/// `date` (the `Date` header the request will carry, as given), with `created`, `keyid` and
/// `alg="ed25519"`, label `sig1`. `secret_key` is the ed25519 private key's 32 bytes.
pub fn sign(
    method: &str,
    path: &str,
    date: &str,
    body: &[u8],
    key_id: &str,
    secret_key: &[u8; 32],
    created: i64,
) -> SignatureHeaders {
    use ed25519_dalek::Signer;
    let content_digest = content_digest(body);
    let params = SignatureParams {
        components: ["@method", "@path", "content-digest", "date"]
            .map(str::to_owned)
            .to_vec(),
        params: vec![
            ("created".into(), ParamValue::Integer(created)),
            ("keyid".into(), ParamValue::String(key_id.into())),
            ("alg".into(), ParamValue::String("ed25519".into())),
        ],
    };
    let values = vec![
        ("@method".to_owned(), method.to_owned()),
        ("@path".to_owned(), path.to_owned()),
        ("content-digest".to_owned(), content_digest.clone()),
        ("date".to_owned(), date.to_owned()),
    ];
    let base = signature_base(&values, &params);
    let key = ed25519_dalek::SigningKey::from_bytes(secret_key);
    let signature = key.sign(base.as_bytes());
    SignatureHeaders {
        content_digest,
        signature_input: format!("sig1={}", params.serialize()),
        signature: format!("sig1=:{}:", base64_encode(&signature.to_bytes())),
    }
}

/// The public key of an ed25519 private key.
pub fn public_key(secret_key: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(secret_key)
        .verifying_key()
        .to_bytes()
}

/// What a stored signed request says, checked again offline (`verify-export`): its base's
/// method, path and content digest, and that the digest is the body's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRequest {
    /// `@method`.
    pub method: String,
    /// `@path`.
    pub path: String,
}

/// Checks a stored signed request's own consistency: its `Signature-Input` entry's parameters
/// are acceptable and name its key id and `created`; its base is the base of those parameters
/// (the `@signature-params` line and a line per component, in order); the base's
/// `content-digest` is the body's.
pub fn check_stored(signed: &SignedRequest) -> Result<StoredRequest, String> {
    let inputs = Reader::new(&signed.signature_input)
        .dictionary(|r| r.inner_list())
        .ok_or("its Signature-Input is not signature parameters")?;
    let [(_, params)] = inputs.as_slice() else {
        return Err("its Signature-Input holds more than one signature".into());
    };
    let (key_id, created) = check_params(params).map_err(|e| e.message)?;
    if key_id != signed.key_id || created != signed.created {
        return Err("its key id or created differs from its Signature-Input".into());
    }
    let mut lines = signed.signature_base.split('\n');
    let mut values = Vec::new();
    for component in &params.components {
        let line = lines.next().ok_or("its signature base is cut short")?;
        let prefix = format!("{}: ", sf_string(component));
        let value = line
            .strip_prefix(&prefix)
            .ok_or_else(|| format!("its signature base has no line for \"{component}\""))?;
        values.push((component.clone(), value.to_owned()));
    }
    if signature_base(&values, params) != signed.signature_base {
        return Err("its signature base is not the base of its Signature-Input".into());
    }
    let value = |name: &str| {
        values
            .iter()
            .find(|(c, _)| c == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if !digest_matches(&value("content-digest"), &signed.body).map_err(|e| e.message)? {
        return Err("the body does not match the content digest it was signed with".into());
    }
    Ok(StoredRequest {
        method: value("@method"),
        path: value("@path"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 Appendix B.1.4: the ed25519 test key `test-key-ed25519` (JWK `d` and `x`).
    const TEST_KEY_D: &str = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU";
    const TEST_KEY_X: &str = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";

    fn b64url(text: &str) -> [u8; 32] {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// RFC 9421 Appendix B.2.6: signing a request with ed25519, byte for byte: the signature
    /// base, and the signature (ed25519 is deterministic).
    #[test]
    fn rfc_9421_b_2_6_ed25519_signature_base_and_signature_are_reproduced() {
        let params = SignatureParams {
            components: [
                "date",
                "@method",
                "@path",
                "@authority",
                "content-type",
                "content-length",
            ]
            .map(str::to_owned)
            .to_vec(),
            params: vec![
                ("created".into(), ParamValue::Integer(1618884473)),
                (
                    "keyid".into(),
                    ParamValue::String("test-key-ed25519".into()),
                ),
            ],
        };
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("date", "Tue, 20 Apr 2021 02:07:55 GMT".parse().unwrap());
        headers.insert("content-type", "application/json".parse().unwrap());
        headers.insert("content-length", "18".parse().unwrap());
        let parts = RequestParts {
            method: "POST",
            path: "/foo",
            authority: Some("example.com"),
            headers: &headers,
            body: br#"{"hello": "world"}"#,
        };
        let values: Vec<_> = params
            .components
            .iter()
            .map(|c| (c.clone(), component_value(&parts, c).unwrap()))
            .collect();
        let base = signature_base(&values, &params);
        let expected = "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\
                        \"@method\": POST\n\
                        \"@path\": /foo\n\
                        \"@authority\": example.com\n\
                        \"content-type\": application/json\n\
                        \"content-length\": 18\n\
                        \"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \
                        \"content-type\" \"content-length\");created=1618884473;\
                        keyid=\"test-key-ed25519\"";
        assert_eq!(base, expected);
        let input = format!("sig-b26={}", params.serialize());
        assert_eq!(
            input,
            "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \
             \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let parsed = Reader::new(&input).dictionary(|r| r.inner_list()).unwrap();
        assert_eq!(parsed, vec![("sig-b26".to_owned(), params)]);

        use ed25519_dalek::Signer;
        let key = ed25519_dalek::SigningKey::from_bytes(&b64url(TEST_KEY_D));
        assert_eq!(key.verifying_key().to_bytes(), b64url(TEST_KEY_X));
        let signature = key.sign(base.as_bytes());
        assert_eq!(
            base64_encode(&signature.to_bytes()),
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
    }

    fn signed_headers(path: &str, body: &[u8], secret: &[u8; 32]) -> axum::http::HeaderMap {
        let date = "Tue, 20 Apr 2021 02:07:55 GMT";
        let h = sign("POST", path, date, body, "his-1", secret, 1618884473);
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("date", date.parse().unwrap());
        headers.insert("content-digest", h.content_digest.parse().unwrap());
        headers.insert("signature-input", h.signature_input.parse().unwrap());
        headers.insert("signature", h.signature.parse().unwrap());
        headers
    }

    #[test]
    fn a_request_signed_with_sign_is_read_back_and_verifies_under_its_public_key() {
        let secret = [7u8; 32];
        let body = br#"{"commands":[]}"#;
        let headers = signed_headers("/patients/999990007/events", body, &secret);
        let parts = RequestParts {
            method: "POST",
            path: "/patients/999990007/events",
            authority: None,
            headers: &headers,
            body,
        };
        let signed = from_request(&parts).unwrap().unwrap();
        assert_eq!(signed.key_id.as_str(), "his-1");
        assert_eq!(signed.created, 1618884473);
        assert!(signed.verifies_under(&public_key(&secret)));
        assert!(!signed.verifies_under(&public_key(&[8u8; 32])));
        let stored = check_stored(&signed).unwrap();
        assert_eq!(stored.path, "/patients/999990007/events");
        assert_eq!(stored.method, "POST");
    }

    #[test]
    fn a_changed_body_fails_the_content_digest() {
        let secret = [7u8; 32];
        let headers = signed_headers("/p", b"one", &secret);
        let parts = RequestParts {
            method: "POST",
            path: "/p",
            authority: None,
            headers: &headers,
            body: b"two",
        };
        assert_eq!(
            from_request(&parts).unwrap_err().code,
            "content_digest_mismatch"
        );
    }

    #[test]
    fn a_signature_without_content_digest_covered_is_refused_naming_it() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            "signature-input",
            r#"sig1=("@method" "@path");created=1;keyid="k";alg="ed25519""#
                .parse()
                .unwrap(),
        );
        headers.insert("signature", "sig1=:AAAA:".parse().unwrap());
        let parts = RequestParts {
            method: "POST",
            path: "/p",
            authority: None,
            headers: &headers,
            body: b"",
        };
        let e = from_request(&parts).unwrap_err();
        assert_eq!(e.code, "signature_unsupported");
        assert!(e.message.contains("content-digest"), "{}", e.message);
    }

    #[test]
    fn a_stored_request_whose_body_was_changed_fails_its_check() {
        let secret = [7u8; 32];
        let headers = signed_headers("/p", b"one", &secret);
        let parts = RequestParts {
            method: "POST",
            path: "/p",
            authority: None,
            headers: &headers,
            body: b"one",
        };
        let mut signed = from_request(&parts).unwrap().unwrap();
        signed.body = b"two".to_vec();
        assert!(check_stored(&signed).unwrap_err().contains("body"));
    }
}
