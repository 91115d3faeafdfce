"""No traceback ever reaches a student: .streamlit/config.toml sets client.showErrorDetails so that an uncaught
exception shows Streamlit's generic sentence, without the message, the type or the server's file paths (issue 17).

Run in a subprocess from the repository root, where Streamlit looks for .streamlit/config.toml, so the test
reads the option exactly as `make run` does.
"""
import json
import subprocess
import sys

from tests.conftest import ROOT

PROBE = r"""
import json
from streamlit import config
from streamlit.testing.v1 import AppTest

at = AppTest.from_string("raise RuntimeError('secret at /srv/explorer/labs/x.py')").run()
e = at.exception[0]
print(json.dumps({"option": config.get_option("client.showErrorDetails"), "message": e.message,
                  "type": e.proto.type, "trace": list(e.stack_trace)}))
"""


def test_an_uncaught_exception_shows_no_message_type_or_trace():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True).stdout
    shown = json.loads(out.strip().splitlines()[-1])
    assert shown["option"] == "none"
    assert "secret" not in shown["message"] and "/srv/" not in shown["message"]
    assert not shown["trace"] and not shown["type"]
