//! The notification pipeline run for each aggregation-group flush: mute (inhibition, silences)
//! → per integration: dedup against the notification log → render → deliver with retries →
//! record in the log. Mirrors Alertmanager's `notify.go` stages (MuteStage, DedupStage,
//! RetryStage, SetNotifiesStage); the one intentional difference is in [`super::retry`].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::amconfig::AlertmanagerConfig;
use super::email::Email;
use super::inhibit::Inhibitor;
use super::metrics::{FailReason, IntegrationLabels, IntegrationOnly, Metrics};
use super::nflog::{Entry, NotificationLog, entry_key, needs_update};
use super::retry::{RateLimiter, RetryPolicy, retry};
use super::route::RouteOpts;
use super::silence::Silences;
use super::slack::Slack;
use super::store::AlertStore;
use super::template::{NotificationData, Templates, data};
use super::types::{Alert, LabelSet, format_labels};
use super::webhook::{GroupInfo, Webhook};

/// Shortest time an attempt series may take even with a tiny `group_interval`.
const MIN_ATTEMPT_WINDOW: Duration = Duration::from_secs(10);

/// One delivery channel of a receiver.
pub enum Integration {
    Slack(Slack),
    Email(Email),
    Webhook(Webhook),
    /// A receiver without integrations: notifications are logged only.
    Log,
}

impl Integration {
    fn kind(&self) -> &'static str {
        match self {
            Integration::Slack(_) => "slack",
            Integration::Email(_) => "email",
            Integration::Webhook(_) => "webhook",
            Integration::Log => "log",
        }
    }
    fn send_resolved(&self) -> bool {
        match self {
            Integration::Slack(s) => s.send_resolved(),
            Integration::Email(e) => e.send_resolved(),
            Integration::Webhook(w) => w.send_resolved(),
            Integration::Log => true,
        }
    }
}

/// A receiver with its built integrations, named `slack/0`, `email/1`, ….
pub struct Receiver {
    pub name: String,
    pub integrations: Vec<(String, Integration)>,
}

/// Everything a flush needs.
pub struct Pipeline {
    pub receivers: HashMap<String, Receiver>,
    pub templates: Templates,
    pub silences: Silences,
    pub inhibitor: Inhibitor,
    pub store: AlertStore,
    pub nflog: NotificationLog,
    pub metrics: Metrics,
    pub external_url: String,
    pub shutdown: CancellationToken,
    pub policy: RetryPolicy,
}

/// Builds the receivers of a config.
pub fn build_receivers(cfg: &AlertmanagerConfig) -> HashMap<String, Receiver> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap_or_default();
    let limiter = RateLimiter::default();
    let resolve = |p: &str| cfg.resolve_path(p);
    cfg.receivers
        .iter()
        .map(|r| {
            let mut integrations = Vec::new();
            for (i, s) in r.slack_configs.iter().enumerate() {
                integrations.push((
                    format!("slack/{i}"),
                    Integration::Slack(Slack::new(s.clone(), &cfg.global, resolve, client.clone(), limiter.clone())),
                ));
            }
            for (i, e) in r.email_configs.iter().enumerate() {
                integrations
                    .push((format!("email/{i}"), Integration::Email(Email::new(e.clone(), &cfg.global, resolve))));
            }
            for (i, w) in r.webhook_configs.iter().enumerate() {
                integrations.push((
                    format!("webhook/{i}"),
                    Integration::Webhook(Webhook::new(w.clone(), resolve, client.clone())),
                ));
            }
            if integrations.is_empty() {
                integrations.push(("log/0".to_string(), Integration::Log));
            }
            (r.name.clone(), Receiver { name: r.name.clone(), integrations })
        })
        .collect()
}

/// Is an alert muted right now? Returns (silenced by, inhibited by).
pub fn mute_status(
    p: &Pipeline,
    labels: &LabelSet,
    firing: &[Alert],
    now: DateTime<Utc>,
) -> (Vec<String>, Vec<String>) {
    (p.silences.mutes(labels, now), p.inhibitor.inhibited_by(labels, firing, now))
}

impl Pipeline {
    /// Notifies one group's alerts to the route's receiver. True when every integration is
    /// done (delivered or nothing to send), so resolved alerts may leave the group.
    pub async fn flush(
        &self,
        group_key: &str,
        group_labels: &LabelSet,
        opts: &RouteOpts,
        alerts: Vec<Alert>,
        now: DateTime<Utc>,
    ) -> bool {
        let firing_all = self.store.firing(now);
        let alerts: Vec<Alert> = alerts
            .into_iter()
            .filter(|a| {
                let (s, i) = mute_status(self, &a.labels, &firing_all, now);
                s.is_empty() && i.is_empty()
            })
            .collect();
        if alerts.is_empty() {
            return true;
        }
        let Some(receiver) = self.receivers.get(&opts.receiver) else {
            tracing::error!(receiver = %opts.receiver, "Route points at an unknown receiver.");
            return true;
        };
        let results = join_all(receiver.integrations.iter().map(|(name, integ)| {
            self.notify_integration(receiver, name, integ, group_key, group_labels, opts, &alerts, now)
        }))
        .await;
        results.into_iter().all(|ok| ok)
    }

    #[allow(clippy::too_many_arguments)]
    async fn notify_integration(
        &self,
        receiver: &Receiver,
        name: &str,
        integ: &Integration,
        group_key: &str,
        group_labels: &LabelSet,
        opts: &RouteOpts,
        alerts: &[Alert],
        now: DateTime<Utc>,
    ) -> bool {
        let firing: BTreeSet<u64> = alerts.iter().filter(|a| !a.is_resolved_at(now)).map(Alert::fingerprint).collect();
        let resolved: BTreeSet<u64> = alerts.iter().filter(|a| a.is_resolved_at(now)).map(Alert::fingerprint).collect();
        let key = entry_key(group_key, &receiver.name, name);
        let entry = self.nflog.get(&key);
        if !needs_update(entry.as_ref(), &firing, &resolved, integ.send_resolved(), opts.repeat_interval, now) {
            return true;
        }
        let to_send: Vec<Alert> = if integ.send_resolved() {
            alerts.to_vec()
        } else {
            alerts.iter().filter(|a| !a.is_resolved_at(now)).cloned().collect()
        };
        if !to_send.is_empty() && !self.deliver(receiver, integ, group_key, group_labels, opts, &to_send, now).await {
            return false;
        }
        if let Err(e) = self.nflog.log(&key, Entry { firing, resolved, timestamp: now }).await {
            tracing::error!(error = %e, group = group_key, "Writing the notification log failed; the notification may be repeated.");
        }
        true
    }

    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        receiver: &Receiver,
        integ: &Integration,
        group_key: &str,
        group_labels: &LabelSet,
        opts: &RouteOpts,
        alerts: &[Alert],
        now: DateTime<Utc>,
    ) -> bool {
        let labels = IntegrationLabels { receiver: receiver.name.clone(), integration: integ.kind().to_string() };
        self.metrics.notifications.get_or_create(&labels).inc();
        let d = data(&NotificationData {
            receiver: &receiver.name,
            group_key,
            group_labels,
            alerts,
            now,
            external_url: &self.external_url,
        });
        let started = Instant::now();
        let deadline = started + opts.group_interval.max(MIN_ATTEMPT_WINDOW);
        let requests = self.metrics.requests.get_or_create(&labels).clone();
        let result = match integ {
            Integration::Log => {
                let firing = alerts.iter().filter(|a| !a.is_resolved_at(now)).count();
                tracing::info!(receiver = %receiver.name, group = %format_labels(group_labels), firing, resolved = alerts.len() - firing, "Notification (log-only receiver).");
                Ok(1)
            }
            Integration::Slack(s) => match s.payload(&self.templates, &d) {
                Ok(payload) => {
                    retry(self.policy, deadline, &self.shutdown, |_| {
                        requests.inc();
                        s.attempt(&payload, deadline)
                    })
                    .await
                }
                Err(e) => {
                    Err(super::retry::Failure { reason: FailReason::template, message: e.to_string(), attempts: 0 })
                }
            },
            Integration::Webhook(w) => {
                let g =
                    GroupInfo { receiver: &receiver.name, group_key, group_labels, external_url: &self.external_url };
                let payload = w.payload(&g, alerts, now);
                retry(self.policy, deadline, &self.shutdown, |_| {
                    requests.inc();
                    w.attempt(&payload)
                })
                .await
            }
            Integration::Email(e) => match e.render(&self.templates, &d) {
                Ok(rendered) => {
                    retry(self.policy, deadline, &self.shutdown, |_| {
                        requests.inc();
                        e.attempt(&rendered.message)
                    })
                    .await
                }
                Err(msg) => Err(super::retry::Failure { reason: FailReason::template, message: msg, attempts: 0 }),
            },
        };
        match result {
            Ok(attempts) => {
                self.metrics
                    .latency
                    .get_or_create(&IntegrationOnly { integration: integ.kind().to_string() })
                    .observe(started.elapsed().as_secs_f64());
                tracing::debug!(receiver = %receiver.name, integration = integ.kind(), attempts, alerts = alerts.len(), "Notification delivered.");
                true
            }
            Err(f) => {
                self.metrics.fail(&receiver.name, integ.kind(), f.reason);
                tracing::warn!(receiver = %receiver.name, integration = integ.kind(), reason = ?f.reason, attempts = f.attempts, error = %f.message, "Notification failed; will retry at the next group interval.");
                false
            }
        }
    }
}
