//! What every handler shares: the application, and the plans rendered once per change.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use parking_lot::RwLock;

use careledger_app::access_log::AccessLog;
use careledger_app::{App, DataDir};
use careledger_core::ids::PatientId;

use crate::limits::{Guards, Limits};

/// The shared state of the router: one reference-counted pointer, so that the clones axum makes
/// for every extractor and middleware of a request cost one counter, not one per part.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Clone)]
pub struct Shared {
    /// The application: ledger, read models, actors, projector and feed.
    pub app: App,
    /// Rendered plans, reused until the patient's next event.
    pub(crate) plans: Arc<PlanCache>,
    /// The limits and what is in use against them.
    pub(crate) guards: Arc<Guards>,
    /// Whether responses say `Strict-Transport-Security`: set when serving over TLS.
    pub(crate) hsts: bool,
    /// The OpenID Connect issuer whose access tokens are accepted, if one is configured.
    pub oidc: Option<Arc<crate::oidc::OidcVerifier>>,
    /// The access log every request is recorded in; `None` records nothing (in-process tests,
    /// and measurements with `CARELEDGER_BENCH_NO_ACCESS_LOG=1`).
    pub access_log: Option<Arc<AccessLog>>,
    /// Peers whose `X-Forwarded-For` / `Forwarded` header names the client (`serve
    /// --trusted-proxy`).
    pub trusted_proxies: Arc<[IpAddr]>,
    /// The pages' sign-in sessions, kept in memory: they end when the server restarts.
    pub(crate) sessions: Arc<crate::pages::session::Sessions>,
    /// The address browsers reach this server at (`serve --public-url`): session cookies are
    /// `Secure` when it is https, also behind a TLS-terminating proxy.
    pub(crate) public_url: Option<Arc<str>>,
    /// The pages' sign-in with the identity provider, when configured.
    pub(crate) oidc_login: Option<Arc<crate::pages::oidc_login::OidcLogin>>,
}

impl AppState {
    /// The state over a started application, with the default [`Limits`].
    pub fn new(app: App) -> Self {
        Self(Arc::new(Shared {
            app,
            plans: Arc::new(PlanCache::default()),
            guards: Arc::new(Guards::new(Limits::default())),
            hsts: false,
            oidc: None,
            access_log: None,
            trusted_proxies: Arc::from(Vec::new()),
            sessions: Arc::new(crate::pages::session::Sessions::default()),
            public_url: None,
            oidc_login: None,
        }))
    }

    /// The parts, to set before the state serves anything (a copy if it is shared already).
    pub(crate) fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.0)
    }

    /// The same state keeping at most `bytes` of rendered plans (a share of the memory budget).
    pub fn with_plan_cache_bytes(mut self, bytes: u64) -> Self {
        self.shared_mut().plans = Arc::new(PlanCache::with_budget(bytes));
        self
    }

    /// The same state offering the pages' sign-in with the identity provider (authorization
    /// code with PKCE); it needs the public address (the callback's) set first, and the
    /// issuer's access tokens accepted ([`AppState::with_oidc`]).
    pub fn with_oidc_login(
        mut self,
        settings: crate::pages::oidc_login::OidcLoginSettings,
    ) -> Result<Self, String> {
        let Some(public) = self.public_url.clone() else {
            return Err(
                "signing in with the identity provider needs --public-url, the address its \
                 callback is reached at"
                    .into(),
            );
        };
        if self.oidc.is_none() {
            return Err(
                "signing in with the identity provider needs --oidc-issuer and its keys".into(),
            );
        }
        let login = crate::pages::oidc_login::OidcLogin::new(settings, &public)?;
        self.shared_mut().oidc_login = Some(Arc::new(login));
        Ok(self)
    }

    /// The same state with the address browsers reach it at (`serve --public-url`).
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.shared_mut().public_url = Some(Arc::from(url.trim_end_matches('/')));
        self
    }

    /// The pages' sign-in sessions held now.
    pub fn sessions_held(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the pages' cookies are `Secure`: served over TLS, or behind a proxy that is
    /// reached over https.
    pub(crate) fn secure_cookies(&self) -> bool {
        self.hsts
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

    /// The same state with other limits (before it serves anything).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.shared_mut().guards = Arc::new(Guards::new(limits));
        self
    }

    /// The limits this state serves with.
    pub fn limits(&self) -> &Limits {
        self.guards.limits()
    }

    /// The same state, accepting the access tokens `verifier` validates besides careledger's
    /// own tokens.
    pub fn with_oidc(mut self, verifier: crate::oidc::OidcVerifier) -> Self {
        self.shared_mut().oidc = Some(Arc::new(verifier));
        self
    }

    /// The same state recording every request in `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.shared_mut().access_log = Some(log);
        self
    }

    /// The same state taking the client's address from these proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.shared_mut().trusted_proxies = Arc::from(proxies);
        self
    }

    /// Starts the application over an opened data directory, its feed rendering Server-Sent
    /// Events.
    pub fn start(dir: &DataDir) -> Self {
        Self::new(App::start(dir, crate::sse::RENDER))
    }

    /// Ends the open SSE streams; in-flight requests finish.
    pub fn begin_shutdown(&self) {
        self.app.begin_shutdown();
    }
}

/// Plans rendered to JSON, each with the patient's revision it shows: a plan is a function of
/// the patient's events alone, so it is rendered once per change and served as shared bytes to
/// every reader until the patient's next event.
pub(crate) struct PlanCache {
    plans: RwLock<Plans>,
    budget: u64,
}

#[derive(Default)]
struct Plans {
    by_patient: HashMap<PatientId, (u64, Bytes)>,
    bytes: u64,
}

/// Plans kept at most; beyond that the cache starts again empty.
const PLAN_CACHE_ENTRIES: usize = 10_000;
/// Bytes of rendered plans kept at most by default: the plans' share of the default memory
/// budget (`careledger_app::MemoryBudget::plan_json`).
const PLAN_CACHE_BYTES: u64 = 32 << 20;

impl Default for PlanCache {
    fn default() -> Self {
        Self::with_budget(PLAN_CACHE_BYTES)
    }
}

impl PlanCache {
    fn with_budget(budget: u64) -> Self {
        Self {
            plans: RwLock::new(Plans::default()),
            budget,
        }
    }

    pub(crate) fn get(&self, patient: &PatientId, revision: u64) -> Option<Bytes> {
        self.plans
            .read()
            .by_patient
            .get(patient)
            .filter(|(cached, _)| *cached == revision)
            .map(|(_, bytes)| bytes.clone())
    }

    pub(crate) fn put(&self, patient: PatientId, revision: u64, bytes: Bytes) {
        let size = bytes.len() as u64;
        if size > self.budget {
            return;
        }
        let mut plans = self.plans.write();
        let held = plans.by_patient.contains_key(&patient);
        let replaced = plans
            .by_patient
            .get(&patient)
            .map_or(0, |(_, old)| old.len() as u64);
        let full = (!held && plans.by_patient.len() >= PLAN_CACHE_ENTRIES)
            || plans.bytes - replaced + size > self.budget;
        if full {
            plans.by_patient.clear();
            plans.bytes = 0;
        }
        if let Some((_, old)) = plans.by_patient.insert(patient, (revision, bytes)) {
            plans.bytes -= old.len() as u64;
        }
        plans.bytes += size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_plans_keep_to_their_budget_and_a_plan_over_it_is_not_kept() {
        let cache = PlanCache::with_budget(10_000);
        for n in 0..100u64 {
            let patient = PatientId::parse(&format!("patient-{n}")).unwrap();
            cache.put(patient.clone(), 1, Bytes::from(vec![b'x'; 1_500]));
            assert_eq!(cache.get(&patient, 1).map(|b| b.len()), Some(1_500));
            assert!(cache.get(&patient, 2).is_none(), "another revision");
            let plans = cache.plans.read();
            let held: u64 = plans.by_patient.values().map(|(_, b)| b.len() as u64).sum();
            assert_eq!(held, plans.bytes);
            assert!(plans.bytes <= 10_000, "{} bytes kept", plans.bytes);
        }
        let big = PatientId::parse("patient-big").unwrap();
        cache.put(big.clone(), 1, Bytes::from(vec![b'x'; 10_001]));
        assert!(cache.get(&big, 1).is_none());
    }
}
