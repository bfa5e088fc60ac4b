#!/usr/bin/env bash
# Collector cost benchmark: CPU and RSS of the lean `crowsnest-collector` (release build) with N
# running containers at a 15s interval, plus dockerd's CPU over the same window.
# usage: collector/bench/containers.sh BIN "50 100" [SECONDS]
# Needs docker, a static busybox (/bin/busybox or /usr/bin/busybox) and victoria-metrics as the
# remote_write receiver. Creates crowsnest-test-bench-* containers and removes them at the end.
set -euo pipefail
BIN=${1:?path to release crowsnest-collector}
COUNTS=${2:-"50 100"}
SECS=${3:-120}
IMAGE=crowsnest-test-busybox:bench
WORK=$(mktemp -d)
cleanup() {
  docker ps -aq --filter name=crowsnest-test-bench- | xargs -r docker rm -f >/dev/null
  docker rmi -f $IMAGE >/dev/null 2>&1 || true
  if [ -n "${VM_PID:-}" ]; then kill "$VM_PID" 2>/dev/null || true; wait "$VM_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
BB=$(command -v busybox || true); [ -x /bin/busybox ] && BB=/bin/busybox
mkdir -p "$WORK/img/bin"; cp "$BB" "$WORK/img/bin/busybox"; ln -s busybox "$WORK/img/bin/sh"; ln -s busybox "$WORK/img/bin/sleep"
tar -C "$WORK/img" -c . | docker import - $IMAGE >/dev/null
VMPORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr=127.0.0.1:$VMPORT >/dev/null 2>&1 & VM_PID=$!
cpu_ticks() { awk '{print $14+$15}' /proc/$1/stat; }
HZ=$(getconf CLK_TCK)
DOCKERD=$(pgrep -xo dockerd || true)
started=0
for n in $COUNTS; do
  while [ $started -lt $n ]; do
    docker run -d --name crowsnest-test-bench-$started $IMAGE sleep 3600 >/dev/null
    started=$((started+1))
  done
  cat > "$WORK/c.yml" <<YML
interval: 15s
remote_write: {url: "http://127.0.0.1:$VMPORT/api/v1/write"}
queue: {dir: "$WORK/q-$n"}
YML
  PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  RUST_LOG=warn "$BIN" --config "$WORK/c.yml" --listen 127.0.0.1:$PORT & CPID=$!
  sleep 20   # warm-up: first cycles, event stream, allocations settle
  c0=$(cpu_ticks $CPID); d0=$([ -n "$DOCKERD" ] && cpu_ticks $DOCKERD || echo 0); t0=$(date +%s.%N)
  sleep "$SECS"
  c1=$(cpu_ticks $CPID); d1=$([ -n "$DOCKERD" ] && cpu_ticks $DOCKERD || echo 0); t1=$(date +%s.%N)
  rss=$(awk '/VmRSS/{print $2}' /proc/$CPID/status); hwm=$(awk '/VmHWM/{print $2}' /proc/$CPID/status)
  sent=$(curl -s 127.0.0.1:$PORT/metrics | awk '/^crowsnest_collector_samples_sent_total/{print $2}')
  lat=$(curl -s 127.0.0.1:$PORT/metrics | awk -F'[ ]' '/^crowsnest_collector_docker_api_duration_seconds_(sum|count)\{call="stats"\}/{print $2}' | paste -sd' ')
  kill -TERM $CPID; wait $CPID || true
  python3 - "$n" "$c0" "$c1" "$d0" "$d1" "$t0" "$t1" "$HZ" "$rss" "$hwm" "$sent" "$lat" <<'PY'
import sys
n,c0,c1,d0,d1,t0,t1,hz,rss,hwm,sent=sys.argv[1:12]; lat=sys.argv[12].split()
wall=float(t1)-float(t0); hz=float(hz)
col=(int(c1)-int(c0))/hz/wall*100; dock=(int(d1)-int(d0))/hz/wall*100
avg = (float(lat[0])/float(lat[1])*1000) if len(lat)==2 and float(lat[1])>0 else float('nan')
print(f"| {n} | {col:.2f} % | {int(rss)/1024:.1f} MiB (peak {int(hwm)/1024:.1f}) | {dock:.2f} % | {sent} | {avg:.0f} ms |")
PY
done
