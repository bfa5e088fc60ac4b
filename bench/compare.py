#!/usr/bin/env python3
"""Side-by-side benchmark: Crowsnest vs Prometheus vs VictoriaMetrics on the same data, same run.

Usage (from the repo root, after `cargo build --release`):
    python3 bench/compare.py --hosts 20 --series-per-host 1000 --hours 24 [--jitter-ms 0] [--out bench/results]

For each system in turn: start it on 127.0.0.1 with a fresh data dir, replay the pre-encoded
remote_write workload (`crowsnest bench ingest`, which reads the server's CPU and RSS from /proc),
persist (Crowsnest: graceful restart; Prometheus: admin snapshot incl. head; VictoriaMetrics:
force_flush + force_merge), measure bytes on disk, run the query set (`crowsnest bench query`),
stop it. Systems never run at the same time. Prints a Markdown table and writes JSON results.
"""
import argparse, json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "crowsnest")


def wait_ready(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status < 300:
                    return
        except Exception:
            pass
        time.sleep(0.3)
    raise SystemExit(f"not ready: {url}")


def du(path, exclude=()):
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in exclude]
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


def run_json(args):
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


class System:
    def __init__(self, name, port, data):
        self.name, self.port, self.data, self.proc = name, port, data, None

    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Crowsnest(System):
    write_path = "/api/v1/write"
    # `store.engine.wal_fsync`: ack (default; fdatasync before every 2xx) or periodic (2xx after
    # the WAL write(2), fdatasync every second, like the peers).
    wal_fsync = "ack"
    def start(self):
        cfg = os.path.join(self.data, "..", f"{self.name}-crowsnest.yml")
        with open(cfg, "w") as f:
            f.write(f"store:\n  engine:\n    wal_fsync: {self.wal_fsync}\n")
        self.proc = subprocess.Popen([BIN, "store", "--config", cfg, "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}", "--log-level", "warn"])
        wait_ready(self.base() + "/ready")
    def persist(self):
        # A graceful stop flushes the head into chunks; restart for the queries.
        self.stop(); self.start()
    def disk(self):
        return du(self.data, exclude=("wal",)), du(self.data)


class CrowsnestPeriodic(Crowsnest):
    wal_fsync = "periodic"


class Prometheus(System):
    write_path = "/api/v1/write"
    def start(self):
        cfg = os.path.join(self.data, "..", f"{self.name}-prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global: {}\n")
        self.proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.data}",
            "--storage.tsdb.retention.time=30d", "--web.enable-remote-write-receiver", "--web.enable-admin-api",
            "--query.max-samples=500000000", f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stderr=subprocess.DEVNULL)
        wait_ready(self.base() + "/-/ready")
    def persist(self):
        req = urllib.request.Request(self.base() + "/api/v1/admin/tsdb/snapshot?skip_head=false", method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            self.snapshot = json.load(r)["data"]["name"]
    def disk(self):
        snap = os.path.join(self.data, "snapshots", self.snapshot)
        return du(snap), du(self.data, exclude=("snapshots",))


class Victoria(System):
    write_path = "/api/v1/write"
    def start(self):
        self.proc = subprocess.Popen(["victoria-metrics", f"-storageDataPath={self.data}", "-retentionPeriod=30d",
            "-search.disableCache", "-search.latencyOffset=0s", f"-httpListenAddr=127.0.0.1:{self.port}", "-loggerLevel=ERROR"],
            stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        wait_ready(self.base() + "/health")
    def persist(self):
        urllib.request.urlopen(self.base() + "/internal/force_flush", timeout=600).read()
        prefix = time.strftime("%Y_%m", time.gmtime())
        urllib.request.urlopen(self.base() + f"/internal/force_merge?partition_prefix={prefix}", timeout=600).read()
        # Wait for merges to finish.
        for _ in range(600):
            with urllib.request.urlopen(self.base() + "/metrics", timeout=10) as r:
                active = sum(float(l.split()[-1]) for l in r.read().decode().splitlines() if l.startswith("vm_active_merges"))
            if active == 0:
                break
            time.sleep(1)
    def disk(self):
        return du(self.data), du(self.data)


def main():
    global BIN
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--series-per-host", type=int, default=1000)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--jitter-ms", type=int, default=0)
    ap.add_argument("--profile", default="docker", choices=["docker", "node"],
                    help="workload: docker (node_exporter + cAdvisor + app histograms) or node (node_exporter alone)")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--systems", default="crowsnest,crowsnest_periodic,prometheus,victoriametrics",
                    help="crowsnest (wal_fsync: ack, the default), crowsnest_periodic (wal_fsync: periodic), prometheus, victoriametrics")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--bin", default=BIN, help="the crowsnest binary (default: target/release/crowsnest)")
    a = ap.parse_args()
    BIN = a.bin
    work = a.work or tempfile.mkdtemp(prefix="crowsnest-bench-")
    gen = os.path.join(work, "workload")
    print(f"bench: generating workload in {gen}", file=sys.stderr)
    manifest = run_json([BIN, "bench", "generate", "--dir", gen, "--hosts", str(a.hosts), "--series-per-host", str(a.series_per_host),
                         "--hours", str(a.hours), "--jitter-ms", str(a.jitter_ms), "--connections", str(a.connections),
                         "--profile", a.profile])
    systems = {"crowsnest": Crowsnest, "crowsnest_periodic": CrowsnestPeriodic, "prometheus": Prometheus,
               "victoriametrics": Victoria}
    results = {"manifest": manifest, "systems": {}}
    for i, name in enumerate(a.systems.split(",")):
        data = os.path.join(work, name)
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        s = systems[name](name, 19400 + i, data)
        print(f"bench: {name}: starting", file=sys.stderr)
        s.start()
        try:
            ing = run_json([BIN, "bench", "ingest", "--dir", gen, "--url", s.base() + s.write_path, "--pid", str(s.proc.pid)])
            print(f"bench: {name}: {ing['samples_per_second']:.0f} samples/s, persisting", file=sys.stderr)
            s.persist()
            persistent, total = s.disk()
            qs = run_json([BIN, "bench", "query", "--dir", gen, "--url", s.base(), "--runs", str(a.runs)])
            results["systems"][name] = {"ingest": ing, "disk_bytes": persistent, "disk_bytes_total": total,
                                        "bytes_per_sample": persistent / manifest["samples"], "queries": qs}
        finally:
            s.stop()
    os.makedirs(a.out, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = os.path.join(a.out, f"compare-{stamp}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    print_table(results)
    print(f"\nJSON: {path}", file=sys.stderr)


def print_table(r):
    m = r["manifest"]
    names = list(r["systems"])
    print(f"Workload: {m['hosts']} hosts x {m['series_per_host']} series = {m['hosts']*m['series_per_host']} series, "
          f"{m['samples']} samples, interval {m['interval_ms']} ms, jitter +-{m['jitter_ms']} ms, profile {m.get('profile', 'docker')}, {m['connections']} connections, "
          f"{m['batch']} series/request\n")
    print("| metric | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    def row(label, f):
        print(f"| {label} | " + " | ".join(f(r["systems"][n]) for n in names) + " |")
    row("ingest samples/s", lambda s: f"{s['ingest']['samples_per_second']:,.0f}")
    row("server CPU-s per 1M samples", lambda s: f"{s['ingest']['server_cpu_seconds_per_million']:.2f}")
    row("request p50 / p99 ms", lambda s: f"{s['ingest']['request_p50_ms']:.1f} / {s['ingest']['request_p99_ms']:.1f}")
    row("peak RSS MiB", lambda s: f"{s['ingest']['server_peak_rss_bytes']/2**20:.0f}")
    row("RSS per series (end), bytes", lambda s: f"{s['ingest']['server_end_rss_bytes']/(m['hosts']*m['series_per_host']):,.0f}")
    row("disk bytes (persistent, index incl.)", lambda s: f"{s['disk_bytes']:,}")
    row("bytes per sample", lambda s: f"{s['bytes_per_sample']:.3f}")
    qids = [q["id"] for q in r["systems"][names[0]]["queries"]]
    for i, qid in enumerate(qids):
        what = r["systems"][names[0]]["queries"][i]["what"]
        def cell(s, i=i):
            q = s["queries"][i]
            if q["error"]:
                return "error"
            return f"{q['p50_ms']:.1f} / {q['p99_ms']:.1f} ({q['series']} series)"
        row(f"{qid} {what}: p50 / p99 ms", cell)


if __name__ == "__main__":
    main()
