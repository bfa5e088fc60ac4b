#!/usr/bin/env python3
"""Generates the Crowsnest Grafana dashboards (dashboards/*.json) from one place, so every panel
uses the same data source, variables, selectors and units. Python 3 standard library only.

    python3 dashboards/generate.py          # rewrite the JSON files
    python3 dashboards/generate.py --check  # exit 1 if a committed file differs (CI)

Format: Grafana dashboard JSON model, schemaVersion 39
(https://grafana.com/docs/grafana/latest/dashboards/build-dashboards/view-dashboard-json-model/).
Metric names are the cAdvisor / blackbox_exporter vocabulary our collector exports
(collector/src/docker/*.rs) plus our own crowsnest_* metrics. tests/dashboards.rs parses and
evaluates every expression written here against a live store.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grafana_model import DS, STATE_MAP, Layout, dashboard, row, stat, table, targets, timeline, timeseries, var  # noqa: E402

OUT = Path(__file__).resolve().parent

# Selector fragments. Every template variable is matched with =~ so that multi-value selections
# and "All" (allValue ".*", which also matches a missing label) work.
HOST_SEL = 'job=~"$job",instance=~"$host",name!=""'
CONT_SEL = (
    'job=~"$job",instance=~"$host",'
    'container_label_com_docker_compose_service=~"$service",name=~"$container"'
)
PROBE_SEL = 'job=~"$job",instance=~"$target",location=~"$location"'
ALERT_SEL = 'alertname=~"$alertname",severity=~"$severity",instance=~"$host",job=~"$job"'
STORE_SEL = 'job=~"$job",instance=~"$host"'
COLL_SEL = 'instance=~"$collector"'
RI = "$__rate_interval"

# The probe failure reason (collector/src/apps.rs `push_probe`): `probe_failed{reason}` is 1 for
# the reason of the last failure (dns, connect, tls, timeout, status, body) and 0 for the others.
# Kept apart from probe_success so a change of reason does not restart `for:` timers.
PROBE_REASON_METRIC = "probe_failed"


# ---------------------------------------------------------------------------------------------
# (a) Docker hosts overview
# ---------------------------------------------------------------------------------------------


def hosts():
    lay = Layout()
    s = HOST_SEL
    p = [
        row(lay, "Fleet"),
        stat(lay, "Hosts reporting", "Docker hosts whose collector wrote container series recently (distinct `instance` values of `container_last_seen`).",
             f"count(count by (instance) (container_last_seen{{{s}}}))"),
        stat(lay, "Running containers", "Containers in state `running` on the selected hosts (`container_state{state=\"running\"}`).",
             f'sum(container_state{{{s},state="running"}})'),
        stat(lay, "Unhealthy containers", "Containers whose Docker HEALTHCHECK reports `unhealthy` right now.",
             f'sum(container_health_status{{{s},status="unhealthy"}})', thresholds=[(1, "red")]),
        stat(lay, "Stopped containers", "Containers that exited or are dead (reported when the collector's `docker.include_stopped` is on, the default).",
             f'sum(container_state{{{s},state=~"exited|dead"}})', thresholds=[(1, "orange")]),
        stat(lay, "Restarts in range", "How often restart counters changed during the dashboard's time range, over all selected containers.",
             f"sum(changes(container_restart_count{{{s}}}[$__range]))", thresholds=[(1, "orange")]),
        stat(lay, "OOM-killed containers", "Containers whose last exit was an out-of-memory kill (`container_oom_killed` = 1).",
             f"sum(container_oom_killed{{{s}}})", thresholds=[(1, "red")]),
        row(lay, "Resources per host"),
        timeseries(lay, "CPU used by containers", "CPU cores in use by all containers of each host: rate of `container_cpu_usage_seconds_total` (1 = one full core).",
                   targets((f"sum by (instance) (rate(container_cpu_usage_seconds_total{{{s}}}[{RI}]))", "{{instance}}")), unit="short"),
        timeseries(lay, "Memory working set", "Memory the containers of each host really use: `container_memory_working_set_bytes` (usage minus inactive page cache, what the OOM killer looks at).",
                   targets((f"sum by (instance) (container_memory_working_set_bytes{{{s}}})", "{{instance}}")), unit="bytes"),
        timeseries(lay, "Network traffic", "Bytes per second received (positive) and transmitted (negative) by the containers of each host.",
                   targets((f"sum by (instance) (rate(container_network_receive_bytes_total{{{s}}}[{RI}]))", "{{instance}} receive"),
                           (f"-sum by (instance) (rate(container_network_transmit_bytes_total{{{s}}}[{RI}]))", "{{instance}} transmit")), unit="Bps"),
        timeseries(lay, "Block I/O", "Bytes per second read (positive) and written (negative) to block devices by the containers of each host.",
                   targets((f"sum by (instance) (rate(container_fs_reads_bytes_total{{{s}}}[{RI}]))", "{{instance}} read"),
                           (f"-sum by (instance) (rate(container_fs_writes_bytes_total{{{s}}}[{RI}]))", "{{instance}} write")), unit="Bps"),
        row(lay, "Top containers"),
        timeseries(lay, "Top 10 containers by CPU", "The ten containers using the most CPU cores right now, across the selected hosts.",
                   targets((f"topk(10, sum by (instance, name) (rate(container_cpu_usage_seconds_total{{{s}}}[{RI}])))", "{{instance}}/{{name}}"))),
        timeseries(lay, "Top 10 containers by memory", "The ten containers with the largest memory working set.",
                   targets((f"topk(10, sum by (instance, name) (container_memory_working_set_bytes{{{s}}}))", "{{instance}}/{{name}}")), unit="bytes"),
        timeseries(lay, "Container events", "Docker events per interval by action (start, die, oom, kill, stop, restart, health_status...), summed per host.",
                   targets((f"sum by (instance, action) (increase(container_events_total{{{s}}}[{RI}]))", "{{instance}} {{action}}")), bars=True, stack=True),
        table(lay, "Containers by state", "How many containers each host has in each Docker state.",
              targets((f"sum by (instance, state) (container_state{{{s}}})", ""), instant=True, fmt="table")),
        table(lay, "Containers needing attention", "Containers that are unhealthy, or not running (exited, dead, restarting, paused...). Empty when all is well.",
              targets((f'max by (instance, name, status) (container_health_status{{{s},status="unhealthy"}}) == 1', ""),
                      (f'max by (instance, name, state) (container_state{{{s},state!="running"}}) == 1', ""), instant=True, fmt="table")),
        table(lay, "Images and revisions", "Which image (and `org.opencontainers.image.revision`) each host runs, with the number of containers per image.",
              targets((f"count by (instance, image, image_revision) (container_last_seen{{{s}}})", ""), instant=True, fmt="table")),
    ]
    v = [
        var("job", "Job", "label_values(container_last_seen, job)"),
        var("host", "Host", 'label_values(container_last_seen{job=~"$job"}, instance)'),
    ]
    return dashboard("crowsnest-hosts", "Crowsnest / Docker hosts", "Every Docker host at a glance: containers, resources, health and events.", v, p, tags=["docker"])


# ---------------------------------------------------------------------------------------------
# (b) Container detail
# ---------------------------------------------------------------------------------------------


def container():
    lay = Layout()
    s = CONT_SEL
    by = "instance, name"
    cpu_rate = f"sum by ({by}) (rate(container_cpu_usage_seconds_total{{{s}}}[{RI}]))"
    cpu_limit = f"(sum by ({by}) (container_spec_cpu_quota{{{s}}}) / sum by ({by}) (container_spec_cpu_period{{{s}}}))"
    mem_limit = f"sum by ({by}) (container_spec_memory_limit_bytes{{{s}}} > 0)"
    p = [
        row(lay, "Status"),
        stat(lay, "State", "Docker state of the selected containers (running, exited, restarting...).",
             f"max by ({by}, state) (container_state{{{s}}}) == 1", legend="{{name}}: {{state}}"),
        stat(lay, "Health", "HEALTHCHECK status: healthy, unhealthy, starting, or none when the image defines no healthcheck.",
             f"max by ({by}, status) (container_health_status{{{s}}}) == 1", legend="{{name}}: {{status}}"),
        stat(lay, "Uptime", "Time since the container last started (`container_start_time_seconds`).",
             f"time() - max by ({by}) (container_start_time_seconds{{{s}}})", unit="s", legend="{{name}}"),
        stat(lay, "Restart count", "Docker's restart counter for the container (restarts by its restart policy).",
             f"max by ({by}) (container_restart_count{{{s}}})", thresholds=[(1, "orange")], legend="{{name}}"),
        stat(lay, "OOM killed", "1 when the container's last exit was an out-of-memory kill.",
             f"max by ({by}) (container_oom_killed{{{s}}})", thresholds=[(1, "red")], legend="{{name}}"),
        stat(lay, "Last exit code", "Exit code of the container's last run (137 = SIGKILL, often OOM; 143 = SIGTERM).",
             f"max by ({by}) (container_last_exit_code{{{s}}})", thresholds=[(1, "orange")], legend="{{name}}"),
        row(lay, "CPU"),
        timeseries(lay, "CPU used vs limit", "CPU cores in use (rate of `container_cpu_usage_seconds_total`) next to the limit set with --cpus or a CFS quota (`container_spec_cpu_quota / container_spec_cpu_period`). No limit line means unlimited.",
                   targets((cpu_rate, "{{name}} used"), (cpu_limit, "{{name}} limit"))),
        timeseries(lay, "CPU % of limit", "CPU in use as a percentage of the container's CPU limit. Only containers with a limit appear.",
                   targets((f"100 * {cpu_rate} / {cpu_limit}", "{{name}}")), unit="percent"),
        timeseries(lay, "CPU user vs system", "CPU cores spent in user space and in the kernel.",
                   targets((f"sum by ({by}) (rate(container_cpu_user_seconds_total{{{s}}}[{RI}]))", "{{name}} user"),
                           (f"sum by ({by}) (rate(container_cpu_system_seconds_total{{{s}}}[{RI}]))", "{{name}} system")), stack=True),
        timeseries(lay, "CPU throttling", "Share of CFS periods in which the container was throttled because it hit its CPU quota. Sustained throttling means the limit is too low.",
                   targets((f"sum by ({by}) (rate(container_cpu_cfs_throttled_periods_total{{{s}}}[{RI}])) / sum by ({by}) (rate(container_cpu_cfs_periods_total{{{s}}}[{RI}]))", "{{name}} throttled periods"),
                           (f"sum by ({by}) (rate(container_cpu_cfs_throttled_seconds_total{{{s}}}[{RI}]))", "{{name}} throttled s/s")), unit="percentunit"),
        row(lay, "Memory"),
        timeseries(lay, "Memory working set vs limit", "Working set (usage minus inactive page cache) next to the memory limit (`container_spec_memory_limit_bytes`, absent when unlimited).",
                   targets((f"sum by ({by}) (container_memory_working_set_bytes{{{s}}})", "{{name}} working set"),
                           (mem_limit, "{{name}} limit")), unit="bytes"),
        timeseries(lay, "Memory % of limit", "Working set as a percentage of the memory limit: near 100 % the kernel reclaims cache and then OOM-kills.",
                   targets((f"100 * sum by ({by}) (container_memory_working_set_bytes{{{s}}}) / {mem_limit}", "{{name}}")), unit="percent"),
        timeseries(lay, "Memory breakdown", "Total usage (includes page cache), RSS (anonymous memory), page cache and mapped files.",
                   targets((f"sum by ({by}) (container_memory_usage_bytes{{{s}}})", "{{name}} usage"),
                           (f"sum by ({by}) (container_memory_rss{{{s}}})", "{{name}} rss"),
                           (f"sum by ({by}) (container_memory_cache{{{s}}})", "{{name}} cache"),
                           (f"sum by ({by}) (container_memory_mapped_file{{{s}}})", "{{name}} mapped file")), unit="bytes"),
        timeseries(lay, "Threads vs limit", "Processes and threads in the container (`container_threads`) and its pids limit (`container_threads_max`, absent when unlimited).",
                   targets((f"sum by ({by}) (container_threads{{{s}}})", "{{name}} threads"),
                           (f"sum by ({by}) (container_threads_max{{{s}}})", "{{name}} limit"))),
        row(lay, "Network and block I/O"),
        timeseries(lay, "Network traffic", "Bytes per second received (positive) and transmitted (negative), per interface.",
                   targets((f"sum by ({by}, interface) (rate(container_network_receive_bytes_total{{{s}}}[{RI}]))", "{{name}} {{interface}} receive"),
                           (f"-sum by ({by}, interface) (rate(container_network_transmit_bytes_total{{{s}}}[{RI}]))", "{{name}} {{interface}} transmit")), unit="Bps"),
        timeseries(lay, "Network packets", "Packets per second received and transmitted.",
                   targets((f"sum by ({by}) (rate(container_network_receive_packets_total{{{s}}}[{RI}]))", "{{name}} receive"),
                           (f"sum by ({by}) (rate(container_network_transmit_packets_total{{{s}}}[{RI}]))", "{{name}} transmit")), unit="pps"),
        timeseries(lay, "Network errors and drops", "Receive/transmit errors and dropped packets per second. Anything above zero deserves a look.",
                   targets((f"sum by ({by}) (rate(container_network_receive_errors_total{{{s}}}[{RI}]))", "{{name}} receive errors"),
                           (f"sum by ({by}) (rate(container_network_transmit_errors_total{{{s}}}[{RI}]))", "{{name}} transmit errors"),
                           (f"sum by ({by}) (rate(container_network_receive_packets_dropped_total{{{s}}}[{RI}]))", "{{name}} receive dropped"),
                           (f"sum by ({by}) (rate(container_network_transmit_packets_dropped_total{{{s}}}[{RI}]))", "{{name}} transmit dropped")), unit="pps"),
        timeseries(lay, "Block I/O", "Bytes per second read (positive) and written (negative) by the container, per block device.",
                   targets((f"sum by ({by}, device) (rate(container_fs_reads_bytes_total{{{s}}}[{RI}]))", "{{name}} {{device}} read"),
                           (f"-sum by ({by}, device) (rate(container_fs_writes_bytes_total{{{s}}}[{RI}]))", "{{name}} {{device}} write")), unit="Bps"),
        row(lay, "Lifecycle"),
        timeline(lay, "Health over time", "HEALTHCHECK status over time, one row per container and status.",
                 targets((f"max by ({by}, status) (container_health_status{{{s}}}) == 1", "{{name}} {{status}}")),
                 [{"type": "value", "options": {"1": {"text": "current", "color": "blue"}}}]),
        timeseries(lay, "Health check failing streak", "Consecutive failed HEALTHCHECK runs; Docker marks the container unhealthy when it reaches the healthcheck's retries.",
                   targets((f"max by ({by}) (container_health_failing_streak{{{s}}})", "{{name}}"))),
        timeseries(lay, "Restarts", "Docker's restart counter; every step up is a restart.",
                   targets((f"max by ({by}) (container_restart_count{{{s}}})", "{{name}}"))),
        timeseries(lay, "Events", "Docker events per interval by action (start, die, oom, kill, stop, restart, health_status, pause, unpause).",
                   targets((f"sum by ({by}, action) (increase(container_events_total{{{s}}}[{RI}]))", "{{name}} {{action}}")), bars=True, stack=True),
        table(lay, "Events in range", "Docker events of each container during the dashboard's time range, by action.",
              targets((f"sum by ({by}, action) (increase(container_events_total{{{s}}}[$__range])) > 0", ""), instant=True, fmt="table")),
        table(lay, "Image and last seen", "Image, image digest and source revision of each container, and seconds since the collector last saw it.",
              targets((f"time() - max by ({by}, image, image_id, image_revision) (container_last_seen{{{s}}})", ""), instant=True, fmt="table"), unit="s"),
    ]
    v = [
        var("job", "Job", "label_values(container_last_seen, job)"),
        var("host", "Host", 'label_values(container_last_seen{job=~"$job"}, instance)'),
        var("service", "Compose service", 'label_values(container_last_seen{job=~"$job",instance=~"$host"}, container_label_com_docker_compose_service)'),
        var("container", "Container", 'label_values(container_last_seen{job=~"$job",instance=~"$host",container_label_com_docker_compose_service=~"$service"}, name)'),
    ]
    ann = [
        {
            "datasource": DS,
            "enable": True,
            "hide": False,
            "iconColor": "red",
            "name": "Container events",
            "expr": f'sum by ({by}, action) (increase(container_events_total{{{s},action=~"die|oom|kill|restart"}}[1m])) > 0',
            "step": "60s",
            "titleFormat": "{{action}}",
            "textFormat": "{{instance}}/{{name}}",
            "tagKeys": "action,name",
            "useValueForTime": False,
        }
    ]
    return dashboard("crowsnest-container", "Crowsnest / Container detail", "One container (or a service's containers): CPU and memory against their limits, network, block I/O, restarts, health and events.", v, p, ann, tags=["docker"])


# ---------------------------------------------------------------------------------------------
# (c) App health and probes
# ---------------------------------------------------------------------------------------------


def probes():
    lay = Layout()
    s = PROBE_SEL
    up_sel = 'job=~"$job",instance=~"$target"'
    p = [
        row(lay, "Now"),
        stat(lay, "Targets up", "Probed targets whose health check passed from every selected location.",
             f"count(min by (job, instance) (probe_success{{{s}}}) == 1) or vector(0)", w=6),
        stat(lay, "Targets down", "Probed targets failing from at least one selected location.",
             f"count(min by (job, instance) (probe_success{{{s}}}) == 0) or vector(0)", w=6, thresholds=[(1, "red")]),
        stat(lay, "Availability in range", "Share of successful probes over the dashboard's time range, all targets and locations.",
             f"avg(avg_over_time(probe_success{{{s}}}[$__range]))", unit="percentunit", w=6),
        stat(lay, "Earliest certificate expiry", "Days until the first TLS certificate of any https target expires (`probe_ssl_earliest_cert_expiry`).",
             f"min(probe_ssl_earliest_cert_expiry{{{s}}} - time()) / 86400", unit="d", w=6),
        timeline(lay, "Probe result per target and location", "Up (green) or down (red) for every target as seen from every location (`probe_success`).",
                 targets((f"min by (job, instance, location) (probe_success{{{s}}})", "{{instance}} from {{location}}")), STATE_MAP),
        row(lay, "Latency"),
        timeseries(lay, "Probe duration", "Total wall time of each probe (DNS, connect, TLS, request, body).",
                   targets((f"max by (job, instance, location) (probe_duration_seconds{{{s}}})", "{{instance}} from {{location}}")), unit="s"),
        timeseries(lay, "HTTP time by phase", "Where the time goes: resolve, connect, tls, processing (time to first byte) and transfer, averaged over locations. Phases a failed probe did not reach are not reported.",
                   targets((f"avg by (instance, phase) (probe_http_duration_seconds{{{s}}})", "{{instance}} {{phase}}")), unit="s", stack=True),
        timeseries(lay, "Probe duration by location", "Average probe duration per location: tells a slow network path from a slow app.",
                   targets((f"avg by (location) (probe_duration_seconds{{{s}}})", "{{location}}")), unit="s"),
        row(lay, "Failures"),
        timeseries(lay, "HTTP status code", "Final HTTP status code of each probe; 0 means no response (DNS, connect, TLS or timeout failure).",
                   targets((f"max by (job, instance, location) (probe_http_status_code{{{s}}})", "{{instance}} from {{location}}"))),
        timeseries(lay, "Failures by reason", "Failing probes by reason: dns, connect, tls, timeout, status (unexpected HTTP code) or body (regex or JSON health status).",
                   targets((f"count by (reason) ({PROBE_REASON_METRIC}{{{s}}} == 1)", "{{reason}}")), bars=True, stack=True),
        timeseries(lay, "Degraded health", "Targets whose health JSON says warn/degraded (draft health+json `warn`): up, but with a concern.",
                   targets((f"max by (job, instance, location) (probe_health_degraded{{{s}}})", "{{instance}} from {{location}}"))),
        table(lay, "Availability per target and location", "Share of successful probes over the time range for every target as seen from every location.",
              targets((f"avg by (job, instance, location) (avg_over_time(probe_success{{{s}}}[$__range]))", ""), instant=True, fmt="table"), unit="percentunit"),
        timeseries(lay, "Certificate expiry", "Days until the earliest certificate expiry per https target. Renew before it reaches zero.",
                   targets((f"min by (job, instance) (probe_ssl_earliest_cert_expiry{{{s}}} - time()) / 86400", "{{instance}}")), unit="d"),
        row(lay, "Scraped app metrics"),
        timeseries(lay, "Scrape targets up", "1 when the last scrape of an app's metrics endpoint succeeded (`up`).",
                   targets((f"max by (job, instance) (up{{{up_sel}}})", "{{job}} {{instance}}"))),
        timeseries(lay, "Scrape duration", "Time to fetch and parse each app's metrics endpoint.",
                   targets((f"max by (job, instance) (scrape_duration_seconds{{{up_sel}}})", "{{job}} {{instance}}")), unit="s"),
        timeseries(lay, "Samples scraped", "Samples each app exposes per scrape; a jump means new label values (watch cardinality).",
                   targets((f"sum by (job, instance) (scrape_samples_scraped{{{up_sel}}})", "{{job}} {{instance}}"))),
    ]
    v = [
        var("job", "Job", "label_values(probe_success, job)"),
        var("location", "Location", 'label_values(probe_success{job=~"$job"}, location)'),
        var("target", "Target", 'label_values(probe_success{job=~"$job",location=~"$location"}, instance)'),
    ]
    return dashboard("crowsnest-probes", "Crowsnest / App health and probes", "blackbox_exporter-style HTTP health probes from every collector location, plus scraped app metrics endpoints.", v, p, tags=["probes"])


# ---------------------------------------------------------------------------------------------
# (d) Alerts
# ---------------------------------------------------------------------------------------------


def alerts():
    lay = Layout()
    s = ALERT_SEL
    notif = "crowsnest_alerter_notifications_total"
    failed = "crowsnest_alerter_notifications_failed_total"
    p = [
        row(lay, "Now"),
        stat(lay, "Firing", "Alerts firing right now (`ALERTS{alertstate=\"firing\"}`).",
             f'count(ALERTS{{{s},alertstate="firing"}}) or vector(0)', w=6, thresholds=[(1, "red")]),
        stat(lay, "Pending", "Alerts whose condition holds but whose `for:` duration has not elapsed yet.",
             f'count(ALERTS{{{s},alertstate="pending"}}) or vector(0)', w=6, thresholds=[(1, "orange")]),
        stat(lay, "Notifications in range", "Notifications attempted by all receivers during the time range.",
             f"sum(increase({notif}[$__range]))", w=6),
        stat(lay, "Failed notifications in range", "Notifications that failed for good (after retries) during the time range; the alerter logs why.",
             f"sum(increase({failed}[$__range])) or vector(0)", w=6, thresholds=[(1, "red")]),
        timeseries(lay, "Firing alerts", "Firing alerts over time by name and severity.",
                   targets((f'count by (alertname, severity) (ALERTS{{{s},alertstate="firing"}})', "{{alertname}} ({{severity}})")), stack=True),
        timeseries(lay, "Pending alerts", "Pending alerts over time by name and severity.",
                   targets((f'count by (alertname, severity) (ALERTS{{{s},alertstate="pending"}})', "{{alertname}} ({{severity}})")), stack=True),
        table(lay, "Active alerts", "Every pending or firing alert with its labels.",
              targets((f"max by (alertname, alertstate, severity, instance, job, name) (ALERTS{{{s}}})", ""), instant=True, fmt="table")),
        table(lay, "Active for", "How long each active alert has been pending or firing (from `ALERTS_FOR_STATE`, which holds the time it became active).",
              targets((f"time() - max by (alertname, severity, instance, job, name) (ALERTS_FOR_STATE{{{s}}})", ""), instant=True, fmt="table"), unit="s"),
        row(lay, "Notifications"),
        timeseries(lay, "Notifications by integration", "Notifications attempted per second, by integration (slack, email) and receiver.",
                   targets((f"sum by (receiver, integration) (rate({notif}[{RI}]))", "{{receiver}} {{integration}}")), unit="ops"),
        timeseries(lay, "Failed notifications by reason", "Notifications that failed for good (after retries) per second, by integration and reason. Slack 429s are retried after Retry-After first, so they only show here when retries ran out.",
                   targets((f"sum by (integration, reason) (rate({failed}[{RI}]))", "{{integration}} {{reason}}")), unit="ops"),
        timeseries(lay, "Notification failure ratio", "Failed notifications divided by attempted ones, by integration.",
                   targets((f"sum by (integration) (rate({failed}[{RI}])) / sum by (integration) (rate({notif}[{RI}]))", "{{integration}}")), unit="percentunit"),
        timeseries(lay, "Rule evaluation", "Rule group evaluations per second that failed (query errors, timeouts), and how long each group's last evaluation took.",
                   targets(("sum by (rule_group) (rate(prometheus_rule_evaluation_failures_total[" + RI + "]))", "{{rule_group}} failures/s"),
                           ("max by (rule_group) (prometheus_rule_group_last_duration_seconds)", "{{rule_group}} last duration (s)"))),
    ]
    v = [
        var("alertname", "Alert", "label_values(ALERTS, alertname)"),
        var("severity", "Severity", "label_values(ALERTS, severity)"),
        var("host", "Host", "label_values(ALERTS, instance)"),
        var("job", "Job", "label_values(ALERTS, job)"),
    ]
    return dashboard("crowsnest-alerts", "Crowsnest / Alerts", "What is firing or pending, since when, and whether notifications get out.", v, p, tags=["alerts"])


# ---------------------------------------------------------------------------------------------
# (e) Crowsnest itself
# ---------------------------------------------------------------------------------------------


def quantile(q, metric, sel, by):
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{{{sel}}}[{RI}])))"


def crowsnest():
    lay = Layout()
    s = STORE_SEL
    k = COLL_SEL
    http = "crowsnest_store_http_request_duration_seconds"
    p = [
        row(lay, "Store"),
        stat(lay, "Ingest rate", "Samples per second the store accepted (remote_write and imports).",
             f"sum(rate(crowsnest_store_samples_ingested_total{{{s}}}[{RI}]))", unit="short", w=6),
        stat(lay, "Active series", "Series in the store's head (recently written).",
             f"sum(crowsnest_store_head_series{{{s}}})", w=6),
        stat(lay, "Disk used", "Bytes the store's files take on disk (sled tree plus WAL).",
             f"sum(crowsnest_store_disk_bytes{{{s}}})", unit="bytes", w=6),
        stat(lay, "Rejected samples in range", "Samples refused during the time range (out of order, too old, invalid labels, limits).",
             f"sum(increase(crowsnest_store_samples_rejected_total{{{s}}}[$__range])) or vector(0)", w=6, thresholds=[(1, "orange")]),
        timeseries(lay, "Samples ingested", "Samples per second accepted by each store.",
                   targets((f"sum by (instance) (rate(crowsnest_store_samples_ingested_total{{{s}}}[{RI}]))", "{{instance}}"))),
        timeseries(lay, "Rejected samples by reason", "Samples per second refused, by reason. The reason label is a fixed set, never an error string.",
                   targets((f"sum by (instance, reason) (rate(crowsnest_store_samples_rejected_total{{{s}}}[{RI}]))", "{{instance}} {{reason}}")), stack=True),
        timeseries(lay, "Active series and churn", "Series in the head, and new series created per second (high churn means a label value that keeps changing).",
                   targets((f"sum by (instance) (crowsnest_store_head_series{{{s}}})", "{{instance}} active"),
                           (f"sum by (instance) (rate(crowsnest_store_series_created_total{{{s}}}[{RI}]))", "{{instance}} created/s"))),
        timeseries(lay, "Disk usage", "Bytes on disk for the whole store and for its write-ahead log.",
                   targets((f"sum by (instance) (crowsnest_store_disk_bytes{{{s}}})", "{{instance}} total"),
                           (f"sum by (instance) (crowsnest_store_wal_bytes{{{s}}})", "{{instance}} WAL")), unit="bytes"),
        timeseries(lay, "WAL fsync latency", "How long making a write batch durable takes (50th and 99th percentile). remote_write is answered only after it.",
                   targets((quantile(0.5, "crowsnest_store_wal_fsync_duration_seconds", s, "instance"), "{{instance}} p50"),
                           (quantile(0.99, "crowsnest_store_wal_fsync_duration_seconds", s, "instance"), "{{instance}} p99")), unit="s"),
        timeseries(lay, "Query latency", "99th percentile latency of instant and range queries (what Grafana waits for).",
                   targets((quantile(0.99, http, s + ',handler=~"query|query_range"', "handler"), "{{handler}} p99"),
                           (quantile(0.5, http, s + ',handler=~"query|query_range"', "handler"), "{{handler}} p50")), unit="s"),
        timeseries(lay, "Requests by handler", "API requests per second by handler (write, query, query_range, series, labels...).",
                   targets((f"sum by (handler) (rate({http}_count{{{s}}}[{RI}]))", "{{handler}}")), unit="reqps"),
        timeseries(lay, "Write latency", "99th percentile time to answer a remote_write request, including the WAL fsync.",
                   targets((quantile(0.99, http, s + ',handler="write"', "instance"), "{{instance}} p99")), unit="s"),
        row(lay, "Collectors"),
        timeseries(lay, "Collector queue", "Samples waiting in each collector's disk queue. Growth means the store is unreachable or slower than collection.",
                   targets((f"sum by (instance) (crowsnest_collector_queue_samples{{{k}}})", "{{instance}} samples"),
                           (f"sum by (instance) (crowsnest_collector_queue_records{{{k}}})", "{{instance}} requests"))),
        timeseries(lay, "Collector queue size", "Bytes of each collector's queue segment files (bounded by `queue.max_bytes`; oldest data is dropped beyond it).",
                   targets((f"sum by (instance) (crowsnest_collector_queue_bytes{{{k}}})", "{{instance}}")), unit="bytes"),
        timeseries(lay, "Samples shipped", "Samples per second accepted by the store, and samples in failed requests that will be retried.",
                   targets((f"sum by (instance) (rate(crowsnest_collector_samples_sent_total{{{k}}}[{RI}]))", "{{instance}} sent"),
                           (f"sum by (instance) (rate(crowsnest_collector_samples_failed_total{{{k}}}[{RI}]))", "{{instance}} failed (retried)"))),
        timeseries(lay, "Samples dropped", "Samples lost for good, by reason: queue_full (oldest dropped), rejected (4xx from the store), encode.",
                   targets((f"sum by (instance, reason) (rate(crowsnest_collector_samples_dropped_total{{{k}}}[{RI}]))", "{{instance}} {{reason}}")), stack=True),
        timeseries(lay, "remote_write requests by result", "Write requests per second from each collector by result.",
                   targets((f"sum by (instance, result) (rate(crowsnest_collector_remote_write_requests_total{{{k}}}[{RI}]))", "{{instance}} {{result}}")), unit="reqps"),
        timeseries(lay, "Docker Engine API", "Whether each collector reaches its Docker Engine (1 = yes), and the 99th percentile Docker API latency by call.",
                   targets((f"min by (instance) (crowsnest_collector_docker_up{{{k}}})", "{{instance}} up"),
                           (quantile(0.99, "crowsnest_collector_docker_api_duration_seconds", k, "instance, call"), "{{instance}} {{call}} p99"))),
        row(lay, "Alerter"),
        timeseries(lay, "Notification failures", "Notifications that failed for good per second, by integration (details on the Alerts dashboard).",
                   targets(("sum by (integration) (rate(crowsnest_alerter_notifications_failed_total[" + RI + "]))", "{{integration}}")), unit="ops", w=24),
    ]
    v = [
        var("job", "Job", "label_values(crowsnest_store_head_series, job)"),
        var("host", "Store", 'label_values(crowsnest_store_head_series{job=~"$job"}, instance)'),
        var("collector", "Collector", "label_values(crowsnest_collector_queue_samples, instance)"),
    ]
    return dashboard("crowsnest-self", "Crowsnest / Crowsnest itself", "Health of the monitoring stack: store ingest, series, disk, WAL and query latency; collector queues; notification failures.", v, p, tags=["self"])


DASHBOARDS = {
    "docker-hosts.json": hosts,
    "container-detail.json": container,
    "app-health.json": probes,
    "alerts.json": alerts,
    "crowsnest.json": crowsnest,
}


def render(fn):
    return json.dumps(fn(), indent=2, sort_keys=False) + "\n"


def main(argv):
    check = "--check" in argv
    stale = []
    for name, fn in DASHBOARDS.items():
        path = OUT / name
        text = render(fn)
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python3 dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
