"""A light load client that speaks Streamlit 1.67's websocket protocol, for benches that need many sessions.

One ``Session`` is one browser tab: it connects to ws://127.0.0.1:PORT/_stcore/stream, asks for a page (its URL
path, e.g. "/attention"), receives the ForwardMsgs of each script run, keeps the widget states the way the
browser's WidgetStateManager does (every widget shown gets its default, a change is sent with all the others), and
keeps the browser's message cache (it reports the hashes of the cacheable messages it holds, so the server sends
references instead of resending unchanged charts, as it does to a browser). It finds widgets by label, sends
reruns with changed values or button clicks, and records per run: when it started and finished (client clock),
its elements, the bytes received, and any Exception element.

    async with await Session.open(server_url, "/attention") as s:
        run = await s.wait_run()
        t = await s.set("n_head (number of heads)", 8)
        run = await s.wait_run(started_after=t)
        run.seconds_since(t), run.exceptions

Loopback only (``Session.open`` refuses other hosts); every wait has a deadline and the reader a message cap.

Equivalence with a browser for server load: ``bench/bench_client_vs_browser.py --record`` drives the same rerun of
one page from Chromium and from this client against one server and writes its measurements between the markers
below (server CPU per rerun, messages and bytes the server sent, script-run time, elements drawn). The server
sends both the same messages and bytes for about the same CPU time; the wall times differ because Chromium draws
the page on the same machine's cores while the server runs the script; in a classroom each student's laptop
does that drawing.

<!-- client-vs-browser: begin (written by bench/bench_client_vs_browser.py --record; do not edit) -->
/attention, 'n_head (number of heads)' 5 <-> 4, 2 alternating rounds of 6 reruns each, 2 CPUs:
median of 12 reruns                  Chromium  st_client  ratio
server CPU per rerun (ms)                 100         90   0.90
messages sent                             112        112   1.00
bytes sent                              88168      88168   1.00
deltas (elements, blocks)                 106        106   1.00
request to script_finished (ms)           566        107   0.19
new_session to script_finished (ms)        513        102   0.20
rerun requests per change                   1          1   1.00
exceptions shown                            0          0      -
<!-- client-vs-browser: end -->
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MAX_MESSAGES = 2_000_000  # per session: far above any bench, stops a runaway reader
MAX_MESSAGE_BYTES = 256 << 20  # a ForwardMsg above this is a bug worth a disconnect
WIDGET_KINDS = {"slider", "selectbox", "radio", "text_input", "text_area", "number_input", "button", "checkbox",
                "multiselect"}
DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR,
        ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY}


@dataclass
class Element:
    kind: str  # the Element oneof: "slider", "markdown", "plotly_chart", "exception", ...
    proto: Any  # the element's own message (e.g. a Slider)

    def text(self) -> str:
        """What a student could read in it (markdown body, chart spec, widget label...), for content checks."""
        p = self.proto
        for name in ("body", "spec", "label", "message", "text", "data"):
            value = getattr(p, name, None)
            if isinstance(value, str) and value:
                return value
        return ""


@dataclass
class Widget:
    kind: str  # slider, select_slider, selectbox, radio, text_input, text_area, number_input, button, checkbox,
    #            toggle, multiselect
    id: str
    label: str
    proto: Any

    def options(self) -> list[str]:
        return list(getattr(self.proto, "options", []))

    def _option(self, value) -> str:
        options = self.options()
        text = value if isinstance(value, str) else str(value)
        if text not in options:
            raise ValueError(f"{value!r} is not an option of {self.label!r}: {options[:20]}")
        return text

    def state(self, value) -> WidgetState:
        """The WidgetState the browser sends for ``value`` (options are given as shown, e.g. "4")."""
        ws = WidgetState(id=self.id)
        k = self.kind
        if k == "slider":
            ws.double_array_value.data[:] = [float(v) for v in (value if isinstance(value, (list, tuple))
                                                                 else [value])]
        elif k == "select_slider":
            ws.string_array_value.data[:] = [self._option(v) for v in (value if isinstance(value, (list, tuple))
                                                                       else [value])]
        elif k in ("selectbox", "radio"):
            ws.string_value = self._option(value)
        elif k == "multiselect":
            ws.string_array_value.data[:] = [self._option(v) for v in value]
        elif k in ("text_input", "text_area"):
            ws.string_value = str(value)
        elif k == "number_input":
            if self.proto.data_type == self.proto.INT:
                ws.int_value = int(value)
            else:
                ws.double_value = float(value)
        elif k in ("checkbox", "toggle"):
            ws.bool_value = bool(value)
        elif k == "button":
            ws.trigger_value = bool(value)
        else:
            raise ValueError(f"cannot set a {k}")
        return ws

    def default_state(self) -> WidgetState | None:
        """What the browser registers when the widget first appears (None: nothing, as for a button)."""
        p, k = self.proto, self.kind
        if k == "button":
            return None
        if k == "slider":
            return self.state(list(p.value) if p.set_value else list(p.default))
        if k == "select_slider":
            shown = list(p.raw_value) if p.set_value else [p.options[int(i)] for i in p.default]
            return self.state(shown)
        if k in ("selectbox", "radio"):
            if p.set_value:
                return self.state(p.raw_value) if p.raw_value else None
            return self.state(p.options[p.default]) if p.HasField("default") and p.options else None
        if k == "multiselect":
            return self.state(list(p.raw_values) if p.set_value else [p.options[i] for i in p.default])
        if k in ("text_input", "text_area"):
            return self.state(p.value if p.set_value else p.default)
        if k == "number_input":
            if p.set_value:
                return self.state(p.value)
            return self.state(p.default) if p.HasField("default") else None
        if k in ("checkbox", "toggle"):
            return self.state(p.value if p.set_value else p.default)
        return None


def widget_of(element: Element) -> Widget | None:
    p = element.proto
    if element.kind not in WIDGET_KINDS:
        return None
    kind = element.kind
    if kind == "slider" and p.type == Slider.Type.SELECT_SLIDER:
        kind = "select_slider"
    elif kind == "checkbox" and p.type == p.StyleType.TOGGLE:
        kind = "toggle"
    return Widget(kind=kind, id=p.id, label=p.label, proto=p)


@dataclass
class Run:
    """One script run as this client saw it."""

    script_run_id: str
    started: float  # time.monotonic() when its new_session arrived
    finished: float | None = None
    status: int | None = None  # a ForwardMsg.ScriptFinishedStatus
    elements: dict[tuple[int, ...], Element] = field(default_factory=dict)
    exceptions: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    deltas: int = 0  # delta messages (elements and blocks), references to cached ones included
    first_delta: float | None = None
    blocks: dict[tuple[int, ...], Any] = field(default_factory=dict)  # containers drawn (Block protos) by path

    @property
    def ok(self) -> bool:
        return self.status in DONE

    def seconds_since(self, t: float) -> float:
        return (self.finished if self.finished is not None else time.monotonic()) - t

    def contains(self, text: str) -> bool:
        return any(text in e.text() for e in self.elements.values())

    def texts_in(self, key: str) -> list[str]:
        """The texts this run drew inside the container made with ``key=key`` (st.container(key=...)), in order."""
        return texts_in(self.blocks, self.elements, key)


class Session:
    """One simulated browser tab on one page of a running Streamlit app."""

    def __init__(self, ws, url: str, path: str):
        self._ws = ws
        self.url, self.path = url, path
        self.runs: list[Run] = []
        self.current: Run | None = None
        self.tree: dict[tuple[int, ...], Element] = {}  # what the browser shows now
        self.widget_states: dict[str, WidgetState] = {}
        self.page_script_hash = ""
        self.disconnected: str | None = None  # why, once the connection closed unexpectedly
        self.messages = self.bytes = 0
        self._cache: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, run count when last used)
        self._max_cache_age = 2  # updated from the server's new_session config
        self._finished_runs = 0
        self._changed = asyncio.Condition()
        self._closing = False
        # called with (run, delta path, element, arrival time) for every element: a streamed answer redraws one
        # path again and again, so a load test times its first token here
        self.on_element: Callable[[Run, tuple[int, ...], Element, float], None] | None = None
        self._reader = asyncio.create_task(self._read())

    # ---- connection -------------------------------------------------------------------------------------------
    @classmethod
    async def open(cls, url: str, path: str = "/", timeout: float = 30.0) -> "Session":
        """Connect to the app at ``url`` (http://127.0.0.1:PORT) and request the page at ``path``."""
        parts = urlsplit(url)
        if parts.hostname not in LOOPBACK:
            raise ValueError(f"loopback only, not {parts.hostname}")
        ws_url = f"ws://{parts.netloc}/_stcore/stream"
        # no client pings: a browser sends none (it answers the server's), and a ping timeout of our own would
        # report a busy server as a disconnect that no student sees
        ws = await asyncio.wait_for(connect(ws_url, subprotocols=["streamlit"], origin=f"http://{parts.netloc}",
                                            max_size=MAX_MESSAGE_BYTES, proxy=None, open_timeout=timeout,
                                            ping_interval=None), timeout)
        session = cls(ws, url, path)
        await session.rerun()
        return session

    async def close(self) -> None:
        self._closing = True
        try:
            await asyncio.wait_for(self._ws.close(), 10)
            await asyncio.wait_for(self._reader, 10)
        except (asyncio.TimeoutError, ConnectionClosed, OSError):
            self._reader.cancel()

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- sending ------------------------------------------------------------------------------------------------
    async def rerun(self, changed: dict[str, WidgetState] | None = None) -> float:
        """Ask for a rerun with the current widget states plus ``changed``; returns the send time (monotonic)."""
        states = dict(self.widget_states)
        states.update(changed or {})
        cs = ClientState(query_string="", page_script_hash=self.page_script_hash,
                         page_name=self.path.strip("/"))
        cs.widget_states.widgets.extend(states.values())
        cs.cached_message_hashes.extend(self._cache)
        cs.context_info.timezone = "UTC"
        cs.context_info.locale = "en-US"
        cs.context_info.url = self.url + self.path
        msg = BackMsg(rerun_script=cs)
        # a trigger (button) is sent once; a value stays as the widget's state, as in the browser
        self.widget_states.update({k: v for k, v in (changed or {}).items() if v.WhichOneof("value") !=
                                   "trigger_value"})
        t = time.monotonic()
        await self._ws.send(msg.SerializeToString())
        return t

    async def goto(self, path: str) -> float:
        """Switch this session to another page (a click in the navigation: same session, same session state)."""
        self.path, self.page_script_hash = path, ""
        return await self.rerun()

    async def set(self, label: str, value, kind: str | None = None) -> float:
        w = self.widget(label, kind)
        return await self.rerun({w.id: w.state(value)})

    async def click(self, label: str) -> float:
        w = self.widget(label, "button")
        return await self.rerun({w.id: w.state(True)})

    # ---- what the page shows ------------------------------------------------------------------------------------
    def widgets(self) -> list[Widget]:
        return [w for w in (widget_of(e) for e in self.tree.values()) if w is not None]

    def widget(self, label: str, kind: str | None = None) -> Widget:
        """The shown widget whose label is ``label`` (or, failing that, the only one that starts with it)."""
        shown = [w for w in self.widgets() if kind is None or w.kind == kind]
        exact = [w for w in shown if w.label == label]
        found = exact or [w for w in shown if w.label.startswith(label)]
        if len(found) != 1:
            recent = [(len(r.elements), r.status) for r in self.runs[-3:]]
            raise LookupError(f"{len(found)} widgets labelled {label!r} on {self.path}; shown: "
                              f"{sorted(w.label for w in shown)}; last runs (elements, status): {recent}")
        return found[0]

    def value(self, label: str):
        """The value this client holds for a widget, as sent (a list for sliders)."""
        ws = self.widget_states.get(self.widget(label).id)
        if ws is None:
            return None
        v = getattr(ws, ws.WhichOneof("value"))
        return list(v.data) if hasattr(v, "data") else v

    # ---- waiting ------------------------------------------------------------------------------------------------
    async def wait_run(self, timeout: float = 120.0, started_after: float | None = None,
                       until: Callable[[Run], bool] | None = None) -> Run:
        """The first finished run (started after ``started_after``, satisfying ``until``), waiting at most
        ``timeout`` seconds. A run that started after a rerun request was sent can only be that rerun or a later
        one; ``until`` tells runs apart by content."""
        deadline = time.monotonic() + timeout

        def match() -> Run | None:
            for run in self.runs:
                if (run.finished is not None and run.ok and (started_after is None or run.started > started_after)
                        and (until is None or until(run))):
                    return run
            return None

        async with self._changed:
            while (found := match()) is None:
                if self.disconnected:
                    raise ConnectionError(f"{self.path}: disconnected ({self.disconnected})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.path}: no finished run within {timeout:.0f} s")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except asyncio.TimeoutError:
                    pass
            return found

    @property
    def exceptions(self) -> list[str]:
        return [e for run in self.runs for e in run.exceptions]

    # ---- receiving ----------------------------------------------------------------------------------------------
    async def _read(self) -> None:
        try:
            for _ in range(MAX_MESSAGES):
                data = await self._ws.recv()
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self._handle(msg, len(data))
                async with self._changed:
                    self._changed.notify_all()
            self.disconnected = f"more than {MAX_MESSAGES} messages"
        except ConnectionClosed as err:
            if not self._closing:
                self.disconnected = f"closed: {err}"
        except Exception as err:  # a protocol error is a finding of the bench, not a crash of it
            self.disconnected = f"{type(err).__name__}: {err}"
        finally:
            async with self._changed:
                self._changed.notify_all()

    def _handle(self, msg: ForwardMsg, size: int) -> None:
        self.messages += 1
        self.bytes += size
        if msg.WhichOneof("type") == "ref_hash":
            cached = self._cache.get(msg.ref_hash)
            if cached is None:
                raise RuntimeError(f"server referenced a message this client never cached: {msg.ref_hash}")
            self._cache[msg.ref_hash] = (cached[0], self._finished_runs)
            # the reference carries the delta path of this run; the cached body carries the element
            full = ForwardMsg()
            full.CopyFrom(cached[0])
            full.metadata.CopyFrom(msg.metadata)
            msg = full
        elif msg.metadata.cacheable and msg.hash:
            self._cache[msg.hash] = (msg, self._finished_runs)
        kind = msg.WhichOneof("type")
        run = self.current
        if run is not None:
            run.messages += 1
            run.bytes += size
        if kind == "navigation":  # with st.navigation, the page a rerun asks for is this one, not the main script
            self.page_script_hash = msg.navigation.page_script_hash
        elif kind == "new_session":
            self.page_script_hash = self.page_script_hash or msg.new_session.page_script_hash
            age = msg.new_session.config.max_cached_message_age
            self._max_cache_age = age if age > 0 else self._max_cache_age
            self.current = Run(script_run_id=msg.metadata.run.script_run_id, started=time.monotonic(),
                               messages=1, bytes=size)
            self.runs.append(self.current)
        elif kind == "delta" and run is not None:
            delta = msg.delta
            run.deltas += 1
            if delta.WhichOneof("type") == "new_element":
                el = Element(kind=delta.new_element.WhichOneof("type"),
                             proto=getattr(delta.new_element, delta.new_element.WhichOneof("type")))
                path = tuple(msg.metadata.delta_path)
                run.elements[path] = el
                self.tree[path] = el
                if run.first_delta is None:
                    run.first_delta = time.monotonic()
                if el.kind == "exception":
                    run.exceptions.append(f"{el.proto.type}: {el.proto.message}")
                if self.on_element is not None:
                    self.on_element(run, path, el, time.monotonic())
                w = widget_of(el)
                if w is not None and w.id not in self.widget_states:
                    state = w.default_state()
                    if state is not None:
                        self.widget_states[w.id] = state
            elif delta.WhichOneof("type") == "add_block":
                run.blocks[tuple(msg.metadata.delta_path)] = delta.add_block
        elif kind == "session_event" and run is not None:
            if msg.session_event.HasField("script_compilation_exception"):
                exc = msg.session_event.script_compilation_exception
                run.exceptions.append(f"{exc.type}: {exc.message}")
        elif kind == "page_not_found" and run is not None:
            run.exceptions.append(f"page not found: {msg.page_not_found.page_name}")
        elif kind == "script_finished" and run is not None:
            run.finished, run.status = time.monotonic(), msg.script_finished
            if msg.script_finished in DONE:
                self._finished_runs += 1
                self._prune(run)
            self.current = None

    def _prune(self, run: Run) -> None:
        """What the browser does when a run completes: drop elements and widget states the run did not draw, and
        cached messages unused for longer than the server's max_cached_message_age."""
        if run.status == ForwardMsg.FINISHED_SUCCESSFULLY:
            self.tree = {p: e for p, e in self.tree.items() if p in run.elements}
            shown = {w.id for w in self.widgets()}
            self.widget_states = {k: v for k, v in self.widget_states.items() if k in shown}
        self._cache = {h: (m, used) for h, (m, used) in self._cache.items()
                       if self._finished_runs - used <= self._max_cache_age}


def texts_in(blocks: dict[tuple[int, ...], Any], elements: dict[tuple[int, ...], Element], key: str) -> list[str]:
    """The texts of ``elements`` under the block whose user key is ``key`` (Streamlit ends a keyed container's id
    with "-<key>"), in the page's order."""
    roots = [path for path, block in blocks.items() if block.id.endswith(f"-{key}")]
    return [elements[p].text() for p in sorted(elements) if any(p[:len(r)] == r and p != r for r in roots)]


async def open_many(url: str, paths: list[str], timeout: float = 60.0) -> list[Session]:
    """Open one session per path at once."""
    return list(await asyncio.gather(*(Session.open(url, p, timeout) for p in paths)))
