"""Which models a client may name: registered names, or directories under the models roots.

A collection (or a re-encode job) names its models, and the API process loads them to read their dims.
Without this list a client could make the server load any directory it can read, or download a
multi-GB hub model; the refusal reads the same whether or not a path exists, so it reveals nothing.
"""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.errors import MmsearchError
from encoders.registry import ENCODERS
from encoders.training import model_roots


class ModelNotAllowed(MmsearchError):
    status = 400


def registered_models(settings: Settings) -> set[str]:
    """The `*_model` defaults of every encoder and the reranker, plus `MMSEARCH_ALLOWED_MODELS`."""
    defaults = {ENCODERS.cls(name)(settings=settings).default_model() for name in ENCODERS.available()}
    return (defaults - {""}) | {settings.rerank_model} | set(settings.allowed_models)


def _under_roots(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


def check_model_ref(settings: Settings, ref: str) -> None:
    if ref in registered_models(settings):
        return
    roots = model_roots(settings)
    path = Path(ref)
    if path.is_absolute():
        allowed = _under_roots(path, roots)
    else:
        # The loader tries the path as given first (relative to the working directory), then each root.
        allowed = ".." not in path.parts and (not path.exists() or _under_roots(path, roots))
        allowed = allowed and any((root / path).is_dir() for root in roots)
    if not allowed:
        names = ", ".join(sorted(registered_models(settings)))
        raise ModelNotAllowed(
            f"model {ref!r} is not allowed: name a registered model ({names})"
            " or a directory under the models directory (MMSEARCH_MODELS_DIR); an operator may add names "
            "with MMSEARCH_ALLOWED_MODELS"
        )
