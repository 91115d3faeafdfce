"""The engine's HTTP server: OpenAI's /v1/models, /v1/completions and /v1/chat/completions (``stream: true`` as
server-sent events), and /health, on Starlette + uvicorn (both ship with Streamlit).

Every request is one explorer.generation.generate run, stepped by a thread of its own: the shared engine batches
the runs of all requests together, the async server only passes their steps on. A client that goes away (a closed
stream, a dropped connection) closes its run, so nobody's tokens are computed for nobody. Whatever a request holds,
the answer is JSON: a refused request gets OpenAI's error object with a sentence, an unexpected failure a 500, and
the server goes on serving.
"""
from __future__ import annotations

import asyncio
import json
import threading
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..engine import engine_stats
from ..generation import Prompt, Step, generate, prepare_prompt
from ..i18n import sentence_of
from ..models import LoadedModel
from . import api
from .stops import StopText

# Requests in progress at once (each holds a thread that mostly waits for the engine's next step). Well above the
# engine's own cap on running requests, so the engine's queue, not this door, decides the order; a burst beyond it
# gets 429 instead of tying up the server's threads.
MAX_OPEN_REQUESTS = 256


class Run:
    """One request's run in a thread of its own; the async side reads its events from a queue."""

    def __init__(self, pm: LoadedModel, req: api.Request, prompt_ids: list[int] | None):
        self.pm, self.req = pm, req
        self.loop = asyncio.get_running_loop()
        self.events: asyncio.Queue = asyncio.Queue()
        self.generation = None
        self.prompt: Prompt | None = None
        self._closed = threading.Event()
        self._prompt_ids = prompt_ids
        threading.Thread(target=self._work, daemon=True, name=f"serving-{req.id[:8]}").start()

    def _put(self, kind: str, value=None) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, value))

    def _work(self) -> None:
        req, pm = self.req, self.pm
        try:
            source = self._prompt_ids if self._prompt_ids is not None else req.prompt
            prompt = prepare_prompt(pm.tokenizer, source if isinstance(source, str) else list(source),
                                    pm.config.max_seq_len)
            self.prompt = prompt
            gen = generate(pm.model, pm.tokenizer, prompt, req.settings, n_candidates=req.n_candidates,
                           stop_ids=pm.eos_token_ids, labels=False)  # tokens go out as ids or decoded alone
        except ValueError as err:  # the prompt or the settings, said as the lab says it
            self._put("error", api.ApiError(sentence_of(err), param="messages" if req.chat else "prompt"))
            return
        except Exception as err:  # noqa: BLE001 -- any failure is the client's 500, never the server's end
            self._put("crash", err)
            return
        self.generation = gen
        self._put("started", prompt)
        try:
            for step in gen:
                self._put("step", step)
                if self._closed.is_set():
                    break
            self._put("end")
        except Exception as err:  # noqa: BLE001
            self._put("crash", err)
        finally:
            gen.close()

    def close(self) -> None:
        self._closed.set()
        if self.generation is not None:
            self.generation.close()

    async def next(self):
        return await self.events.get()


class Server:
    """The routes over a set of served models (explorer.serving.served.load_served)."""

    def __init__(self, served: dict[str, LoadedModel]):
        self.served = served
        self.open = 0
        self.runs_total = 0  # runs started since the process began (a replica's students show up here)
        self.app = Starlette(routes=[
            Route("/health", self.health, methods=["GET"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/chat/completions", self.chat, methods=["POST"]),
        ], exception_handlers={HTTPException: self.http_error, Exception: self.server_error})

    # ---- errors ---------------------------------------------------------------------------------------------------
    @staticmethod
    def error(err: api.ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status)

    async def http_error(self, request: HttpRequest, exc: HTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return self.error(api.ApiError(f"{request.method} {request.url.path}: {exc.detail}", status=exc.status_code,
                                       kind=kind))

    async def server_error(self, request: HttpRequest, exc: Exception) -> Response:
        return self.error(api.ApiError(f"The server failed on this request: {type(exc).__name__}.", status=500,
                                       kind="server_error"))

    # ---- routes ---------------------------------------------------------------------------------------------------
    async def health(self, request: HttpRequest) -> Response:
        return JSONResponse({"status": "ok", "models": list(self.served), "open_requests": self.open,
                             "runs_total": self.runs_total,
                             "engines": {name: engine_stats(pm.model) for name, pm in self.served.items()}})

    async def models(self, request: HttpRequest) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "explorer",
             "max_model_len": pm.config.max_seq_len, "vocab_size": pm.config.vocab_size}
            for name, pm in self.served.items()]})

    async def completions(self, request: HttpRequest) -> Response:
        return await self._complete(request, chat=False)

    async def chat(self, request: HttpRequest) -> Response:
        return await self._complete(request, chat=True)

    async def _body(self, request: HttpRequest):
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > api.MAX_BODY_BYTES):
            raise api.ApiError(f"The request body is over {api.MAX_BODY_BYTES:,} bytes.", status=413)
        raw = bytearray()
        async for part in request.stream():
            raw += part
            if len(raw) > api.MAX_BODY_BYTES:
                raise api.ApiError(f"The request body is over {api.MAX_BODY_BYTES:,} bytes.", status=413)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise api.ApiError(f"The request body is not valid JSON: {err}.") from err

    async def _complete(self, request: HttpRequest, *, chat: bool) -> Response:
        if self.open >= MAX_OPEN_REQUESTS:
            return self.error(api.ApiError(f"{self.open} requests are in progress; try again in a moment.",
                                           status=429, kind="server_busy"))
        self.open += 1
        handed_over = False
        try:
            req = api.read_request(await self._body(request), self.served, chat=chat)
            pm = self.served[req.model]
            prompt_ids = api.chat_prompt_ids(pm, req.messages) if chat else None
            run = Run(pm, req, prompt_ids)
            kind, value = await run.next()
            if kind == "error":
                raise value
            if kind == "crash":
                raise value
            self.runs_total += 1
            if req.stream:
                handed_over = True
                return StreamingResponse(self._stream(run, value, request), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            return JSONResponse(await self._whole(run, value, request))
        except api.ApiError as err:
            return self.error(err)
        finally:
            if not handed_over:
                self.open -= 1

    async def _whole(self, run: Run, prompt: Prompt, request: HttpRequest) -> dict:
        req = run.req
        stop, steps, text = StopText(req.stops), [], ""
        try:
            while True:
                kind, value = await run.next()
                if kind == "crash":
                    raise value
                if kind == "end":
                    break
                steps.append(value)
                text += stop.feed(value.delta)
                if stop.stopped or await request.is_disconnected():
                    break
        finally:
            run.close()
        text += stop.flush()
        writer = api.TokenWriter(run.pm, req)
        choice: dict = {"index": 0, "finish_reason": api.finish_reason(steps[-1] if steps else None, stop.stopped)}
        if req.chat:
            choice["message"] = {"role": "assistant", "content": text}
            choice["logprobs"] = writer.chat_logprobs(steps) if req.logprobs else None
        else:
            choice["text"] = text
            choice["logprobs"] = writer.completion_logprobs(steps, 0) if req.logprobs else None
        if req.steps:
            choice["explorer_steps"] = [api.step_extension(s) for s in steps]
        return {**api.envelope(req, chunk=False), "choices": [choice], "usage": api.usage(len(prompt), len(steps))}

    async def _stream(self, run: Run, prompt: Prompt, request: HttpRequest) -> AsyncIterator[str]:
        req = run.req
        writer = api.TokenWriter(run.pm, req)
        stop, n, offset, last = StopText(req.stops), 0, 0, None

        def chunk(text: str, step: Step | None, finish: str | None) -> str:
            choice: dict = {"index": 0, "finish_reason": finish}
            if req.chat:
                choice["delta"] = {"content": text} if text or finish is None else {}
                choice["logprobs"] = ({"content": [writer.chat_entry(step)]} if req.logprobs and step else None)
            else:
                choice["text"] = text
                choice["logprobs"] = (writer.completion_logprobs([step], offset) if req.logprobs and step else None)
            if req.steps and step is not None:
                choice["explorer_steps"] = [api.step_extension(step)]
            return sse({**api.envelope(req, chunk=True), "choices": [choice]})

        try:
            if req.chat:
                yield sse({**api.envelope(req, chunk=True),
                           "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                        "finish_reason": None}]})
            while True:
                kind, value = await run.next()
                if kind == "crash":
                    yield sse(api.ApiError(f"The server failed during this request: {type(value).__name__}.",
                                           status=500, kind="server_error").body())
                    break
                if kind == "end":
                    break
                n, last = n + 1, value
                text = stop.feed(value.delta)
                yield chunk(text, value, None)
                offset += len(text)
                if stop.stopped:
                    break
            run.close()
            yield chunk(stop.flush(), None, api.finish_reason(last, stop.stopped))
            if req.include_usage:
                yield sse({**api.envelope(req, chunk=True), "choices": [], "usage": api.usage(len(prompt), n)})
            yield "data: [DONE]\n\n"
        finally:  # also when the client went away and Starlette cancelled the stream
            run.close()
            self.open -= 1


def sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def make_app(served: dict[str, LoadedModel]) -> Starlette:
    return Server(served).app
