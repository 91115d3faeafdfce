"""Peak memory of the worst input each lab allows, above the idle server (models loaded), against a 1 GB target.

Every case runs in a fresh process set up like the app (configure_process: threads, allocator): load the models,
run a small warm-up, measure the idle RSS, reset the kernel's peak-RSS counter (/proc/self/clear_refs), run the
case, and read the peak (VmHWM); a thread sampling VmRSS every 2 ms is the fallback where the counter cannot be
reset. The caps come from explorer.limits, so the cases follow them when they change.

Cases: the generation lab at its caps (a prompt of GENERATION_MAX_PROMPT_TOKENS tokens, GENERATION_MAX_NEW_TOKENS
new tokens, attention rows kept for every step, no early stop; then the longest KV-cache-off run the budget
allows), and the internals lab at INTERNALS_MAX_TOKENS tokens (SmolLM2: analysis, logit lens, a whole layer
ablated; MiniLM: analysis and an ablation with the comparison sentences). For comparison, the issue's 1,950-token
prompt with the cap lifted: the chunked prefill alone.

    .venv/bin/python bench/bench_memory.py [--skip-uncapped]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TARGET_BYTES = 2**30  # 1 GiB above idle for the worst allowed input
MiB = 2**20


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


class PeakRss:
    """The peak RSS of this process while the block runs."""

    def __enter__(self) -> "PeakRss":
        gc.collect()
        self.idle = _status("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.hwm = True
        except OSError:
            self.hwm = False
        self.sampled, self._done = self.idle, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.start = time.perf_counter()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.002):
            self.sampled = max(self.sampled, _status("VmRSS"))

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start
        self._done.set()
        self._thread.join()
        self.peak = max(self.sampled, _status("VmHWM")) if self.hwm else self.sampled


# ---------------------------------------------------------------------------------------------------------------
# The cases, each run in its own process: (load, warm-up) then the measured call.


def _smollm2():
    from explorer.models.pretrained import load_model

    return load_model("smollm2-135m", device="cpu")


def _cap_prompt(pm, n_tokens: int) -> list[int]:
    """n_tokens of ordinary mixed text (Chinese and English), the longest prompt the lab accepts."""
    text = "今天天气很好，我们去公园散步。The weather is fine today, so we walk in the park. " * 200
    ids = pm.tokenizer.encode(text, add_special_tokens=False)[:n_tokens]
    assert len(ids) == n_tokens
    return ids


def case_generation(use_cache: bool):
    from explorer import limits
    from explorer.generation import generate
    from explorer.sampling import SamplingSettings

    pm = _smollm2()
    P = limits.GENERATION_MAX_PROMPT_TOKENS
    n_new = limits.GENERATION_MAX_NEW_TOKENS if use_cache else limits.max_new_without_cache(P)
    ids = _cap_prompt(pm, P)
    list(generate(pm.model, pm.tokenizer, ids[:8], SamplingSettings(max_new_tokens=2, seed=0), attention=True))

    def run():
        # stop_ids=[]: no end-of-text token ends the run early; every step keeps its attention rows, as in the lab
        g = generate(pm.model, pm.tokenizer, ids, SamplingSettings(max_new_tokens=n_new, seed=0), attention=True,
                     use_cache=use_cache, stop_ids=[])
        steps = list(g)
        kept = sum(s.attention_rows.nbytes for s in steps)
        return (f"{P}-token prompt, {len(steps)} new tokens, KV cache {'on' if use_cache else 'off'} "
                f"({limits.tokens_read(P, len(steps), use_cache=use_cache):,} tokens read; the run keeps "
                f"{kept / MiB:.0f} MiB of attention rows)")
    return run


def case_generation_uncapped():
    from explorer.generation import generate
    from explorer.sampling import SamplingSettings

    pm = _smollm2()
    list(generate(pm.model, pm.tokenizer, "warm up", SamplingSettings(greedy=True, max_new_tokens=2), attention=True))

    def run():
        g = generate(pm.model, pm.tokenizer, "今天天气很好" * 150, SamplingSettings(greedy=True, max_new_tokens=2),
                     attention=True, max_prompt_tokens=None)
        list(g)
        return f"issue 17's {len(g.prompt):,}-token prompt, cap lifted (library only), 2 new tokens"
    return run


def case_internals():
    from explorer import limits
    from explorer.labs.internals_passes import DEFAULT_COMPARE, ablate, analyze, logit_lens
    from explorer.models.pretrained import load_model

    smol, mini = _smollm2(), load_model("minilm-l6", device="cpu")
    analyze(smol, smol.encode("warm up", max_tokens=limits.INTERNALS_MAX_TOKENS))
    long_text = "The animal didn't cross the street because it was too tired, and then it slept. " * 40
    compare = tuple(line * 20 for line in DEFAULT_COMPARE) * 3  # more and longer than the lab takes: cut to the cap

    def run():
        for pm, chat in ((smol, False), (smol, True), (mini, False)):
            enc = pm.encode(long_text, chat=chat, max_tokens=limits.INTERNALS_MAX_TOKENS)
            assert len(enc.ids) == limits.INTERNALS_MAX_TOKENS
            base = analyze(pm, enc)
            if pm.is_decoder:
                logit_lens(pm, base)
            whole_layer = [(0, h) for h in range(pm.config.n_head)]
            ablate(pm, enc, whole_layer, base, compare=compare[:8])
        return (f"{limits.INTERNALS_MAX_TOKENS} tokens: SmolLM2 (plain and chat) analysis, logit lens, a layer "
                "ablated; MiniLM analysis and ablation with 8 comparison sentences")
    return run


CASES = {
    "generation (KV cache on)": lambda: case_generation(True),
    "generation (KV cache off)": lambda: case_generation(False),
    "internals": case_internals,
    "generation, uncapped prompt": case_generation_uncapped,
}
CAPPED = [name for name in CASES if "uncapped" not in name]


def child(name: str) -> None:
    from explorer.device import configure_process

    configure_process()
    run = CASES[name]()
    with PeakRss() as m:
        what = run()
    print(json.dumps(dict(what=what, idle=m.idle, peak=m.peak, seconds=m.seconds, hwm=m.hwm)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--skip-uncapped", action="store_true", help="leave out the issue's uncapped prompt")
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return 0
    from explorer.device import app_threads

    print(f"Peak RSS above the idle process (models loaded), {app_threads()} torch thread(s); target "
          f"< {TARGET_BYTES / MiB:.0f} MiB for every allowed input.")
    failed = False
    for name in CASES:
        if args.skip_uncapped and name not in CAPPED:
            continue
        out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-3000:]}")
            failed = True
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        above = r["peak"] - r["idle"]
        verdict = ("OK" if above < TARGET_BYTES else "OVER TARGET") if name in CAPPED else "(not allowed by the lab)"
        failed |= name in CAPPED and above >= TARGET_BYTES
        print(f"{name:30s} +{above / MiB:7.0f} MiB above idle {r['idle'] / MiB:6.0f} MiB, {r['seconds']:6.1f} s  "
              f"{verdict}\n{'':32s}{r['what']}{'' if r['hwm'] else ' [sampled every 2 ms]'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
