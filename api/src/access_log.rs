//! The access log's middleware over every route: it takes a place in the access log's queue
//! before the handler runs (answering 503 when the log cannot be kept, so that nothing is served
//! unlogged), authenticates the caller once for the handler too, takes the patient from the path
//! or the query, runs the handler, and records the entry with the response's status.
//!
//! `/health`, `/openapi.json`, `/`, `/docs` and the pages' style sheet, which need no token
//! and show no patient data, are not recorded. A page (`/ui/...`) is authenticated by its
//! session cookie and recorded under the session's actor. A stream (`/events/stream`) is recorded once, when it is answered; which events it then sends
//! each subscriber follows the read rules (`careledger_app::access::sees_events_of`).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use careledger_app::access;
use careledger_app::access_log::{
    bounded, method_name, AccessEntry, AccessReason, Who, CLIENT_CLOSED, MAX_RESOURCE_BYTES,
    MAX_USER_AGENT_BYTES,
};
use careledger_app::actors::RegisteredActor;
use careledger_core::ids::PatientId;
use careledger_core::record::Timestamp;
use careledger_core::timing::{self, Phase};

use crate::error::ApiError;
use crate::extract::{authenticate, Authenticated, PathPatient};
use crate::state::AppState;
use crate::wire;

/// The routes that need no token and show no patient data: not recorded (a load balancer's
/// health checks would otherwise fill the log).
const UNRECORDED: [&str; 5] = [
    "/health",
    "/openapi.json",
    "/",
    "/docs",
    "/ui/static/style.css",
];

/// Longest client address kept from a forwarding header, in bytes.
const MAX_ADDRESS_BYTES: usize = 64;

/// Records the request in the access log (see the module's documentation).
pub(crate) async fn record(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(log) = state.access_log.clone() else {
        return next.run(request).await;
    };
    let public = request
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|m| UNRECORDED.contains(&m.as_str()));
    if public {
        return next.run(request).await;
    }
    // The middleware's own work, before the handler (authentication included) and after it.
    let before = timing::start(Phase::AccessLog);
    let mut permit = match log.reserve() {
        Ok(permit) => permit,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (mut parts, body) = request.into_parts();
    // A page is authenticated by its session cookie, and attributed to the session's actor.
    let caller = if crate::pages::is_page(parts.uri.path()) {
        crate::pages::session::authenticate(&parts.headers, &state)
            .await
            .ok()
            .map(|(actor, _, _)| actor)
    } else {
        authenticate(&parts.headers, &state).await.ok()
    };
    let (patient, in_path) = patient_named(&mut parts, &state).await;
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
    let (client, via) = client_address(&parts, &state.trusted_proxies);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .map(|v| bounded(&String::from_utf8_lossy(v.as_bytes()), MAX_USER_AGENT_BYTES));
    let resource = bounded(
        parts
            .uri
            .path_and_query()
            .map_or(parts.uri.path(), |pq| pq.as_str()),
        MAX_RESOURCE_BYTES,
    );
    let reason = |caller: Option<&RegisteredActor>, patient: Option<&PatientId>| match caller {
        None => AccessReason::NotEstablished,
        Some(actor) => access::access_reason(&state.app.projections, actor, patient),
    };
    let mut first_reason = reason(caller.as_ref(), patient.as_ref());
    if first_reason == AccessReason::NotEstablished && caller.is_some() {
        // Judged by a care team as the read models hold it: once they hold every write
        // acknowledged before this request (a team just founded by another request).
        state.app.caught_up().await;
        first_reason = reason(caller.as_ref(), patient.as_ref());
    }
    let granted = first_reason != AccessReason::NotEstablished;
    let is_get = parts.method == Method::GET;
    let entry = AccessEntry {
        recorded_at: Timestamp::now(),
        who: caller.as_ref().map_or(Who::Unauthenticated, Who::actor),
        patient: patient.as_ref().map(|p| p.as_str().to_owned()),
        method: method_name(parts.method.as_str()),
        route,
        resource,
        status: CLIENT_CLOSED,
        client,
        via,
        user_agent,
        reason: first_reason,
    };
    // The handler's extractors take what was established here instead of doing it again:
    // the caller (`Caller`) and, for the patient of the path, that they may read it
    // (`Readable`: the ground was found by the same rules, `access::read_reason`).
    if let (Some(patient), true) = (&patient, in_path) {
        parts.extensions.insert(PathPatient {
            patient: patient.clone(),
            granted,
        });
    }
    // The permit keeps the one entry: recorded as it is should the client go away before the
    // answer (the future is dropped), else completed with the answer below.
    permit.keep(entry);
    let caller = match caller {
        Some(actor) if !is_get => {
            parts.extensions.insert(Authenticated(actor.clone()));
            Some(actor)
        }
        Some(actor) => {
            parts.extensions.insert(Authenticated(actor));
            None
        }
        None => None,
    };
    drop(before);
    let response = next.run(Request::from_parts(parts, body)).await;
    let _after = timing::start(Phase::AccessLog);
    // The reason after the handler: a write that founded a care team was by its member, as
    // the read models show once they hold the write.
    if let (Some(actor), false) = (caller.as_ref(), granted) {
        state.app.caught_up().await;
        if let Some(entry) = permit.kept_mut() {
            entry.reason = reason(Some(actor), patient.as_ref());
        }
    }
    permit.answered(response.status().as_u16(), Timestamp::now());
    response
}

/// The patient the path (`/patients/{patient}/...`) or else the query (`?patient=`) names, when
/// it is a valid patient id; and whether it is the path's `{patient}`.
async fn patient_named(parts: &mut Parts, state: &AppState) -> (Option<PatientId>, bool) {
    let fhir = parts.uri.path().starts_with("/fhir/");
    if let Ok(params) = RawPathParams::from_request_parts(parts, state).await {
        if let Some((_, raw)) = params.iter().find(|(name, _)| *name == "patient") {
            return (wire::patient_id(raw).ok(), true);
        }
        // A FHIR resource id starts with its patient's key.
        if let Some((_, id)) = params.iter().find(|(name, _)| fhir && *name == "id") {
            return (crate::routes::fhir::patient_of_id(state, id), false);
        }
    }
    (patient_in_query(parts.uri.query(), fhir), false)
}

/// The patient a query names: `?patient=`, or a FHIR search's BSN identifier.
fn patient_in_query(query: Option<&str>, fhir: bool) -> Option<PatientId> {
    let query = query?;
    if fhir {
        // `identifier=http://fhir.nl/fhir/NamingSystem/bsn|{bsn}`, percent-encoded or not.
        return query
            .split('&')
            .find_map(|pair| pair.strip_prefix("identifier="))
            .and_then(|raw| {
                let raw = raw.replace("%7C", "|").replace("%7c", "|");
                raw.rsplit('|').next().map(str::to_owned)
            })
            .and_then(|bsn| wire::patient_id(&bsn).ok());
    }
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("patient="))
        .and_then(|raw| wire::patient_id(raw).ok())
}

/// The client's address, and the trusted proxy's when it came through one: a peer that is a
/// trusted proxy reports the client in `X-Forwarded-For` (the rightmost address that is not a
/// trusted proxy itself) or else in `Forwarded` (`for=`, RFC 7239). Any other peer is the
/// client, whatever it sends.
fn client_address(parts: &Parts, trusted: &[IpAddr]) -> (Cow<'static, str>, Option<String>) {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return (Cow::Borrowed("unknown"), None);
    };
    let peer = peer.ip();
    if !trusted.contains(&peer) {
        return (peer.to_string().into(), None);
    }
    match forwarded_client(&parts.headers, trusted) {
        Some(client) => (client.into(), Some(peer.to_string())),
        None => (peer.to_string().into(), None),
    }
}

fn forwarded_client(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<String> {
    let mut hops: Vec<String> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|hop| hop.trim().to_owned())
        .filter(|hop| !hop.is_empty())
        .collect();
    if hops.is_empty() {
        hops = headers
            .get_all(header::FORWARDED)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| forwarded_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    hops.iter()
        .rev()
        .find(|hop| !hop.parse::<IpAddr>().is_ok_and(|ip| trusted.contains(&ip)))
        .map(|hop| bounded(hop, MAX_ADDRESS_BYTES))
}

/// A `Forwarded` node without its port: `[2001:db8::1]:4711` → `2001:db8::1`,
/// `192.0.2.60:80` → `192.0.2.60`; an obfuscated node (`_hidden`, `unknown`) as it is.
fn forwarded_node(node: &str) -> String {
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match node.rsplit_once(':') {
        Some((address, _)) if address.parse::<IpAddr>().is_ok() => address.to_owned(),
        _ => node.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trusted_proxy_reports_the_rightmost_untrusted_hop() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.9, 203.0.113.7, 10.0.0.1".parse().unwrap(),
        );
        assert_eq!(
            forwarded_client(&headers, &[proxy]).as_deref(),
            Some("203.0.113.7")
        );
    }

    #[test]
    fn forwarded_for_nodes_lose_their_ports_and_brackets() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::FORWARDED,
            "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\";proto=https"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            forwarded_client(&headers, &[]).as_deref(),
            Some("2001:db8:cafe::17")
        );
        assert_eq!(forwarded_node("192.0.2.60:80"), "192.0.2.60");
        assert_eq!(forwarded_node("_hidden"), "_hidden");
    }
}
