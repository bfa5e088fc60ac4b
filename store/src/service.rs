//! The store as one runnable piece: opens the [`Db`] (replaying its WAL), builds the `/api/v1`
//! router over it, and owns the orderly shutdown (stop tasks, then close the Db, which stops its
//! maintenance thread: checkpoints, retention, disk gauges; and flushes what the head holds).
//! `crowsnest store` and `crowsnest up` run it behind one listener; the ops endpoints
//! (`/metrics`, `/healthz`, `/ready`) come from `crowsnest_wire::ops`.

use std::sync::Arc;
use std::time::Duration;

use crowsnest_wire::ops::SharedRegistry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::StoreConfig;
use crate::db::Db;
use crate::error::StoreError;
use crate::http::{ApiState, read_router, router, write_router};

/// How often the service logs head statistics for operators.
const STATS_INTERVAL: Duration = Duration::from_secs(300);

/// A running store.
pub struct StoreService {
    db: Arc<Db>,
    state: ApiState,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl StoreService {
    /// Opens the database under `config.data_dir` and starts the background tasks. Must be called
    /// inside a Tokio runtime. Blocks while the WAL is replayed.
    pub fn open(config: StoreConfig, registry: &SharedRegistry) -> Result<StoreService, StoreError> {
        let db = Arc::new(Db::open(config, registry)?);
        let state = ApiState::new(db.clone(), registry);
        let shutdown = CancellationToken::new();
        let tasks = vec![tokio::spawn(log_stats(db.clone(), shutdown.clone()))];
        Ok(StoreService { db, state, shutdown, tasks })
    }

    /// The `/api/v1` routes (ingest, query, metadata, status).
    pub fn router(&self) -> axum::Router {
        router(self.state.clone())
    }

    /// The ingest routes alone (the `write` auth group).
    pub fn write_router(&self) -> axum::Router {
        write_router(self.state.clone())
    }

    /// The query and status routes alone (the `read` auth group).
    pub fn read_router(&self) -> axum::Router {
        read_router(self.state.clone())
    }

    /// The admin routes (`/api/v1/admin/tsdb/*`), kept apart from [`StoreService::router`] so
    /// the binary can put them behind their own access control.
    pub fn admin_router(&self) -> axum::Router {
        crate::http::admin::admin_router(self.state.clone())
    }

    /// A handle that applies reloaded settings (`/-/reload`), usable after the service moved.
    pub fn reload_handle(&self) -> ApiState {
        self.state.clone()
    }

    /// Applies a reloaded `store:` section (see [`ApiState::reload`]); returns the keys that
    /// need a restart to change.
    pub fn reload(&self, config: StoreConfig) -> Result<Vec<&'static str>, StoreError> {
        self.state.reload(config)
    }

    /// The database, for components in the same process (the alerter's local queries, benches).
    pub fn db(&self) -> Arc<Db> {
        self.db.clone()
    }

    /// Stops the background tasks (ours and the Db's maintenance thread) and flushes the head to
    /// disk. New queries are refused.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.state.query_slots.close();
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::warn!(error = %e, "Store background task ended abnormally.");
            }
        }
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || db.close()).await {
            Ok(Ok(())) => tracing::info!("Store flushed."),
            Ok(Err(e)) => tracing::error!(error = %e, "Flushing the store on shutdown failed."),
            Err(e) => tracing::error!(error = %e, "Flush task failed."),
        }
    }
}

/// Periodically logs the head size, until shutdown.
async fn log_stats(db: Arc<Db>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(STATS_INTERVAL);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let db = db.clone();
                if let Ok(st) = tokio::task::spawn_blocking(move || db.tsdb_status(1)).await {
                    tracing::info!(series = st.num_series, chunks = st.chunk_count, "Store head statistics.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn opens_serves_and_shuts_down() {
        let dir = tempfile::tempdir().unwrap();
        let reg = crowsnest_wire::ops::new_registry();
        let svc =
            StoreService::open(StoreConfig { data_dir: dir.path().to_path_buf(), ..Default::default() }, &reg).unwrap();
        let r =
            svc.router().oneshot(Request::get("/api/v1/status/buildinfo").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(r.status(), 200);
        let text = crowsnest_wire::ops::encode_metrics(&reg);
        assert!(
            text.contains(
                "crowsnest_store_http_request_duration_seconds_bucket{le=\"0.001\",handler=\"status/buildinfo\"}"
            ),
            "{text}"
        );
        assert!(Arc::ptr_eq(&svc.db(), &svc.db));
        tokio::time::timeout(Duration::from_secs(10), svc.shutdown()).await.unwrap();
    }
}
