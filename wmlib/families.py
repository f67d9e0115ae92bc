"""The decoder families that wmlib writes out layer by layer (Chapters 6 and 7).

:class:`wmlib.kv_cache.CachedDecoder` runs a Hugging Face causal LM with its own attention and its
own cache, and :func:`wmlib.induction.ablate_heads` switches single heads off. Both need to know
where a family keeps its modules and what its attention does beyond plain scaled dot products.
That knowledge lives here, one small class per layout:

- :class:`Llama`: Llama and SmolLM2, and the families built like it: Mistral (a sliding attention
  window), Qwen2 (biases on the query, key and value projections) and Qwen3 (an RMSNorm on every
  query and key head). Pre-norm blocks: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``.
- :class:`Gemma`: Gemma 2 and Gemma 3. Embeddings scaled by sqrt(width), a norm after the
  attention and after the MLP as well as before them, queries scaled by
  ``query_pre_attn_scalar ** -0.5`` instead of ``head_dim ** -0.5``, soft-capped attention
  scores and final logits (Gemma 2), q/k norms and a second RoPE base for local layers (Gemma 3),
  sliding-window and global layers alternating.
- :class:`GPTNeoX`: GPT-NeoX and Pythia. One fused projection for queries, keys and values, RoPE
  on only the first quarter of each head's channels, LayerNorm, and a *parallel* residual:
  attention and MLP both read the block's input, ``x + attn(ln1(x)) + mlp(ln2(x))``.

Any other ``model_type`` is refused by :func:`layout_of` with the list of supported ones: a layer
written out for the wrong family runs without error and computes something else.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

__all__ = ["SUPPORTED", "Layout", "Llama", "Gemma", "GPTNeoX", "layout_of", "apply_rope"]


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary position embedding: rotate each pair of channels by a position-dependent angle.

    ``cos`` and ``sin`` may cover fewer channels than ``x`` (GPT-NeoX rotates only the first
    quarter of each head): the other channels pass unchanged. Rotations compose,
    R(a) R(b) = R(a + b), which is what lets us *move* a cached key to a new position by rotating
    it by the difference."""
    r = cos.shape[-1]
    if r < x.shape[-1]:
        return torch.cat([apply_rope(x[..., :r], cos, sin), x[..., r:]], dim=-1)
    return x * cos + _rotate_half(x) * sin


class Layout:
    """Where a family keeps its modules, and what its attention does. Subclasses fill in:

    - ``embed(ids)``: token ids (B, T) -> hidden states (B, T, width);
    - ``qkv(layer, h)``: a block's normalised input -> queries (B, H, T, D), keys and values (B, G, T, D);
    - ``finish(layer, x, h, out)``: the block's output from its input ``x``, the normalised input ``h``
      and the attention's output ``out`` (B, T, H * D), before the output projection;
    - ``logits(x)``: final norm, unembedding (and soft-capping) -> (B, T, V);
    - ``attn_norm(layer)``, ``out_proj(layer)``, ``final_norm()``, ``unembedding()``: the modules.

    and set ``layers``, ``num_heads``, ``num_kv_heads``, ``head_dim``, ``scale`` (multiplies q.k),
    ``softcap`` (None or c: scores become c tanh(s / c)), ``windows`` (per layer: None or w, a
    query sees keys less than w positions back).
    """

    families: tuple[str, ...] = ()
    scale: float
    softcap: float | None = None
    _typed_rope: bool | None = None

    def __init__(self, model):
        cfg = model.config
        self.model, self.config = model, cfg
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scale = self.head_dim ** -0.5
        kinds = getattr(cfg, "layer_types", None) or ["full_attention"] * cfg.num_hidden_layers
        window = getattr(cfg, "sliding_window", None)
        self.windows = [window if kind == "sliding_attention" else None for kind in kinds]

    def rope_kind(self, layer: int) -> str:
        """Which RoPE ``layer`` uses: "" for the one RoPE of most models; Gemma 3 has one per layer type."""
        if self._typed_rope is None:
            self._typed_rope = "layer_type" in inspect.signature(self.rotary.forward).parameters
        return self.config.layer_types[layer] if self._typed_rope else ""

    def rope(self, positions: Tensor, layer: int, like: Tensor) -> tuple[Tensor, Tensor]:
        """cos and sin for (B, T) ``positions`` in ``layer``: (B, 1, T, rotary channels) each."""
        kind = self.rope_kind(layer)
        cos, sin = self.rotary(like, positions, **({"layer_type": kind} if kind else {}))
        return cos[:, None], sin[:, None]

    def rope_scaling(self, layer: int) -> float:
        """The factor the model's RoPE multiplies cos and sin by (1 except for YaRN-like schemes)."""
        kind = self.rope_kind(layer)
        return float(getattr(self.rotary, f"{kind}_attention_scaling" if kind else "attention_scaling", 1.0))

    def split_heads(self, t: Tensor, heads: int) -> Tensor:
        """(B, T, heads * D) -> (B, heads, T, D)."""
        B, T, _ = t.shape
        return t.view(B, T, heads, self.head_dim).transpose(1, 2)


class Llama(Layout):
    """Llama, SmolLM2, Mistral, Qwen2 and Qwen3: ``model.model.layers[i].self_attn.{q,k,v,o}_proj``."""

    families = ("llama", "mistral", "qwen2", "qwen3")

    def __init__(self, model):
        super().__init__(model)
        self.inner, self.layers, self.rotary = model.model, model.model.layers, model.model.rotary_emb
        if self.config.model_type == "mistral":  # Mistral's window applies to every layer
            self.windows = [getattr(self.config, "sliding_window", None)] * len(self.layers)

    def embed(self, ids):
        return self.inner.embed_tokens(ids)

    def attn_norm(self, layer):
        return layer.input_layernorm

    def qkv(self, layer, h):
        a = layer.self_attn
        q = self.split_heads(a.q_proj(h), self.num_heads)  # (B, H, T, D)
        k = self.split_heads(a.k_proj(h), self.num_kv_heads)  # (B, G, T, D)
        v = self.split_heads(a.v_proj(h), self.num_kv_heads)
        if hasattr(a, "q_norm"):  # Qwen3, Gemma 3: an RMSNorm on every query and key head
            q, k = a.q_norm(q), a.k_norm(k)
        return q, k, v

    def out_proj(self, layer):
        return layer.self_attn.o_proj

    def finish(self, layer, x, h, out):
        x = x + layer.self_attn.o_proj(out)
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def final_norm(self):
        return self.inner.norm

    def unembedding(self):
        return self.model.lm_head

    def logits(self, x):
        return self.model.lm_head(self.inner.norm(x))


class Gemma(Llama):
    """Gemma 2 and Gemma 3 (text): Llama's modules plus four norms per block, scaled queries and
    embeddings, soft-capping, alternating local and global layers."""

    families = ("gemma2", "gemma3_text")

    def __init__(self, model):
        super().__init__(model)
        cfg = self.config
        self.scale = cfg.query_pre_attn_scalar ** -0.5
        self.softcap = getattr(cfg, "attn_logit_softcapping", None)
        self.final_softcap = getattr(cfg, "final_logit_softcapping", None)

    def _legacy_rotary(self, layer: int):
        """transformers 4.x's Gemma 3 keeps a second RoPE module for its local layers (5.x: one module
        that takes the layer type): the module ``layer`` uses there; None under 5.x and for Gemma 2."""
        local = getattr(self.inner, "rotary_emb_local", None)
        if local is None or super().rope_kind(layer):
            return None
        return local if self.config.layer_types[layer] == "sliding_attention" else self.rotary

    def rope_kind(self, layer):
        if self._legacy_rotary(layer) is not None:
            return self.config.layer_types[layer]
        return super().rope_kind(layer)

    def rope(self, positions, layer, like):
        rotary = self._legacy_rotary(layer)
        if rotary is None:
            return super().rope(positions, layer, like)
        cos, sin = rotary(like, positions)
        return cos[:, None], sin[:, None]

    def rope_scaling(self, layer):
        rotary = self._legacy_rotary(layer)
        return super().rope_scaling(layer) if rotary is None else float(getattr(rotary, "attention_scaling", 1.0))

    def embed(self, ids):
        x = self.inner.embed_tokens(ids)
        if not hasattr(self.inner.embed_tokens, "embed_scale"):  # older transformers scale in the model
            x = x * torch.tensor(self.config.hidden_size ** 0.5, dtype=x.dtype)
        return x

    def finish(self, layer, x, h, out):
        x = x + layer.post_attention_layernorm(layer.self_attn.o_proj(out))
        return x + layer.post_feedforward_layernorm(layer.mlp(layer.pre_feedforward_layernorm(x)))

    def logits(self, x):
        logits = super().logits(x)
        if self.final_softcap is not None:
            logits = torch.tanh(logits / self.final_softcap) * self.final_softcap
        return logits


class GPTNeoX(Layout):
    """GPT-NeoX and Pythia: ``model.gpt_neox.layers[i].attention.query_key_value`` (fused), partial
    RoPE, LayerNorm, parallel residual."""

    families = ("gpt_neox",)

    def __init__(self, model):
        super().__init__(model)
        self.inner, self.layers, self.rotary = model.gpt_neox, model.gpt_neox.layers, model.gpt_neox.rotary_emb

    def embed(self, ids):
        return self.inner.embed_in(ids)

    def attn_norm(self, layer):
        return layer.input_layernorm

    def qkv(self, layer, h):
        B, T, _ = h.shape
        # one projection, laid out per head as [q | k | v]: (B, T, H, 3D) -> three (B, H, T, D)
        qkv = layer.attention.query_key_value(h).view(B, T, self.num_heads, 3 * self.head_dim).transpose(1, 2)
        return qkv.chunk(3, dim=-1)

    def out_proj(self, layer):
        return layer.attention.dense

    def finish(self, layer, x, h, out):
        attn = layer.attention.dense(out)
        if self.config.use_parallel_residual:  # attention and MLP read the same input x
            return x + attn + layer.mlp(layer.post_attention_layernorm(x))
        x = x + attn
        return x + layer.mlp(layer.post_attention_layernorm(x))

    def final_norm(self):
        return self.inner.final_layer_norm

    def unembedding(self):  # `embed_out` before transformers 5
        return self.model.lm_head if hasattr(self.model, "lm_head") else self.model.embed_out

    def logits(self, x):
        return self.unembedding()(self.inner.final_layer_norm(x))


LAYOUTS = (Llama, Gemma, GPTNeoX)
SUPPORTED = {
    "llama": "Llama, SmolLM2", "mistral": "Mistral", "qwen2": "Qwen2 and Qwen2.5", "qwen3": "Qwen3",
    "gemma2": "Gemma 2", "gemma3_text": "Gemma 3 (text-only checkpoints)", "gpt_neox": "GPT-NeoX and Pythia",
}


def layout_of(model, who: str = "this function") -> Layout:
    """The :class:`Layout` of a Hugging Face causal LM; a clear error for any other model."""
    cfg = getattr(model, "config", None)
    family = getattr(cfg, "model_type", None)
    supported = ", ".join(f"{k} ({v})" for k, v in SUPPORTED.items())
    if family not in SUPPORTED:
        what = f"a model of type {family!r}" if family else f"a {type(model).__name__}"
        raise ValueError(f"{who} writes out the layers of these decoder families only: {supported}; got {what}. "
                         "Load one with wmlib.models.load_causal_lm (the default is 'smollm2-135m').")
    if getattr(cfg, "use_bidirectional_attention", False):
        raise ValueError(f"{who} needs a causal decoder; this {family} model attends in both directions")
    layout = next(cls for cls in LAYOUTS if family in cls.families)(model)
    if layout.num_heads % layout.num_kv_heads:
        raise ValueError(f"{layout.num_heads} query heads do not split into {layout.num_kv_heads} key/value groups")
    return layout
