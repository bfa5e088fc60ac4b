#!/usr/bin/env bash
# Health latency benchmark: with N idle busybox containers running, how long from
# `docker exec <c> rm /tmp/healthy` until `container_health_status{status="unhealthy"} == 1` is
# queryable in a store (VictoriaMetrics, `-search.latencyOffset=0s` so it shows fresh samples).
# Also prints how much of that is Docker's own health check (the `health_status: unhealthy`
# event's time). Collector: interval 2s, otherwise defaults (pass EXTRA_YML to add keys).
# usage: collector/bench/health_latency.sh BIN [N=50] [TRIALS=6]
# Needs docker, victoria-metrics, python3, the image crowsnest-test-busybox:latest (built by the
# Docker tests). Creates crowsnest-bench-* containers and removes them at the end.
set -euo pipefail
BIN=${1:?path to crowsnest-collector}
N=${2:-50}
TRIALS=${3:-6}
IMAGE=crowsnest-test-busybox:latest
WORK=$(mktemp -d)
cleanup() {
  docker ps -aq --filter name=crowsnest-bench- | xargs -r docker rm -f >/dev/null
  if [ -n "${CPID:-}" ]; then kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; fi
  if [ -n "${VM_PID:-}" ]; then kill "$VM_PID" 2>/dev/null || true; wait "$VM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
VMPORT=$(port)
victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr=127.0.0.1:$VMPORT -search.latencyOffset=0s \
  -search.disableCache >/dev/null 2>&1 & VM_PID=$!
for i in $(seq 0 $((N-1))); do
  docker run -d --name crowsnest-bench-$i $IMAGE sleep 3600 >/dev/null
done
docker run -d --name crowsnest-bench-health --health-cmd 'test -f /tmp/healthy' --health-interval 1s \
  --health-retries 1 --health-timeout 1s $IMAGE sh -c 'touch /tmp/healthy; sleep 3600' >/dev/null
cat > "$WORK/c.yml" <<YML
interval: 2s
remote_write: {url: "http://127.0.0.1:$VMPORT/api/v1/write"}
queue: {dir: "$WORK/q"}
${EXTRA_YML:-}
YML
LPORT=$(port)
RUST_LOG=warn "$BIN" --config "$WORK/c.yml" --listen 127.0.0.1:$LPORT & CPID=$!
python3 - "$VMPORT" "$TRIALS" <<'PY'
import json, random, subprocess, sys, time, urllib.parse, urllib.request
vm, trials = sys.argv[1], int(sys.argv[2])
def q(status):
    sel = f'container_health_status{{name="crowsnest-bench-health",status="{status}"}}'
    url = f"http://127.0.0.1:{vm}/api/v1/query?" + urllib.parse.urlencode({"query": sel})
    try:
        r = json.load(urllib.request.urlopen(url, timeout=2))["data"]["result"]
        return float(r[0]["value"][1]) if r else None
    except Exception:
        return None
def wait(status, limit):
    t0 = time.time()
    while time.time() - t0 < limit:
        if q(status) == 1.0:
            return time.time()
        time.sleep(0.05)
    return None
def event_time(since, status):
    out = subprocess.run(["docker", "events", "--since", f"{since:.3f}", "--until", f"{time.time():.3f}",
        "--filter", "container=crowsnest-bench-health", "--filter", "event=health_status",
        "--format", "{{.TimeNano}} {{.Status}}"], capture_output=True, text=True).stdout.split("\n")
    ts = [int(l.split()[0]) / 1e9 for l in out if l.strip().endswith(status)]
    return ts[0] if ts else None
ends, dockers = [], []
for i in range(trials):
    subprocess.run(["docker", "exec", "crowsnest-bench-health", "touch", "/tmp/healthy"], check=True)
    if wait("healthy", 60) is None:
        sys.exit("never became healthy in the store")
    time.sleep(random.uniform(0, 2))
    t0 = time.time()
    subprocess.run(["docker", "exec", "crowsnest-bench-health", "rm", "/tmp/healthy"], check=True)
    t1 = wait("unhealthy", 60)
    if t1 is None:
        sys.exit("never became unhealthy in the store")
    ev = event_time(t0 - 0.5, "unhealthy")
    ends.append(t1 - t0)
    dockers.append((ev - t0) if ev else float("nan"))
    print(f"trial {i}: store {t1 - t0:.2f} s, docker's health event {dockers[-1]:.2f} s", flush=True)
s = sorted(ends)
print(f"RESULT n={len(s)} min {s[0]:.2f} median {s[len(s)//2]:.2f} max {s[-1]:.2f} s; "
      f"docker event median {sorted(dockers)[len(dockers)//2]:.2f} s")
PY
curl -s 127.0.0.1:$LPORT/metrics | grep -E '^crowsnest_collector_(collections_total|docker_api_duration_seconds_(sum|count))' || true
