"""Importing explorer changes nothing process-wide; the app makes its settings (threads, allocator) once at start,
and loading a model never touches torch's global random state. The process-wide checks run in a fresh
interpreter."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from explorer.config import PRESETS
from explorer.model import Transformer
from explorer.models.tiny import load_tiny

from .conftest import ROOT

# glibc serves a block above its mmap threshold with mmap, counted in mallinfo2().hblks. The threshold is 128 KiB
# and rises by itself at most to 32 MiB; keep_freed_memory sets it to 64 MiB. So whether a 48 MiB block is mmapped
# tells whether anyone called mallopt.
PROBE = """
import ctypes, json, os, threading, torch

N = torch.get_num_threads() + 1  # differs from torch's default, so that setting it is visible
os.environ["EXPLORER_TORCH_THREADS"] = str(N)

libc = ctypes.CDLL("libc.so.6")
# mallinfo2 since glibc 2.33; the older mallinfo has the same fields as int
size_t = ctypes.c_size_t if hasattr(libc, "mallinfo2") else ctypes.c_int
mallinfo = libc.mallinfo2 if hasattr(libc, "mallinfo2") else libc.mallinfo

class MallInfo(ctypes.Structure):
    _fields_ = [(f, size_t) for f in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

mallinfo.restype = MallInfo
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]

def mmapped(size=48 << 20):
    before = mallinfo().hblks
    block = libc.malloc(size)
    after = mallinfo().hblks
    libc.free(block)
    return after > before

def threads_in_a_new_thread():
    seen = []
    t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    t.start()
    t.join()
    return seen[0]
"""


linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's malloc statistics")


def _run(body: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    code = PROBE + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@linux_glibc
def test_importing_explorer_changes_no_process_wide_state():
    result = _run("""
        import importlib, pkgutil
        threads, rng = torch.get_num_threads(), torch.get_rng_state()
        assert mmapped(), "the probe sees glibc's default threshold"
        import explorer
        for mod in pkgutil.walk_packages(explorer.__path__, "explorer."):
            importlib.import_module(mod.name)
        state = {"mmapped": mmapped(), "threads": torch.get_num_threads() == threads,
                 "new_thread": threads_in_a_new_thread() == threads, "rng": torch.equal(rng, torch.get_rng_state())}
        from explorer.device import configure_process
        configure_process()  # the probe's positive control: the same checks see the app's settings
        state["configured_mmapped"] = mmapped()
        state["configured_threads"] = torch.get_num_threads() == N
        print(json.dumps(state))
    """)
    assert result == {"mmapped": True, "threads": True, "new_thread": True, "rng": True,
                      "configured_mmapped": False, "configured_threads": True}


@linux_glibc
def test_app_start_sets_the_thread_count_for_every_later_rerun_thread():
    """Streamlit runs each rerun in a new thread; app.py configures the process from the first one."""
    result = _run("""
        from streamlit.testing.v1 import AppTest
        before = threads_in_a_new_thread()
        at = AppTest.from_file("app.py", default_timeout=120).run()
        assert not at.exception, [e.value for e in at.exception]
        print(json.dumps({"before": before == N - 1, "rerun_thread": threads_in_a_new_thread() == N,
                          "mmapped": mmapped()}))
    """)
    assert result == {"before": True, "rerun_thread": True, "mmapped": False}


@linux_glibc
def test_the_thread_count_is_inherited_by_threads_started_later():
    result = _run("""
        from explorer.device import configure_process
        worker = threading.Thread(target=configure_process)  # like app.py, from a script thread
        worker.start()
        worker.join()
        os.environ["EXPLORER_TORCH_THREADS"] = "1"
        again = configure_process()  # later reruns: nothing changes
        print(json.dumps({"later_thread": threads_in_a_new_thread() == N, "again": again["threads"] == N}))
    """)
    assert result == {"later_thread": True, "again": True}


def test_a_bad_thread_setting_is_explained():
    env = {**os.environ, "EXPLORER_TORCH_THREADS": "two"}
    out = subprocess.run([sys.executable, "-c", "from explorer.device import configure_process; configure_process()"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "EXPLORER_TORCH_THREADS must be a whole number" in out.stderr


def test_loading_a_tiny_model_leaves_other_threads_random_numbers_alone():
    """Another thread draws from torch's global generator while models load: it must get exactly the numbers its
    own seed gives. (Seeding the global generator inside fork_rng would hand it the model's seed meanwhile.)"""
    torch.manual_seed(1234)
    own = torch.Generator().manual_seed(1234)
    loaded, draws, wrong = [], 0, 0
    loader = threading.Thread(target=lambda: loaded.extend(load_tiny("tiny-llama") for _ in range(10)))
    loader.start()
    while loader.is_alive() or draws < 100:
        wrong += not torch.equal(torch.rand(1000), torch.rand(1000, generator=own))
        draws += 1
    assert wrong == 0, f"{wrong} of {draws} draws were not this thread's own"
    first = loaded[0].model.state_dict()
    assert all(torch.equal(m.model.state_dict()[k], v) for m in loaded[1:] for k, v in first.items())
    other_seed = load_tiny("tiny-llama", seed=1).model.state_dict()
    assert not torch.equal(other_seed["lm_head.weight"], first["lm_head.weight"])


@pytest.mark.parametrize("name", list(PRESETS))
def test_a_seeded_model_sets_every_parameter_and_buffer(name):
    """from_seed builds on the meta device and starts from uninitialised memory: every tensor must be set again,
    to what Transformer(cfg) gives (norms at 1, biases and the sinusoidal table exact; matrices N(0, 0.02))."""
    cfg = PRESETS[name].replace(n_layer=1)
    seeded, reference = Transformer.from_seed(cfg, 0), Transformer(cfg)
    assert seeded.lm_head.weight is seeded.stack.embed.tok.weight
    ours, theirs = dict(seeded.named_buffers()), dict(reference.named_buffers())
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for key, param in seeded.named_parameters():
        param = param.detach()
        if param.dim() == 1:
            assert torch.equal(param, dict(reference.named_parameters())[key].detach()), key
        else:
            # n >= 128 draws (BERT's segment table): the sample std of N(0, 0.02) has std 0.02 / sqrt(2n) <= 1.3e-3
            # and the mean 0.02 / sqrt(n) <= 1.8e-3, so these bounds are over 3 of those from the expectation
            assert abs(float(param.std()) - 0.02) < 0.006 and abs(float(param.mean())) < 0.006, key
