"""Where the tensors live: the GPU when there is one, else the CPU."""
from __future__ import annotations

import ctypes
import sys

import torch


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
