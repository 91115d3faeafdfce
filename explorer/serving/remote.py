"""The generation lab's client of a remote engine: ours (``python -m explorer.serving``) or any OpenAI-compatible
server (vLLM, llama.cpp's server), named by ``EXPLORER_ENGINE_URL`` (e.g. http://127.0.0.1:8600/v1).

``RemoteEngine.generate`` returns a ``RemoteGeneration``: the same iterator of explorer.generation.Step objects,
with the same attributes the page reads, as a local explorer.generation.Generation. The prompt is tokenized here
and sent as token ids, so the engine reads exactly the tokens the page shows. From our engine every number of a
Step comes back (its ``explorer_steps`` extension): the token, its probability after the settings and under the
model, the candidates, the entropies. From another server only OpenAI's logprobs come back: the probabilities are
the model's own top candidates, the entropy is that of those candidates with the rest of the mass counted as one
more outcome (a lower bound), and how many tokens the settings kept is unknown (the whole vocabulary is assumed).
What no remote engine gives is the newest token's attention (``attention_rows`` is None), a run without the KV
cache and its speed comparison; ``missing`` names them for the page.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import math
import os
import secrets
import threading
import time
from typing import Iterator, Sequence
from urllib.parse import urlsplit

from ..generation import Candidate, Prompt, RunView, Step
from ..i18n import Msg
from ..models import LoadedModel
from ..models.token_labels import next_token_labels
from ..sampling import SamplingSettings
from .api import MAX_TOP_LOGPROBS

ENV = "EXPLORER_ENGINE_URL"
MODELS_TTL_S = 30.0  # how long the engine's list of models is trusted: a restarted engine may serve others
CONNECT_TIMEOUT_S = 5.0
# A step may wait behind a whole class in the engine's queue; longer than this without a byte means it is gone.
READ_TIMEOUT_S = 120.0
_LABEL_CONTEXT = 8  # tokens before a new one that may hold the start of its character (as explorer.generation)
FINISH = {"stop": "eos", "length": "max_new_tokens"}


def engine_url() -> str | None:
    """The remote engine's base URL from the environment, None when the app generates itself."""
    url = os.environ.get(ENV, "").strip().rstrip("/")
    return url or None


class RemoteEngine:
    """An OpenAI-compatible server at ``base_url`` (ending in /v1). Thread-safe; one per app process."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{ENV} must be an http(s) URL such as http://127.0.0.1:8600/v1, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._parts = parts
        self._models: dict[str, dict] | None = None
        self._models_at = -math.inf
        self._lock = threading.Lock()

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
        return cls(self._parts.hostname, self._parts.port, timeout=timeout)

    def path(self, endpoint: str) -> str:
        return f"{self._parts.path.rstrip('/')}/{endpoint}"

    def models(self) -> dict[str, dict] | None:
        """The engine's models (id -> its entry of /v1/models), None when it cannot be reached now."""
        with self._lock:
            if time.monotonic() - self._models_at < MODELS_TTL_S:
                return self._models
        try:
            conn = self.connection(CONNECT_TIMEOUT_S)
            try:
                conn.request("GET", self.path("models"))
                resp = conn.getresponse()
                body = json.loads(resp.read()) if resp.status == 200 else None
            finally:
                conn.close()
            found = {m["id"]: m for m in body["data"]} if body else None
        except (OSError, ValueError, KeyError, TypeError):
            found = None
        with self._lock:
            self._models, self._models_at = found, time.monotonic()
        return found

    def serves(self, name: str) -> bool | None:
        """Whether the engine serves model ``name``; None when it cannot be reached (the run will say so)."""
        models = self.models()
        return None if models is None else name in models

    def generate(self, pm: LoadedModel, prompt: Prompt, settings: SamplingSettings, *,
                 n_candidates: int = 10) -> "RemoteGeneration":
        return RemoteGeneration(self, pm, prompt, settings, n_candidates=n_candidates)


class RemoteGeneration(RunView):
    """A run on a remote engine, read as the Steps of a local explorer.generation.Generation (same attributes).

    The request is sent on the first step. A failure (the engine unreachable, a refused request, a broken stream)
    ends the iteration and is kept in ``error`` as a sentence for the student. ``close()`` is safe from any thread:
    it closes the connection, and the engine drops the request at its next step."""

    remote = True
    use_cache = True  # the engine decides how it decodes; a remote run is never a run without the cache
    attention = False

    def __init__(self, engine: RemoteEngine, pm: LoadedModel, prompt: Prompt, settings: SamplingSettings, *,
                 n_candidates: int = 10):
        if settings.seed is None and not settings.greedy:
            settings = dataclasses.replace(settings, seed=secrets.randbits(62))
        self.engine, self.pm, self.prompt, self.settings = engine, pm, prompt, settings
        self.model, self.tokenizer = pm.model, pm.tokenizer
        self.n_candidates = min(n_candidates, MAX_TOP_LOGPROBS)
        self.steps: list[Step] = []
        self.finish: str | None = None
        self.error: Msg | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._iter = self._run()
        self._lock = threading.Lock()
        self._closed = threading.Event()

    # ---- the Generation interface -----------------------------------------------------------------------------
    def __iter__(self) -> "RemoteGeneration":
        return self

    def __next__(self) -> Step:
        with self._lock:
            if self._closed.is_set():
                self._iter.close()
                raise StopIteration
            return next(self._iter)

    def close(self) -> None:
        self._closed.set()
        conn = self._conn
        if conn is not None:
            conn.close()  # a read blocked in another thread ends with an error, which ends that iteration quietly
        if self._lock.acquire(blocking=False):
            try:
                self._iter.close()
            finally:
                self._lock.release()

    def place(self) -> int:
        """The engine's queue is not visible from here: a remote run counts as decoding."""
        return 0

    # ---- the request ------------------------------------------------------------------------------------------
    def request_body(self) -> dict:
        s = self.settings
        body = {"model": self.pm.name, "prompt": list(self.prompt.ids), "max_tokens": s.max_new_tokens,
                "temperature": 0.0 if s.greedy else s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                "min_p": s.min_p, "repetition_penalty": s.repetition_penalty, "stream": True,
                "logprobs": self.n_candidates, "return_tokens_as_token_ids": True, "explorer_steps": True}
        if s.seed is not None:
            body["seed"] = s.seed
        return body

    def _events(self) -> Iterator[dict]:
        """The server-sent events of the completion stream, as JSON objects."""
        conn = self.engine.connection(READ_TIMEOUT_S)
        self._conn = conn
        conn.request("POST", self.engine.path("completions"), body=json.dumps(self.request_body()),
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raw = resp.read()
            try:
                message = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace")[:300] or resp.reason
            raise _Refused(message)
        for line in resp:
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                return
            event = json.loads(data)
            if "error" in event:
                raise _Refused(event["error"].get("message", ""))
            yield event

    def _run(self) -> Iterator[Step]:
        ids = list(self.prompt.ids)
        last = time.perf_counter()
        try:
            for event in self._events():
                choices = event.get("choices") or []
                if not choices:
                    continue
                choice = choices[0]
                now = time.perf_counter()
                step = self._step(choice, ids, now - last)
                if step is None:  # no token in this event: text held back earlier, or the reason the run ended
                    self._amend(choice)
                    continue
                last = now
                ids.append(step.token_id)
                self.steps.append(step)
                if step.finish is not None:
                    self.finish = step.finish
                yield step
        except Exception as err:  # noqa: BLE001 -- sorted below; anything else is a bug and is raised
            if self._closed.is_set():
                pass  # close() from another thread broke the read on purpose (whatever http.client raised then)
            elif isinstance(err, _Refused):
                self.error = Msg("serving.remote.refused", url=self.engine.base_url, message=str(err))
            elif isinstance(err, (OSError, http.client.HTTPException)):
                self.error = Msg("serving.remote.unreachable", url=self.engine.base_url, reason=type(err).__name__)
            elif isinstance(err, (ValueError, KeyError, TypeError, IndexError)):  # not OpenAI's shape
                self.error = Msg("serving.remote.broken", url=self.engine.base_url, reason=type(err).__name__)
            else:
                raise
        finally:
            if self._conn is not None:
                self._conn.close()

    def _amend(self, choice: dict) -> None:
        """An event without a token: its text belongs to the last token, its finish reason to the run."""
        if not self.steps:
            return
        text, reason = choice.get("text") or "", choice.get("finish_reason")
        finish = self.steps[-1].finish or (self._finish(reason, self.steps[-1].position) if reason else None)
        if text or finish != self.steps[-1].finish:
            self.steps[-1] = dataclasses.replace(self.steps[-1], delta=self.steps[-1].delta + text, finish=finish)
            self.finish = finish

    def _finish(self, reason: str | None, position: int) -> str | None:
        if reason is None:
            return None
        if reason == "length" and position + 1 >= self.pm.config.max_seq_len:
            return "context_full"
        return FINISH.get(reason, "eos")

    def _step(self, choice: dict, ids: list[int], seconds: float) -> Step | None:
        ext = (choice.get("explorer_steps") or [None])[0]
        logprobs = choice.get("logprobs") or {}
        context = ids[-_LABEL_CONTEXT:]
        index, position = len(self.steps), len(ids)
        if ext is not None:  # our engine: every number of the Step
            token = int(ext["token_id"])
            top = [(int(t), float(p), float(mp)) for t, p, mp in ext["candidates"]]
            prob, model_prob = float(ext["prob"]), float(ext["model_prob"])
            n_kept, entropy, model_entropy = int(ext["n_kept"]), float(ext["entropy"]), float(ext["model_entropy"])
            tokens_read, finish = int(ext["tokens_read"]), ext.get("finish")
        else:  # any OpenAI-compatible server: the model's own top candidates
            chosen, listed = _openai_logprobs(logprobs)
            if chosen is None:
                return None
            token = self._token_id(*chosen[:2])
            if token < 0:
                raise _Refused(f"the engine's token {chosen[1]!r} is not one token of this app's tokenizer")
            model_prob = prob = math.exp(chosen[2])
            top = [(self._token_id(tid, name), math.exp(lp), math.exp(lp)) for tid, name, lp in listed]
            model_entropy = entropy = _entropy_lower_bound([p for _, p, _ in top])
            n_kept, tokens_read = self.pm.config.vocab_size, 1 if self.steps else len(self.prompt)
            finish = self._finish(choice.get("finish_reason"), position)
        top = [c for c in top if c[0] >= 0]
        if token not in [c[0] for c in top]:
            top.append((token, prob, model_prob))
        labels = next_token_labels(self.tokenizer, context, [c[0] for c in top])
        candidates = tuple(Candidate(token_id=t, label=lab, prob=p, model_prob=mp)
                           for (t, p, mp), lab in zip(top, labels))
        return Step(index=index, position=position, token_id=token, label=labels[[c[0] for c in top].index(token)],
                    delta=choice.get("text") or "", prob=prob, model_prob=model_prob, candidates=candidates,
                    n_kept=n_kept, entropy=entropy, model_entropy=model_entropy, seconds=seconds,
                    tokens_read=tokens_read, attention_rows=None, finish=finish)

    def _token_id(self, token_id: int | None, name: str) -> int:
        """A token as a server names it: its id (llama.cpp's "id"), "token_id:N" (vLLM's
        return_tokens_as_token_ids) or its text, looked up in the tokenizer (-1 when it is not exactly one token)."""
        if token_id is not None:
            return int(token_id)
        if name.startswith("token_id:") and name[9:].isdigit():
            return int(name[9:])
        found = self.tokenizer.encode(name, add_special_tokens=False)
        return found[0] if len(found) == 1 else -1


def _openai_logprobs(logprobs: dict) -> tuple[tuple | None, list[tuple]]:
    """One token's (id or None, name, logprob) and its listed candidates', from either of OpenAI's shapes: the
    completions one (tokens / token_logprobs / top_logprobs) or the chat one (content entries, which llama.cpp's
    server also uses and where it adds each token's "id")."""
    if logprobs.get("content"):
        entry = logprobs["content"][0]
        chosen = (entry.get("id"), entry["token"], float(entry["logprob"]))
        return chosen, [(c.get("id"), c["token"], float(c["logprob"])) for c in entry.get("top_logprobs") or []]
    tokens = logprobs.get("tokens") or []
    if not tokens:
        return None, []
    listed = (logprobs.get("top_logprobs") or [{}])[0] or {}
    return (None, tokens[0], float(logprobs["token_logprobs"][0])), [(None, k, float(v)) for k, v in listed.items()]


class _Refused(Exception):
    """The engine answered with an error."""


def _entropy_lower_bound(probs: Sequence[float]) -> float:
    """Bits of the listed candidates' distribution with the unlisted mass as one more outcome: the unlisted tokens
    can only add uncertainty, so this is at most the true entropy."""
    rest = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log2(p) for p in [*probs, rest] if p > 0)


def start_run(engine: RemoteEngine, pm: LoadedModel, outcome) -> RemoteGeneration:
    """explorer.labs.generation.start_run on the remote engine: a run of the lab's outcome (its prompt as this
    app read it, its settings), never raising for the engine's sake (a failure becomes the run's ``error``)."""
    if not outcome.ok or outcome.result is None:
        raise ValueError(Msg("generation.lab.no_run", error=outcome.error))
    return engine.generate(pm, outcome.result, outcome.settings.sampling())
