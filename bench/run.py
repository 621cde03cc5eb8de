"""Run the workloads against the baseline and the chat server; print one table.

`.venv/bin/python -m bench --help` lists the options; bench/README.md says what is measured.
"""

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LOADGEN = BENCH / "loadgen"
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
# Where the measured server's code is: the working tree, or a commit exported by --ref.
APP_ROOT = ROOT
PYTHON = VENV_BIN / "python"
CLK_TCK = os.sysconf("SC_CLK_TCK")

SERVER_CORE, LOAD_CORE = "0", "1"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
DB_NAME = "chat_bench"

SERVERS = {
    # name: (ASGI application, settings module)
    "baseline": ("bench.baseline.asgi:application", "bench.baseline.settings"),
    "server": ("chatsite.asgi:application", "chatsite.settings"),
    # W3 only: daphne with an application that accepts and says hello (bench/hello/).
    "hello": ("bench.hello.asgi:application", "chatsite.settings"),
}

FULL = {
    "pairs": 50,
    "w1_warmup_s": 2,
    "w1_seconds": 10,
    "w2_sizes": (200, 1000),
    "w2_repeats": 20,
    "w2_warmup": 3,
    "w3_sockets": 1000,
    "w3_concurrency": 50,
    "w4_users": 10_000,
    "w4_messages": 1_000_000,
    "w4_requests": 200,
    "w4_syncs": 50,
    "w4_warmup": 10,
    "settle_s": 2.5,
    "w3_idle_s": 3,
}
QUICK = {
    **FULL,
    "pairs": 10,
    "w1_warmup_s": 1,
    "w1_seconds": 2,
    "w2_sizes": (100,),
    "w2_repeats": 5,
    "w2_warmup": 2,
    "w3_sockets": 100,
    "w4_users": 1_000,
    "w4_messages": 10_000,
    "w4_requests": 30,
    "w4_syncs": 10,
    "w4_warmup": 3,
    "settle_s": 1.2,
    "w3_idle_s": 2,
}
# A query that reads more rows of chat_message than this, and over 4 times what it returns, is
# reported: its cost grows with the table or a conversation, not with the page.
ROWS_READ_LIMIT = 1000
SYNC_BACK = 50_000  # W4 syncs from this many ids below the newest: more than 500 visible


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- processes


class Processes:
    """Every process the harness starts, so each is stopped by its PID whatever happens."""

    def __init__(self) -> None:
        self._live: dict[int, tuple[str, subprocess.Popen]] = {}

    def start(self, name: str, args: list[str], **kwargs: Any) -> subprocess.Popen:
        process = subprocess.Popen(args, start_new_session=True, **kwargs)
        self._live[process.pid] = (name, process)
        return process

    def stop(self, process: subprocess.Popen, *, grace: float = 10.0) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait(5)
        self._live.pop(process.pid, None)

    def stop_all(self) -> None:
        for _, process in list(self._live.values()):
            self.stop(process, grace=5.0)


PROCESSES = Processes()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_checked(args: list[str], *, env: dict[str, str], what: str, log: Path) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(map(str, args))}\n")
        out.flush()
        process = PROCESSES.start(
            what,
            [str(a) for a in args],
            cwd=APP_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            code = process.wait(1800)
        finally:
            PROCESSES.stop(process)
    if code != 0:
        raise BenchError(f"{what} failed (exit {code}); see {log}")


# ---------------------------------------------------------------- measurements


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def machine_busy_ticks() -> int:
    """Busy time of all cores together (everything but idle and iowait), in clock ticks."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class Sample:
    at: float
    server: int | None
    loadgen: int | None
    redis: int | None
    postgres: dict[int, int]
    pg_active_ms: float | None
    pg_sessions: int | None
    server_rss_kib: int | None
    machine: int


@dataclass
class Probe:
    """Samples CPU of the server, the load generator, Redis and the database's backends."""

    server_pid: int
    loadgen_pid: int
    redis_pid: int | None
    db_name: str
    samples: dict[str, Sample] = field(default_factory=dict)
    conn: psycopg.Connection | None = None

    def sample(self, name: str) -> None:
        postgres: dict[int, int] = {}
        active_ms = sessions = None
        with contextlib.suppress(psycopg.Error):
            if self.conn is None:
                # One connection for all samples, so the probe opens no session in between.
                self.conn = psycopg.connect(
                    f"{PG_URL}/{self.db_name}", autocommit=True, connect_timeout=5
                )
            pids = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.db_name],
            ).fetchall()
            for (pid,) in pids:
                ticks = cpu_ticks(pid)
                if ticks is not None:
                    postgres[pid] = ticks
            # Statement time and sessions of the whole database: these include backends that
            # opened and closed between two samples, which the CPU of live backends misses.
            self.conn.execute("SELECT pg_stat_clear_snapshot()")
            active_ms, sessions = self.conn.execute(
                "SELECT active_time, sessions FROM pg_stat_database WHERE datname = %s",
                [self.db_name],
            ).fetchone()
        self.samples[name] = Sample(
            at=time.monotonic(),
            server=cpu_ticks(self.server_pid),
            loadgen=cpu_ticks(self.loadgen_pid),
            redis=cpu_ticks(self.redis_pid) if self.redis_pid else None,
            postgres=postgres,
            pg_active_ms=active_ms,
            pg_sessions=sessions,
            server_rss_kib=rss_kib(self.server_pid),
            machine=machine_busy_ticks(),
        )

    def cpu_percent(self, start: str = "start", end: str = "end") -> dict[str, float | None]:
        a, b = self.samples.get(start), self.samples.get(end)
        if a is None or b is None or b.at <= a.at:
            return {}
        seconds = b.at - a.at

        def percent(x: int | None, y: int | None) -> float | None:
            if x is None or y is None:
                return None
            return 100.0 * (y - x) / CLK_TCK / seconds

        pg = sum(ticks - a.postgres.get(pid, 0) for pid, ticks in b.postgres.items())
        cpu = {
            "server_cpu": percent(a.server, b.server),
            "loadgen_cpu": percent(a.loadgen, b.loadgen),
            "redis_cpu": percent(a.redis, b.redis),
            "postgres_cpu": 100.0 * pg / CLK_TCK / seconds,
        }
        ours = sum(v for v in cpu.values() if v is not None)
        cpu["other_cpu"] = max(0.0, percent(a.machine, b.machine) - ours)
        if a.pg_active_ms is not None and b.pg_active_ms is not None:
            cpu["postgres_busy"] = (b.pg_active_ms - a.pg_active_ms) / 10 / seconds
            cpu["postgres_sessions"] = b.pg_sessions - a.pg_sessions
        return cpu

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()


def redis_pid() -> int | None:
    with contextlib.suppress(redis.RedisError):
        pid = int(redis.Redis.from_url(REDIS_URL).info("server")["process_id"])
        if Path(f"/proc/{pid}").exists():
            return pid
    return None


def redis_flush() -> None:
    redis.Redis.from_url(REDIS_URL).flushdb()


# ---------------------------------------------------------------- database


def database_ensure(name: str) -> bool:
    """Create the database when missing; True when it was created."""
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return not exists


def database_truncate_messages(name: str) -> None:
    with psycopg.connect(f"{PG_URL}/{name}", autocommit=True) as conn:
        conn.execute("TRUNCATE chat_message, chat_readmarker")


# ---------------------------------------------------------------- the bench


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = QUICK if args.quick else FULL
        self.stamp = time.strftime("%Y%m%d-%H%M%S")
        self.logs = RESULTS / "logs" / self.stamp
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_pid = redis_pid()
        self.users: dict[str, Any] = {}
        self.history_users: dict[str, Any] = {}
        self.raw: list[dict[str, Any]] = []
        # A commit measured with --ref gets databases of its own: its migrations may differ.
        self.db_suffix = f"_{args.ref_sha}" if args.ref else ""
        self.db = DB_NAME + self.db_suffix
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.explain: dict[str, Any] | None = None

    def env(self, *, database: str, settings_module: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAT_"))}
        env.update(
            DJANGO_SETTINGS_MODULE=settings_module,
            DJANGO_SECRET_KEY="bench-" + "k" * 60,
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
            DATABASE_URL=f"{PG_URL}/{database}",
            REDIS_URL=REDIS_URL,
            CHAT_RATE_LIMIT="0",
            CHAT_FRAME_RATE_LIMIT="0",
            CHAT_MAX_SOCKETS_PER_USER="100000",
            PYTHONUNBUFFERED="1",
        )
        if APP_ROOT != ROOT:
            # The server's code from the exported commit (the current folder comes first), the
            # bench itself from the working tree.
            env["PYTHONPATH"] = str(ROOT)
        return env

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # -- setup

    def prepare(self) -> None:
        if shutil.which("node") is None:
            raise BenchError("node is not installed: Node.js 20 runs the load generator.")
        if not (LOADGEN / "node_modules" / "ws").exists():
            self.log("npm ci (bench/loadgen)")
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"],
                cwd=LOADGEN,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.RedisError as error:
            raise BenchError(f"Redis at {REDIS_URL} does not answer: {error}") from error
        try:
            psycopg.connect(f"{PG_URL}/postgres", connect_timeout=5).close()
        except psycopg.Error as error:
            raise BenchError(f"PostgreSQL at {PG_URL} does not answer: {error}") from error
        redis_flush()
        env = self.env(database=self.db, settings_module="chatsite.settings")
        if database_ensure(self.db):
            self.log(f"created database {self.db}")
        setup_log = self.logs / "setup.log"
        self.log("migrate and collectstatic")
        run_checked(
            [PYTHON, "manage.py", "migrate", "--noinput"], env=env, what="migrate", log=setup_log
        )
        run_checked(
            [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
            env=env,
            what="collectstatic",
            log=setup_log,
        )
        needed = max(2 * self.sizes["pairs"], *self.sizes["w2_sizes"], self.sizes["w3_sockets"])
        self.log(f"{needed} users and sessions in {self.db}")
        self.users = self.fixtures_users(env, prefix="bench", count=needed)

    def fixtures_users(self, env: dict[str, str], *, prefix: str, count: int) -> dict[str, Any]:
        out = self.logs / f"users-{prefix}.json"
        run_checked(
            [
                PYTHON,
                "-m",
                "bench.fixtures",
                "users",
                "--prefix",
                prefix,
                "--count",
                str(count),
                "--out",
                out,
            ],
            env=env,
            what="fixtures users",
            log=self.logs / "setup.log",
        )
        return json.loads(out.read_text())

    def history_db(self) -> str:
        return f"chat_bench_history_{self.sizes['w4_messages']}{self.db_suffix}"

    def prepare_history(self) -> None:
        name = self.history_db()
        env = self.env(database=name, settings_module="chatsite.settings")
        database_ensure(name)
        log = self.logs / "setup.log"
        run_checked([PYTHON, "manage.py", "migrate", "--noinput"], env=env, what="migrate", log=log)
        self.log(f"W4 data in {name} (generated once, then kept)")
        run_checked(
            [
                PYTHON,
                "-m",
                "bench.fixtures",
                "history",
                "--users",
                str(self.sizes["w4_users"]),
                "--messages",
                str(self.sizes["w4_messages"]),
            ],
            env=env,
            what="fixtures history",
            log=log,
        )
        self.history_users = self.fixtures_users(env, prefix="hist", count=2)

    # -- one server, one workload

    def start_server(self, kind: str, *, database: str, tag: str) -> tuple[subprocess.Popen, int]:
        app, settings_module = SERVERS[kind]
        port = free_port()
        env = self.env(database=database, settings_module=settings_module)
        log = open(self.logs / f"{tag}.server.log", "w")  # noqa: SIM115 (closed with the process)
        process = PROCESSES.start(
            kind,
            [
                "taskset",
                "-c",
                SERVER_CORE,
                str(VENV_BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                app,
            ],
            cwd=APP_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(f"{kind} exited with {process.returncode}; see {log.name}")
            with contextlib.suppress(OSError, urllib.error.URLError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return process, port
            time.sleep(0.2)
        raise BenchError(f"{kind} did not answer /healthz within 60 s; see {log.name}")

    def run_loadgen(
        self,
        config: dict[str, Any],
        *,
        server: subprocess.Popen,
        database: str,
        tag: str,
        timeout: float = 600,
    ) -> tuple[dict[str, Any], Probe]:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as cfg:
            json.dump(config, cfg)
        stderr = open(self.logs / f"{tag}.loadgen.log", "w")  # noqa: SIM115
        process = PROCESSES.start(
            "loadgen",
            ["taskset", "-c", LOAD_CORE, "node", str(LOADGEN / "loadgen.mjs"), cfg.name],
            cwd=LOADGEN,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        stderr.close()
        probe = Probe(server.pid, process.pid, self.redis_pid, database)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        profiler = None
        result = None
        try:
            for line in process.stdout:
                if line.startswith("MARK "):
                    name = line.split()[1]
                    probe.sample(name)
                    if self.args.py_spy and name == "start":
                        profiler = self.start_profiler(server.pid, tag)
                    if profiler is not None and name == "end":
                        self.stop_profiler(profiler)
                        profiler = None
                    process.stdin.write("\n")
                    process.stdin.flush()
                elif line.startswith("RESULT "):
                    result = json.loads(line[len("RESULT ") :])
            process.wait()
        finally:
            timer.cancel()
            probe.close()
            if profiler is not None:
                self.stop_profiler(profiler)
            PROCESSES.stop(process)
            os.unlink(cfg.name)
        if result is None:
            raise BenchError(
                f"load generator failed (exit {process.returncode}); see "
                f"{self.logs / (tag + '.loadgen.log')}"
            )
        return result, probe

    def start_profiler(self, pid: int, tag: str) -> subprocess.Popen | None:
        py_spy = VENV_BIN / "py-spy"
        if not py_spy.exists():
            self.log("--py-spy: .venv/bin/py-spy is missing (.venv/bin/pip install py-spy)")
            return None
        return PROCESSES.start(
            "py-spy",
            [
                "taskset",
                "-c",
                LOAD_CORE,
                str(py_spy),
                "record",
                "--pid",
                str(pid),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "-o",
                str(self.logs / f"{tag}.folded"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop_profiler(self, profiler: subprocess.Popen) -> None:
        # py-spy writes its profile on SIGINT.
        with contextlib.suppress(ProcessLookupError):
            profiler.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            profiler.wait(30)
        PROCESSES.stop(profiler)

    def one(
        self, kind: str, workload: str, run: int, config: dict[str, Any], *, database: str = ""
    ) -> None:
        tag = f"run{run}-{workload}-{kind}"
        config = {**config, "settle_s": self.sizes["settle_s"]}
        self.log(f"run {run}: {workload} on {kind}")
        redis_flush()
        database = database or self.db
        if database == self.db:
            database_truncate_messages(self.db)
        server, port = self.start_server(kind, database=database, tag=tag)
        try:
            users = self.history_users if workload == "W4" else self.users
            result, probe = self.run_loadgen(
                {
                    **config,
                    "port": port,
                    "users": users["users"],
                    "cookie_name": users["cookie_name"],
                },
                server=server,
                database=database,
                tag=tag,
            )
        finally:
            PROCESSES.stop(server)
            redis_flush()
        result.update(probe.cpu_percent())
        if "idle" in probe.samples:
            before = probe.samples["start"].server_rss_kib
            after = probe.samples["idle"].server_rss_kib
            result["rss_before_kib"], result["rss_after_kib"] = before, after
            result["kib_per_socket"] = (after - before) / config["sockets"]
        result.update(workload=workload, server=kind, run=run)
        self.raw.append(result)
        for key in ("lost_dms", "bad_responses", "missing", "unexpected_closes"):
            if result.get(key):
                note = f"run {run} {workload} {kind}: {key} = {result[key]}"
                if kind == "baseline" and key in ("lost_dms", "missing"):
                    # RedisChannelLayer with its default capacity drops messages under load:
                    # a property of the baseline, not a failure of the bench.
                    self.warnings.append(note + " (dropped over the channel layer's capacity)")
                else:
                    self.problems.append(note)

    def workloads(self) -> list[tuple[str, dict[str, Any]]]:
        s = self.sizes
        chosen = []
        if "W1" in self.args.only:
            chosen.append(
                (
                    "W1",
                    {
                        "workload": "dm",
                        "pairs": s["pairs"],
                        "warmup_s": s["w1_warmup_s"],
                        "seconds": s["w1_seconds"],
                    },
                )
            )
        if "W2" in self.args.only:
            for size in s["w2_sizes"]:
                chosen.append(
                    (
                        f"W2-{size}",
                        {
                            "workload": "broadcast",
                            "clients": size,
                            "repeats": s["w2_repeats"],
                            "warmup_posts": s["w2_warmup"],
                        },
                    )
                )
        if "W3" in self.args.only:
            chosen.append(
                (
                    "W3",
                    {
                        "workload": "idle",
                        "sockets": s["w3_sockets"],
                        "concurrency": s["w3_concurrency"],
                        "warmup_sockets": 20,
                        "idle_s": s["w3_idle_s"],
                    },
                )
            )
        return chosen

    def run(self) -> None:
        self.prepare()
        kinds = ["server"] if self.args.skip_baseline else ["baseline", "server"]
        w4 = "W4" in self.args.only
        if w4:
            self.prepare_history()
        s = self.sizes
        w4_config = {
            "workload": "history",
            "requests": s["w4_requests"],
            "syncs": s["w4_syncs"],
            "warmup": s["w4_warmup"],
            "peer": self.history_users["users"][1]["username"] if w4 else "",
            "sync_back": SYNC_BACK,
        }
        for run in range(1, self.args.runs + 1):
            for workload, config in self.workloads():
                # Alternate the order, so drift on a shared machine does not favour one side.
                order = kinds + ["hello"] if workload == "W3" else kinds
                for kind in order if run % 2 else list(reversed(order)):
                    self.one(kind, workload, run, config)
            if w4:
                self.one("server", "W4", run, w4_config, database=self.history_db())
        if w4:
            self.explain_history()

    def explain_history(self) -> None:
        name = self.history_db()
        out = self.logs / "explain.json"
        env = self.env(database=name, settings_module="chatsite.settings")
        self.log("EXPLAIN of the W4 reads")
        redis_flush()
        try:
            run_checked(
                [
                    PYTHON,
                    "-m",
                    "bench.fixtures",
                    "explain",
                    "--user",
                    self.history_users["users"][0]["username"],
                    "--peer",
                    self.history_users["users"][1]["username"],
                    "--sync-back",
                    str(SYNC_BACK),
                    "--out",
                    out,
                ],
                env=env,
                what="fixtures explain",
                log=self.logs / "explain.log",
            )
        finally:
            redis_flush()
        self.explain = json.loads(out.read_text())
        for plan in self.explain["plans"]:
            if plan["seq_scan_on_chat_message"]:
                self.problems.append(f"W4 {plan['read']}: Seq Scan on chat_message")
            if reads_too_much(plan):
                self.warnings.append(
                    f"W4 {plan['read']}: reads {plan['chat_message_rows_read']:,} rows of "
                    f"chat_message to return {plan['rows_returned']:,}"
                )


# ---------------------------------------------------------------- report

# (workload, metric key, label, higher is better)
ROWS = [
    ("W1", "dms_per_s", "DMs/s", True),
    ("W1", "p50_ms", "latency p50 ms", False),
    ("W1", "p99_ms", "latency p99 ms", False),
    ("W1", "lost_dms", "DMs lost (resent after 3 s)", False),
    ("W2-*", "deliveries_per_s_p50", "deliveries/s (p50 of posts)", True),
    ("W2-*", "last_ms_p50", "last recipient ms (p50 of posts)", False),
    ("W2-*", "missing", "deliveries lost", False),
    ("W3", "handshakes_per_s", "handshakes/s", True),
    ("W3", "kib_per_socket", "KiB per idle socket", False),
    # Measured on bench/hello (daphne, no application work), shown in the server's column.
    ("W3", "hello:handshakes_per_s", "handshakes/s of daphne alone (hello only)", True),
    ("W3", "hello:kib_per_socket", "KiB per idle socket of daphne alone", False),
    ("W4", "history_dm.p50_ms", "DM history page p50 ms", False),
    ("W4", "history_dm.p99_ms", "DM history page p99 ms", False),
    ("W4", "history_all.p50_ms", "ALL history page p50 ms", False),
    ("W4", "history_all.p99_ms", "ALL history page p99 ms", False),
    ("W4", "conversations.p50_ms", "conversations p50 ms", False),
    ("W4", "conversations.p99_ms", "conversations p99 ms", False),
    ("W4", "sync.p50_ms", "500-message sync p50 ms", False),
    ("W4", "sync.p99_ms", "500-message sync p99 ms", False),
]
CPU_ROWS = [
    ("server_cpu", "CPU % server (core 0)"),
    ("loadgen_cpu", "CPU % load generator (core 1)"),
    ("redis_cpu", "CPU % Redis"),
    ("postgres_cpu", "CPU % PostgreSQL (live backends)"),
    ("postgres_busy", "PostgreSQL statement time, % of wall"),
    ("postgres_sessions", "PostgreSQL connections opened"),
    ("other_cpu", "CPU % all else on the machine"),
]


def lookup(result: dict[str, Any], key: str) -> float | None:
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value if isinstance(value, (int, float)) else None


def summarise(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "-"
    return f"{fmt(summary['median'])} [{fmt(summary['min'])}-{fmt(summary['max'])}]"


def table(raw: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    workloads = list(dict.fromkeys(r["workload"] for r in raw))
    lines, rows = [], []
    for workload in workloads:
        specs = [
            (key, label, higher)
            for w, key, label, higher in ROWS
            if w == workload or (w == "W2-*" and workload.startswith("W2-"))
        ]
        specs += [(key, label, None) for key, label in CPU_ROWS]
        for key, label, higher in specs:
            entry = {"workload": workload, "metric": label, "key": key}
            source, _, measured = key.rpartition(":")
            for kind in ("baseline", "server"):
                # "hello:key" rows show the hello-only server's figure in the server's column.
                if source and kind == "baseline":
                    entry[kind] = None
                    continue
                values = [
                    v
                    for r in raw
                    if r["workload"] == workload and r["server"] == (source or kind)
                    if (v := lookup(r, measured)) is not None
                ]
                entry[kind] = summarise(values)
            ratio = None
            if entry["baseline"] and entry["server"] and entry["baseline"]["median"]:
                ratio = entry["server"]["median"] / entry["baseline"]["median"]
            entry["ratio"] = ratio
            entry["higher_is_better"] = higher
            rows.append(entry)
    headers = [
        "workload",
        "metric",
        "baseline: median [min-max]",
        "server: median [min-max]",
        "server/baseline",
    ]
    body = []
    for entry in rows:
        ratio = "-"
        if entry["ratio"] is not None:
            arrow = (
                ""
                if entry["higher_is_better"] is None
                else (" (higher is better)" if entry["higher_is_better"] else " (lower is better)")
            )
            ratio = f"{entry['ratio']:.2f}x{arrow}"
        body.append(
            [
                entry["workload"],
                entry["metric"],
                cell(entry["baseline"]),
                cell(entry["server"]),
                ratio,
            ]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    lines.append(line(headers))
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    previous = None
    for cells in body:
        shown = list(cells)
        if cells[0] == previous:
            shown[0] = ""
        previous = cells[0]
        lines.append(line(shown))
    return "\n".join(lines), rows


def reads_too_much(plan: dict[str, Any]) -> bool:
    """A query whose work grows with the data, not with the page it returns."""
    read = plan.get("chat_message_rows_read", 0)
    return read > ROWS_READ_LIMIT and read > 4 * plan.get("rows_returned", 0)


def plan_outline(plan: str) -> list[str]:
    """The plan's nodes and conditions, without buffer and timing detail (full in the JSON)."""
    skipped = ("Buffers:", "Planning", "Heap Blocks:", "Sort Method:", "Buckets:", "Execution")
    return [line for line in plan.splitlines() if not line.strip().startswith(skipped)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the chat server against a tutorial-grade Channels baseline.",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help="runs of every workload on each server (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--only",
        default="W1,W2,W3,W4",
        help="comma-separated workloads among W1,W2,W3,W4 (default: all)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts for a smoke run (under a minute)"
    )
    parser.add_argument(
        "--ref",
        help="measure the server as committed at this git ref (exported to a temporary "
        "folder, with databases of its own) instead of the working tree",
    )
    parser.add_argument(
        "--skip-baseline", action="store_true", help="measure the chat server only (no ratios)"
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="record a py-spy profile of the server during each measured phase "
        "(into bench/results/logs/<timestamp>/; needs .venv/bin/py-spy)",
    )
    args = parser.parse_args(argv)
    args.only = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = args.only - {"W1", "W2", "W3", "W4"}
    if unknown:
        parser.error(f"--only takes W1, W2, W3, W4; got {', '.join(sorted(unknown))}")
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    return args


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def what_is_measured(args: argparse.Namespace) -> dict[str, Any]:
    """The commit measured, and for the working tree the server files that differ from it."""
    if args.ref:
        return {"ref": args.ref, "commit": args.ref_sha, "changed_files": []}
    changed = [
        line[3:]
        for line in git("status", "--porcelain", "--untracked-files=all").splitlines()
        if line[3:].startswith(("chat/", "chatsite/", "templates/", "requirements"))
    ]
    return {
        "ref": "working tree",
        "commit": git("rev-parse", "--short", "HEAD"),
        "changed_files": changed,
    }


def export_ref(ref: str) -> Path:
    """The files of commit `ref` in a temporary folder (git archive: .git is not touched)."""
    folder = Path(tempfile.mkdtemp(prefix="chat-bench-ref-"))
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode != 0:
        shutil.rmtree(folder)
        raise BenchError(f"git archive {ref} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main(argv: list[str] | None = None) -> int:
    global APP_ROOT
    args = parse_args(argv)
    exported = None
    if args.ref:
        args.ref_sha = git("rev-parse", "--short", args.ref)
        if not args.ref_sha:
            print(f"bench: no commit {args.ref!r} in this repository", file=sys.stderr)
            return 2
        exported = APP_ROOT = export_ref(args.ref)
    measured = what_is_measured(args)
    # Explicit, so a harness started in the background (SIGINT ignored) still stops cleanly.
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    # 1,000 sockets on each side need more descriptors than some shells allow by default.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    bench = Bench(args)
    started = time.monotonic()
    failed: BaseException | None = None
    try:
        bench.run()
    except BenchError as error:
        failed = error
    except (KeyboardInterrupt, Exception) as error:  # noqa: BLE001
        failed = error
        if not isinstance(error, KeyboardInterrupt):
            traceback.print_exc()
    finally:
        PROCESSES.stop_all()
        with contextlib.suppress(redis.RedisError):
            redis_flush()
        if exported is not None:
            shutil.rmtree(exported, ignore_errors=True)
    if not bench.raw:
        print(f"bench: failed: {failed!r}", file=sys.stderr)
        return 2
    text, rows = table(bench.raw)
    mode = "quick" if args.quick else "full"
    print(
        f"\nchat benchmark, {mode}, {args.runs} run(s), {time.monotonic() - started:.0f} s; "
        f"server pinned to core {SERVER_CORE}, load generator to core {LOAD_CORE}; "
        f"medians [min-max] over runs"
    )
    if args.ref:
        print(f"server measured: commit {measured['commit']} (--ref {args.ref})")
    else:
        changed = len(measured["changed_files"])
        print(
            f"server measured: working tree at {measured['commit']}"
            + (f", {changed} server files changed since" if changed else "")
        )
    print(text)
    if bench.explain:
        print("\nW4 query plans (EXPLAIN ANALYZE of every query on chat_message):")
        for plan in bench.explain["plans"]:
            verdict = "SEQ SCAN" if plan["seq_scan_on_chat_message"] else "index scans only"
            verdict += (
                f"; reads {plan.get('chat_message_rows_read', 0):,} rows of chat_message, "
                f"returns {plan.get('rows_returned', 0):,}"
            )
            if reads_too_much(plan):
                verdict += " (WARNING: grows with the data)"
            print(f"\n-- {plan['read']}: {verdict}\n{plan['sql']}")
            print("\n".join(plan_outline(plan["plan"])))
    if failed is not None:
        bench.problems.append(f"stopped early: {failed!r}")
    if bench.warnings:
        print("\nWarnings:", *bench.warnings, sep="\n  ")
    if bench.problems:
        print("\nProblems:", *bench.problems, sep="\n  ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{bench.stamp}.json"
    out.write_text(
        json.dumps(
            {
                "started": bench.stamp,
                "mode": mode,
                "runs": args.runs,
                "sizes": bench.sizes,
                "only": sorted(args.only),
                "table": rows,
                "results": bench.raw,
                "explain": bench.explain,
                "measured": measured,
                "problems": bench.problems,
                "warnings": bench.warnings,
                "machine": {
                    "cpus": os.cpu_count(),
                    "server_core": SERVER_CORE,
                    "load_core": LOAD_CORE,
                    "load": os.getloadavg(),
                },
            },
            indent=2,
        )
    )
    print(f"\nJSON: {out.relative_to(ROOT)}; logs: {bench.logs.relative_to(ROOT)}")
    return 1 if bench.problems else 0
