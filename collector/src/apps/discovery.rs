//! Targets discovered from container labels (documented on
//! [`crate::config::DiscoveryConfig`]): `crowsnest.scrape=true` plus optional `port`, `path`,
//! `scheme`, `health`, `format`, `json_paths`, `interval`, `job`, `network`. The address is the
//! container's IP on its network or a published host port, per `discovery.address`.

use std::collections::BTreeMap;

use crate::config::targets::AddressMode;
use crate::config::{DiscoveryConfig, JsonMetric, MetricsFormat, TargetConfig};
use crate::docker::ContainerView;

/// Why a container that asked to be scraped could not become a target.
#[derive(Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    NoPort,
    BadLabel(String),
    NoAddress,
}

/// The target a container's labels describe; `Ok(None)` when it does not ask to be scraped.
pub fn target_from_container(c: &ContainerView, d: &DiscoveryConfig) -> Result<Option<TargetConfig>, DiscoveryError> {
    let p = &d.label_prefix;
    let get = |k: &str| c.labels.get(&format!("{p}.{k}")).map(|s| s.trim()).filter(|s| !s.is_empty());
    if !get("scrape").is_some_and(|v| v.eq_ignore_ascii_case("true")) || !c.running {
        return Ok(None);
    }
    let port: u16 = match get("port") {
        Some(s) => s.parse().map_err(|_| DiscoveryError::BadLabel(format!("{p}.port={s}")))?,
        None => *c.exposed.first().ok_or(DiscoveryError::NoPort)?,
    };
    let scheme = get("scheme").unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return Err(DiscoveryError::BadLabel(format!("{p}.scheme={scheme}")));
    }
    let network_ip = match get("network") {
        Some(n) => c.networks.iter().find(|(name, _)| name == n).map(|x| x.1.clone()),
        None => c.networks.first().map(|x| x.1.clone()),
    };
    let published = c.published.iter().find(|(cp, _, _)| *cp == port).map(|(_, ip, hp)| {
        let ip = if ip.is_empty() || ip == "0.0.0.0" {
            "127.0.0.1"
        } else if ip == "::" {
            "[::1]"
        } else {
            ip.as_str()
        };
        format!("{ip}:{hp}")
    });
    let addr = match d.address {
        AddressMode::Network => network_ip.map(|ip| format!("{ip}:{port}")),
        AddressMode::Published => published,
        AddressMode::Auto => network_ip.map(|ip| format!("{ip}:{port}")).or(published),
    }
    .ok_or(DiscoveryError::NoAddress)?;
    let format = match get("format") {
        None | Some("prometheus") => MetricsFormat::Prometheus,
        Some("json") => MetricsFormat::Json,
        Some(f) => return Err(DiscoveryError::BadLabel(format!("{p}.format={f}"))),
    };
    let json_metrics: Vec<JsonMetric> = get("json_paths")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|path| JsonMetric { path: path.into(), ..Default::default() })
                .collect()
        })
        .unwrap_or_default();
    let path = get("path").unwrap_or("/metrics");
    let metrics_url = if path == "none" || (format == MetricsFormat::Json && json_metrics.is_empty()) {
        None
    } else {
        Some(format!("{scheme}://{addr}{}", with_slash(path)))
    };
    let health_url = get("health").map(|h| format!("{scheme}://{addr}{}", with_slash(h)));
    let interval = match get("interval") {
        Some(s) => Some(
            crowsnest_wire::duration::parse_duration(s)
                .map_err(|_| DiscoveryError::BadLabel(format!("{p}.interval={s}")))?,
        ),
        None => None,
    };
    let job = get("job")
        .map(str::to_string)
        .or_else(|| c.labels.get("com.docker.compose.service").cloned())
        .unwrap_or_else(|| c.name.clone());
    let mut labels = BTreeMap::new();
    labels.insert("name".to_string(), c.name.clone());
    if let Some(proj) = c.labels.get("com.docker.compose.project") {
        labels.insert("container_label_com_docker_compose_project".to_string(), proj.clone());
    }
    let t = TargetConfig {
        job,
        instance: Some(format!("{}:{port}", c.name)),
        health_url,
        metrics_url,
        format,
        json_metrics,
        interval,
        timeout: Some(d.timeout),
        labels,
        ..Default::default()
    };
    t.validate().map_err(DiscoveryError::BadLabel)?;
    Ok(Some(t))
}

fn with_slash(p: &str) -> String {
    if p.starts_with('/') { p.to_string() } else { format!("/{p}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(labels: &[(&str, &str)]) -> ContainerView {
        ContainerView {
            id: "abc".into(),
            name: "shop-api-1".into(),
            running: true,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            networks: vec![("bridge".into(), "172.17.0.5".into()), ("shop".into(), "10.1.0.7".into())],
            published: vec![(8080, "0.0.0.0".into(), 18080)],
            exposed: vec![8080],
        }
    }

    #[test]
    fn label_parsing() {
        let d = DiscoveryConfig::default();
        assert_eq!(target_from_container(&view(&[]), &d), Ok(None));
        assert_eq!(target_from_container(&view(&[("crowsnest.scrape", "false")]), &d), Ok(None));
        let t = target_from_container(
            &view(&[
                ("crowsnest.scrape", "true"),
                ("crowsnest.health", "health"),
                ("com.docker.compose.service", "api"),
            ]),
            &d,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.job, "api");
        assert_eq!(t.instance.as_deref(), Some("shop-api-1:8080"));
        assert_eq!(t.metrics_url.as_deref(), Some("http://172.17.0.5:8080/metrics"));
        assert_eq!(t.health_url.as_deref(), Some("http://172.17.0.5:8080/health"));
        let t = target_from_container(
            &view(&[
                ("crowsnest.scrape", "true"),
                ("crowsnest.network", "shop"),
                ("crowsnest.path", "/stats"),
                ("crowsnest.format", "json"),
                ("crowsnest.json_paths", "gc, requests.total"),
                ("crowsnest.interval", "30s"),
                ("crowsnest.job", "pharo"),
            ]),
            &d,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.metrics_url.as_deref(), Some("http://10.1.0.7:8080/stats"));
        assert_eq!(t.json_metrics.len(), 2);
        assert_eq!(t.interval, Some(std::time::Duration::from_secs(30)));
        assert_eq!(t.job, "pharo");
        let pd = DiscoveryConfig { address: AddressMode::Published, ..Default::default() };
        let t = target_from_container(
            &view(&[("crowsnest.scrape", "true"), ("crowsnest.path", "none"), ("crowsnest.health", "/h")]),
            &pd,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.metrics_url, None);
        assert_eq!(t.health_url.as_deref(), Some("http://127.0.0.1:18080/h"));
    }

    #[test]
    fn bad_labels_are_errors() {
        let d = DiscoveryConfig::default();
        assert!(matches!(
            target_from_container(&view(&[("crowsnest.scrape", "true"), ("crowsnest.port", "http")]), &d),
            Err(DiscoveryError::BadLabel(_))
        ));
        assert!(matches!(
            target_from_container(&view(&[("crowsnest.scrape", "true"), ("crowsnest.interval", "soon")]), &d),
            Err(DiscoveryError::BadLabel(_))
        ));
        let mut v = view(&[("crowsnest.scrape", "true")]);
        v.exposed.clear();
        assert_eq!(target_from_container(&v, &d), Err(DiscoveryError::NoPort));
        let pd = DiscoveryConfig { address: AddressMode::Published, ..Default::default() };
        assert_eq!(
            target_from_container(&view(&[("crowsnest.scrape", "true"), ("crowsnest.port", "9000")]), &pd),
            Err(DiscoveryError::NoAddress)
        );
    }
}
