//! Authentication of incoming requests by route group, like Prometheus' web config
//! (<https://prometheus.io/docs/prometheus/latest/configuration/https/>) but per group:
//! [`Group::Write`] (remote_write, import), [`Group::Read`] (query API, rules, alerts, `/metrics`),
//! [`Group::Admin`] (TSDB admin, reload) and [`Group::Alerting`] (Alertmanager API v2).
//! `/healthz` and `/ready` are in no group: Docker HEALTHCHECKs must reach them without secrets.
//!
//! A request passes a group when it carries one of the group's credentials (or `all`'s): a bearer
//! token, compared in constant time through HMAC tags, or basic auth checked against a bcrypt hash.
//! bcrypt is deliberately slow (~50 ms at cost 10), far too slow for every remote_write request, so
//! verdicts are cached under an HMAC of `user:password` keyed by a random per-process key — the
//! cache never holds a password or a fast unsalted hash of one. A group without credentials is open.
//!
//! Besides the configured credentials, an [`Authenticator`] may hold an internal per-process token
//! accepted by every group: `crowsnest up` hands it to its own collector and alerter so they keep
//! working when the user turns auth on. With `web.tls.client_ca_file`, a request must also have
//! come over a connection with a verified client certificate (or carry the internal token).
//!
//! Refusals are 401 with `WWW-Authenticate` and Prometheus' error envelope
//! (`{"status":"error","errorType":"unauthorized",...}`); credentials never reach a log line.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ring::hmac;

use crate::WebError;
use crate::config::{AuthConfig, GroupAuth};
use crate::secret::Secret;

/// Env var whose token every group accepts (added to `web.auth.all`).
pub const ENV_ALL_TOKEN: &str = "CROWSNEST_AUTH_TOKEN";

/// Largest number of cached bcrypt verdicts; the cache is emptied when it is full, which bounds
/// memory under a flood of wrong passwords (each then costs one bcrypt, as without a cache).
const VERDICT_CACHE_MAX: usize = 4096;

/// The realm named in `WWW-Authenticate`.
const REALM: &str = "crowsnest";

/// A set of routes that share credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Write,
    Read,
    Admin,
    Alerting,
}

impl Group {
    pub const ALL: [Group; 4] = [Group::Write, Group::Read, Group::Admin, Group::Alerting];

    /// The config key (`web.auth.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Group::Write => "write",
            Group::Read => "read",
            Group::Admin => "admin",
            Group::Alerting => "alerting",
        }
    }

    /// Env var adding one token to this group (`CROWSNEST_WRITE_TOKEN`, ...).
    pub fn env_var(self) -> &'static str {
        match self {
            Group::Write => "CROWSNEST_WRITE_TOKEN",
            Group::Read => "CROWSNEST_READ_TOKEN",
            Group::Admin => "CROWSNEST_ADMIN_TOKEN",
            Group::Alerting => "CROWSNEST_ALERTING_TOKEN",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Marker request extension: the connection presented a client certificate that the listener's
/// `client_ca_file` verified. Inserted by [`crate::serve`].
#[derive(Debug, Clone, Copy)]
pub struct VerifiedClientCert;

/// The resolved credentials of one group.
#[derive(Default)]
struct GroupCreds {
    /// HMAC tags of the accepted tokens.
    tokens: Vec<hmac::Tag>,
    /// User → bcrypt hash.
    users: BTreeMap<String, Secret>,
}

impl GroupCreds {
    fn is_open(&self) -> bool {
        self.tokens.is_empty() && self.users.is_empty()
    }
}

/// Decides whether a request may reach a group's routes. Build once per process and share.
pub struct Authenticator {
    key: hmac::Key,
    groups: [GroupCreds; 4],
    internal: Option<hmac::Tag>,
    require_client_cert: bool,
    verdicts: Mutex<HashMap<[u8; 32], bool>>,
    /// A hash checked for unknown user names, at the cost of the configured hashes, so the answer
    /// time does not tell which user names exist. `None` when no basic-auth user is configured.
    decoy: Option<Secret>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open: Vec<&str> =
            Group::ALL.iter().filter(|g| self.groups[g.index()].is_open()).map(|g| g.name()).collect();
        f.debug_struct("Authenticator")
            .field("open_groups", &open)
            .field("require_client_cert", &self.require_client_cert)
            .finish_non_exhaustive()
    }
}

/// Why a request was refused (what the 401 body says; never echoes the credential).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Invalid,
    ClientCertRequired,
}

impl Denied {
    fn message(self) -> &'static str {
        match self {
            Denied::Missing => "authentication required",
            Denied::Invalid => "invalid credentials",
            Denied::ClientCertRequired => "a verified client certificate is required",
        }
    }
}

enum Presented {
    None,
    Bearer(String),
    Basic(String, String),
    Unreadable,
}

fn presented(headers: &HeaderMap) -> Presented {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Presented::None;
    };
    let Ok(v) = v.to_str() else {
        return Presented::Unreadable;
    };
    let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Presented::Bearer(rest.to_string())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).ok().and_then(|b| String::from_utf8(b).ok());
        match decoded.as_deref().and_then(|s| s.split_once(':')) {
            Some((u, p)) => Presented::Basic(u.to_string(), p.to_string()),
            None => Presented::Unreadable,
        }
    } else {
        Presented::Unreadable
    }
}

impl Authenticator {
    /// Resolves the config: reads token files, adds tokens from env vars (`env` is `std::env::var`
    /// in production, a map in tests), merges `all` into every group.
    pub fn from_config(cfg: &AuthConfig, env: impl Fn(&str) -> Option<String>) -> Result<Authenticator, WebError> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            .map_err(|_| WebError::Config("no system randomness for the auth key".into()))?;
        let mut all = resolve_group(&key, "all", &cfg.all)?;
        if let Some(t) = env(ENV_ALL_TOKEN).filter(|t| !t.is_empty()) {
            all.tokens.push(hmac::sign(&key, t.as_bytes()));
        }
        let mut groups: [GroupCreds; 4] = Default::default();
        for g in Group::ALL {
            let own = match g {
                Group::Write => &cfg.write,
                Group::Read => &cfg.read,
                Group::Admin => &cfg.admin,
                Group::Alerting => &cfg.alerting,
            };
            let mut creds = resolve_group(&key, g.name(), own)?;
            if let Some(t) = env(g.env_var()).filter(|t| !t.is_empty()) {
                creds.tokens.push(hmac::sign(&key, t.as_bytes()));
            }
            creds.tokens.extend(all.tokens.iter().cloned());
            for (u, h) in &all.users {
                creds.users.entry(u.clone()).or_insert_with(|| h.clone());
            }
            groups[g.index()] = creds;
        }
        let cost = groups
            .iter()
            .flat_map(|g| g.users.values())
            .find_map(|h| h.expose().parse::<bcrypt::HashParts>().ok().map(|p| p.get_cost()));
        let decoy = match cost {
            Some(c) => Some(Secret::new(
                bcrypt::hash(b"crowsnest-decoy", c).map_err(|e| WebError::Config(format!("bcrypt: {e}")))?,
            )),
            None => None,
        };
        Ok(Authenticator {
            key,
            groups,
            internal: None,
            require_client_cert: false,
            verdicts: Mutex::new(HashMap::new()),
            decoy,
        })
    }

    /// An authenticator with every group open (no config).
    pub fn open() -> Authenticator {
        Self::from_config(&AuthConfig::default(), |_| None).expect("an empty config resolves")
    }

    /// Also accept `token` on every group (and in place of a client certificate).
    pub fn with_internal_token(mut self, token: &Secret) -> Authenticator {
        self.internal = Some(hmac::sign(&self.key, token.expose().as_bytes()));
        self
    }

    /// Demand a verified client certificate on every group (`web.tls.client_ca_file`).
    pub fn require_client_cert(mut self, on: bool) -> Authenticator {
        self.require_client_cert = on;
        self
    }

    /// True when the group accepts requests without credentials.
    pub fn is_open(&self, group: Group) -> bool {
        self.groups[group.index()].is_open() && !self.require_client_cert
    }

    /// Checks one request's headers against `group`.
    pub async fn check(&self, group: Group, headers: &HeaderMap, client_cert: bool) -> Result<(), Denied> {
        let p = presented(headers);
        if let (Some(tag), Presented::Bearer(t)) = (&self.internal, &p)
            && hmac::verify(&self.key, t.as_bytes(), tag.as_ref()).is_ok()
        {
            return Ok(());
        }
        if self.require_client_cert && !client_cert {
            return Err(Denied::ClientCertRequired);
        }
        let creds = &self.groups[group.index()];
        if creds.is_open() {
            return Ok(());
        }
        match p {
            Presented::None => Err(Denied::Missing),
            Presented::Unreadable => Err(Denied::Invalid),
            Presented::Bearer(t) => {
                // Check every tag so timing does not reveal which token matched.
                let mut ok = false;
                for tag in &creds.tokens {
                    ok |= hmac::verify(&self.key, t.as_bytes(), tag.as_ref()).is_ok();
                }
                if ok { Ok(()) } else { Err(Denied::Invalid) }
            }
            Presented::Basic(user, pass) => match (creds.users.get(&user), &self.decoy) {
                (Some(hash), _) if self.bcrypt_ok(&user, &pass, hash).await => Ok(()),
                (Some(_), _) => Err(Denied::Invalid),
                (None, Some(decoy)) => {
                    self.bcrypt_ok(&user, &pass, decoy).await;
                    Err(Denied::Invalid)
                }
                (None, None) => Err(Denied::Invalid),
            },
        }
    }

    async fn bcrypt_ok(&self, user: &str, pass: &str, hash: &Secret) -> bool {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [user.as_bytes(), b"\0", pass.as_bytes(), b"\0", hash.expose().as_bytes()] {
            ctx.update(part);
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(ctx.sign().as_ref());
        if let Some(v) = self.verdicts.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            return *v;
        }
        let (pass, hash) = (pass.to_string(), hash.expose().to_string());
        // bcrypt burns CPU for tens of milliseconds: keep it off the async workers.
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(pass, &hash).unwrap_or(false)).await.unwrap_or(false);
        let mut cache = self.verdicts.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= VERDICT_CACHE_MAX {
            cache.clear();
        }
        cache.insert(id, ok);
        ok
    }

    fn challenge(&self, group: Group) -> Vec<HeaderValue> {
        let creds = &self.groups[group.index()];
        let mut v = Vec::new();
        if !creds.users.is_empty() {
            v.push(HeaderValue::from_static("Basic realm=\"crowsnest\", charset=\"UTF-8\""));
        }
        if !creds.tokens.is_empty() || v.is_empty() {
            v.push(HeaderValue::from_str(&format!("Bearer realm=\"{REALM}\"")).expect("static text"));
        }
        v
    }
}

fn resolve_group(key: &hmac::Key, name: &str, g: &GroupAuth) -> Result<GroupCreds, WebError> {
    let mut tokens: Vec<hmac::Tag> = g.bearer_tokens.iter().map(|t| hmac::sign(key, t.expose().as_bytes())).collect();
    for path in &g.bearer_token_files {
        let t = Secret::from_file(path).map_err(|source| WebError::Io { path: path.clone(), source })?;
        if t.is_empty() {
            return Err(WebError::Config(format!("web.auth.{name}.bearer_token_files: {} is empty", path.display())));
        }
        tokens.push(hmac::sign(key, t.expose().as_bytes()));
    }
    Ok(GroupCreds { tokens, users: g.basic_auth_users.clone() })
}

/// The 401 answer: `WWW-Authenticate` challenges and Prometheus' error envelope.
fn unauthorized(auth: &Authenticator, group: Group, why: Denied) -> Response {
    let body = serde_json::json!({"status": "error", "errorType": "unauthorized", "error": why.message()});
    let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    for v in auth.challenge(group) {
        resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
    }
    resp
}

#[derive(Clone)]
struct Guard {
    auth: Arc<Authenticator>,
    group: Group,
}

async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    let cert = req.extensions().get::<VerifiedClientCert>().is_some();
    match g.auth.check(g.group, req.headers(), cert).await {
        Ok(()) => next.run(req).await,
        Err(why) => {
            tracing::debug!(group = g.group.name(), path = %req.uri().path(), reason = why.message(), "Refused an unauthenticated request.");
            unauthorized(&g.auth, g.group, why)
        }
    }
}

/// Protects every route of `router` with `group`'s credentials.
pub fn protect(router: Router, auth: Arc<Authenticator>, group: Group) -> Router {
    if !router.has_routes() || auth.is_open(group) {
        return router;
    }
    router.route_layer(middleware::from_fn_with_state(Guard { auth, group }, guard))
}

/// A component's routes sorted by who may call them. Components return one of these; the binary
/// merges them and applies the authenticator with [`RouteGroups::into_router`], so a router added
/// later (e.g. admin endpoints) lands in a group by construction, not by a path list.
#[derive(Default)]
pub struct RouteGroups {
    /// No authentication ever: `/healthz`, `/ready` and their `/-/` aliases.
    pub open: Router,
    pub write: Router,
    pub read: Router,
    pub admin: Router,
    pub alerting: Router,
}

impl RouteGroups {
    /// Adds `other`'s routes group by group.
    pub fn merge(self, other: RouteGroups) -> RouteGroups {
        RouteGroups {
            open: self.open.merge(other.open),
            write: self.write.merge(other.write),
            read: self.read.merge(other.read),
            admin: self.admin.merge(other.admin),
            alerting: self.alerting.merge(other.alerting),
        }
    }

    /// One router with each group behind its credentials.
    pub fn into_router(self, auth: Arc<Authenticator>) -> Router {
        self.open
            .merge(protect(self.write, auth.clone(), Group::Write))
            .merge(protect(self.read, auth.clone(), Group::Read))
            .merge(protect(self.admin, auth.clone(), Group::Admin))
            .merge(protect(self.alerting, auth, Group::Alerting))
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
