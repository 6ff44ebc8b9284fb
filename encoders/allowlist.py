"""Which models a client may name: registered names, or directories under the models roots.

A collection (or a re-encode job) names its models, and the API process loads them to read their dims.
Without this list a client could make the server load any directory it can read, or download a
multi-GB hub model; the refusal reads the same whether or not a path exists, so it reveals nothing.
Names are registered per encoder (the reranker is `rerank`): a text encoder may not name an audio model.
"""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.errors import MmsearchError
from encoders.registry import ENCODERS
from encoders.training import model_roots

RERANK = "rerank"  # the cross-encoder of search profiles, named like an encoder in the allow-list


class ModelNotAllowed(MmsearchError):
    status = 400


def registered_models(settings: Settings, encoder: str) -> set[str]:
    """`encoder`'s `*_model` default plus its `<encoder>:<model>` entries of `MMSEARCH_ALLOWED_MODELS`."""
    if encoder == RERANK:
        default = settings.models.rerank_model
    elif encoder in ENCODERS.available():
        default = ENCODERS.cls(encoder)(settings=settings).default_model()
    else:
        default = ""
    entries = (entry.partition(":") for entry in settings.security.allowed_models)
    extra = {model for name, _, model in entries if name == encoder}
    return ({default} - {""}) | extra


def _under_roots(path: Path, roots: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


def check_model_ref(settings: Settings, ref: str, *, encoder: str) -> None:
    """`ref` is one of `encoder`'s registered names, or a directory under the models roots."""
    if ref in registered_models(settings, encoder):
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
        names = ", ".join(sorted(registered_models(settings, encoder))) or "none"
        raise ModelNotAllowed(
            f"model {ref!r} is not allowed for {encoder!r}: name a model registered for it ({names})"
            " or a directory under the models directory (MMSEARCH_MODELS_DIR); an operator may add names "
            f"with MMSEARCH_ALLOWED_MODELS entries '{encoder}:<model>'"
        )
