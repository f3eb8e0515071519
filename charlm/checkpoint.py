"""Checkpoints in safetensors (no pickle): final weights and the resumable training state.

``weights.safetensors`` holds the model's tensors and, in the header metadata, the model config
and vocabulary, so a weights file alone can be loaded and sampled from. Its bytes depend only on
the tensors and the metadata (safetensors orders tensors deterministically), so its SHA-256 is the
trial's fingerprint.

``state.safetensors`` holds everything a resumed run needs to continue bit for bit: model
parameters, AdamW moments and step counts, every random generator's state, the step (which fixes
the data position, see :func:`charlm.data.batch_seed`) and progress bookkeeping as JSON metadata.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from charlm.io import atomic_write_bytes
from charlm.model import CharLM, ModelConfig
from charlm.study.model import StudyCharLM

__all__ = [
    "WEIGHTS_FORMAT",
    "STATE_FORMAT",
    "save_weights",
    "load_weights",
    "save_state",
    "load_state",
]

WEIGHTS_FORMAT = "charlm-weights/1"
STATE_FORMAT = "charlm-train-state/1"
METADATA_KEY = "charlm"


def _metadata(fields: dict) -> dict[str, str]:
    # safetensors keeps header metadata in a hash map whose order varies between processes, so
    # several keys would make the file's bytes (and digest) vary; one key holding canonical JSON
    # keeps them fixed.
    return {METADATA_KEY: json.dumps(fields, sort_keys=True)}


def _read(path: Path, expected_format: str) -> tuple[dict[str, torch.Tensor], dict]:
    raw = Path(path).read_bytes()
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        stored = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {})
        metadata = json.loads(stored.get(METADATA_KEY, "{}"))
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable safetensors file ({exc})") from None
    if metadata.get("format") != expected_format:
        raise ValueError(
            f"{path} has format {metadata.get('format')!r}, expected {expected_format!r}"
        )
    return tensors, metadata


def save_weights(path: str | os.PathLike, model: CharLM, chars: str) -> Path:
    """Write the model's weights (float32 as trained, on CPU) atomically.

    Args:
        path: destination ``.safetensors`` file.
        model: the trained model (not a compiled wrapper).
        chars: the vocabulary, index order.
    """
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fields = {"format": WEIGHTS_FORMAT, "model_config": model.config.to_dict(), "vocabulary": chars}
    if getattr(model, "protocol", "nanogpt") != "nanogpt":  # nanogpt files keep their bytes
        fields["protocol"] = model.protocol
    return atomic_write_bytes(path, st_save(tensors, metadata=_metadata(fields)))


def load_weights(path: str | os.PathLike) -> tuple[CharLM, str]:
    """Rebuild the model recorded in a weights file and load its tensors.

    Returns:
        (model on CPU in eval mode, vocabulary string): a :class:`CharLM`, or a
        :class:`charlm.study.model.StudyCharLM` when the file says ``protocol`` study.

    Raises:
        ValueError: not a CharLM weights file, or tensors that do not fit the recorded
            architecture (missing, unexpected or mis-shaped).
    """
    tensors, metadata = _read(Path(path), WEIGHTS_FORMAT)
    try:
        config = ModelConfig.from_dict(metadata["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path} has no usable model config in its header ({exc})") from None
    vocabulary = metadata.get("vocabulary")
    if not isinstance(vocabulary, str) or len(vocabulary) != config.vocab_size:
        raise ValueError(f"{path}: the header's vocabulary does not have vocab_size characters")
    layout = StudyCharLM if metadata.get("protocol") == "study" else CharLM
    _check_shapes(path, config, tensors, layout)
    model = layout(config)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ValueError(f"{path} does not fit its recorded architecture: {first}") from None
    model.eval()
    return model, metadata["vocabulary"]


def _check_shapes(
    path: Path, config: ModelConfig, tensors: dict[str, torch.Tensor], layout: type = CharLM
) -> None:
    """Refuse a header config that the file's tensors do not fit before a model is allocated:
    the sizes it declares are bounded by the tensors present (already read, so bounded by the
    file), then every parameter's shape is compared on the meta device (no memory).

    Raises:
        ValueError: a declared size that no tensor has, or a missing, extra or mis-shaped tensor.
    """
    largest = max((max(t.shape) for t in tensors.values() if t.dim()), default=0)
    sizes = {"n_embd": config.n_embd, "block_size": config.block_size}
    sizes["vocab_size"] = config.vocab_size
    for name, value in sizes.items():
        if value > largest:
            raise ValueError(f"{path}: header {name} = {value} is larger than any tensor in it")
    if config.n_layer > len(tensors):
        raise ValueError(f"{path}: header n_layer = {config.n_layer} has more layers than tensors")
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in layout(config).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found:
        wrong = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        raise ValueError(f"{path} does not fit its recorded architecture: {wrong[0]} differs")


def save_state(
    path: str | os.PathLike,
    model: CharLM,
    optimizer: torch.optim.Optimizer,
    progress: dict,
    generators: Mapping[str, torch.Generator] | None = None,
) -> Path:
    """Write a resumable training state atomically.

    Args:
        path: destination ``.safetensors`` file.
        model: the model being trained (not a compiled wrapper).
        optimizer: its optimizer (AdamW).
        progress: JSON-serialisable bookkeeping; must hold ``step``, the number of optimizer
            steps taken.
        generators: explicit generators of the run (name -> generator), saved beside the
            default ones.
    """
    tensors = {
        f"model.{k}": v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
    }
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().to("cpu").contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    for name, generator in (generators or {}).items():
        tensors[f"rng.gen.{name}"] = generator.get_state()
    np_state = np.random.get_state()
    metadata = _metadata(
        {
            "format": STATE_FORMAT,
            "progress": progress,
            "param_groups": opt["param_groups"],
            "rng_python": random.getstate(),
            "rng_numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        }
    )
    return atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def load_state(
    path: str | os.PathLike,
    model: CharLM,
    optimizer: torch.optim.Optimizer,
    generators: Mapping[str, torch.Generator] | None = None,
) -> dict:
    """Restore model, optimizer and every random generator from :func:`save_state`'s file
    (``generators``: the explicit ones, by the names they were saved under, set in place).

    Returns:
        the ``progress`` dict that was saved.

    Raises:
        ValueError: not a training-state file or it does not fit ``model``/``optimizer``
            (or lacks one of ``generators``).
    """
    tensors, metadata = _read(Path(path), STATE_FORMAT)
    for name, generator in (generators or {}).items():
        if f"rng.gen.{name}" not in tensors:
            raise ValueError(f"{path} has no state of the {name!r} generator")
        generator.set_state(tensors[f"rng.gen.{name}"])
    device = next(model.parameters()).device
    model_tensors = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_tensors, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not fit this model: {str(exc).splitlines()[0]}") from None
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    param_groups = metadata["param_groups"]
    for group in param_groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k[9:]))
    cuda_states = [tensors[k] for k in cuda_keys]
    if cuda_states and device.type == "cuda":
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = metadata["rng_python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = metadata["rng_numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    return metadata["progress"]
