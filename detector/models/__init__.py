"""Networks, looked up by family name: `create_model("timm", backbone=...)`.

A new family is one module here with a builder decorated by `@register_model("name")`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

import torch

_REGISTRY: dict[str, Callable[..., torch.nn.Module]] = {}


def register_model(name: str):
    def add(builder: Callable[..., torch.nn.Module]):
        _REGISTRY[name] = builder
        return builder

    return add


def _load_all() -> None:
    """Import every module of this package: each registers its families."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def create_model(family: str, **kwargs) -> torch.nn.Module:
    _load_all()
    if family not in _REGISTRY:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[family](**kwargs)


def model_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)
