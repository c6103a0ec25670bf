"""What a GGUF file says about itself: a model's shape and tensors (:class:`ModelInfo`).

The planner needs a model's shape (layers, heads, KV heads, head sizes, sliding-window layout)
and the exact byte size of every tensor, for local files and for files still on the Hub, so a
quant can be judged before it is downloaded. :mod:`core.gguf.reader` fills these from a
header (through llama.cpp's own reader); this module only interprets the key/values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from core.errors import ModelFileError

# Default sliding-window patterns llama.cpp hard-codes per architecture when the file has no
# ``<arch>.attention.sliding_window_pattern`` (src/models/<arch>.cpp: load_swa_pattern(ml, N)):
# with pattern N, layer il is SWA when il % N < N - 1.
_SWA_PATTERN_DEFAULTS = {"gemma2": 2, "gemma3": 6, "cohere2": 4}

# llama_ftype values -> names (include/llama.h); used for display and to rank quants.
FTYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
}

_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as stored: name, ggml type name, shape and bytes in the file."""

    name: str
    type: str
    shape: tuple[int, ...]
    n_bytes: int

    @property
    def layer(self) -> int | None:
        """The block index (``blk.N.``) or None for non-repeating tensors."""
        match = _LAYER_RE.match(self.name)
        return int(match[1]) if match else None

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class ModelInfo:
    """A GGUF model's shape and tensors, as llama.cpp will see them."""

    source: str
    file_size: int
    architecture: str
    name: str = ""
    n_layer: int = 0
    n_embd: int = 0
    n_ff: int = 0  # feed-forward width (largest layer's, when it varies)
    n_head: int = 0
    n_head_kv: list[int] = field(default_factory=list)  # per layer (some models vary it)
    n_embd_head_k: int = 0
    n_embd_head_v: int = 0
    n_ctx_train: int = 0
    n_swa: int = 0
    swa_layers: list[bool] = field(default_factory=list)  # per layer: sliding window?
    vocab_size: int = 0
    file_type: int | None = None
    chat_template: str | None = None
    tensors: list[TensorInfo] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)  # scalar keys (arrays: length only)

    @property
    def file_type_name(self) -> str:
        if self.file_type is None:
            return "unknown"
        return FTYPE_NAMES.get(self.file_type, f"ftype {self.file_type}")

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def tensor_bytes(self) -> int:
        return sum(t.n_bytes for t in self.tensors)

    @property
    def bits_per_weight(self) -> float:
        """Average stored bits per parameter: the planner's measure of quality."""
        n = self.n_params
        return 8.0 * self.tensor_bytes / n if n else 0.0

    def tensor(self, name: str) -> TensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)

    def layer_bytes(self) -> list[int]:
        """Bytes of each repeating block, from its tensors (not file size ÷ layers)."""
        sizes = [0] * self.n_layer
        for t in self.tensors:
            il = t.layer
            if il is not None and il < self.n_layer:
                sizes[il] += t.n_bytes
        return sizes

    def n_embd_k_gqa(self, il: int) -> int:
        return self.n_embd_head_k * self.n_head_kv[il]

    def n_embd_v_gqa(self, il: int) -> int:
        return self.n_embd_head_v * self.n_head_kv[il]


def type_name_of(ttype: int) -> str:
    try:
        return GGMLQuantizationType(ttype).name
    except ValueError:
        return f"type{ttype}"


def type_size(type_name: str) -> float:
    """Bytes per element of a ggml type (e.g. F16 -> 2, Q8_0 -> 34/32)."""
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType[type_name.upper()]]
    return size / block


def _per_layer(value: Any, n_layer: int, default: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value[:n_layer]] + [default] * max(0, n_layer - len(value))
    return [int(value) if value is not None else default] * n_layer


def model_info_from_metadata(
    meta: dict[str, Any], tensors: list[TensorInfo], file_size: int, source: str
) -> ModelInfo:
    """Interpret GGUF key/values the way llama.cpp's loader does for the fields we need."""
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelFileError(f"{source} has no general.architecture; it is not a model file.")

    def key(name: str, default: Any = None) -> Any:
        return meta.get(f"{arch}.{name}", default)

    n_layer = int(key("block_count", 0))
    n_embd = int(key("embedding_length", 0))
    ff = key("feed_forward_length", 0)
    n_ff = int(max(ff) if isinstance(ff, list) and ff else (ff or 0))
    head = key("attention.head_count", 0)
    n_head = int(max(head) if isinstance(head, list) else head)
    n_head_kv = _per_layer(key("attention.head_count_kv"), n_layer, n_head)
    head_k = int(key("attention.key_length", n_embd // n_head if n_head else 0))
    head_v = int(key("attention.value_length", head_k))
    n_swa = int(key("attention.sliding_window", 0) or 0)
    pattern = key("attention.sliding_window_pattern")
    if n_swa <= 0:
        swa = [False] * n_layer
    elif isinstance(pattern, list):
        swa = [bool(v) for v in pattern[:n_layer]]
    else:
        n_pat = int(pattern) if pattern is not None else _SWA_PATTERN_DEFAULTS.get(arch, 0)
        # llama_hparams::set_swa_pattern (dense_first = false); pattern 0 = all SWA.
        swa = [n_pat == 0 or il % n_pat < n_pat - 1 for il in range(n_layer)]
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = tokens[1] if isinstance(tokens, tuple) else len(tokens or [])
    if not vocab:
        vocab = int(key("vocab_size", 0) or 0)
    ftype = meta.get("general.file_type")
    return ModelInfo(
        source=source,
        file_size=file_size,
        architecture=arch,
        name=str(meta.get("general.name", "")),
        n_layer=n_layer,
        n_embd=n_embd,
        n_ff=n_ff,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_embd_head_k=head_k,
        n_embd_head_v=head_v,
        n_ctx_train=int(key("context_length", 0) or 0),
        n_swa=n_swa,
        swa_layers=swa,
        vocab_size=int(vocab),
        file_type=int(ftype) if ftype is not None else None,
        chat_template=meta.get("tokenizer.chat_template"),
        tensors=tensors,
        metadata={k: v for k, v in meta.items() if not isinstance(v, tuple)},
    )


