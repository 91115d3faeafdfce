"""PagedAttention's memory manager in miniature (Kwon et al. 2023, "Efficient Memory Management for Large Language
Model Serving with PagedAttention", Sections 3-4), against the contiguous pre-allocation it replaced.

A server keeps every running request's keys and values (the KV cache) in GPU memory. Before vLLM, a request got
one contiguous region sized for the longest sequence it might reach (``max_len`` tokens) as soon as it was admitted:
most of that region holds tokens that are not written yet (reserved) or never will be (internal fragmentation),
so few requests fit. vLLM cuts the memory into fixed blocks of ``block_size`` tokens; a request's **block table**
maps its logical blocks to any free physical blocks, taken one at a time as it grows, so the only slack is the
unfilled end of each request's last block.

Both systems here serve the same seeded stream of requests, one token per running request per step, first come
first served; when a paged request needs a block and none is free, the most recently admitted request is preempted
(its blocks freed, it waits again at the head of the line and later recomputes what it had: vLLM's recomputation).
Everything is counted in token slots; multiply by the bytes per token of a model (explorer.sizing) for bytes.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np

FREE = -1  # owner of a free block


@dataclass(frozen=True)
class Request:
    rid: int
    arrival: int  # the step it arrives at the server
    prompt: int  # tokens written into the cache when it is admitted (the prefill)
    output: int  # tokens it then generates, one per step

    @property
    def total(self) -> int:
        return self.prompt + self.output


def make_requests(n: int, max_len: int, seed: int, mean_gap: float) -> tuple[Request, ...]:
    """``n`` requests no longer than ``max_len`` tokens, arriving ``mean_gap`` steps apart on average (a Poisson
    stream): prompts of 1 to max_len/2 tokens, then 1 to (max_len - prompt) generated tokens."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(mean_gap, n)
    arrivals = np.floor(np.cumsum(gaps) - gaps[0]).astype(int)  # the first arrives at step 0
    out = []
    for rid in range(n):
        prompt = int(rng.integers(1, max_len // 2 + 1))
        output = int(rng.integers(1, max_len - prompt + 1))
        out.append(Request(rid, int(arrivals[rid]), prompt, output))
    return tuple(out)


class BlockPool:
    """``n_blocks`` physical blocks and the block table of every request holding some. The lowest-numbered free
    block is handed out first (a heap), so the page reads the same for the same requests."""

    def __init__(self, n_blocks: int, block_size: int):
        self.n_blocks, self.block_size = n_blocks, block_size
        self.owner = np.full(n_blocks, FREE, dtype=np.int32)
        self.tables: dict[int, list[int]] = {}
        self._free = list(range(n_blocks))  # already a heap

    @property
    def n_free(self) -> int:
        return len(self._free)

    def allocate(self, rid: int) -> int:
        """One more block at the end of ``rid``'s block table; a pool without a free block is the caller's bug."""
        if not self._free:
            raise MemoryError("no free block")
        block = heapq.heappop(self._free)
        if self.owner[block] != FREE:
            raise AssertionError(f"block {block} handed out twice")
        self.owner[block] = rid
        self.tables.setdefault(rid, []).append(block)
        return block

    def release(self, rid: int) -> list[int]:
        """Every block of ``rid`` back to the pool; its block table goes."""
        blocks = self.tables.pop(rid, [])
        for block in blocks:
            self.owner[block] = FREE
            heapq.heappush(self._free, block)
        return blocks


@dataclass(frozen=True)
class Snapshot:
    """The pool at the end of one step, block by block: its owner (FREE or a request id), its place in the owner's
    block table, and how many of its ``block_size`` slots hold a token."""

    step: int
    owner: np.ndarray
    logical: np.ndarray
    filled: np.ndarray
    tables: dict[int, tuple[int, ...]]  # request id -> its physical blocks, in logical order


@dataclass(frozen=True)
class Trace:
    """One system serving the requests: per step (after its tokens are written, before finished requests leave)
    the token slots holding a token (``used``), held by some request (``reserved``), and the requests running and
    waiting; per request when it was admitted and finished."""

    system: str  # "paged" or "contiguous"
    capacity: int  # token slots of the pool
    used: np.ndarray
    reserved: np.ndarray
    running: np.ndarray
    waiting: np.ndarray
    pending: np.ndarray  # of the held-but-empty slots, those their request will still fill (not fragmentation)
    admitted: dict[int, int]
    finished: dict[int, int]
    preemptions: int
    snapshots: dict[int, Snapshot] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.used)

    @property
    def wasted(self) -> np.ndarray:
        """Slots held but empty: reserved for tokens not written yet, or never to be written."""
        return self.reserved - self.used

    @property
    def fragmentation(self) -> np.ndarray:
        """Held slots no token will ever fill: the end of a paged request's last block, or the part of a contiguous
        region past the request's final length."""
        return self.wasted - self.pending

    @property
    def peak_running(self) -> int:
        return int(self.running.max()) if self.steps else 0

    def utilisation(self) -> float:
        """Of the slots held over the whole run, the share that held a token (vLLM's Figure 2 measures this)."""
        held = int(self.reserved.sum())
        return float(self.used.sum()) / held if held else 1.0

    def mean_latency(self, requests: tuple[Request, ...]) -> float:
        """Steps from arrival to the last token, averaged over the requests."""
        return float(np.mean([self.finished[r.rid] + 1 - r.arrival for r in requests]))


class _Run:
    """One request inside a system: ``length`` tokens in the cache so far."""

    def __init__(self, request: Request, length: int):
        self.request, self.length = request, length


def simulate(requests: tuple[Request, ...], system: str, *, pool_blocks: int, block_size: int, max_len: int,
             snapshot_steps: tuple[int, ...] = (), max_steps: int = 200_000) -> Trace:
    """Serve ``requests`` with ``system`` ("paged": blocks on demand; "contiguous": max_len slots per request, the
    pool cut into pool_blocks·block_size // max_len regions) and record what the memory holds at every step."""
    if system not in ("paged", "contiguous"):
        raise ValueError(system)
    if max_len % block_size or max_len > pool_blocks * block_size:
        raise ValueError("max_len must be whole blocks and fit in the pool")  # a region drawn as whole blocks
    capacity = pool_blocks * block_size
    pool = BlockPool(pool_blocks, block_size)
    regions = capacity // max_len
    region_of: dict[int, int] = {}
    free_regions = list(range(regions))
    by_arrival = sorted(requests, key=lambda r: (r.arrival, r.rid))
    arrived = 0
    waiting: list[_Run] = []
    running: list[_Run] = []
    used, reserved, n_running, n_waiting, pending = [], [], [], [], []
    admitted, finished, snapshots = {}, {}, {}
    preemptions = 0
    wanted = set(snapshot_steps)

    def blocks_for(tokens: int) -> int:
        return math.ceil(tokens / block_size)

    step = 0
    while len(finished) < len(requests):
        if step >= max_steps:
            raise RuntimeError("simulation did not finish")
        while arrived < len(by_arrival) and by_arrival[arrived].arrival <= step:
            waiting.append(_Run(by_arrival[arrived], 0))
            arrived += 1
        # admission, first come first served: the head of the line waits until it fits, and so does everyone behind
        while waiting:
            run = waiting[0]
            prefill = max(run.length, run.request.prompt)  # a preempted request recomputes what it had
            if system == "paged":
                if pool.n_free < blocks_for(prefill + 1):  # room for its prompt and this step's token
                    break
                for _ in range(blocks_for(prefill + 1)):
                    pool.allocate(run.request.rid)
            else:
                if not free_regions:
                    break
                region_of[run.request.rid] = free_regions.pop(0)
            waiting.pop(0)
            run.length = prefill
            running.append(run)
            admitted.setdefault(run.request.rid, step)
        # decode: every running request writes one token
        for run in list(running):
            if run not in running:  # preempted earlier in this step
                continue
            if system == "paged" and len(pool.tables[run.request.rid]) * block_size < run.length + 1:
                while pool.n_free == 0:
                    victim = running.pop()  # the most recently admitted
                    pool.release(victim.request.rid)
                    waiting.insert(0, victim)
                    preemptions += 1
                    if victim is run:
                        break
                if run not in running:
                    continue
                pool.allocate(run.request.rid)
            run.length += 1
        lengths = [r.length for r in running]
        used.append(sum(lengths))
        held = [block_size * len(pool.tables[r.request.rid]) if system == "paged" else max_len for r in running]
        reserved.append(sum(held))
        pending.append(sum(min(r.request.total, h) - r.length for r, h in zip(running, held)))
        n_running.append(len(running))
        n_waiting.append(len(waiting))  # arrived and not admitted
        if step in wanted:
            snapshots[step] = _snapshot(step, system, pool, running, region_of, block_size, max_len)
        for run in [r for r in running if r.length >= r.request.total]:
            running.remove(run)
            finished[run.request.rid] = step
            if system == "paged":
                pool.release(run.request.rid)
            else:
                free_regions.append(region_of.pop(run.request.rid))
                free_regions.sort()
        step += 1
    return Trace(system, capacity, np.array(used), np.array(reserved), np.array(n_running), np.array(n_waiting),
                 np.array(pending), admitted, finished, preemptions, snapshots)


def _snapshot(step: int, system: str, pool: BlockPool, running: list[_Run], region_of: dict[int, int],
              block_size: int, max_len: int) -> Snapshot:
    owner = np.full(pool.n_blocks, FREE, dtype=np.int32)
    logical = np.full(pool.n_blocks, -1, dtype=np.int32)
    filled = np.zeros(pool.n_blocks, dtype=np.int32)
    tables = {}
    per_region = max_len // block_size
    for run in running:
        rid = run.request.rid
        if system == "paged":
            blocks = list(pool.tables.get(rid, ()))
        else:  # a contiguous region drawn in blocks of the same size, so both pools read alike
            start = region_of[rid] * per_region
            blocks = list(range(start, start + per_region))
        tables[rid] = tuple(blocks)
        for i, block in enumerate(blocks):
            owner[block], logical[block] = rid, i
            filled[block] = min(block_size, max(0, run.length - i * block_size))
    return Snapshot(step, owner, logical, filled, tables)
