"""Where the tensors live: the GPU when there is one, else the CPU."""
from __future__ import annotations

import ctypes
import gc
import os
import sys
import threading

import torch

THREADS_ENV = "EXPLORER_TORCH_THREADS"
_configured: dict[str, object] = {}
_configure_lock = threading.Lock()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_label(device: torch.device | None = None) -> str:
    """A human sentence: 'GPU: NVIDIA H100 80GB HBM3' or 'CPU (2 threads)'."""
    device = device or default_device()
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)}"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' if n != 1 else ''})"


def keep_freed_memory(mmap_threshold: int = 64 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Let glibc keep freed blocks for reuse instead of handing every large block back to the OS.

    run_with_cache keeps every intermediate tensor, so each forward allocates megabytes of fresh buffers; by
    default glibc serves blocks over 128 KiB with mmap and unmaps them on free, and every forward then pays page
    faults on all of them again (a quarter of MiniLM's forward time on CPU). Blocks below ``mmap_threshold`` now
    come from the heap, which keeps up to ``trim_threshold`` of free memory. Linux/glibc only; a no-op elsewhere.
    Returns whether the setting took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(M_TRIM_THRESHOLD,
                                                                                          trim_threshold))
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False


def limit_malloc_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (default: two per CPU). Returns whether the setting took effect.

    Streamlit runs every rerun in a new thread, and glibc gives threads arenas of their own, up to eight per CPU;
    each arena keeps its own freed memory (up to keep_freed_memory's trim threshold at its top), so a server that
    has seen many sessions holds many partly empty arenas. The app's Python work holds the GIL, so more arenas than
    threads that run at once buy no speed. Call before the threads start. Linux/glibc only.
    """
    arenas = arenas or 2 * (os.cpu_count() or 1)
    libc = _glibc()
    return bool(libc.mallopt(M_ARENA_MAX, arenas)) if libc is not None else False


def release_freed_memory() -> bool:
    """Hand memory that is free back to the operating system. Returns whether glibc released any.

    First a full garbage collection: a closed session's objects (its state, its tensors) are held in reference
    cycles. Then malloc_trim(0), which returns every free page of every arena, not only the top of the heap that
    the trim threshold governs. Costs a full collection (about half a second with the models loaded), so call it
    now and then (explorer.memory_janitor), not per rerun. Linux/glibc only; elsewhere only the collection runs.
    """
    gc.collect()
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # from glibc's malloc.h


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (musl has neither: AttributeError)
        return libc
    except (OSError, AttributeError):
        return None


def app_threads() -> int:
    """torch threads per computation for the app: EXPLORER_TORCH_THREADS, default 1.

    A classroom server runs many sessions at once. With several OpenMP threads per op, a tiny op then waits for a
    descheduled thread: softmax of an 8x6x6 tensor took 12 ms with 2 threads on a busy 2-core machine and 7 us
    with 1. The labs' tensors are small, so one thread per computation is faster for everyone.
    """
    raw = os.environ.get(THREADS_ENV, "1")
    try:
        threads = int(raw)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1 (got {raw!r}).")
    return threads


def configure_process() -> dict[str, object]:
    """The app server's process-wide settings, made once (later calls change nothing) and never on import:
    torch's thread count (app_threads), glibc's memory reuse (keep_freed_memory) and arena cap (limit_malloc_arenas),
    and the thread that hands freed memory back (explorer.memory_janitor). Returns what was set.

    Streamlit runs every rerun in a new thread. torch keeps the count set here and gives it to each thread at its
    first parallel op, so every later rerun uses it; a thread that already ran torch ops keeps its own.
    """
    with _configure_lock:
        if not _configured:
            threads = app_threads()
            torch.set_num_threads(threads)
            from .memory_janitor import start_memory_janitor  # it imports this module

            _configured.update(threads=threads, keep_freed_memory=keep_freed_memory(),
                               malloc_arenas=limit_malloc_arenas(), memory_janitor=start_memory_janitor())
        return dict(_configured)
