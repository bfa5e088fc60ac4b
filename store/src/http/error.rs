//! The one error → HTTP mapping of the store's API: every failure becomes Prometheus' error
//! envelope `{"status":"error","errorType":…,"error":…}` with Prometheus' default status for the
//! type (bad_data 400, execution 422, canceled 499, timeout 503, internal 500), as in
//! `returnAPIError` / `respondError` of prometheus/prometheus `web/api/v1/api.go`.
//! Internal details (storage and join errors) are logged here and replaced by a short message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use crowsnest_promql::QueryError;
use crowsnest_wire::api::{Envelope, ErrorType};

use crate::error::StoreError;

/// An API failure: the Prometheus error type, the client-facing message, optionally a status
/// other than the type's default (413 for oversized bodies, 415 for wrong encodings), and the
/// config key of the limit that refused the request, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
    pub status: Option<StatusCode>,
    pub limit: Option<&'static str>,
}

/// Response extension naming the limit that refused a request; the router's metrics middleware
/// turns it into `crowsnest_store_requests_rejected_total{limit}` (handlers never count by hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitHit(pub &'static str);

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError { kind, message: message.into(), status: None, limit: None }
    }

    /// `bad_data` (400): the client sent something we cannot use.
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    /// `bad_data` for one parameter, worded like Prometheus' `invalidParamError`.
    pub fn invalid_param(name: &str, reason: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter {name:?}: {reason}"))
    }

    /// `execution` (422): evaluation failed.
    pub fn execution(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Execution, message)
    }

    /// `timeout` (503).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Timeout, message)
    }

    /// `canceled` (499).
    pub fn canceled(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Canceled, message)
    }

    /// `internal` (500). The detail is logged, the client only sees `what`.
    pub fn internal(what: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, what, "Internal error while serving an API request.");
        Self::new(ErrorType::Internal, format!("internal error: {what}"))
    }

    /// `internal` with a message meant for the client (nothing internal in it, nothing logged).
    pub fn internal_message(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    /// Overrides the HTTP status (the error type stays).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Marks the error as a limit refusal; `key` is the limit's config key (a bounded label).
    pub fn with_limit(mut self, key: &'static str) -> Self {
        self.limit = Some(key);
        self
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.kind.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body: Envelope<()> = Envelope::error(self.kind, self.message);
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(key) = self.limit {
            resp.extensions_mut().insert(LimitHit(key));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    /// Limits are the client's problem (400, not retried); everything else is ours (500, retried
    /// by remote_write senders).
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Limit(m) => ApiError::bad_data(m),
            // Disk full is the operator's to fix and the sender's to retry (507 is a 5xx, so
            // remote_write senders keep the data and back off); say so plainly.
            StoreError::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                tracing::error!(error = %e, "The store's disk is full; refusing writes until space returns.");
                ApiError::internal_message("storage full: no space left on the store's data disk; retry later")
                    .with_status(StatusCode::INSUFFICIENT_STORAGE)
            }
            other => ApiError::internal("storage failure", other),
        }
    }
}

impl From<QueryError> for ApiError {
    /// Prometheus' mapping: creation errors are `bad_data` on the `query` parameter, timeouts and
    /// cancellations keep their types, storage failures are `internal`, the rest `execution`.
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::BadData(m) => ApiError::invalid_param("query", m),
            QueryError::Execution(m) if m == crowsnest_promql::TOO_MANY_SAMPLES => {
                ApiError::execution(format!("{m} (limit store.query.max_samples)")).with_limit("max_samples")
            }
            QueryError::Execution(m) => ApiError::execution(m),
            e @ QueryError::Timeout(_) => ApiError::timeout(e.to_string()).with_limit("timeout"),
            e @ QueryError::Canceled(_) => ApiError::canceled(e.to_string()),
            QueryError::Storage(s) => ApiError::internal("storage failure during query", s),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal("worker task failed", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn statuses_follow_prometheus() {
        let cases = [
            (ApiError::bad_data("x"), 400, "bad_data"),
            (ApiError::execution("x"), 422, "execution"),
            (ApiError::canceled("x"), 499, "canceled"),
            (ApiError::timeout("x"), 503, "timeout"),
            (ApiError::internal("boom", "secret detail"), 500, "internal"),
            (ApiError::bad_data("big").with_status(StatusCode::PAYLOAD_TOO_LARGE), 413, "bad_data"),
        ];
        for (err, status, kind) in cases {
            let r = err.into_response();
            assert_eq!(r.status().as_u16(), status);
            let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["status"], "error");
            assert_eq!(v["errorType"], kind);
            assert!(!v["error"].as_str().unwrap().contains("secret"), "{v}");
            assert!(v.get("data").is_none());
        }
    }

    #[test]
    fn query_errors_map() {
        let e: ApiError = QueryError::BadData("1:1: parse error: x".into()).into();
        assert_eq!(e.message, "invalid parameter \"query\": 1:1: parse error: x");
        let e: ApiError = QueryError::Timeout("expression evaluation").into();
        assert_eq!((e.kind, e.message.as_str()), (ErrorType::Timeout, "query timed out in expression evaluation"));
        let e: ApiError = StoreError::Limit("too many series".into()).into();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e: ApiError = StoreError::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)).into();
        assert_eq!((e.kind, e.status()), (ErrorType::Internal, StatusCode::INSUFFICIENT_STORAGE));
        assert!(e.message.contains("no space left"), "{}", e.message);
    }
}
