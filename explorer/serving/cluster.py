"""``python -m explorer.serving.cluster --replicas n --port 8500``: the app for a class larger than one process.

Starts one engine process (``python -m explorer.serving``), n Streamlit replicas of app.py on loopback ports
(each told the engine's URL in ``EXPLORER_ENGINE_URL``, so all of them generate through the one batched engine),
and HAProxy on ``--port`` in front of them, configured from deploy/haproxy.cfg.template: sticky sessions by an
inserted cookie, health checks on Streamlit's /_stcore/health, websocket tunnels kept open. It then watches them:
a process that dies is started again (unless ``--no-restart``); Ctrl-C (or SIGTERM) stops everything.

Each process writes its output to a log in ``--run-dir`` (default: /tmp/explorer-class-PORT), next to the
HAProxy configuration it was given.
"""
from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "haproxy.cfg.template"
COOKIE = "EXPLORER_REPLICA"
RESTART_DELAY_S = 2.0  # a process that dies at once is not restarted in a tight loop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass
class Child:
    """One supervised process: how to start it, how to tell it is ready, and its log."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str]
    port: int
    health_url: str | None = None  # None: ready once its port accepts connections
    process: subprocess.Popen | None = field(default=None, repr=False)
    restarts: int = 0

    def start(self) -> None:
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)  # Ctrl-C reaches the launcher alone

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if self.health_url is not None:
            return healthy(self.health_url)
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not ready after {timeout_s:.0f} s; see {self.log}")
            time.sleep(0.2)

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.alive:
            return
        self.process.terminate()
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(grace_s)


class Cluster:
    """The engine, the replicas and HAProxy; ``start()``, then ``supervise()`` until interrupted, then ``stop()``
    (or use it as a context manager: started on entry, stopped on exit)."""

    def __init__(self, replicas: int, port: int, *, bind: str = "127.0.0.1", models: list[str] | None = None,
                 run_dir: Path | None = None, restart: bool = True, haproxy: str = "haproxy",
                 maxconn: int = 4096, engine_port: int | None = None):
        if replicas < 1:
            raise ValueError("at least one replica")
        self.port, self.bind, self.restart = port, bind, restart
        self.run_dir = Path(run_dir or f"/tmp/explorer-class-{port}")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.haproxy_bin = shutil.which(haproxy)
        if self.haproxy_bin is None:
            raise RuntimeError("HAProxy is not installed: apt-get install haproxy (make test installs it)")
        self.maxconn = maxconn
        base_env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        engine_port = engine_port or free_port()
        self.engine_url = f"http://127.0.0.1:{engine_port}/v1"
        model_args = [arg for m in (models or ["smollm2"]) for arg in ("--model", m)]
        self.engine = Child("engine", [sys.executable, "-m", "explorer.serving", *model_args, "--port",
                                       str(engine_port)], self.run_dir / "engine.log", base_env, engine_port,
                            health_url=f"http://127.0.0.1:{engine_port}/health")
        # One cookie secret for all replicas: Streamlit signs its XSRF cookie with it, so a student moved to another
        # replica (theirs died) keeps a cookie the new one accepts (file uploads check it). In the environment, not
        # on the command line, where every user of the machine could read it.
        replica_env = dict(base_env, EXPLORER_ENGINE_URL=self.engine_url,
                           STREAMLIT_SERVER_COOKIE_SECRET=secrets.token_hex(32))
        self.replicas = []
        for i in range(1, replicas + 1):
            p = free_port()
            cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(p),
                   "--server.address", "127.0.0.1", "--server.headless", "true"]
            self.replicas.append(Child(f"r{i}", cmd, self.run_dir / f"r{i}.log", replica_env, p,
                                       health_url=f"http://127.0.0.1:{p}/_stcore/health"))
        self.config_path = self.run_dir / "haproxy.cfg"
        self.proxy = Child("haproxy", [self.haproxy_bin, "-db", "-f", str(self.config_path)],
                           self.run_dir / "haproxy.log", base_env, port)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        return f"http://{host}:{self.port}"

    def children(self) -> list[Child]:
        return [self.engine, *self.replicas, self.proxy]

    def config_text(self) -> str:
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check inter 1s fall 2 rise 2 cookie {r.name}"
                            for r in self.replicas)
        return Template(TEMPLATE.read_text()).substitute(maxconn=self.maxconn, bind=self.bind, port=self.port,
                                                         cookie=COOKIE, servers=servers)

    def start(self, ready_s: float = 180.0) -> "Cluster":
        self.config_path.write_text(self.config_text())
        check = subprocess.run([self.haproxy_bin, "-c", "-q", "-f", str(self.config_path)], capture_output=True,
                               text=True)
        if check.returncode != 0:
            raise RuntimeError(f"HAProxy refuses {self.config_path}: {check.stdout}{check.stderr}")
        try:
            for child in self.children():  # the engine and the replicas load at once; HAProxy last
                if child is self.proxy:
                    for waiting in (self.engine, *self.replicas):
                        waiting.wait_ready(ready_s)
                child.start()
            self.proxy.wait_ready(30)
        except BaseException:
            self.stop()
            raise
        return self

    def supervise(self, poll_s: float = 1.0) -> None:
        """Watch the processes until interrupted: one that died is reported and, with ``restart``, started again."""
        while True:
            for child in self.children():
                if child.process is not None and not child.alive:
                    code = child.process.returncode
                    print(f"{child.name} exited with {code}", flush=True)
                    if not self.restart:
                        child.process = None
                        continue
                    time.sleep(RESTART_DELAY_S)
                    child.restarts += 1
                    child.start()
                    print(f"{child.name} started again (pid {child.process.pid}); log: {child.log}", flush=True)
            time.sleep(poll_s)

    def stop(self) -> None:
        for child in reversed(self.children()):  # stop taking students first, then the replicas, the engine last
            child.stop()

    def __enter__(self) -> "Cluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m explorer.serving.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--port", type=int, default=8500, help="the students' port (HAProxy)")
    parser.add_argument("--bind", default="0.0.0.0", help="HAProxy's address: all interfaces, for a classroom")
    parser.add_argument("--model", action="append", help="the engine's models (default smollm2); repeatable")
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--no-restart", action="store_true", help="do not start a process that died again")
    args = parser.parse_args(argv)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    cluster = Cluster(args.replicas, args.port, bind=args.bind, models=args.model, run_dir=args.run_dir,
                      restart=not args.no_restart)
    try:
        cluster.start()
        print(f"{args.replicas} replicas behind HAProxy at {cluster.url} (bind {args.bind}); engine at "
              f"{cluster.engine_url}; logs in {cluster.run_dir}. Ctrl-C stops all.", flush=True)
        cluster.supervise()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
