//! The daemon's HTTP routes (hyper, HTTP/1.1, optionally over TLS with
//! basic auth; connections are `listener`'s): /metrics, /api/v1/snapshot,
//! /api/v1/events, /api/v1/incidents (`incidents.rs`), /api/v1/history
//! (`history.rs`), /healthz read the latest publication and touch neither
//! the kernel nor /proc; /api/v1/profile (with `--profile`) reads the
//! continuous profile on a blocking thread (it drains the stack maps and
//! names frames), [`PROFILE_CONCURRENCY`] at a time.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{
    basic_auth::{Users, Verdict},
    web_config::WebSecurity,
};
use crate::sinks::prometheus::{self as prom, CgroupAdmission, RenderSettings};
use crate::{
    clock::unix_ms,
    model::published::{Shared, latest},
};

/// What the handlers share.
pub struct HttpState {
    /// Latest publication.
    pub shared: Shared,
    /// Ranking and caps (SIGHUP may change them).
    pub render: RwLock<RenderSettings>,
    /// Cgroups admitted to their own series.
    pub admission: Mutex<CgroupAdmission>,
    /// Previous /metrics render time, f64 bits.
    pub last_scrape: AtomicU64,
    /// A publication older than this many ms makes /healthz fail.
    pub stale_after_ms: AtomicU64,
    /// TLS and basic auth (SIGHUP may change them).
    pub web: RwLock<WebSecurity>,
    /// The continuous profile (None: the daemon runs without --profile).
    pub profile: Option<Arc<super::profile::ContinuousProfile>>,
    /// Profiles being built: at most [`PROFILE_CONCURRENCY`]; more get 503.
    pub profile_permits: Arc<Semaphore>,
    /// /api/v1/snapshot's body, once per publication.
    pub snapshot: super::snapshot_cache::SnapshotCache,
    /// Counter floors across restarts (None: `--no-pin`, nothing kept).
    pub counters: Option<Mutex<super::counter_state::CounterState>>,
    /// The recent history `/api/v1/history` serves.
    pub history: Arc<RwLock<crate::model::explain::history::History>>,
}

/// `/api/v1/profile` requests built at once (each drains the stack maps and
/// names frames on a blocking thread, seconds with a large window); one
/// beyond gets 503 with `Retry-After`.
pub const PROFILE_CONCURRENCY: usize = 2;

/// The continuous profile's path.
pub const PROFILE_PATH: &str = "/api/v1/profile";
/// The resident profile's own path (`kind=resident` without a query, for
/// scrapers that take a path only).
pub const RESIDENT_PATH: &str = "/api/v1/profile/resident";

impl HttpState {
    /// The endpoint's current TLS and basic auth.
    pub fn web(&self) -> WebSecurity {
        match self.web.read() {
            Ok(w) => w.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn json<T: Serialize>(v: &T) -> Resp {
    match serde_json::to_vec(v) {
        Ok(body) => respond(StatusCode::OK, "application/json", body),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

#[derive(Serialize)]
struct Events<'a> {
    oom_kills_total: u64,
    oom_kills: &'a [crate::model::OomKill],
    sigkills: &'a [crate::model::SignalKill],
    kills_total: &'a std::collections::BTreeMap<&'static str, u64>,
    notices: &'a [crate::model::published::Notice],
}

fn metrics(state: &HttpState, openmetrics: bool) -> Resp {
    let started = Instant::now();
    let published = latest(&state.shared);
    let mut settings = match state.render.read() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    };
    settings.last_scrape_seconds = f64::from_bits(state.last_scrape.load(Ordering::Relaxed));
    let mut families = match state.admission.lock() {
        Ok(mut adm) => prom::families(&published, &settings, &mut adm),
        Err(p) => prom::families(&published, &settings, &mut p.into_inner()),
    };
    if let Some(counters) = &state.counters {
        // Saved before the answer leaves: a scraper never sees a value a
        // restart could take back.
        let mut c = counters.lock().unwrap_or_else(|p| p.into_inner());
        c.floors.apply(&mut families, unix_ms());
        c.save();
    }
    let encoded = if openmetrics {
        Ok((
            crate::sinks::openmetrics::CONTENT_TYPE,
            crate::sinks::openmetrics::encode(&families),
        ))
    } else {
        prom::encode(&families).map(|b| ("text/plain; version=0.0.4; charset=utf-8", b))
    };
    let resp = match encoded {
        Ok((content_type, body)) => respond(StatusCode::OK, content_type, body),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    };
    state
        .last_scrape
        .store(started.elapsed().as_secs_f64().to_bits(), Ordering::Relaxed);
    resp
}

/// `/api/v1/snapshot`: the latest publication's JSON, serialized (and
/// gzipped, when asked) once per publication, off the endpoint's thread.
async fn snapshot(state: &HttpState, headers: &header::HeaderMap) -> Resp {
    let wants_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    match state.snapshot.body(&state.shared, wants_gzip).await {
        Ok((body, zipped)) => {
            let mut r = respond(StatusCode::OK, "application/json", body);
            r.headers_mut().insert(
                header::VARY,
                header::HeaderValue::from_static("accept-encoding"),
            );
            if zipped {
                r.headers_mut().insert(
                    header::CONTENT_ENCODING,
                    header::HeaderValue::from_static("gzip"),
                );
            }
            r
        }
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

/// Routes one request that the publication answers at once (`headers`
/// for content negotiation).
fn route(method: &Method, path: &str, headers: &header::HeaderMap, state: &HttpState) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n",
        );
    }
    match path {
        "/metrics" => metrics(
            state,
            headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(crate::sinks::openmetrics::accepts),
        ),
        "/api/v1/events" => {
            let p = latest(&state.shared);
            json(&Events {
                oom_kills_total: p.oom_kills_total,
                oom_kills: &p.recent_oom_kills,
                sigkills: &p.recent_sigkills,
                kills_total: &p.kills_total,
                notices: &p.notices,
            })
        }
        "/api/v1/incidents" => json(&super::incidents::list(&latest(&state.shared))),
        p if p.starts_with(super::incidents::PATH_PREFIX) => {
            let id = &p[super::incidents::PATH_PREFIX.len()..];
            match super::incidents::one(&latest(&state.shared), id) {
                Ok(incident) => json(&*incident),
                Err(text) => respond(StatusCode::NOT_FOUND, "text/plain", text),
            }
        }
        "/healthz" => {
            let p = latest(&state.shared);
            let age = unix_ms().saturating_sub(p.unix_ms);
            if p.samples_total > 0 && age <= state.stale_after_ms.load(Ordering::Relaxed) {
                respond(StatusCode::OK, "text/plain", "ok\n")
            } else {
                respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("stale: last sample {age} ms ago\n"),
                )
            }
        }
        "/" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><head><title>memmon</title></head><body><h1>memmon</h1><ul>\
             <li><a href=\"/metrics\">/metrics</a></li>\
             <li><a href=\"/api/v1/snapshot\">/api/v1/snapshot</a></li>\
             <li><a href=\"/api/v1/events\">/api/v1/events</a></li>\
             <li><a href=\"/api/v1/incidents\">/api/v1/incidents</a></li>\
             <li><a href=\"/api/v1/profile\">/api/v1/profile</a> and <a \
             href=\"/api/v1/profile/resident\">/api/v1/profile/resident</a> (with --profile)</li>\
             <li><a href=\"/healthz\">/healthz</a></li></ul></body></html>\n",
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn unauthorized() -> Resp {
    let mut r = respond(
        StatusCode::UNAUTHORIZED,
        "text/plain",
        "unauthorized: this endpoint needs basic auth\n",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"memmon\""),
    );
    r
}

async fn authorized(users: &Arc<Users>, req: &Request<Incoming>) -> bool {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(v) = users.cached(value.as_deref()) {
        return v == Verdict::Allowed;
    }
    // bcrypt is slow on purpose: keep it off the async thread.
    let users = Arc::clone(users);
    tokio::task::spawn_blocking(move || users.check(value.as_deref()) == Verdict::Allowed)
        .await
        .unwrap_or(false)
}

/// Answers one request (after basic auth when users are configured).
pub(super) async fn handle(
    req: Request<Incoming>,
    state: Arc<HttpState>,
    users: Arc<Users>,
) -> Result<Resp, Infallible> {
    if !authorized(&users, &req).await {
        return Ok(unauthorized());
    }
    let path = req.uri().path();
    if path == PROFILE_PATH || path == RESIDENT_PATH {
        // Already gzipped pprof: never compressed again.
        let resident = path == RESIDENT_PATH;
        return Ok(profile(req.method(), req.uri().query(), resident, &state).await);
    }
    if path == "/api/v1/snapshot" && (req.method() == Method::GET || req.method() == Method::HEAD) {
        return Ok(snapshot(&state, req.headers()).await);
    }
    if path == super::history::HISTORY_PATH {
        let resp = history(req.method(), req.uri().query(), &state).await;
        return Ok(compress(resp, req.headers()).await);
    }
    let resp = route(req.method(), req.uri().path(), req.headers(), &state);
    Ok(compress(resp, req.headers()).await)
}

/// `/api/v1/history`: the target's recent points (and, with `--profile`,
/// its growth stacks), 400 naming the bad query key.
async fn history(method: &Method, query: Option<&str>, state: &HttpState) -> Resp {
    use super::history as h;
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n",
        );
    }
    let q = match h::parse(query, with_history(state, |g| g.seconds())) {
        Ok(q) => q,
        Err(e) => {
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("{}: {e}\n", h::HISTORY_PATH),
            );
        }
    };
    let stacks = match &state.profile {
        None => Err("the daemon runs without --profile".to_string()),
        Some(profile) => match with_history(state, |g| h::stacks_query(&q, g)) {
            None => Err("the target's cgroup is not known".to_string()),
            Some(pq) => {
                let profile = Arc::clone(profile);
                tokio::task::spawn_blocking(move || profile.top_stacks(&pq, h::STACKS))
                    .await
                    .map_err(|e| format!("building the profile failed: {e}"))
            }
        },
    };
    let published = latest(&state.shared);
    json(&with_history(state, |g| {
        h::answer(g, &published, &q, stacks)
    }))
}

/// Runs `f` on the recent history (a poisoned lock still reads).
fn with_history<T>(
    state: &HttpState,
    f: impl FnOnce(&crate::model::explain::history::History) -> T,
) -> T {
    match state.history.read() {
        Ok(g) => f(&g),
        Err(p) => f(&p.into_inner()),
    }
}

/// `/api/v1/profile` (and `/api/v1/profile/resident`, which is
/// `kind=resident`): gzipped pprof of the continuous profile, 404 naming
/// `--profile` when it is off, 400 naming the bad query key.
async fn profile(method: &Method, query: Option<&str>, resident: bool, state: &HttpState) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET and HEAD\n",
        );
    }
    let Some(profile) = state.profile.clone() else {
        return respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "the continuous profile is off: start the daemon with --profile (or `profile = \
             true` in memmon.toml, or MEMMON_PROFILE=true)\n",
        );
    };
    let query = match super::profile_query::parse(query) {
        Ok(q) if resident && q.kind != super::profile_query::Kind::Faults => q,
        Ok(_) if resident && query.is_some_and(|q| q.contains("kind=")) => {
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("{RESIDENT_PATH} is the resident profile: leave out kind=\n"),
            );
        }
        Ok(q) if resident => super::profile_query::ProfileQuery {
            kind: super::profile_query::Kind::Resident,
            ..q
        },
        Ok(q) => q,
        Err(e) => {
            return respond(
                StatusCode::BAD_REQUEST,
                "text/plain",
                format!("{PROFILE_PATH}: {e}\n"),
            );
        }
    };
    let Ok(permit) = Arc::clone(&state.profile_permits).try_acquire_owned() else {
        let mut r = respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!(
                "{PROFILE_PATH}: {PROFILE_CONCURRENCY} profiles are being built already; retry \
                 when one is done\n"
            ),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    };
    let pprof = query.format == super::profile_query::Format::Pprof;
    // The permit goes with the work: a client that hangs up does not free
    // it before the blocking thread is done.
    let build = move || {
        let _permit = permit;
        profile.answer(&query)
    };
    match tokio::task::spawn_blocking(build).await {
        Ok((body, content_type)) => {
            let mut r = respond(StatusCode::OK, content_type, body);
            if pprof {
                r.headers_mut().insert(
                    header::CONTENT_DISPOSITION,
                    header::HeaderValue::from_static("attachment; filename=\"profile\""),
                );
            }
            r
        }
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("building the profile failed: {e}\n"),
        ),
    }
}

/// True when an `Accept-Encoding` header accepts gzip (q > 0).
fn accepts_gzip(value: &str) -> bool {
    value.split(',').any(|part| {
        let mut it = part.split(';');
        let coding = it.next().unwrap_or("").trim();
        let q_zero = it.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
    })
}

/// Gzips a successful response when the request accepts it (Prometheus
/// always sends `Accept-Encoding: gzip`).
async fn compress(resp: Resp, request: &header::HeaderMap) -> Resp {
    use http_body_util::BodyExt as _;
    let wanted = request
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(accepts_gzip);
    if !wanted
        || resp.status() != StatusCode::OK
        || resp.headers().contains_key(header::CONTENT_ENCODING)
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    parts.headers.insert(
        header::VARY,
        header::HeaderValue::from_static("accept-encoding"),
    );
    if bytes.len() < super::gzip::MIN_BYTES {
        return Response::from_parts(parts, Full::new(bytes));
    }
    match super::gzip::gzip(&bytes) {
        Some(zipped) => {
            parts.headers.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
            Response::from_parts(parts, Full::new(Bytes::from(zipped)))
        }
        None => Response::from_parts(parts, Full::new(bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::accepts_gzip;

    #[test]
    fn gzip_negotiation() {
        assert!(accepts_gzip("gzip"));
        assert!(accepts_gzip("deflate, gzip;q=0.8"));
        assert!(accepts_gzip("*"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("identity"));
        assert!(!accepts_gzip(""));
    }
}
