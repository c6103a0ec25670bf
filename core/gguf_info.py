"""What a GGUF file says about itself, read without loading the model.

The planner needs a model's shape (layers, heads, KV heads, head sizes, sliding-window layout)
and the exact byte size of every tensor, for local files and for files still on the Hub, so a
quant can be judged before it is downloaded.

The header is parsed by llama.cpp's own GGUF reader (``gguf_init_from_callback`` in the
``ggml-base`` library that llama-cpp-python ships), not by a hand-written parser: it is the code
that will load the file later, so the two can never disagree. The pure-Python ``gguf`` package
was the first choice but spends ~10 s building Python objects for Gemma 3's 262k-token
vocabulary; the C reader takes milliseconds. ``gguf`` still provides the type names and block
sizes. The same callback reads a local file (seek + read) or a remote one (HTTP range requests,
fetched in 1 MiB blocks as the reader asks for them), so only the header crosses the network.
"""

from __future__ import annotations

import ctypes
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from core.errors import HearthError, ModelFileError

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

_GGUF_UINT = {0: "u8", 2: "u16", 4: "u32", 10: "u64"}
_GGUF_INT = {1: "i8", 3: "i16", 5: "i32", 11: "i64"}
_ARR_CTYPES = {
    0: ctypes.c_uint8, 1: ctypes.c_int8, 2: ctypes.c_uint16, 3: ctypes.c_int16,
    4: ctypes.c_uint32, 5: ctypes.c_int32, 6: ctypes.c_float, 7: ctypes.c_int8,
    10: ctypes.c_uint64, 11: ctypes.c_int64, 12: ctypes.c_double,
}
_LAYER_RE = re.compile(r"^blk\.(\d+)\.")
# Arrays that hold the vocabulary: only their length is kept.
_BIG_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
               "tokenizer.ggml.merges")


class RemoteReadError(HearthError):
    """A remote GGUF header could not be read over HTTP."""


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


# --- llama.cpp's GGUF reader through ctypes ------------------------------------------------

_READ_CB = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
)


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _lib() -> ctypes.CDLL:
    """ggml-base from llama-cpp-python's package, with the GGUF functions typed."""
    import llama_cpp
    from llama_cpp._ctypes_extensions import load_shared_library

    lib = load_shared_library("ggml-base", Path(llama_cpp.__file__).parent / "lib")
    p, i64, sz = ctypes.c_void_p, ctypes.c_int64, ctypes.c_size_t
    sigs: dict[str, tuple[Any, list[Any]]] = {
        "gguf_init_from_callback": (p, [_READ_CB, p, sz, ctypes.c_uint64, _InitParams]),
        "gguf_free": (None, [p]),
        "gguf_get_n_kv": (i64, [p]),
        "gguf_get_key": (ctypes.c_char_p, [p, i64]),
        "gguf_get_kv_type": (ctypes.c_int, [p, i64]),
        "gguf_get_arr_type": (ctypes.c_int, [p, i64]),
        "gguf_get_arr_n": (sz, [p, i64]),
        "gguf_get_arr_data": (p, [p, i64]),
        "gguf_get_arr_str": (ctypes.c_char_p, [p, i64, sz]),
        "gguf_get_val_data": (p, [p, i64]),
        "gguf_get_val_str": (ctypes.c_char_p, [p, i64]),
        "gguf_get_n_tensors": (i64, [p]),
        "gguf_get_tensor_name": (ctypes.c_char_p, [p, i64]),
        "gguf_get_tensor_ne": (ctypes.POINTER(ctypes.c_int64), [p, i64]),
        "gguf_get_tensor_type": (ctypes.c_int, [p, i64]),
        "gguf_get_tensor_size": (sz, [p, i64]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


ReadAt = Callable[[int, int], bytes]  # (offset, length) -> bytes (shorter only at EOF)

_SCALAR_CTYPES = {**_ARR_CTYPES, 7: ctypes.c_bool}


def _value(lib: ctypes.CDLL, ctx: int, i: int) -> Any:
    kind = lib.gguf_get_kv_type(ctx, i)
    if kind == 8:
        return lib.gguf_get_val_str(ctx, i).decode("utf-8", "replace")
    if kind == 9:
        n = lib.gguf_get_arr_n(ctx, i)
        atype = lib.gguf_get_arr_type(ctx, i)
        key = lib.gguf_get_key(ctx, i).decode()
        if key in _BIG_ARRAYS or n > 4096:
            return ("array", n)
        if atype == 8:
            return [lib.gguf_get_arr_str(ctx, i, j).decode("utf-8", "replace") for j in range(n)]
        ctype = _ARR_CTYPES.get(atype)
        if ctype is None:
            return ("array", n)
        data = ctypes.cast(lib.gguf_get_arr_data(ctx, i), ctypes.POINTER(ctype))
        return [data[j] for j in range(n)]
    ctype = _SCALAR_CTYPES.get(kind)
    if ctype is None:
        return None
    return ctypes.cast(lib.gguf_get_val_data(ctx, i), ctypes.POINTER(ctype))[0]


def parse_header(read_at: ReadAt, size: int, source: str) -> ModelInfo:
    """Parse a GGUF header through ``read_at`` (local or remote) into :class:`ModelInfo`."""
    lib = _lib()
    failure: list[BaseException] = []

    def _cb(_user: int, out: int, offset: int, length: int) -> int:
        try:
            data = read_at(offset, length)
        except BaseException as err:
            failure.append(err)
            return 0
        ctypes.memmove(out, data, len(data))
        return len(data)

    callback = _READ_CB(_cb)
    ctx = lib.gguf_init_from_callback(callback, None, 0, size, _InitParams(True, None))
    if failure:
        if ctx:
            lib.gguf_free(ctx)
        err = failure[0]
        if isinstance(err, HearthError):
            raise err
        raise RemoteReadError(f"Reading the header of {source} failed ({err}); try again.")
    if not ctx:
        raise ModelFileError(
            f"{source} is not a readable GGUF model (bad or truncated header); "
            f"download it again or pick another file."
        )
    try:
        meta = {
            lib.gguf_get_key(ctx, i).decode(): _value(lib, ctx, i)
            for i in range(lib.gguf_get_n_kv(ctx))
        }
        tensors = []
        for t in range(lib.gguf_get_n_tensors(ctx)):
            ne = lib.gguf_get_tensor_ne(ctx, t)
            shape = [ne[d] for d in range(4)]
            while len(shape) > 1 and shape[-1] == 1:
                shape.pop()
            ttype = lib.gguf_get_tensor_type(ctx, t)
            tensors.append(
                TensorInfo(
                    name=lib.gguf_get_tensor_name(ctx, t).decode(),
                    type=_type_name(ttype),
                    shape=tuple(shape),
                    n_bytes=int(lib.gguf_get_tensor_size(ctx, t)),
                )
            )
    finally:
        lib.gguf_free(ctx)
    return model_info_from_metadata(meta, tensors, size, source)


def _type_name(ttype: int) -> str:
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


# --- local and remote sources ------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _read_local_cached(path: str, size: int, mtime_ns: int) -> ModelInfo:
    with open(path, "rb") as fh:

        def read_at(offset: int, length: int) -> bytes:
            fh.seek(offset)
            return fh.read(length)

        return parse_header(read_at, size, path)


def read_local(path: Path | str) -> ModelInfo:
    """:class:`ModelInfo` of a GGUF file on disk (cached per path, size and mtime)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as err:
        raise ModelFileError(f"Cannot read {path} ({err.strerror}); check the path.") from err
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file; give the path of a .gguf model.")
    return _read_local_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


def hub_file_url(repo_id: str, filename: str, revision: str = "main") -> str:
    """The resolve URL of a file on the Hub, honouring ``HF_ENDPOINT`` as it is now
    (``huggingface_hub.hf_hub_url`` reads it once, at import)."""
    from core.hub.settings import HubSettings

    return HubSettings.from_env().resolve_url(repo_id, filename, revision)


def read_remote(url: str, *, block: int = 1 << 20, session: Any = None) -> ModelInfo:
    """:class:`ModelInfo` of a remote GGUF, fetching only its header by HTTP range requests.

    Bytes are fetched in ``block``-sized aligned ranges as the parser asks for them, so a
    5 GB file costs a few MiB of traffic. Uses huggingface_hub's configured HTTP client (and
    its auth token, when logged in) so proxies and ``HF_ENDPOINT`` behave as for downloads.
    """
    from huggingface_hub.utils import build_hf_headers, get_session

    http = session or get_session()
    headers = build_hf_headers()
    cache: dict[int, bytes] = {}
    try:
        head = http.head(url, headers=headers, follow_redirects=True, timeout=30)
        head.raise_for_status()
        size = int(head.headers.get("content-length", 0))
    except Exception as err:
        raise RemoteReadError(
            f"Cannot reach {url} ({err}); check the network and the name."
        ) from err
    if size <= 0:
        raise RemoteReadError(f"{url} did not report its size; cannot read its header.")

    def fetch(index: int) -> bytes:
        if index not in cache:
            start = index * block
            end = min(size, start + block) - 1
            resp = http.get(url, headers={**headers, "Range": f"bytes={start}-{end}"},
                            follow_redirects=True, timeout=60)
            resp.raise_for_status()
            data = resp.content
            if resp.status_code == 200:  # server ignored Range: keep only the wanted slice
                data = data[start:end + 1]
            cache[index] = data
        return cache[index]

    def read_at(offset: int, length: int) -> bytes:
        out = bytearray()
        pos, stop = offset, min(size, offset + length)
        while pos < stop:
            chunk = fetch(pos // block)
            lo = pos % block
            piece = chunk[lo:lo + (stop - pos)]
            if not piece:
                break
            out += piece
            pos += len(piece)
        return bytes(out)

    info = parse_header(read_at, size, url)
    info.metadata["_bytes_fetched"] = sum(len(c) for c in cache.values())
    return info

