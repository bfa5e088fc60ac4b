//! The container view published to label-based target discovery: identity, labels, networks and
//! ports of one container, taken from its inspect answer (Docker Engine API `ContainerInspect`).

use std::collections::HashMap;

use bollard::models::ContainerInspectResponse;

/// What discovery needs to know about a container.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub labels: HashMap<String, String>,
    /// (network name, IPv4 address) for each attached network with an address.
    pub networks: Vec<(String, String)>,
    /// (container port, host IP, host port) for each published TCP port.
    pub published: Vec<(u16, String, u16)>,
    /// Exposed TCP ports.
    pub exposed: Vec<u16>,
}

impl ContainerView {
    pub fn from_inspect(c: &ContainerInspectResponse) -> ContainerView {
        let cfg = c.config.as_ref();
        let ns = c.network_settings.as_ref();
        let mut networks: Vec<(String, String)> = ns
            .and_then(|n| n.networks.as_ref())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, e)| {
                        e.ip_address.as_ref().filter(|ip| !ip.is_empty()).map(|ip| (k.clone(), ip.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        networks.sort();
        let mut published = Vec::new();
        for (port, binds) in ns.and_then(|n| n.ports.as_ref()).into_iter().flatten() {
            let Some(p) = port.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok()) else { continue };
            for b in binds.iter().flatten() {
                if let Some(hp) = b.host_port.as_deref().and_then(|h| h.parse::<u16>().ok()) {
                    published.push((p, b.host_ip.clone().unwrap_or_default(), hp));
                }
            }
        }
        published.sort();
        let mut exposed: Vec<u16> = cfg
            .and_then(|c| c.exposed_ports.as_ref())
            .map(|v| v.iter().filter_map(|p| p.strip_suffix("/tcp")?.parse().ok()).collect())
            .unwrap_or_default();
        exposed.sort_unstable();
        ContainerView {
            id: c.id.clone().unwrap_or_default(),
            name: c.name.as_deref().unwrap_or_default().trim_start_matches('/').to_string(),
            running: c.state.as_ref().and_then(|s| s.running).unwrap_or(false),
            labels: cfg.and_then(|c| c.labels.clone()).unwrap_or_default(),
            networks,
            published,
            exposed,
        }
    }
}
