"""Memory a closed session leaves behind goes back to the operating system (issue 17, item 5): the janitor's rule
for when to release, and what a release does to a process's resident memory (in a fresh interpreter)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from explorer.memory_janitor import Decision

from .conftest import ROOT


def test_an_idle_server_is_left_alone():
    d = Decision(tick_s=10, min_work_s=1.0)
    d.released(cpu=5.0, now=0.0)
    assert not any(d.due(cpu=5.0 + 0.01 * i, now=10.0 * i) for i in range(1, 100))


def test_work_followed_by_a_quiet_tick_releases_once():
    d = Decision(tick_s=10, min_work_s=1.0, quiet_share=0.25, busy_period_s=120)
    d.released(cpu=0.0, now=0.0)
    assert not d.due(cpu=8.0, now=10.0)  # busy: 8 CPU seconds in a 10 s tick
    assert d.due(cpu=8.5, now=20.0)  # quiet now, after work
    d.released(cpu=9.0, now=20.5)  # the release's own CPU time is not new work
    assert not d.due(cpu=9.1, now=30.0)


def test_a_server_that_never_pauses_still_releases_every_busy_period():
    d = Decision(tick_s=10, min_work_s=1.0, quiet_share=0.25, busy_period_s=120)
    d.released(cpu=0.0, now=0.0)
    due = [d.due(cpu=9.0 * i, now=10.0 * i) for i in range(1, 13)]
    assert due == [False] * 11 + [True]


RELEASE = """
import ctypes, json, os
from explorer.device import keep_freed_memory, release_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

keep_freed_memory()  # as the app: 1 MiB blocks come from the heap, which keeps what is freed
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
base = rss_mb()
blocks = [libc.malloc(1 << 20) for _ in range(200)]
for b in blocks:
    ctypes.memset(b, 1, 1 << 20)  # touch every page
for b in blocks[:-1]:  # the last block pins the heap's top: trimming the top alone frees nothing
    libc.free(b)
freed = rss_mb()
release_freed_memory()
print(json.dumps({"held": freed - base, "after": rss_mb() - base}))
"""


def test_a_release_gives_freed_heap_memory_back():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(RELEASE)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mb = json.loads(out.stdout.strip().splitlines()[-1])
    # 199 MiB freed: glibc kept it (so the next forward reuses it) until the release handed it back, bar the pinned
    # block and pages shared with live chunks
    assert mb["held"] > 150, mb
    assert mb["after"] < 20, mb


def test_the_app_start_caps_arenas_and_starts_the_janitor():
    code = ("import json, threading; from explorer.device import configure_process; c = configure_process(); "
            "print(json.dumps({'arenas': c['malloc_arenas'], 'janitor': c['memory_janitor'], "
            "'thread': any(t.name == 'explorer-memory-janitor' and t.daemon for t in threading.enumerate())}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"arenas": True, "janitor": True, "thread": True}


FREEZE = """
import gc, json
from explorer.memory_janitor import release

class Page:  # a visitor's objects: a reference cycle, as Streamlit's session objects are
    def __init__(self):
        self.me = self

long_lived = [Page() for _ in range(1000)]
release(first=True)
frozen = gc.get_freeze_count()
del long_lived
later = [Page() for _ in range(500)]
del later
found = gc.collect()  # finds the new cycles; the frozen ones are neither walked nor collected
survivors = [Page() for _ in range(300)]
release(first=False)
print(json.dumps({"frozen": frozen, "found": found, "still_frozen": gc.get_freeze_count()}))
"""


def test_the_first_release_freezes_the_survivors_and_later_collections_skip_them():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FREEZE)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["frozen"] >= 1000  # the imports' objects and the long-lived pages
    assert 500 <= got["found"] < 1000  # the later pages' cycles, not the frozen ones (Python counts each cycle's
    # objects: a Page and its __dict__)
    assert got["still_frozen"] - got["frozen"] < 300  # a later release does not freeze the 300 survivors
