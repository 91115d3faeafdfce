"""OpenAI's completions and chat completions, read into explorer.generation's terms and written back.

Reading (``read_request``) checks everything before any compute and raises ``ApiError`` (an OpenAI-style error:
status, message, the parameter at fault). What a request may cost is bounded by explorer.limits: the prompt's
characters and tokens and the new tokens, as in the generation lab.

Sampling follows the lab: ``temperature`` 0 is greedy decoding; ``top_p`` as OpenAI; vLLM's extra parameters
``top_k``, ``min_p`` and ``repetition_penalty`` are read too, so a client (explorer.serving.remote) can ask for the
lab's exact settings. ``logprobs`` are the model's own log-probabilities (as vLLM reports them by default); the
``top_logprobs`` list the candidates in the order the lab ranks them: the tokens the settings left in play first,
the model's favourites the settings removed after them (with every token in play, that is the model's top-n).

Two extensions, both off unless asked for: vLLM's ``return_tokens_as_token_ids`` (tokens written "token_id:N", so
byte pieces of one character stay apart) and ``explorer_steps`` (each token's probability after the settings, the
entropies, how many tokens stayed in play and the lab's candidates with both probabilities: what a Step holds).
"""
from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Sequence

from .. import limits
from ..generation import Step
from ..models import LoadedModel
from ..sampling import MAX_REPETITION_PENALTY, MAX_TEMPERATURE, SamplingSettings

MAX_TOP_LOGPROBS = 20  # OpenAI's and vLLM's cap
MAX_STOPS = 4  # OpenAI's
LAB_CANDIDATES = 10  # what the lab's candidates chart shows (explorer.generation.generate's default)
# A request's body: the prompt box's characters, each at most 6 bytes as JSON writes it ("\uXXXX"), plus room for
# the other fields and a chat's message wrappers. A larger body is refused before it is parsed.
MAX_BODY_BYTES = 6 * limits.GENERATION_PROMPT_MAX_CHARS + 16_384
MIN_LOGPROB = -9999.0  # vLLM's stand-in for log(0): JSON has no -inf
DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions; chat defaults to the lab's cap
FINISH = {"eos": "stop", "max_new_tokens": "length", "context_full": "length"}
ROLES = ("system", "user", "assistant")


class ApiError(Exception):
    """A request the server refuses, as OpenAI reports it."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 kind: str = "invalid_request_error", code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.param, self.kind, self.code = str(message), status, param, kind, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Request:
    """One request, checked: the model, the prompt as text or token ids (or chat messages), and how to decode."""

    model: str
    chat: bool
    prompt: str | tuple[int, ...] | None  # completions
    messages: tuple[dict, ...] | None  # chat
    settings: SamplingSettings
    stream: bool
    include_usage: bool
    logprobs: bool
    top_logprobs: int
    stops: tuple[str, ...]
    token_ids: bool  # return_tokens_as_token_ids
    steps: bool  # explorer_steps
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:24])
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def n_candidates(self) -> int:
        return max(self.top_logprobs, LAB_CANDIDATES if self.steps else 1)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return (_is_int(x) or isinstance(x, float)) and math.isfinite(x)


def _number(body: dict, name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if not _is_number(value) or value > high or value < low or (low_open and value == low):
        bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
        raise ApiError(f"{name} must be a number {bound} and at most {high:g}, not {value!r}.", param=name)
    return float(value)


def _whole(body: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if not _is_int(value) or not low <= value <= high:
        raise ApiError(f"{name} must be a whole number from {low} to {high}, not {value!r}.", param=name)
    return value


def _flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(f"{name} must be true or false, not {value!r}.", param=name)
    return value


def _stops(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > MAX_STOPS or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(f"stop must be a non-empty string or a list of at most {MAX_STOPS} of them.", param="stop")
    if sum(map(len, stops)) > limits.GENERATION_PROMPT_MAX_CHARS:
        raise ApiError("stop strings are too long.", param="stop")
    return tuple(stops)


def _prompt(body: dict, vocab_size: int) -> str | tuple[int, ...]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, str):
        if len(prompt) > limits.GENERATION_PROMPT_MAX_CHARS:
            raise ApiError(f"prompt has {len(prompt):,} characters; at most {limits.GENERATION_PROMPT_MAX_CHARS:,} "
                           "are allowed.", param="prompt")
        return prompt
    if isinstance(prompt, list) and prompt and all(_is_int(i) for i in prompt):
        if len(prompt) > limits.GENERATION_MAX_PROMPT_TOKENS:
            raise ApiError(f"prompt has {len(prompt):,} tokens; at most {limits.GENERATION_MAX_PROMPT_TOKENS:,} are "
                           "allowed.", param="prompt")
        if not all(0 <= i < vocab_size for i in prompt):
            raise ApiError(f"prompt token ids must be from 0 to {vocab_size - 1}.", param="prompt")
        return tuple(prompt)
    raise ApiError("prompt must be a string or a non-empty list of token ids (one prompt per request).",
                   param="prompt")


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                   for p in content):
            raise ApiError(f"messages[{i}].content may only hold text parts.", param="messages")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise ApiError(f"messages[{i}].content must be a string.", param="messages")
    return content


def _messages(body: dict) -> tuple[dict, ...]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError("messages must be a non-empty list of {role, content} objects.", param="messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(f"messages[{i}] needs a role: one of {', '.join(ROLES)}.", param="messages")
        out.append({"role": m["role"], "content": _content(m, i)})
    if sum(len(m["content"]) for m in out) > limits.GENERATION_PROMPT_MAX_CHARS:
        raise ApiError(f"messages hold more than {limits.GENERATION_PROMPT_MAX_CHARS:,} characters.",
                       param="messages")
    return tuple(out)


def read_request(body: Any, served: dict[str, LoadedModel], *, chat: bool) -> Request:
    """Check a parsed JSON body of /v1/completions (``chat`` False) or /v1/chat/completions."""
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError("model is required: one of " + ", ".join(served) + ".", param="model")
    if name not in served:
        raise ApiError(f"The model {name!r} is not served here; GET /v1/models lists the ones that are.",
                       status=404, param="model", code="model_not_found")
    if _whole(body, "n", 1, 1, 1) != 1:
        raise ApiError("n must be 1.", param="n")
    unsupported = [name for name in ("echo", "suffix", "tools", "functions", "logit_bias") if body.get(name)]
    if body.get("best_of") not in (None, 1):
        unsupported.append("best_of")
    if unsupported:
        raise ApiError(f"{unsupported[0]} is not supported by this server.", param=unsupported[0])
    for penalty in ("frequency_penalty", "presence_penalty"):
        if _number(body, penalty, 0.0, -2.0, 2.0) != 0.0:
            raise ApiError(f"{penalty} is not supported; use repetition_penalty.", param=penalty)
    vocab = served[name].config.vocab_size
    cap = limits.GENERATION_MAX_NEW_TOKENS
    if chat:
        messages, prompt = _messages(body), None
        logprobs = _flag(body, "logprobs")
        top = _whole(body, "top_logprobs", 0, 0, MAX_TOP_LOGPROBS)
        if top and not logprobs:
            raise ApiError("top_logprobs needs logprobs: true.", param="top_logprobs")
        max_name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
        max_tokens = _whole(body, max_name, cap, 1, cap)
    else:
        messages, prompt = None, _prompt(body, vocab)
        top = _whole(body, "logprobs", None, 0, MAX_TOP_LOGPROBS)
        logprobs, top = top is not None, top or 0
        max_tokens = _whole(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, cap)
    temperature = _number(body, "temperature", 1.0, 0.0, MAX_TEMPERATURE)
    top_k = _whole(body, "top_k", 0, -1, vocab)
    seed = _whole(body, "seed", None, 0, 2 ** 63 - 1)
    try:
        settings = SamplingSettings(
            greedy=temperature == 0.0, temperature=temperature or 1.0, top_k=max(top_k, 0),
            top_p=_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True), min_p=_number(body, "min_p", 0.0, 0.0, 0.99),
            repetition_penalty=_number(body, "repetition_penalty", 1.0, 0.0, MAX_REPETITION_PENALTY, low_open=True),
            max_new_tokens=max_tokens, seed=seed)
    except ValueError as err:  # a combination SamplingSettings refuses, with its own sentence
        raise ApiError(str(err)) from err
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError("stream_options must be an object.", param="stream_options")
    return Request(model=name, chat=chat, prompt=prompt, messages=messages, settings=settings,
                   stream=_flag(body, "stream"), include_usage=_flag(options, "include_usage"), logprobs=logprobs,
                   top_logprobs=top, stops=_stops(body), token_ids=_flag(body, "return_tokens_as_token_ids"),
                   steps=_flag(body, "explorer_steps"))


def chat_prompt_ids(pm: LoadedModel, messages: Sequence[dict]) -> list[int]:
    """The messages in the model's chat template, ending where the assistant's answer begins; one user message
    gives exactly explorer.generation's chat prompt (the tokenizer's ``chat_ids``)."""
    tokenizer = pm.tokenizer
    if not getattr(tokenizer, "supports_chat", False):
        raise ApiError(f"The model {pm.name!r} has no chat template; use /v1/completions.", param="messages")
    with tokenizer.locked() as raw:
        text = raw.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tokenizer.encode(text, add_special_tokens=False)


# ---- responses --------------------------------------------------------------------------------------------------

def logprob(p: float) -> float:
    return max(math.log(p), MIN_LOGPROB) if p > 0 else MIN_LOGPROB


class TokenWriter:
    """Names tokens as the request asked ("token_id:N" or their text) and writes their logprobs entries."""

    def __init__(self, pm: LoadedModel, req: Request):
        self.pm, self.req = pm, req

    def name(self, token_id: int) -> str:
        if self.req.token_ids:
            return f"token_id:{token_id}"
        return self.pm.tokenizer.decode([token_id], skip_special_tokens=False)

    def _bytes(self, token_id: int) -> list[int] | None:
        b = self.pm.tokenizer.token_bytes([token_id])[0]
        return None if b is None else list(b)

    def top(self, step: Step) -> list:
        return list(step.candidates[:self.req.top_logprobs])

    def chat_entry(self, step: Step) -> dict:
        return {"token": self.name(step.token_id), "logprob": logprob(step.model_prob),
                "bytes": self._bytes(step.token_id),
                "top_logprobs": [{"token": self.name(c.token_id), "logprob": logprob(c.model_prob),
                                  "bytes": self._bytes(c.token_id)} for c in self.top(step)]}

    def completion_logprobs(self, steps: Sequence[Step], offset: int) -> dict:
        tokens = [self.name(s.token_id) for s in steps]
        offsets, at = [], offset
        for s in steps:
            offsets.append(at)
            at += len(s.delta)
        return {"tokens": tokens, "token_logprobs": [logprob(s.model_prob) for s in steps],
                "top_logprobs": [{self.name(c.token_id): logprob(c.model_prob) for c in self.top(s)} for s in steps],
                "text_offset": offsets}

    def chat_logprobs(self, steps: Sequence[Step]) -> dict:
        return {"content": [self.chat_entry(s) for s in steps]}


def step_extension(step: Step) -> dict:
    """What a Step holds beyond OpenAI's logprobs (``explorer_steps``); the attention is not sent."""
    return {"token_id": step.token_id, "prob": step.prob, "model_prob": step.model_prob, "n_kept": step.n_kept,
            "entropy": step.entropy, "model_entropy": step.model_entropy, "tokens_read": step.tokens_read,
            "seconds": step.seconds, "finish": step.finish,
            "candidates": [[c.token_id, c.prob, c.model_prob] for c in step.candidates]}


def usage(n_prompt: int, n_new: int) -> dict:
    return {"prompt_tokens": n_prompt, "completion_tokens": n_new, "total_tokens": n_prompt + n_new}


def finish_reason(last: Step | None, stopped: bool) -> str:
    if stopped or last is None:
        return "stop"
    return FINISH.get(last.finish or "", "length")


def envelope(req: Request, *, chunk: bool) -> dict:
    if req.chat:
        kind = "chat.completion.chunk" if chunk else "chat.completion"
        return {"id": f"chatcmpl-{req.id}", "object": kind, "created": req.created, "model": req.model}
    return {"id": f"cmpl-{req.id}", "object": "text_completion", "created": req.created, "model": req.model}
