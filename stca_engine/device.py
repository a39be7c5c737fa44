"""Where tensors live: CUDA when present, else CPU."""

from __future__ import annotations

import torch


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def describe_device(device: torch.device | str | None = None) -> str:
    """A short human label, e.g. 'CPU (2 threads)' or 'CUDA: NVIDIA H200'."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        return f"CUDA: {torch.cuda.get_device_name(device)}"
    return f"CPU ({torch.get_num_threads()} threads)"
