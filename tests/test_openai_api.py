"""The engine process's OpenAI-compatible API (explorer.serving) and the app's client of it (explorer.serving.remote):
answers equal explorer.generation.generate's, streams add up to the whole answer, logprobs are the candidates', bad
requests get a 400 with a sentence and leave the server serving, and the remote client rebuilds the same Steps."""
from __future__ import annotations

import http.client
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from explorer import limits
from explorer.generation import generate, prepare_prompt
from explorer.models.tiny import load_tiny
from explorer.sampling import SamplingSettings
from explorer.serving.__main__ import DEFAULT_NICE
from explorer.serving.api import MAX_BODY_BYTES
from explorer.serving.remote import RemoteEngine
from explorer.serving.stops import StopText
from tests.pretrained_models import ours
from tests.serving_helpers import free_port, running

ROOT = Path(__file__).resolve().parents[1]
TINY = "tiny-gpt"
SMOL = "smollm2-135m"
# Log-probabilities: the server and the test run the same float32 model through the same engine, one request at a
# time, so they normally agree exactly; a batch of another size may sum a dot product in another order, which moves
# a logit by a few float32 ulps of its magnitude (|z| < 40 for these models: ~1e-5), and a log-softmax by about twice
# that. 1e-4 leaves room for that on any CPU's kernels without hiding a wrong token or a wrong distribution.
LOGPROB_TOL = 1e-4


@pytest.fixture(scope="module")
def tiny():
    return load_tiny(TINY)


@pytest.fixture(scope="module")
def url(tiny):
    with running({TINY: tiny}) as base:
        yield base


@pytest.fixture(scope="module")
def smol_url():
    with running({SMOL: ours(SMOL)}) as base:
        yield base


def request(url: str, path: str, body=None, *, raw: bytes | None = None, method: str | None = None):
    """(status, parsed JSON) of one request."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, method=method or ("GET" if data is None else "POST"),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def stream(url: str, path: str, body: dict) -> list[dict]:
    """The events of a streamed answer, checking it ends with [DONE]."""
    req = urllib.request.Request(url + path, data=json.dumps({**body, "stream": True}).encode(),
                                 headers={"Content-Type": "application/json"})
    events, done = [], False
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        for line in resp:
            line = line.decode().strip()
            if not line:
                continue
            assert line.startswith("data: ")
            if line == "data: [DONE]":
                done = True
                continue
            events.append(json.loads(line[6:]))
    assert done
    return events


def local(pm, prompt, settings: SamplingSettings, *, chat=False, n_candidates=10):
    run = generate(pm.model, pm.tokenizer, prompt, settings, chat=chat, n_candidates=n_candidates,
                   stop_ids=pm.eos_token_ids)
    list(run)
    return run


def test_the_command_line_serves_its_model_and_says_it_is_healthy():
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-m", "explorer.serving", "--model", TINY, "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = request(base, "/health")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.2)
        assert status == 200 and health["status"] == "ok" and health["models"] == [TINY]
        assert set(health["engines"]) == {TINY} and health["engines"][TINY]["steps"] == 0  # its counters
        # Below the app's priority (--nice's default): a page computing on the same machine gets the CPU first.
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) - os.getpriority(os.PRIO_PROCESS, 0) == DEFAULT_NICE
        status, models = request(base, "/v1/models")
        assert status == 200 and [m["id"] for m in models["data"]] == [TINY]
        status, answer = request(base, "/v1/completions", {"model": TINY, "prompt": "Hi", "max_tokens": 3,
                                                           "temperature": 0})
        assert status == 200 and answer["usage"]["completion_tokens"] == 3
        assert request(base, "/health")[1]["engines"][TINY]["tokens_total"] == 3
    finally:
        proc.terminate()
        proc.wait(10)


def test_greedy_completion_equals_generate_and_its_logprobs_are_the_candidates(url, tiny):
    status, answer = request(url, "/v1/completions", {
        "model": TINY, "prompt": "The cat sat on", "max_tokens": 12, "temperature": 0, "logprobs": 5,
        "return_tokens_as_token_ids": True})
    assert status == 200
    run = local(tiny, "The cat sat on", SamplingSettings(greedy=True, max_new_tokens=12), n_candidates=5)
    choice = answer["choices"][0]
    assert choice["text"] == run.text
    assert choice["finish_reason"] == "length"
    lp = choice["logprobs"]
    assert lp["tokens"] == [f"token_id:{t}" for t in run.token_ids]
    for step, token_lp, top in zip(run.steps, lp["token_logprobs"], lp["top_logprobs"]):
        assert token_lp == pytest.approx(math.log(step.model_prob), abs=LOGPROB_TOL)
        expected = {f"token_id:{c.token_id}": math.log(c.model_prob) for c in step.candidates[:5]}
        assert list(top) == list(expected)  # the same tokens in the same order
        assert list(top.values()) == pytest.approx(list(expected.values()), abs=LOGPROB_TOL)
    assert answer["usage"] == {"prompt_tokens": len(run.prompt), "completion_tokens": 12,
                               "total_tokens": len(run.prompt) + 12}


def test_a_stream_adds_up_to_the_whole_answer_and_seeded_sampling_equals_generate(url, tiny):
    body = {"model": TINY, "prompt": "Once upon a time", "max_tokens": 20, "temperature": 0.9, "top_p": 0.95,
            "top_k": 40, "seed": 1234, "logprobs": 3}
    status, whole = request(url, "/v1/completions", body)
    assert status == 200
    events = stream(url, "/v1/completions", {**body, "stream_options": {"include_usage": True}})
    token_events = [e for e in events if e["choices"] and e["choices"][0]["logprobs"]]
    assert len(token_events) == 20  # one event per token
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == whole["choices"][0]["text"]
    assert [e["choices"][0]["finish_reason"] for e in events if e["choices"]][-1] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 20 and events[-1]["choices"] == []
    run = local(tiny, "Once upon a time", SamplingSettings(temperature=0.9, top_p=0.95, top_k=40, seed=1234,
                                                          max_new_tokens=20))
    assert whole["choices"][0]["text"] == run.text


def test_a_stop_string_ends_the_answer_before_it(url, tiny):
    run = local(tiny, "abc", SamplingSettings(greedy=True, max_new_tokens=24))
    text = run.text
    stop = text[5:7]  # two characters from inside the answer, likely written by two tokens
    assert stop and text.find(stop) >= 0
    body = {"model": TINY, "prompt": "abc", "max_tokens": 24, "temperature": 0, "stop": [stop]}
    status, whole = request(url, "/v1/completions", body)
    assert status == 200
    assert whole["choices"][0]["text"] == text[:text.find(stop)]
    assert whole["choices"][0]["finish_reason"] == "stop"
    events = stream(url, "/v1/completions", body)
    assert "".join(e["choices"][0]["text"] for e in events) == text[:text.find(stop)]


def test_stop_text_holds_back_a_possible_start_and_cuts_a_stop_across_pieces():
    s = StopText(["END"])
    assert s.feed("ab E") == "ab "  # "E" may begin "END": held back
    assert s.feed("x") == "Ex"  # it did not
    assert s.feed("yE") == "y" and s.feed("N") == ""
    assert s.feed("D and more") == "" and s.stopped
    assert s.flush() == ""
    t = StopText(["\n\n"])
    assert t.feed("a\n") == "a" and t.flush() == "\n"


BAD = [
    ("not JSON", None, b"{bad", 400, None),
    ("not an object", None, b"[1, 2]", 400, None),
    ("no model", {"prompt": "x"}, None, 400, "model"),
    ("unknown model", {"model": "gpt-4", "prompt": "x"}, None, 404, "model"),
    ("no prompt", {"model": TINY}, None, 400, "prompt"),
    ("empty prompt", {"model": TINY, "prompt": "   "}, None, 400, "prompt"),
    ("prompt over the box", {"model": TINY, "prompt": "x" * (limits.GENERATION_PROMPT_MAX_CHARS + 1)}, None, 400,
     "prompt"),
    ("prompt over the tokens", {"model": TINY, "prompt": [65] * (limits.GENERATION_MAX_PROMPT_TOKENS + 1)}, None,
     400, "prompt"),
    ("token id outside the vocabulary", {"model": TINY, "prompt": [65, 100000]}, None, 400, "prompt"),
    ("max_tokens over the cap", {"model": TINY, "prompt": "x", "max_tokens": limits.GENERATION_MAX_NEW_TOKENS + 1},
     None, 400, "max_tokens"),
    ("max_tokens not a number", {"model": TINY, "prompt": "x", "max_tokens": "ten"}, None, 400, "max_tokens"),
    ("negative temperature", {"model": TINY, "prompt": "x", "temperature": -1}, None, 400, "temperature"),
    ("top_p of 0", {"model": TINY, "prompt": "x", "top_p": 0}, None, 400, "top_p"),
    ("too many logprobs", {"model": TINY, "prompt": "x", "logprobs": 21}, None, 400, "logprobs"),
    ("five stops", {"model": TINY, "prompt": "x", "stop": list("abcde")}, None, 400, "stop"),
    ("a negative seed", {"model": TINY, "prompt": "x", "seed": -3}, None, 400, "seed"),
    ("n of 2", {"model": TINY, "prompt": "x", "n": 2}, None, 400, "n"),
    ("stream not a flag", {"model": TINY, "prompt": "x", "stream": "yes"}, None, 400, "stream"),
    ("body over the cap", None, b'{"model": "tiny-gpt", "prompt": "' + b"x" * MAX_BODY_BYTES + b'"}', 413, None),
]


@pytest.mark.parametrize("name,body,raw,status,param", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_gets_an_openai_error_with_a_sentence(url, name, body, raw, status, param):
    got, answer = request(url, "/v1/completions", body, raw=raw)
    assert got == status
    error = answer["error"]
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    assert error["param"] == param and error["type"]


def test_chat_without_a_template_unknown_paths_and_wrong_methods_are_json_errors(url):
    status, answer = request(url, "/v1/chat/completions", {"model": TINY,
                                                           "messages": [{"role": "user", "content": "hi"}]})
    assert status == 400 and "chat template" in answer["error"]["message"]
    status, answer = request(url, "/v1/chat/completions", {"model": TINY, "messages": [{"role": "robot"}]})
    assert status == 400 and answer["error"]["param"] == "messages"
    assert request(url, "/v1/nothing")[0] == 404
    assert request(url, "/v1/completions", method="GET")[0] == 405


def test_the_server_survives_bad_requests_and_goes_on_answering(url):
    for _, body, raw, _, _ in BAD:
        request(url, "/v1/completions", body, raw=raw)
    status, answer = request(url, "/v1/completions", {"model": TINY, "prompt": "Hi", "max_tokens": 2})
    assert status == 200 and answer["usage"]["completion_tokens"] == 2
    status, health = request(url, "/health")
    assert status == 200 and health["status"] == "ok" and health["open_requests"] == 0


def test_a_client_that_leaves_mid_stream_frees_its_request(url):
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/v1/completions", body=json.dumps({"model": TINY, "prompt": "Hi", "stream": True,
                                                             "max_tokens": limits.GENERATION_MAX_NEW_TOKENS}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.readline().startswith(b"data: ")
    assert request(url, "/health")[1]["open_requests"] == 1
    conn.close()
    deadline = time.monotonic() + 10
    while request(url, "/health")[1]["open_requests"]:
        assert time.monotonic() < deadline, "the request of a client that left is still open"
        time.sleep(0.1)


def test_smollm2_chat_equals_generate_and_streams_the_same_answer(smol_url):
    pm = ours(SMOL)
    question = "What is the capital of France?"
    body = {"model": SMOL, "messages": [{"role": "user", "content": question}], "max_tokens": 12, "temperature": 0,
            "logprobs": True, "top_logprobs": 4}
    status, whole = request(smol_url, "/v1/chat/completions", body)
    assert status == 200
    run = local(pm, question, SamplingSettings(greedy=True, max_new_tokens=12), chat=True, n_candidates=4)
    message = whole["choices"][0]["message"]
    assert message == {"role": "assistant", "content": run.text}
    content = whole["choices"][0]["logprobs"]["content"]
    assert [bytes(e["bytes"]) for e in content] == pm.tokenizer.token_bytes(run.token_ids)
    for entry, step in zip(content, run.steps):
        assert entry["logprob"] == pytest.approx(math.log(step.model_prob), abs=LOGPROB_TOL)
        assert [t["logprob"] for t in entry["top_logprobs"]] == pytest.approx(
            [math.log(c.model_prob) for c in step.candidates[:4]], abs=LOGPROB_TOL)
    events = stream(smol_url, "/v1/chat/completions", body)
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == run.text
    assert events[-1]["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]


def test_the_remote_client_rebuilds_the_steps_of_a_local_run(url, tiny):
    """A run on the engine, read by explorer.serving.remote, is the local run's Steps (less the attention)."""
    settings = SamplingSettings(temperature=0.8, top_k=20, top_p=0.9, seed=7, max_new_tokens=10)
    prompt = prepare_prompt(tiny.tokenizer, "Tea or 茶?", tiny.config.max_seq_len)
    engine = RemoteEngine(url + "/v1")
    assert engine.serves(TINY) is True and engine.serves("smollm2-135m") is False
    remote = engine.generate(tiny, prompt, settings)
    got = list(remote)
    assert remote.error is None
    want_run = local(tiny, prompt, settings)
    want = want_run.steps
    assert [s.token_id for s in got] == [s.token_id for s in want]
    assert [s.delta for s in got] == [s.delta for s in want] and [s.label for s in got] == [s.label for s in want]
    assert [s.finish for s in got] == [s.finish for s in want] and remote.finish == want[-1].finish
    for g, w in zip(got, want):
        assert g.attention_rows is None
        assert (g.index, g.position, g.n_kept, g.tokens_read) == (w.index, w.position, w.n_kept, w.tokens_read)
        assert [(c.token_id, c.label) for c in g.candidates] == [(c.token_id, c.label) for c in w.candidates]
        # probabilities, not logs: within float32 rounding of values at most 1 (see LOGPROB_TOL)
        assert [c.prob for c in g.candidates] == pytest.approx([c.prob for c in w.candidates], abs=LOGPROB_TOL)
        assert (g.prob, g.model_prob, g.entropy, g.model_entropy) == pytest.approx(
            (w.prob, w.model_prob, w.entropy, w.model_entropy), abs=LOGPROB_TOL)
    assert remote.generated_labels() == want_run.generated_labels()
    assert remote.text == want_run.text


def test_the_remote_client_says_when_the_engine_is_unreachable_or_refuses(url, tiny):
    prompt = prepare_prompt(tiny.tokenizer, "Hi", tiny.config.max_seq_len)
    gone = RemoteEngine(f"http://127.0.0.1:{free_port()}/v1")
    assert gone.serves(TINY) is None
    run = gone.generate(tiny, prompt, SamplingSettings(greedy=True, max_new_tokens=3))
    assert list(run) == [] and run.error is not None and run.error.key == "serving.remote.unreachable"
    refused = RemoteEngine(url + "/v1").generate(tiny, prompt, SamplingSettings(greedy=True, max_new_tokens=3))
    refused.pm = type("Renamed", (), {"name": "nobody", "config": tiny.config})()  # a model the engine lacks
    assert list(refused) == [] and refused.error.key == "serving.remote.refused"
    assert "nobody" in str(refused.error)


def test_closing_a_remote_run_from_another_thread_ends_it_here_and_on_the_engine(url, tiny):
    """The page's Stop (or a new click) closes the run from another script run's thread, even mid-read."""
    prompt = prepare_prompt(tiny.tokenizer, "Hi", tiny.config.max_seq_len)
    run = RemoteEngine(url + "/v1").generate(tiny, prompt, SamplingSettings(
        greedy=True, max_new_tokens=limits.GENERATION_MAX_NEW_TOKENS))
    assert next(run).index == 0
    reader = threading.Thread(target=lambda: list(run))
    reader.start()
    run.close()
    reader.join(10)
    assert not reader.is_alive() and run.closed and run.error is None
    assert len(run.steps) < limits.GENERATION_MAX_NEW_TOKENS and list(run) == []
    deadline = time.monotonic() + 10
    while request(url, "/health")[1]["open_requests"]:
        assert time.monotonic() < deadline, "the engine still decodes a closed run"
        time.sleep(0.1)


def test_concurrent_requests_each_get_their_own_answer(url, tiny):
    """Requests in flight together (the engine batches them) answer exactly as each does alone: no cross-talk.
    (No top_k in a request means none, as in OpenAI's API; SamplingSettings' own default is the lab's 50.)"""
    prompts = ["The cat", "A much longer prompt than the others, to join mid-run", "Tea", "Once upon a time"]
    answers: dict[str, str] = {}

    def ask(prompt: str) -> None:
        events = stream(url, "/v1/completions", {"model": TINY, "prompt": prompt, "max_tokens": 24,
                                                 "temperature": 0.7, "seed": len(prompt)})
        answers[prompt] = "".join(e["choices"][0]["text"] for e in events)

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for prompt in prompts:
        solo = local(tiny, prompt, SamplingSettings(temperature=0.7, top_k=0, seed=len(prompt), max_new_tokens=24))
        assert answers[prompt] == solo.text, prompt
