//! Request parameters the way Prometheus reads them (`Request.FormValue` / `Request.Form` in Go):
//! URL query parameters merged with an `application/x-www-form-urlencoded` POST body, body values
//! first; plus the parameter syntaxes of `web/api/v1/api.go`: times (float Unix seconds or
//! RFC 3339), durations (float seconds or `5m`), `limit`, and `match[]` series selectors.

use axum::extract::{FromRequest, Request};
use axum::http::{Method, header};
use chrono::DateTime;
use crowsnest_promql::QueryError;
use crowsnest_wire::duration::parse_duration_ms;
use crowsnest_wire::{MatchOp, Matcher};
use futures::StreamExt;
use promql_parser::parser::Expr;

use super::error::ApiError;

/// Prometheus' `MinTime` (`time.Unix(math.MinInt64/1000+62135596801, 0)`), in milliseconds.
pub const MIN_TIME_MS: i64 = (i64::MIN / 1000 + 62_135_596_801) * 1000;
/// Prometheus' `MaxTime` (`time.Unix(math.MaxInt64/1000-62135596801, 999999999)`), in milliseconds.
pub const MAX_TIME_MS: i64 = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;
/// `MinTime` / `MaxTime` as Go formats them in RFC 3339; clients send them back as sentinels.
const MIN_TIME_FORMATTED: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_FORMATTED: &str = "292277025-08-18T07:12:54.999999999Z";
/// Largest form body we buffer (Go's `ParseForm` default).
pub const MAX_FORM_BYTES: usize = 10 << 20;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// All parameters of one request, in Go's `r.Form` order (body first, then URL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first value of `name` (Go's `FormValue`), `None` when absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of `name` if present and non-empty (how Prometheus treats optional params).
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    /// An optional time parameter (`parseTimeParam`): absent or empty gives `default`.
    pub fn time_or(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.non_empty(name) {
            None => Ok(default),
            Some(v) => parse_time(v)
                .map_err(|e| ApiError::invalid_param(name, format!("invalid time value for '{name}': {e}"))),
        }
    }

    /// A required time parameter, as `query_range` reads `start` and `end`.
    pub fn time_required(&self, name: &str) -> Result<i64, ApiError> {
        parse_time(self.get(name).unwrap_or("")).map_err(|e| ApiError::invalid_param(name, e))
    }

    /// An optional duration parameter in milliseconds.
    pub fn duration_opt(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.non_empty(name).map(|v| parse_duration_param(v).map_err(|e| ApiError::invalid_param(name, e))).transpose()
    }

    /// `limit` (`parseLimitParam`): absent or 0 means unlimited.
    pub fn limit(&self) -> Result<Option<usize>, ApiError> {
        let Some(v) = self.non_empty("limit") else { return Ok(None) };
        let n: i64 = v
            .parse()
            .map_err(|_| ApiError::invalid_param("limit", format!("strconv.Atoi: parsing {v:?}: invalid syntax")))?;
        if n < 0 {
            return Err(ApiError::invalid_param("limit", "limit must be non-negative"));
        }
        Ok((n > 0).then_some(n as usize))
    }

    /// The `match[]` selectors as matcher sets (one per selector, more for `or` inside braces).
    pub fn match_sets(&self) -> Result<Vec<Vec<Matcher>>, ApiError> {
        parse_match_sets(&self.all("match[]"))
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        let url_params = parse_form(req.uri().query().unwrap_or(""))?;
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with(FORM_CONTENT_TYPE));
        let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
        let mut all = Vec::new();
        if is_form && has_body {
            let body = read_body(req.into_body(), MAX_FORM_BYTES, "max_form_bytes").await?;
            let text = std::str::from_utf8(&body)
                .map_err(|_| ApiError::bad_data("error parsing form: body is not valid UTF-8"))?;
            all = parse_form(text)?;
        }
        all.extend(url_params);
        Ok(Params(all))
    }
}

fn parse_form(s: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s)
        .map_err(|e| ApiError::bad_data(format!("error parsing form: {e}")))
}

/// Buffers a request body, refusing more than `limit` bytes with 413 (checked against
/// `Content-Length` by the caller when present, and while streaming here).
pub async fn read_body(body: axum::body::Body, limit: usize, key: &'static str) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_data(format!("error reading request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit, key));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The 413 answer for a body above `limit` bytes; `key` names the limit (its config key).
pub fn too_large(limit: usize, key: &'static str) -> ApiError {
    ApiError::bad_data(format!("request body too large: the limit is {limit} bytes ({key})"))
        .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE)
        .with_limit(key)
}

/// Parses a Prometheus API time: float Unix seconds (rounded to milliseconds, clamped to
/// Prometheus' MinTime/MaxTime so Grafana's millisecond epochs are accepted), RFC 3339, or the
/// formatted MinTime/MaxTime sentinels. Returns milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_nan() {
            return Err(format!("cannot parse {s:?} to a valid timestamp"));
        }
        let ms = (f * 1000.0).round();
        return Ok(if ms >= MAX_TIME_MS as f64 {
            MAX_TIME_MS
        } else if ms <= MIN_TIME_MS as f64 {
            MIN_TIME_MS
        } else {
            ms as i64
        });
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        MIN_TIME_FORMATTED => Ok(MIN_TIME_MS),
        MAX_TIME_FORMATTED => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// Parses a Prometheus API duration: float seconds or a duration string. Returns milliseconds.
pub fn parse_duration_param(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!("cannot parse {s:?} to a valid duration. It overflows int64"));
        }
        return Ok((f * 1000.0).round() as i64);
    }
    match parse_duration_ms(s) {
        Ok(ms) if ms <= i64::MAX as u64 / 1_000_000 => Ok(ms as i64),
        Ok(_) => Err(format!("cannot parse {s:?} to a valid duration. It overflows int64")),
        Err(_) => Err(format!("cannot parse {s:?} to a valid duration")),
    }
}

/// Parses `match[]` selectors (`parseMatchersParam`): each must be a series selector with at least
/// one matcher that does not match the empty string.
pub fn parse_match_sets(selectors: &[&str]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for sel in selectors {
        let sets = parse_selector(sel)?;
        if sets.iter().any(|ms| ms.iter().all(Matcher::matches_empty)) {
            return Err(ApiError::bad_data("match[] must contain at least one non-empty matcher"));
        }
        out.extend(sets);
    }
    Ok(out)
}

/// One series selector as matcher sets (several when the braces use `or`).
pub fn parse_selector(sel: &str) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let expr = crowsnest_promql::engine::parse(sel).map_err(|e| match e {
        QueryError::BadData(m) => ApiError::bad_data(m),
        other => ApiError::bad_data(other.to_string()),
    })?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(ApiError::bad_data(format!("1:1: parse error: expected a series selector, got {sel:?}")));
    };
    let name = vs.name.as_ref().map(|n| Matcher::equal(crowsnest_wire::METRIC_NAME, n.clone()));
    let groups: Vec<&Vec<promql_parser::label::Matcher>> = if vs.matchers.or_matchers.is_empty() {
        vec![&vs.matchers.matchers]
    } else {
        vs.matchers.or_matchers.iter().collect()
    };
    let mut sets = Vec::new();
    for group in groups {
        let mut set: Vec<Matcher> = name.iter().cloned().collect();
        for m in
            group.iter().chain(if vs.matchers.or_matchers.is_empty() { [].iter() } else { vs.matchers.matchers.iter() })
        {
            set.push(convert_matcher(m)?);
        }
        sets.push(set);
    }
    Ok(sets)
}

fn convert_matcher(m: &promql_parser::label::Matcher) -> Result<Matcher, ApiError> {
    use promql_parser::label::MatchOp as P;
    let op = match &m.op {
        P::Equal => MatchOp::Equal,
        P::NotEqual => MatchOp::NotEqual,
        P::Re(_) => MatchOp::Regex,
        P::NotRe(_) => MatchOp::NotRegex,
    };
    Matcher::new(op, m.name.clone(), m.value.clone())
        .map_err(|e| ApiError::bad_data(format!("invalid regular expression in matcher {}: {e}", m.name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1700000000.1234").unwrap(), 1_700_000_000_123);
        assert_eq!(parse_time("4").unwrap(), 4000);
        assert_eq!(parse_time("2026-01-02T03:04:05.678Z").unwrap(), 1_767_323_045_678);
        assert_eq!(parse_time("2026-01-02T04:04:05+01:00").unwrap(), 1_767_323_045_000);
        // Grafana's millisecond epochs sent as seconds: accepted, far in the future.
        assert_eq!(parse_time("1767323045678").unwrap(), 1_767_323_045_678_000);
        assert_eq!(parse_time("1e30").unwrap(), MAX_TIME_MS);
        assert_eq!(parse_time(MIN_TIME_FORMATTED).unwrap(), MIN_TIME_MS);
        assert_eq!(parse_time(MAX_TIME_FORMATTED).unwrap(), MAX_TIME_MS);
        assert_eq!(parse_time("x").unwrap_err(), "cannot parse \"x\" to a valid timestamp");
        assert!(parse_time("").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_param("15").unwrap(), 15_000);
        assert_eq!(parse_duration_param("0.5").unwrap(), 500);
        assert_eq!(parse_duration_param("1m30s").unwrap(), 90_000);
        assert_eq!(parse_duration_param("1d").unwrap(), 86_400_000);
        assert!(parse_duration_param("1e300").unwrap_err().contains("overflows"));
        assert_eq!(parse_duration_param("x").unwrap_err(), "cannot parse \"x\" to a valid duration");
    }

    #[test]
    fn selectors() {
        let sets = parse_match_sets(&["up", "{job=~\"a|b\", __name__!=\"\"}"]).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[0], vec![Matcher::equal("__name__", "up")]);
        assert_eq!(sets[1].len(), 2);
        assert!(parse_match_sets(&["{foo=\"\"}"]).unwrap_err().message.contains("at least one non-empty matcher"));
        assert!(parse_match_sets(&["up{"]).is_err());
        assert!(parse_match_sets(&["sum(up)"]).is_err());
        let or = parse_selector("{a=\"1\" or b=\"2\"}").unwrap();
        assert_eq!(or.len(), 2);
    }

    #[test]
    fn params_merge_and_limit() {
        let p = Params(vec![
            ("limit".into(), "5".into()),
            ("match[]".into(), "a".into()),
            ("limit".into(), "7".into()),
            ("match[]".into(), "b".into()),
        ]);
        assert_eq!(p.limit().unwrap(), Some(5));
        assert_eq!(p.all("match[]"), vec!["a", "b"]);
        let p = Params(vec![("limit".into(), "-1".into())]);
        assert_eq!(p.limit().unwrap_err().message, "invalid parameter \"limit\": limit must be non-negative");
        assert_eq!(Params(vec![("limit".into(), "0".into())]).limit().unwrap(), None);
    }

    proptest! {
        #[test]
        fn float_seconds_round_to_ms(ms in 0i64..1_000_000_000_000_000i64) {
            let s = format!("{}.{:03}", ms / 1000, ms % 1000);
            prop_assert_eq!(parse_time(&s).unwrap(), ms);
        }

        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_time(&s);
            let _ = parse_duration_param(&s);
            let _ = parse_selector(&s);
        }
    }
}
