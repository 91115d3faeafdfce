"""Where the tensors live: the GPU when there is one, else the CPU."""
from __future__ import annotations

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
