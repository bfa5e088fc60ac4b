//! Template preview: renders what every integration of a config would send for sample (or
//! given) alerts, without sending — the answer to Alertmanager's long-standing "no preview"
//! complaint (alertmanager#584, `amtool template render`). Meant for a CLI command such as
//! `crowsnest render-notifications --alertmanager-config FILE`.

use chrono::{DateTime, Utc};

use super::amconfig::AlertmanagerConfig;
use super::pipeline::{Integration, build_receivers};
use super::template::{NotificationData, Templates, data};
use super::types::{Alert, LabelSet};
use super::{NotifyError, template_paths};

/// One rendered notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub receiver: String,
    /// `slack/0`, `email/1`, `log/0`.
    pub integration: String,
    /// The Slack JSON payload, the raw e-mail, or the log line.
    pub body: String,
}

/// Two firing alerts and one resolved one, with the annotations rule packs use.
pub fn sample_alerts(now: DateTime<Utc>) -> Vec<Alert> {
    let mk = |instance: &str, resolved: bool| Alert {
        labels: [("alertname", "ContainerDown"), ("instance", instance), ("severity", "critical"), ("job", "cadvisor")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [
            ("summary".to_string(), format!("Container web on {instance} is down")),
            ("description".to_string(), "The container has not reported for 2 minutes.".to_string()),
        ]
        .into(),
        starts_at: now - chrono::Duration::minutes(10),
        ends_at: if resolved { now - chrono::Duration::minutes(1) } else { now + chrono::Duration::minutes(5) },
        updated_at: now,
        generator_url: "http://crowsnest:9090/graph?g0.expr=up%7Bjob%3D%22cadvisor%22%7D+%3D%3D+0".to_string(),
        timeout: false,
    };
    vec![mk("host-1", false), mk("host-2", false), mk("host-3", true)]
}

/// Renders every integration of every receiver for `alerts`, grouped by `alertname`.
pub fn render(cfg: &AlertmanagerConfig, alerts: &[Alert], now: DateTime<Utc>) -> Result<Vec<Preview>, NotifyError> {
    let templates = Templates::load(&template_paths(cfg)?)?;
    let receivers = build_receivers(cfg);
    let mut names: Vec<&String> = receivers.keys().collect();
    names.sort();
    let group_labels: LabelSet = alerts
        .first()
        .and_then(|a| a.labels.get("alertname"))
        .map(|v| [("alertname".to_string(), v.clone())].into())
        .unwrap_or_default();
    let mut out = Vec::new();
    for name in names {
        let receiver = &receivers[name];
        let d = data(&NotificationData {
            receiver: name,
            group_key: "{}:{alertname=\"preview\"}",
            group_labels: &group_labels,
            alerts,
            now,
            external_url: &cfg.global.external_url,
        });
        for (integration, integ) in &receiver.integrations {
            let body = match integ {
                Integration::Slack(s) => serde_json::to_string_pretty(&s.payload(&templates, &d)?)?,
                Integration::Email(e) => {
                    let r = e.render(&templates, &d).map_err(NotifyError::BadRequest)?;
                    String::from_utf8_lossy(&r.message.formatted()).into_owned()
                }
                Integration::Webhook(w) => {
                    let g = super::webhook::GroupInfo {
                        receiver: name,
                        group_key: "{}:{alertname=\"preview\"}",
                        group_labels: &group_labels,
                        external_url: &cfg.global.external_url,
                    };
                    serde_json::to_string_pretty(&w.payload(&g, alerts, now))?
                }
                Integration::Log => templates.render_named("__subject", &d)?,
            };
            out.push(Preview { receiver: name.clone(), integration: integration.clone(), body });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_integration() {
        let cfg = crate::notify::amconfig::parse(
            "global: {smtp_from: a@example.org, smtp_smarthost: 'mail:25'}\nroute: {receiver: both}\nreceivers:\n  - name: both\n    slack_configs: [{api_url: 'http://hooks/x'}]\n    email_configs: [{to: b@example.org}]\n  - name: quiet\n",
        )
        .unwrap();
        let now = Utc::now();
        let previews = render(&cfg, &sample_alerts(now), now).unwrap();
        let ids: Vec<(String, String)> = previews.iter().map(|p| (p.receiver.clone(), p.integration.clone())).collect();
        assert_eq!(
            ids,
            vec![
                ("both".into(), "slack/0".into()),
                ("both".into(), "email/0".into()),
                ("quiet".into(), "log/0".into())
            ]
        );
        assert!(previews[0].body.contains("[FIRING:2] ContainerDown"), "{}", previews[0].body);
        assert!(previews[1].body.contains("Subject: [FIRING:2] ContainerDown"), "{}", previews[1].body);
        assert_eq!(previews[2].body, "[FIRING:2] ContainerDown (cadvisor critical)");
    }
}
