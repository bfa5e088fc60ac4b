//! Ingest endpoints: `POST /api/v1/write` (Prometheus remote_write 1.0, snappy block + protobuf,
//! <https://prometheus.io/docs/specs/remote_write_spec/>) and `POST /api/v1/import/prometheus`
//! (text exposition, as VictoriaMetrics offers it). Senders retry 5xx and drop 4xx, so every
//! problem with the request itself is a 400 naming it, and 5xx is kept for our own failures.
//! A 204 means the accepted samples are durable (`Db::append_request` returns after the WAL sync).

use std::cell::RefCell;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crowsnest_wire::exposition::Format;
use crowsnest_wire::remote::borrowed::WriteRequestRef;
use crowsnest_wire::remote::{DecodeError, headers};

use super::ApiState;
use super::error::ApiError;
use super::params::{read_body, too_large};
use crate::import::{describe_rejections, import_text};

/// Config keys of the body size limits (`store.limits.*`), named in errors and metric labels.
const BODY_LIMIT: &str = "max_request_body_bytes";
const DECOMPRESSED_LIMIT: &str = "max_decompressed_bytes";

/// Decompressed bodies up to this size keep their buffer in the blocking thread for the next
/// request; a larger one is freed after use so idle threads do not pin big buffers.
const KEEP_SCRATCH_BYTES: usize = 8 << 20;

thread_local! {
    /// The decompression buffer of the blocking-pool thread running the append.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The remote_write 2.0 message type: refused, we only speak 1.0 (senders fall back).
const PROTO_V2: &str = "io.prometheus.write.v2.request";

/// `POST /api/v1/write`.
pub async fn write(State(s): State<ApiState>, req_headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let cfg = s.db.config();
    let limits = &cfg.limits;
    if let Some(ct) = header_str(&req_headers, header::CONTENT_TYPE) {
        let ct = ct.to_ascii_lowercase();
        if ct.contains(PROTO_V2) {
            return Err(ApiError::bad_data(
                "remote_write 2.0 is not supported; send prometheus.WriteRequest (remote_write 1.0)",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
    }
    if let Some(enc) = header_str(&req_headers, header::CONTENT_ENCODING)
        && !enc.eq_ignore_ascii_case(headers::SNAPPY)
    {
        return Err(ApiError::bad_data(format!(
            "{enc} encoding (compression) is not accepted by this server; only snappy is acceptable"
        ))
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    check_content_length(&req_headers, limits.max_request_body_bytes, BODY_LIMIT)?;
    let raw = read_body(body, limits.max_request_body_bytes, BODY_LIMIT).await?;
    let max_decompressed = limits.max_decompressed_bytes;
    let db = s.db.clone();
    // Decoding runs on the blocking thread too: the decoded request borrows the decompressed
    // buffer, which stays in that thread for its next request.
    let outcome = tokio::task::spawn_blocking(move || {
        SCRATCH.with_borrow_mut(|scratch| {
            let result = decode_and_append(&db, &raw, max_decompressed, scratch);
            if scratch.capacity() > KEEP_SCRATCH_BYTES {
                *scratch = Vec::new();
            }
            result
        })
    })
    .await??;
    if !outcome.rejected.is_empty() {
        tracing::debug!(
            accepted = outcome.accepted,
            rejected = outcome.rejected.len(),
            "Remote write batch partly rejected."
        );
        return Err(ApiError::bad_data(describe_rejections(&outcome.rejected)));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Decompresses (the snappy header's declared length is checked before the buffer grows), decodes
/// with labels borrowed from `scratch`, and appends.
fn decode_and_append(
    db: &crate::Db,
    body: &[u8],
    max_decompressed: usize,
    scratch: &mut Vec<u8>,
) -> Result<crate::db::AppendOutcome, ApiError> {
    let mut request = WriteRequestRef::decode_snappy(body, max_decompressed, scratch).map_err(|e| match e {
        e @ DecodeError::TooLarge { .. } => {
            ApiError::bad_data(format!("remote_write body too large: {e} ({DECOMPRESSED_LIMIT})"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .with_limit(DECOMPRESSED_LIMIT)
        }
        e => ApiError::bad_data(format!("invalid remote_write body: {e}")),
    })?;
    if !request.metadata.is_empty() {
        db.append_metadata(std::mem::take(&mut request.metadata));
    }
    Ok(db.append_request(&request)?)
}

/// `POST /api/v1/import/prometheus`: Prometheus text or OpenMetrics (chosen by Content-Type or
/// a trailing `# EOF`). Lines without a timestamp get the time of the request.
pub async fn import_prometheus(
    State(s): State<ApiState>,
    req_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if let Some(enc) = header_str(&req_headers, header::CONTENT_ENCODING)
        && !enc.eq_ignore_ascii_case("identity")
    {
        return Err(ApiError::bad_data(format!(
            "{enc} request bodies are not accepted here; send the text uncompressed"
        ))
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    // The text is not compressed, so the larger of the two size limits applies to it.
    let cfg = s.db.config();
    let (limit, key) = if cfg.limits.max_decompressed_bytes >= cfg.limits.max_request_body_bytes {
        (cfg.limits.max_decompressed_bytes, DECOMPRESSED_LIMIT)
    } else {
        (cfg.limits.max_request_body_bytes, BODY_LIMIT)
    };
    check_content_length(&req_headers, limit, key)?;
    let raw = read_body(body, limit, key).await?;
    let text = String::from_utf8(raw)
        .map_err(|e| ApiError::bad_data(format!("body is not valid UTF-8 (byte {})", e.utf8_error().valid_up_to())))?;
    let format = Format::detect(header_str(&req_headers, header::CONTENT_TYPE), &text);
    let now = chrono::Utc::now().timestamp_millis();
    let db = s.db.clone();
    let summary = tokio::task::spawn_blocking(move || import_text(&db, &text, format, now, 0)).await??;
    if summary.has_problems() {
        return Err(ApiError::bad_data(format!("{} ({})", summary.problems(), summary.summary_line())));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Refuses a body whose announced size is over `limit` before reading it.
fn check_content_length(h: &HeaderMap, limit: usize, key: &'static str) -> Result<(), ApiError> {
    match header_str(h, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
        Some(n) if n > limit as u64 => Err(too_large(limit, key)),
        _ => Ok(()),
    }
}
