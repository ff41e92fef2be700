//! Sign-in sessions of the pages: a careledger token given once in the sign-in form is kept on
//! the server under a random 256-bit session id, which the browser holds in the
//! `careledger_session` cookie (HttpOnly, SameSite=Strict, Path=/, `Secure` when the public
//! address is https). Sessions live in memory and end when the server restarts.
//!
//! Every page request authenticates the session's token again through `App::authenticate`,
//! so that a revoked, expired or rotated token ends its sessions at the next request.
//! Each session has its own CSRF token, which every form carries in a hidden `csrf` field.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use parking_lot::Mutex;

use careledger_app::actors::RegisteredActor;
use careledger_app::AppError;

use crate::error::ApiError;

use crate::state::AppState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "careledger_session";
/// The sign-in form's double-submit cookie: the form carries the same value.
pub const SIGNIN_COOKIE: &str = "careledger_signin";
/// The language cookie (`nl` or `en`).
pub const LANG_COOKIE: &str = "careledger_lang";

/// A session ends this long after sign-in, whatever its token's life.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; beyond that the oldest ends.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in browser.
#[derive(Clone)]
pub(crate) struct Session {
    /// The careledger token signed in with; never sent back to the browser.
    token: String,
    /// The per-session CSRF token every form carries.
    pub(crate) csrf: String,
    started: Instant,
}

/// The sessions of this server, by id.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// Starts a session for `token` and gives its id.
    pub(crate) fn start(&self, token: String) -> Result<String, AppError> {
        let id = random_hex()?;
        let session = Session {
            token,
            csrf: random_hex()?,
            started: Instant::now(),
        };
        let mut sessions = self.0.lock();
        sessions.retain(|_, s| s.started.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.started)
                .map(|(id, _)| id.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), session);
        Ok(id)
    }

    /// The live session of this id.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut sessions = self.0.lock();
        match sessions.get(id) {
            Some(s) if s.started.elapsed() < SESSION_LIFETIME => Some(s.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub(crate) fn end(&self, id: &str) {
        self.0.lock().remove(id);
    }

    /// Ends every session signed in with `token` (its token was refused).
    fn end_token(&self, token: &str) {
        self.0.lock().retain(|_, s| s.token != token);
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 256 random bits in hex.
pub(crate) fn random_hex() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::Internal(format!("no randomness for a session id: {e}")))?;
    Ok(hex_of(&bytes))
}

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, `Secure` when `secure`;
/// `max_age_secs` 0 removes the cookie.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The session the request's cookie names, with its id.
pub(crate) fn session_of(headers: &HeaderMap, state: &AppState) -> Option<(String, Session)> {
    let id = cookie(headers, SESSION_COOKIE)?;
    let session = state.sessions.get(id)?;
    Some((id.to_owned(), session))
}

/// The actor of the request's session, its token authenticated again: a careledger token
/// through `App::authenticate`, an identity provider's access token through the API's
/// `OidcVerifier`. A refused token (revoked, expired, replaced) ends every session signed in
/// with it.
pub(crate) async fn authenticate(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<(RegisteredActor, String, Session), ApiError> {
    let Some((id, session)) = session_of(headers, state) else {
        return Err(ApiError::Unauthenticated(
            "sign in at /ui/signin first".into(),
        ));
    };
    let actor = if crate::oidc::looks_like_jwt(&session.token) {
        match &state.oidc {
            Some(oidc) => match oidc.verify(&session.token).await {
                Ok(subject) => state
                    .app
                    .authenticate_subject(&subject)
                    .map_err(ApiError::from),
                Err(e) => Err(e),
            },
            None => Err(ApiError::Unauthenticated(
                "this server accepts no identity provider's tokens now".into(),
            )),
        }
    } else {
        state
            .app
            .authenticate(&session.token)
            .map_err(ApiError::from)
    };
    match actor {
        Ok(actor) => Ok((actor, id, session)),
        Err(e) => {
            state.sessions.end_token(&session.token);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; careledger_session=abc".parse().unwrap(),
        );
        headers.append(header::COOKIE, "careledger_lang=en".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, LANG_COOKIE), Some("en"));
        assert_eq!(cookie(&headers, "careledger"), None);
    }

    #[test]
    fn session_cookies_are_strict_http_only_and_secure_when_asked() {
        let c = set_cookie(SESSION_COOKIE, "x", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(!set_cookie(SESSION_COOKIE, "x", 60, false).contains("Secure"));
    }

    #[test]
    fn sessions_end_one_by_one_or_by_their_token() {
        let sessions = Sessions::default();
        let a = sessions.start("t1".into()).unwrap();
        let b = sessions.start("t1".into()).unwrap();
        let c = sessions.start("t2".into()).unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        sessions.end(&c);
        assert!(sessions.get(&c).is_none());
        sessions.end_token("t1");
        assert!(sessions.is_empty());
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
