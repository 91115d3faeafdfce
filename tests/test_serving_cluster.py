"""The HAProxy configuration explorer.serving.cluster writes for `make serve-class`: sticky by an inserted cookie
(never by source address), health checks on Streamlit's health endpoint, websocket tunnels kept open, one server per
replica; and HAProxy itself accepts it. The processes are driven in tests/browser/test_replicas_browser.py."""
import re
import subprocess

import pytest

from tests.serving_helpers import require_haproxy
from explorer.serving.cluster import COOKIE, Cluster


@pytest.fixture
def cluster(tmp_path):
    require_haproxy()
    return Cluster(3, 8500, bind="0.0.0.0", models=["tiny-gpt"], run_dir=tmp_path)


def test_sessions_stick_by_cookie_with_health_checks_and_long_lived_tunnels(cluster):
    cfg = cluster.config_text()
    assert re.search(rf"^\s*cookie {COOKIE} insert indirect nocache", cfg, re.M)
    assert not re.search(r"^\s*balance\s+source", cfg, re.M) and not re.search(r"^\s*hash-type", cfg, re.M)
    assert re.search(r"^\s*option httpchk GET /_stcore/health$", cfg, re.M)
    assert re.search(r"^\s*timeout tunnel \d+h$", cfg, re.M), "a websocket outlives a request's timeout"
    assert re.search(r"^\s*option redispatch$", cfg, re.M), "a dead replica's students go to another"
    servers = re.findall(r"^\s*server (r\d) 127\.0\.0\.1:(\d+) check .* cookie (r\d)$", cfg, re.M)
    assert [(name, int(port)) for name, port, _ in servers] == [(r.name, r.port) for r in cluster.replicas]
    assert all(name == cookie for name, _, cookie in servers)
    assert re.search(r"^\s*bind 0\.0\.0\.0:8500$", cfg, re.M)


def test_haproxy_accepts_the_configuration(cluster, tmp_path):
    path = tmp_path / "haproxy.cfg"
    path.write_text(cluster.config_text())
    check = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_replica_is_told_the_engine_url_and_one_cookie_secret(cluster):
    assert all(r.env["EXPLORER_ENGINE_URL"] == cluster.engine_url for r in cluster.replicas)
    secrets = {r.env["STREAMLIT_SERVER_COOKIE_SECRET"] for r in cluster.replicas}
    assert len(secrets) == 1 and len(secrets.pop()) >= 32, "a student moved to another replica keeps a valid cookie"
    assert not any("cookieSecret" in " ".join(r.cmd) for r in cluster.replicas), "never on a command line"
    assert cluster.engine_url.startswith("http://127.0.0.1:") and cluster.engine_url.endswith("/v1")


def test_without_haproxy_the_launcher_says_how_to_get_it(tmp_path):
    with pytest.raises(RuntimeError, match="apt-get install haproxy"):
        Cluster(2, 8500, run_dir=tmp_path, haproxy="no-such-haproxy")
