#!/usr/bin/env python3
"""Hundreds of worker processes on one PostgreSQL, with the database stopped mid-drain.

Starts a private PostgreSQL (initdb in a temporary directory, its own port), `webnet serve
--no-worker` (API and health monitor), and 50 regions x 4 `webnet worker` processes, then:

1. measures, with ONE worker process first, enqueue->start of 200 jobs paced at 20/s (the
   baseline);
2. starts the fleet and times how long until every region is healthy;
3. samples the fleet idle: PostgreSQL connections (pg_stat_activity), worker RSS, heartbeat
   writes per second, the health monitor's pass time; then measures enqueue->start again,
   with the same 200 jobs at 20/s spread over every region (the fleet's latency at the
   baseline's load, which the 2x criterion compares);
4. enqueues 10,000 single-device reachability jobs through the API at a steady rate (the
   devices point at the server's own TCP port, so every check succeeds), stops PostgreSQL
   for 10 s once half of them have finished, starts it again, and waits until every job has
   finished; the API client retries what the outage refused;
5. prints a Markdown report and exits non-zero when a criterion fails: a job not finished or
   not successful, a region not healthy again within 15 s of the database's return, the
   fleet's enqueue->start p50 at the baseline's load above twice the baseline, or more
   connections than the fleet's budget. The drain's own enqueue->start (at 200/s, as fast as
   the machine lets the API take them) is reported beside it.

    cargo build --release && scripts/scale-test.py              # the full run (~5 minutes)
    scripts/scale-test.py --regions 10 --jobs 2000              # smaller
    scripts/scale-test.py --pgbouncer                           # pools through PgBouncer

Needs PostgreSQL's server programs (Debian: apt-get install postgresql) and curl. Not part of
CI: it starts hundreds of processes and takes minutes.
"""

import argparse
import calendar
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = "('success', 'partial', 'failed', 'cancelled')"


T0 = time.time()


def say(message):
    """Progress on stderr, so that the report on stdout stays clean."""
    print(f"[{time.time() - T0:6.1f} s] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin():
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        sys.exit("PostgreSQL's server programs are missing: apt-get install postgresql")
    return found[-1].parent


class PrivatePg:
    """A throwaway PostgreSQL server allowed enough connections for the fleet."""

    def __init__(self, max_connections):
        self.dir = Path(tempfile.mkdtemp(prefix="webnet-scale-"))
        self.port = free_port()
        self.bin = pg_bin()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--no-sync")
        with open(self.dir / "data" / "postgresql.conf", "a") as conf:
            conf.write(f"max_connections = {max_connections}\nshared_buffers = 256MB\n"
                       "listen_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.dir}'\n"
                       f"port = {self.port}\n")
        self.start()

    def run(self, program, *args):
        cmd = [str(self.bin / program), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self):
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"),
                 "-w", "start")

    def stop(self):
        self.run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def remove(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PgBouncer:
    """PgBouncer in transaction mode in front of `pg` (tests/pgbouncer/install.sh builds it),
    with the settings the deployment guide gives."""

    def __init__(self, pg, pool_size, max_clients):
        source = ROOT / "tests/pgbouncer"
        built = source / ".build/bin/pgbouncer"
        if not built.exists():
            subprocess.run(["bash", str(source / "install.sh")], check=True,
                           stdin=subprocess.DEVNULL)
        self.dir = pg.dir / "pgbouncer"
        self.dir.mkdir()
        shutil.copy(built, self.dir / "pgbouncer")
        self.port = free_port()
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"[databases]\n* = host=127.0.0.1 port={pg.port}\n\n[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = {max_clients}\nmax_prepared_statements = 200\n"
            "ignore_startup_parameters = extra_float_digits\n"
            f"logfile = {self.dir}/pgbouncer.log\n")
        cmd = [str(self.dir / "pgbouncer"), str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root.
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.dir)], check=True)
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        if not wait_for(listening, 10):
            sys.exit(f"PgBouncer did not start: {(self.dir / 'pgbouncer.log').read_text()}")

    def url(self, database):
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def sql(url, query):
    """One value (or rows as lists) from psql; None when the database does not answer."""
    out = subprocess.run(["psql", url, "-Atqc", query], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        return None
    rows = [line.split("|") for line in out.stdout.strip().splitlines()]
    return rows


def one(url, query):
    rows = sql(url, query)
    return None if not rows else rows[0][0]


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Sampler(threading.Thread):
    """Counts PostgreSQL's client connections every quarter second."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url = url
        self.samples = []  # (time, all clients, worker connections)
        self.running = True

    def run(self):
        while self.running:
            # webnet's connections only: this script's own psql calls (the sampler's and the
            # waits of the other threads) are not the fleet's.
            rows = sql(self.url,
                       "SELECT count(*), count(*) FILTER (WHERE application_name = 'webnet worker') "
                       "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                       "AND application_name <> 'psql'")
            if rows:
                self.samples.append((time.time(), int(rows[0][0]), int(rows[0][1])))
            time.sleep(0.25)

    def most(self, since=0.0, until=float("inf")):
        window = [s for s in self.samples if since <= s[0] <= until]
        return (max((s[1] for s in window), default=0), max((s[2] for s in window), default=0))


def enqueue(port, token, device_ids, rate, threads=8):
    """POSTs one reachability job per device at about `rate` per second; retries what the
    server refuses (503 while the database is down). Returns (accepted, retries)."""
    lock = threading.Lock()
    queue = list(device_ids)
    counters = {"accepted": 0, "retries": 0}
    start = time.time()
    sent = [0]

    def next_device():
        with lock:
            if not queue:
                return None
            due = start + sent[0] / rate
            sent[0] += 1
            return queue.pop(), due

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            item = next_device()
            if item is None:
                return
            device, due = item
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({"targets": {"device_ids": [device]}})
            while True:
                try:
                    conn.request("POST", "/api/v1/reachability/run", body,
                                 {"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    if response.status == 202:
                        with lock:
                            counters["accepted"] += 1
                        break
                    if response.status < 500:
                        raise SystemExit(f"job refused with {response.status}")
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                with lock:
                    counters["retries"] += 1
                time.sleep(0.2)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counters["accepted"], counters["retries"]


def wait_for(predicate, timeout, step=0.25):
    until = time.time() + timeout
    while time.time() < until:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def cpu_times():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def start_to_claim_ms(url, since_job, until_job=None):
    """Enqueue->start of the jobs after `since_job` (up to `until_job`): from the creating
    request's transaction to the dispatch's claim, in milliseconds."""
    until = f"AND j.id <= {until_job}" if until_job is not None else ""
    rows = sql(url,
               "SELECT extract(epoch FROM d.started_at - j.requested_at) * 1000 "
               "FROM jobs j JOIN job_dispatches d ON d.job_id = j.id "
               f"WHERE j.id > {since_job} {until} AND d.started_at IS NOT NULL")
    return [float(r[0]) for r in rows or []]


def enqueue_to_finish_ms(url, since_job):
    """Enqueue->finish of the jobs after `since_job`: from the creating request's transaction
    to the job's end, in milliseconds (the reachability check itself takes about a
    millisecond)."""
    rows = sql(url,
               "SELECT extract(epoch FROM j.finished_at - j.requested_at) * 1000 "
               f"FROM jobs j WHERE j.id > {since_job} AND j.finished_at IS NOT NULL")
    return [float(r[0]) for r in rows or []]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--regions", type=int, default=50)
    parser.add_argument("--workers-per-region", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=200.0, help="jobs enqueued per second")
    parser.add_argument("--probe-rate", type=float, default=20.0,
                        help="jobs per second of the latency probes (baseline and fleet)")
    parser.add_argument("--probe-jobs", type=int, default=200,
                        help="jobs of each latency probe")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds PostgreSQL is down")
    parser.add_argument("--worker-connections", type=int, default=4,
                        help="each worker's --db-max-connections")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="send serve's and the workers' pools through PgBouncer (transaction "
                             "mode), with --listen-database-url to PostgreSQL itself")
    parser.add_argument("--pgbouncer-pool", type=int, default=40,
                        help="PgBouncer's server connections (default_pool_size)")
    parser.add_argument("--bin", default=os.environ.get("WEBNET_BIN",
                                                        str(ROOT / "target/release/webnet")))
    args = parser.parse_args()
    if not os.access(args.bin, os.X_OK):
        sys.exit("build first: cargo build --release (or set WEBNET_BIN)")

    fleet_size = args.regions * args.workers_per_region
    serve_budget = 10 + 2
    budget = fleet_size * args.worker_connections + serve_budget
    if args.pgbouncer:
        # Direct: each worker's own connection (LISTEN, heartbeat), the server's two;
        # pooled: PgBouncer's server connections, whatever the fleet asks.
        worker_budget = fleet_size
        budget = fleet_size + 2 + args.pgbouncer_pool
    else:
        worker_budget = fleet_size * args.worker_connections
    pg = PrivatePg(max_connections=budget + 50)
    url = pg.url("webnet_scale")
    env = dict(os.environ, WEBNET_SECRET_KEY="scale-test-secret-key-0123456789abcdef",
               DATABASE_URL=url, RUST_LOG="info,sqlx=warn,webnet::health=debug")
    bouncer = None
    if args.pgbouncer:
        bouncer = PgBouncer(pg, args.pgbouncer_pool,
                            max_clients=fleet_size * args.worker_connections + 100)
        env = dict(env, DATABASE_URL=bouncer.url("webnet_scale"),
                   WEBNET_LISTEN_DATABASE_URL=url)
    logs = pg.dir / "logs"
    logs.mkdir()
    processes = []
    failures = []
    report = []

    def webnet(*argv, log=None, stdin=None):
        out = open(logs / log, "w") if log else subprocess.DEVNULL
        p = subprocess.Popen([args.bin, *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        if stdin:
            p.stdin.write(stdin.encode())
            p.stdin.close()
        return p

    def check(ok, what):
        report.append(f"- {'PASS' if ok else 'FAIL'}: {what}")
        if not ok:
            failures.append(what)

    try:
        say(f"private PostgreSQL on port {pg.port}; seeding {args.regions} regions and {args.jobs} devices")
        # The inventory: regions, devices on the server's own port, an operator's token.
        for argv in (["migrate"],
                     ["seed-demo", "--regions", str(args.regions), "--devices", str(args.jobs)]):
            subprocess.run([args.bin, *argv], env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        webnet("user", "create", "scale", "--role", "operator", "--customer", "demo",
               "--password-stdin", stdin="scale-test-password\n").wait()
        out = subprocess.run([args.bin, "token", "create", "scale", "--name", "scale"], env=env,
                             capture_output=True, text=True, check=True).stdout
        token = next(w for w in out.split() if w.startswith("wn_"))
        port = free_port()
        serve = webnet("--log-format", "json", "serve", "--no-worker", "--bind", f"127.0.0.1:{port}",
                       "--db-max-connections", "10", log="serve.log")
        processes.append(serve)
        wait_for(lambda: subprocess.run(["curl", "-fs", f"http://127.0.0.1:{port}/healthz"],
                                        stdout=subprocess.DEVNULL).returncode == 0, 30)
        regions = [r[0] for r in sql(url, "SELECT identifier FROM regions ORDER BY id")]
        sql(url, f"UPDATE devices SET mgmt_ip = '127.0.0.1', port = {port}")
        sql(url, "UPDATE device_assignments a SET region_id = r.id FROM "
                 "(SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM regions) r "
                 f"WHERE r.n = a.device_id % {len(regions)}")
        devices_of = {}
        for device, region in sql(url, "SELECT a.device_id, r.identifier FROM device_assignments a "
                                       "JOIN regions r ON r.id = a.region_id"):
            devices_of.setdefault(region, []).append(int(device))

        sampler = Sampler(url)
        sampler.start()

        say("baseline: one worker process, enqueue->start")
        # 1. The baseline: one worker process on one region.
        solo = webnet("worker", "--region", regions[0], "--name", "solo",
                      "--db-max-connections", str(args.worker_connections), log="solo.log")
        wait_for(lambda: one(url, "SELECT 1 FROM worker_heartbeats WHERE name LIKE 'solo%' "
                                  "AND array_length(queues, 1) > 0"), 30)
        last = int(one(url, "SELECT coalesce(max(id), 0) FROM jobs"))
        baseline_jobs = devices_of[regions[0]][:min(args.probe_jobs, len(devices_of[regions[0]]))]
        enqueue(port, token, baseline_jobs, args.probe_rate)
        wait_for(lambda: one(url, f"SELECT count(*) = {len(baseline_jobs)} FROM jobs "
                                  f"WHERE id > {last} AND status IN {TERMINAL}") == "t", 60)
        baseline_probe = start_to_claim_ms(url, last)
        baseline = statistics.median(baseline_probe)
        baseline_finish = statistics.median(enqueue_to_finish_ms(url, last))
        solo.send_signal(signal.SIGTERM)
        solo.wait(timeout=30)
        # From a fleet without workers (the monitor marks every region offline), so that the
        # next step times the fleet's own arrival.
        wait_for(lambda: one(url, "SELECT count(*) FILTER (WHERE health_status = 'healthy') = 0 "
                                  "FROM regions") == "t", 60)

        say(f"baseline p50 {baseline:.2f} ms; starting {fleet_size} workers")
        # 2. The fleet.
        started = time.time()
        for region in regions:
            for k in range(args.workers_per_region):
                processes.append(webnet("worker", "--region", region, "--name", f"{region}-{k}",
                                        "--db-max-connections", str(args.worker_connections),
                                        log=f"worker-{region}-{k}.log"))
        healthy = wait_for(lambda: one(url, "SELECT count(*) FILTER (WHERE health_status = "
                                            f"'healthy') = {len(regions)} FROM regions") == "t",
                           180)
        to_healthy = time.time() - started
        check(bool(healthy), f"all {len(regions)} regions healthy after starting "
                             f"{fleet_size} workers ({to_healthy:.1f} s)")

        say(f"fleet healthy after {to_healthy:.1f} s; sampling it idle for 22 s")
        # 3. Idle.
        time.sleep(12)  # past the pools' idle timeout (10 s)
        idle_from = time.time()
        before = one(url, "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables "
                          "WHERE relname = 'worker_heartbeats'")
        cpu_before = cpu_times()
        time.sleep(10)
        cpu_after = cpu_times()
        idle_cpu = 100 * (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1])
        after = one(url, "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables "
                         "WHERE relname = 'worker_heartbeats'")
        idle_until = time.time()
        beats_per_second = (int(after) - int(before)) / (idle_until - idle_from + 0.0)
        _, idle_workers = sampler.most(idle_from, idle_until)
        rss = [rss_mib(p.pid) for p in processes[1:]]
        passes = []
        for line in (logs / "serve.log").read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            fields = entry.get("fields", {})
            if fields.get("message") == "health monitor pass" and \
                    calendar.timegm(time.strptime(entry["timestamp"][:19],
                                                  "%Y-%m-%dT%H:%M:%S")) >= idle_from:
                passes.append(float(fields["elapsed_ms"]))
        if bouncer:
            idle_all, _ = sampler.most(idle_from, idle_until)
            check(idle_all <= fleet_size + 2 + args.pgbouncer_pool,
                  f"idle fleet and server held {idle_all} connections (budget: 1 direct per worker, "
                  f"2 for the server, PgBouncer's {args.pgbouncer_pool})")
        else:
            check(idle_workers <= 2 * fleet_size,
                  f"idle fleet held {idle_workers} connections (budget: 2 per worker = {2 * fleet_size})")

        say(f"fleet latency probe: {args.probe_jobs} jobs at {args.probe_rate:.0f}/s over every region")
        # The same load as the baseline's, spread over the fleet: what 200 workers cost a job.
        last = int(one(url, "SELECT coalesce(max(id), 0) FROM jobs"))
        spread = [ids[i] for i in range(len(devices_of[regions[0]])) for ids in devices_of.values()
                  if i < len(ids)][:args.probe_jobs]
        enqueue(port, token, spread, args.probe_rate)
        wait_for(lambda: one(url, f"SELECT count(*) = {len(spread)} FROM jobs "
                                  f"WHERE id > {last} AND status IN {TERMINAL}") == "t", 60)
        fleet_probe = start_to_claim_ms(url, last)
        fleet_p50 = statistics.median(fleet_probe)
        fleet_finish = statistics.median(enqueue_to_finish_ms(url, last))
        check(fleet_p50 <= 2 * baseline,
              f"enqueue->start p50 at {args.probe_rate:.0f} jobs/s: {fleet_size} workers "
              f"{fleet_p50:.2f} ms, one worker {baseline:.2f} ms (limit 2x)")

        # 4. 10,000 jobs, with the database stopped for a while once half have finished.
        last = int(one(url, "SELECT coalesce(max(id), 0) FROM jobs"))
        outage = {}

        def outage_midway():
            half = args.jobs // 2
            wait_for(lambda: int(one(url, f"SELECT count(*) FROM jobs WHERE id > {last} AND "
                                          f"status IN {TERMINAL}") or 0) >= half, 600, 0.5)
            before = one(url, f"SELECT max(id) FROM jobs WHERE id > {last} AND "
                              f"status IN {TERMINAL}")
            outage["pre_outage_job"] = int(before or last)
            outage["stopped"] = time.time()
            say("stopping PostgreSQL")
            pg.stop()
            time.sleep(args.outage)
            say("starting PostgreSQL again")
            pg.start()
            outage["back"] = time.time()
            # Every region healthy again; the monitor needs a fresh heartbeat from each.
            wait_for(lambda: one(url, "SELECT count(*) FILTER (WHERE health_status = "
                                      f"'healthy') = {len(regions)} FROM regions") == "t",
                     60, 0.25)
            outage["healthy"] = time.time()
            for row in sql(url, "SELECT identifier, health_status, health_message FROM regions "
                                "WHERE health_status <> 'healthy' ORDER BY id LIMIT 10") or []:
                say(f"not healthy after the outage: {' | '.join(row)}")

        say(f"enqueuing {args.jobs} jobs at {args.rate:.0f}/s; PostgreSQL stops for "
            f"{args.outage:.0f} s once half have finished")
        fault = threading.Thread(target=outage_midway)
        fault.start()
        enqueue_started = time.time()
        all_devices = [d for ids in devices_of.values() for d in ids]
        random.shuffle(all_devices)
        accepted, retries = enqueue(port, token, all_devices[:args.jobs], args.rate)
        enqueued = time.time() - enqueue_started
        say(f"enqueued {accepted} jobs ({retries} retries); waiting for the outage and the drain")
        fault.join()
        say(f"PostgreSQL back; every region healthy {outage.get('healthy', 0) - outage.get('back', 0):.1f} s later; draining")
        drained = wait_for(lambda: one(url, f"SELECT count(*) FILTER (WHERE status NOT IN "
                                            f"{TERMINAL}) = 0 FROM jobs WHERE id > {last}") == "t",
                           600, 0.5)
        drain_time = time.time() - enqueue_started
        counts = dict(sql(url, f"SELECT status, count(*) FROM jobs WHERE id > {last} "
                               "GROUP BY status") or [])
        total = sum(int(v) for v in counts.values())
        # Before the outage: what the fleet does in steady state.
        before_outage = sorted(
            v for v in start_to_claim_ms(url, last, outage.get("pre_outage_job"))
        )
        p50 = percentile(before_outage, 50)
        most_all, most_workers = sampler.most(started)
        after_all, after_workers = sampler.most(outage.get("back", 0))
        sampler.running = False

        check(bool(drained) and total >= accepted,
              f"every job finished: {total} jobs ({accepted} accepted by the API, {retries} "
              f"requests retried during the outage) in {drain_time:.0f} s")
        check(int(counts.get("success", 0)) == total,
              f"every job succeeded: {json.dumps(counts, sort_keys=True)}")
        regained = outage.get("healthy", float("inf")) - outage.get("back", 0)
        check(regained <= 15,
              f"every region healthy again {regained:.1f} s after PostgreSQL returned "
              f"(down {args.outage:.0f} s)")
        # Through PgBouncer, its server connections take the application_name of the client
        # they serve at the moment: only the total is a direct measure there.
        check((bouncer is not None or most_workers <= worker_budget) and most_all <= budget,
              f"connections never above the budget: at most {most_workers} named 'webnet worker' "
              f"(budget {worker_budget}), {most_all} in all "
              f"(budget {budget}); after the outage at most {after_workers} from workers")

        via = f", through PgBouncer ({args.pgbouncer_pool} server connections)" if bouncer else ""
        print(f"\n## {fleet_size} worker processes ({len(regions)} regions x "
              f"{args.workers_per_region}) on one PostgreSQL{via}\n")
        print("| measure | value |")
        print("| --- | --- |")
        rows = [
            ("time until every region is healthy", f"{to_healthy:.1f} s"),
            ("idle fleet's connections (most seen)", f"{idle_workers} ({idle_workers / fleet_size:.2f} per worker)"),
            ("worker RSS, mean / max", f"{statistics.mean(rss):.1f} / {max(rss):.1f} MiB"),
            ("heartbeat writes per second", f"{beats_per_second:.0f}"),
            ("machine CPU busy while the fleet idles", f"{idle_cpu:.0f} % of {os.cpu_count()} cores"),
            ("health monitor pass, p50 / max", f"{percentile(passes, 50):.2f} / {max(passes, default=0):.2f} ms ({len(passes)} passes)"),
            ("jobs enqueued through the API", f"{accepted} in {enqueued:.0f} s (target rate {args.rate:.0f}/s)"),
            (f"enqueue->start p50 / p99 at {args.probe_rate:.0f} jobs/s, one worker (baseline)",
             f"{baseline:.2f} / {percentile(baseline_probe, 99):.2f} ms"),
            (f"enqueue->start p50 / p99 at {args.probe_rate:.0f} jobs/s, {fleet_size} workers",
             f"{fleet_p50:.2f} / {percentile(fleet_probe, 99):.2f} ms"),
            (f"enqueue->finish p50 at {args.probe_rate:.0f} jobs/s, one worker / {fleet_size} workers",
             f"{baseline_finish:.2f} / {fleet_finish:.2f} ms"),
            ("enqueue->start p50 / p99 during the drain, before the outage",
             f"{p50:.2f} / {percentile(before_outage, 99):.2f} ms"),
            ("PostgreSQL stopped", f"{args.outage:.0f} s, after {outage.get('pre_outage_job', 0) - last} jobs had finished"),
            ("every region healthy again after its return", f"{regained:.1f} s"),
            ("all jobs finished", f"{drain_time:.0f} s after the first was enqueued"),
            ("most connections, workers / all", f"{most_workers} / {most_all}"),
        ]
        for name, value in rows:
            print(f"| {name} | {value} |")
        print()
        print("\n".join(report))
    finally:
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        if bouncer:
            bouncer.stop()
        if os.environ.get("KEEP"):
            print(f"kept {pg.dir}")
        else:
            pg.remove()
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
