"""Reading a GGUF header with llama.cpp's own reader, from a file or any byte source.

The header is parsed by llama.cpp's own GGUF reader (``gguf_init_from_callback`` in the
``ggml-base`` library that llama-cpp-python ships), not by a hand-written parser: it is the code
that will load the file later, so the two can never disagree. The pure-Python ``gguf`` package
was the first choice but spends ~10 s building Python objects for Gemma 3's 262k-token
vocabulary; the C reader takes milliseconds. The same callback reads a local file (seek +
read) or, through :mod:`core.models.hub.remote_header`, a remote one by HTTP range requests.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.errors import HearthError, ModelFileError
from core.gguf.info import ModelInfo, TensorInfo, model_info_from_metadata, type_name_of
from core.gguf.native import ggml_library

_GGUF_UINT = {0: "u8", 2: "u16", 4: "u32", 10: "u64"}
_GGUF_INT = {1: "i8", 3: "i16", 5: "i32", 11: "i64"}
_ARR_CTYPES: dict[int, Any] = {
    0: ctypes.c_uint8, 1: ctypes.c_int8, 2: ctypes.c_uint16, 3: ctypes.c_int16,
    4: ctypes.c_uint32, 5: ctypes.c_int32, 6: ctypes.c_float, 7: ctypes.c_int8,
    10: ctypes.c_uint64, 11: ctypes.c_int64, 12: ctypes.c_double,
}
# Arrays that hold the vocabulary: only their length is kept.
_BIG_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
               "tokenizer.ggml.merges")


class HeaderReadError(HearthError):
    """The bytes of a GGUF header could not be read (a network or disk failure)."""


_READ_CB = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t
)


class _InitParams(ctypes.Structure):
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


@functools.cache
def _lib() -> ctypes.CDLL:
    """ggml-base from llama-cpp-python's package, with the GGUF functions typed."""
    lib = ggml_library("ggml-base")
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

_SCALAR_CTYPES: dict[int, Any] = {**_ARR_CTYPES, 7: ctypes.c_bool}


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
        data: Any = ctypes.cast(lib.gguf_get_arr_data(ctx, i), ctypes.POINTER(ctype))
        return [data[j] for j in range(n)]
    ctype = _SCALAR_CTYPES.get(kind)
    if ctype is None:
        return None
    value: Any = ctypes.cast(lib.gguf_get_val_data(ctx, i), ctypes.POINTER(ctype))
    return value[0]


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
        raise HeaderReadError(f"Reading the header of {source} failed ({err}); try again.")
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
                    type=type_name_of(ttype),
                    shape=tuple(shape),
                    n_bytes=int(lib.gguf_get_tensor_size(ctx, t)),
                )
            )
    finally:
        lib.gguf_free(ctx)
    return model_info_from_metadata(meta, tensors, size, source)


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


