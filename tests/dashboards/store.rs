//! A real `crowsnest store` process on a free loopback port with a temporary data folder, and
//! the few HTTP calls the dashboard test makes against it: remote_write 1.0
//! (<https://prometheus.io/docs/specs/prw/remote_write_spec/>) and the Prometheus query API
//! (<https://prometheus.io/docs/prometheus/latest/querying/api/>) the way Grafana calls it.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crowsnest_wire::WriteRequest;
use crowsnest_wire::remote::headers;
use serde_json::Value;

/// The running store; killed when dropped.
pub struct Store {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

impl Store {
    /// Starts the binary and waits (at most 30 s) until `/ready` answers 200.
    pub async fn start() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_crowsnest"))
            .args(["store", "--data-dir"])
            .arg(dir.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start crowsnest store");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client");
        let mut store = Store { child, base: format!("http://127.0.0.1:{port}"), _dir: dir, http };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = store.child.try_wait() {
                panic!("crowsnest store exited early with {status}");
            }
            if let Ok(r) = store.http.get(format!("{}/ready", store.base)).send().await
                && r.status().is_success()
            {
                return store;
            }
            assert!(Instant::now() < deadline, "crowsnest store not ready within 30s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends one remote_write request; panics unless it is answered 2xx.
    pub async fn write(&mut self, req: &WriteRequest) {
        let r = self
            .http
            .post(format!("{}/api/v1/write", self.base))
            .header(headers::CONTENT_ENCODING, headers::SNAPPY)
            .header(headers::CONTENT_TYPE, headers::PROTOBUF)
            .header(headers::VERSION, headers::VERSION_1)
            .body(req.encode_snappy())
            .send()
            .await
            .expect("remote_write request");
        let status = r.status();
        let body = r.text().await.unwrap_or_default();
        assert!(status.is_success(), "remote_write answered {status}: {body}");
    }

    /// GET `path` with `params`; returns the JSON envelope's `data`, or the error text.
    pub async fn api(&self, path: &str, params: &[(&str, String)]) -> Result<Value, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| format!("{status}, body is not JSON: {e}"))?;
        if body["status"] != "success" {
            return Err(format!(
                "{status} {}: {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["error"].as_str().unwrap_or("?")
            ));
        }
        Ok(body["data"].clone())
    }
}

/// Whether a query answer holds data: a non-empty vector or matrix, or any scalar/string.
pub fn has_data(data: &Value) -> bool {
    match data["resultType"].as_str() {
        Some("vector" | "matrix") => data["result"].as_array().is_some_and(|a| !a.is_empty()),
        Some("scalar" | "string") => true,
        _ => false,
    }
}
