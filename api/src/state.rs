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

/// The shared state of the router.
#[derive(Clone)]
pub struct AppState {
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
        Self {
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
        }
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
        self.oidc_login = Some(Arc::new(login));
        Ok(self)
    }

    /// The same state with the address browsers reach it at (`serve --public-url`).
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = Some(Arc::from(url.trim_end_matches('/')));
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
    pub fn with_limits(self, limits: Limits) -> Self {
        Self {
            guards: Arc::new(Guards::new(limits)),
            ..self
        }
    }

    /// The limits this state serves with.
    pub fn limits(&self) -> &Limits {
        self.guards.limits()
    }

    /// The same state, accepting the access tokens `verifier` validates besides careledger's
    /// own tokens.
    pub fn with_oidc(mut self, verifier: crate::oidc::OidcVerifier) -> Self {
        self.oidc = Some(Arc::new(verifier));
        self
    }

    /// The same state recording every request in `log`.
    pub fn with_access_log(mut self, log: Arc<AccessLog>) -> Self {
        self.access_log = Some(log);
        self
    }

    /// The same state taking the client's address from these proxies' forwarding headers.
    pub fn with_trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = Arc::from(proxies);
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
#[derive(Default)]
pub(crate) struct PlanCache(RwLock<HashMap<PatientId, (u64, Bytes)>>);

/// Plans kept at most; beyond that the cache starts again empty.
const PLAN_CACHE_ENTRIES: usize = 10_000;

impl PlanCache {
    pub(crate) fn get(&self, patient: &PatientId, revision: u64) -> Option<Bytes> {
        self.0
            .read()
            .get(patient)
            .filter(|(cached, _)| *cached == revision)
            .map(|(_, bytes)| bytes.clone())
    }

    pub(crate) fn put(&self, patient: PatientId, revision: u64, bytes: Bytes) {
        let mut plans = self.0.write();
        if plans.len() >= PLAN_CACHE_ENTRIES && !plans.contains_key(&patient) {
            plans.clear();
        }
        plans.insert(patient, (revision, bytes));
    }
}
