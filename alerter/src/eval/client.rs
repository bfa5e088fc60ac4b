//! The evaluator's seams to the outside: [`QueryClient`] (instant queries, Prometheus'
//! `GET /api/v1/query`) and [`SeriesWriter`] (remote_write 1.0), with HTTP implementations, and
//! an in-process [`EngineClient`] over `crowsnest_promql` used by `test-rules`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use crowsnest_promql::{Engine, Storage};
use crowsnest_web::HttpClientConfig;
use crowsnest_wire::api::{Envelope, QueryData, format_value};
use crowsnest_wire::remote::headers;
use crowsnest_wire::{TimeSeries, WriteRequest};
use tokio_util::sync::CancellationToken;

use super::EvalError;

/// One element of an instant vector: labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

/// Runs instant queries.
#[async_trait]
pub trait QueryClient: Send + Sync {
    /// Evaluates `expr` at `at_ms`; a scalar becomes one label-less element, like Prometheus'
    /// rule query function.
    async fn query(&self, expr: &str, at_ms: i64) -> Result<Vec<Sample>, EvalError>;
}

/// Writes series (remote_write).
#[async_trait]
pub trait SeriesWriter: Send + Sync {
    async fn write(&self, series: Vec<TimeSeries>) -> Result<(), EvalError>;
}

/// Converts an API result to samples.
pub fn samples_of(data: QueryData) -> Result<Vec<Sample>, EvalError> {
    match data {
        QueryData::Vector(v) => Ok(v.into_iter().map(|s| (s.metric, s.value.v)).collect()),
        QueryData::Scalar(p) => Ok(vec![(BTreeMap::new(), p.v)]),
        QueryData::Matrix(_) => Err(EvalError::Query("rule result is a range vector, not an instant vector".into())),
        QueryData::String(_) => Err(EvalError::Query("rule result is a string, not an instant vector".into())),
    }
}

/// [`QueryClient`] over HTTP against any Prometheus-compatible API.
#[derive(Debug, Clone)]
pub struct HttpQueryClient {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl HttpQueryClient {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, EvalError> {
        Self::with_http(base_url, timeout, &HttpClientConfig::default())
    }

    /// Like [`HttpQueryClient::new`] with credentials and TLS settings.
    pub fn with_http(base_url: &str, timeout: Duration, cfg: &HttpClientConfig) -> Result<Self, EvalError> {
        let http = cfg
            .client_builder()
            .map_err(|e| EvalError::Http(e.to_string()))?
            .timeout(timeout + Duration::from_secs(5))
            .build()
            .map_err(|e| EvalError::Http(e.to_string()))?;
        Ok(HttpQueryClient { http, url: format!("{}/api/v1/query", base_url.trim_end_matches('/')), timeout })
    }
}

#[async_trait]
impl QueryClient for HttpQueryClient {
    async fn query(&self, expr: &str, at_ms: i64) -> Result<Vec<Sample>, EvalError> {
        let time = format_value(at_ms as f64 / 1000.0);
        let timeout = format!("{}ms", self.timeout.as_millis());
        let resp = self
            .http
            .post(&self.url)
            .form(&[("query", expr), ("time", time.as_str()), ("timeout", timeout.as_str())])
            .send()
            .await
            .map_err(|e| EvalError::Http(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| EvalError::Http(e.to_string()))?;
        let env: Envelope<QueryData> = serde_json::from_slice(&body)
            .map_err(|e| EvalError::Http(format!("query API answered {status} with an unreadable body: {e}")))?;
        if let Some(err) = env.error {
            return Err(EvalError::Query(err));
        }
        samples_of(env.data.ok_or_else(|| EvalError::Query(format!("query API answered {status} without data")))?)
    }
}

/// [`SeriesWriter`] posting snappy-compressed protobuf to a remote_write endpoint.
#[derive(Debug, Clone)]
pub struct RemoteWriteClient {
    http: reqwest::Client,
    url: String,
}

impl RemoteWriteClient {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, EvalError> {
        Self::with_http(url, timeout, &HttpClientConfig::default())
    }

    /// Like [`RemoteWriteClient::new`] with credentials and TLS settings.
    pub fn with_http(url: &str, timeout: Duration, cfg: &HttpClientConfig) -> Result<Self, EvalError> {
        let http = cfg
            .client_builder()
            .map_err(|e| EvalError::Http(e.to_string()))?
            .timeout(timeout)
            .build()
            .map_err(|e| EvalError::Http(e.to_string()))?;
        Ok(RemoteWriteClient { http, url: url.to_string() })
    }
}

#[async_trait]
impl SeriesWriter for RemoteWriteClient {
    async fn write(&self, series: Vec<TimeSeries>) -> Result<(), EvalError> {
        if series.is_empty() {
            return Ok(());
        }
        let body = WriteRequest { timeseries: series, metadata: vec![] }.encode_snappy();
        let resp = self
            .http
            .post(&self.url)
            .header(headers::CONTENT_ENCODING, headers::SNAPPY)
            .header(headers::CONTENT_TYPE, headers::PROTOBUF)
            .header(headers::VERSION, headers::VERSION_1)
            .body(body)
            .send()
            .await
            .map_err(|e| EvalError::Write(e.to_string()))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(EvalError::Write(format!("remote_write answered {status}: {}", text.trim())));
        }
        Ok(())
    }
}

/// [`QueryClient`] evaluating in-process with our PromQL engine.
#[derive(Clone)]
pub struct EngineClient {
    pub engine: Engine,
    pub storage: Arc<dyn Storage>,
}

#[async_trait]
impl QueryClient for EngineClient {
    async fn query(&self, expr: &str, at_ms: i64) -> Result<Vec<Sample>, EvalError> {
        let out = self
            .engine
            .instant(self.storage.as_ref(), expr, at_ms, &CancellationToken::new())
            .map_err(|e| EvalError::Query(e.to_string()))?;
        samples_of(out.data)
    }
}
