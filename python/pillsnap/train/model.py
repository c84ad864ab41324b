"""The classifier network: a timm model sized to the class index."""

from __future__ import annotations

import logging
from typing import Any

import timm
import torch

from pillsnap.config.schema import ClassifierConfig
from pillsnap.errors import ModelError
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def create_classifier(cfg: ClassifierConfig, num_classes: int) -> torch.nn.Module:
    """``timm.create_model`` with pretrained weights when asked (downloaded, or from the
    Hugging Face cache). Weights that cannot be loaded raise ModelError, unless
    ``allow_random_init`` accepts random weights (one fallback line): a run that silently
    starts from scratch needs far more data and epochs to reach the same accuracy."""
    kwargs = {"num_classes": num_classes, "drop_rate": cfg.drop_rate,
              "drop_path_rate": cfg.drop_path_rate}
    if cfg.pretrained:
        try:
            model = timm.create_model(cfg.arch, pretrained=True, **kwargs)
            log_decision(logger, "pretrained", True, f"{cfg.arch} weights loaded")
            return model
        except Exception as exc:  # timm/huggingface_hub raise many kinds when offline
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
            if not cfg.allow_random_init:
                raise ModelError(
                    f"models.classifier.pretrained=true, but {cfg.arch}'s weights could not be "
                    f"loaded ({reason}). Go online once (the weights are cached), set "
                    "models.classifier.allow_random_init=true to train from random weights, "
                    "or models.classifier.pretrained=false") from exc
            log_decision(logger, "pretrained", False, f"{cfg.arch}: {reason}; random init "
                         "(models.classifier.allow_random_init=true)", fallback=True)
    return timm.create_model(cfg.arch, pretrained=False, **kwargs)


def set_grad_checkpointing(model: torch.nn.Module, wanted: bool) -> None:
    """Recompute activations in backward: less memory for about 30% more compute."""
    if not wanted:
        return
    setter = getattr(model, "set_grad_checkpointing", None)
    if setter is None:
        log_decision(logger, "grad_checkpointing", False,
                     "the model has no set_grad_checkpointing", fallback=True)
        return
    try:
        setter(True)
    except (NotImplementedError, AssertionError) as exc:  # timm models without support
        log_decision(logger, "grad_checkpointing", False, str(exc) or type(exc).__name__,
                     fallback=True)
        return
    log_decision(logger, "grad_checkpointing", True, "timm set_grad_checkpointing")


WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile wrappers


def strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict saved through DDP or torch.compile, with their key prefixes removed."""
    for prefix in WRAPPER_PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def classifier_from_checkpoint(state: dict[str, Any]) -> tuple[torch.nn.Module, str]:
    """The network a checkpoint holds, in eval mode, and which weights it got: ``ema``
    (what evaluation used) when saved, else ``model``. Raises RuntimeError when the weights
    do not fit the architecture."""
    weights = "ema" if state.get("ema") is not None else "model"
    cfg = ClassifierConfig(arch=str(state["arch"]), image_size=int(state["image_size"]),
                           pretrained=False, drop_rate=0.0, drop_path_rate=0.0)
    model = create_classifier(cfg, len(state["classes"]["k_codes"]))
    model.load_state_dict(strip_wrappers(dict(state[weights])))
    return model.eval(), weights
