//! The three Docker Engine API calls the Docker loop makes (`ContainerList`, `ContainerInspect`,
//! one-shot `ContainerStats`, see `shared/reference/docker-stats.md`), behind a small trait so the
//! loop's scheduling (health never waits for stats) can be tested with a scripted engine.

use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerStatsResponse};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder, StatsOptionsBuilder};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

/// A Docker Engine as the loop sees it. Errors are display strings; the loop only logs and
/// counts them.
pub trait DockerApi: Clone + Send + Sync + 'static {
    /// Agrees on an API version with the engine (old engines reject newer versions) and returns
    /// the client to use from now on.
    fn negotiate(&self) -> BoxFuture<'static, Result<Self, String>>;
    /// Ids of the containers (`all` = also the stopped ones).
    fn list(&self, all: bool) -> BoxFuture<'static, Result<Vec<String>, String>>;
    /// The inspect body of one container.
    fn inspect(&self, id: &str) -> BoxFuture<'static, Result<ContainerInspectResponse, String>>;
    /// One stats sample (`stream=false&one-shot=true`) of one running container. Slow on
    /// Engine < 24.0.7 (~1 s, moby/moby#46448).
    fn stats(&self, id: &str) -> BoxFuture<'static, Result<ContainerStatsResponse, String>>;
}

impl DockerApi for Docker {
    fn negotiate(&self) -> BoxFuture<'static, Result<Self, String>> {
        let d = self.clone();
        async move { d.negotiate_version().await.map_err(|e| e.to_string()) }.boxed()
    }

    fn list(&self, all: bool) -> BoxFuture<'static, Result<Vec<String>, String>> {
        let d = self.clone();
        async move {
            let opts = ListContainersOptionsBuilder::default().all(all).build();
            let list = d.list_containers(Some(opts)).await.map_err(|e| e.to_string())?;
            Ok(list.into_iter().filter_map(|c| c.id).collect())
        }
        .boxed()
    }

    fn inspect(&self, id: &str) -> BoxFuture<'static, Result<ContainerInspectResponse, String>> {
        let (d, id) = (self.clone(), id.to_string());
        async move { d.inspect_container(&id, None::<InspectContainerOptions>).await.map_err(|e| e.to_string()) }
            .boxed()
    }

    fn stats(&self, id: &str) -> BoxFuture<'static, Result<ContainerStatsResponse, String>> {
        let (d, id) = (self.clone(), id.to_string());
        async move {
            let opts = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
            let mut s = d.stats(&id, Some(opts));
            match s.next().await {
                Some(r) => r.map_err(|e| e.to_string()),
                None => Err("empty stats stream".to_string()),
            }
        }
        .boxed()
    }
}
