"""Networks, looked up by family name: `create_model("timm", backbone=...)`.

A new family is one module here with a builder decorated by `@register_model("name")`.
"""

from __future__ import annotations

from typing import Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register_model(name: str):
    def add(builder: Callable[..., torch.nn.Module]):
        _REGISTRY[name] = builder
        return builder

    return add


def create_model(family: str, **kwargs) -> torch.nn.Module:
    from detector.models import audio, visual  # noqa: F401  (registers their families)

    if family not in _REGISTRY:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[family](**kwargs)


def model_names() -> list[str]:
    from detector.models import audio, visual  # noqa: F401

    return sorted(_REGISTRY)
