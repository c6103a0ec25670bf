"""A loaded GGUF model: weights, vocabulary, metadata and tokenizer, on the low-level API.

The high-level ``llama_cpp.Llama`` is not used: it copies a logits row per token and is not
thread-safe. Everything here is paid once per load (metadata, special tokens) or cached
(token pieces), so nothing on the per-token path goes through Python more than needed.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp

from core import llama_log
from core.engine.runtime.model_file import check_model_file
from core.errors import ModelFileError, UnsupportedModelError

_TRUNCATION_HINTS = ("not within the file bounds", "corrupted or incomplete", "failed to read")


def _load_failure(path: Path, log: list[str]) -> Exception:
    """Turn llama.cpp's log of a failed load into the user's error."""
    text = " ".join(log)
    for line in log:
        if "unknown model architecture" in line:
            arch = line.split("unknown model architecture:", 1)[-1].strip(" '\"")
            return UnsupportedModelError(
                f"This version of llama.cpp cannot run {path.name}: unknown model "
                f"architecture '{arch}'. Update Hearth or choose another model."
            )
    if any(hint in text for hint in _TRUNCATION_HINTS):
        return ModelFileError(
            f"Model file is truncated or corrupt: {path.name}. Download it again."
        )
    detail = [ln.split("error loading model:", 1)[1].strip() for ln in log
              if "error loading model:" in ln]
    reason = detail[-1] if detail else (log[-1] if log else "llama.cpp gave no reason")
    return ModelFileError(f"llama.cpp could not load {path.name}: {reason}")


class LoadedModel:
    """Owns a ``llama_model``; ``close()`` (or ``with``) frees it."""

    def __init__(self, path: Path, n_gpu_layers: int = -1, validate: bool = True) -> None:
        self.path = Path(path)
        check_model_file(self.path, validate)
        llama_log.install()
        llama_cpp.llama_backend_init()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        position = llama_log.mark()
        ptr = llama_cpp.llama_model_load_from_file(str(self.path).encode(), params)
        if not ptr:
            raise _load_failure(self.path, llama_log.errors_since(position))
        self.ptr = ptr
        self.vocab = llama_cpp.llama_model_get_vocab(ptr)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train: int = llama_cpp.llama_model_n_ctx_train(ptr)
        self.n_layer: int = llama_cpp.llama_model_n_layer(ptr)
        self.n_swa: int = llama_cpp.llama_model_n_swa(ptr)
        self.architecture = self.meta("general.architecture") or "unknown"
        self.name = self.meta("general.name") or self.path.stem
        self.bos: int = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self.vocab)
        self.add_bos: bool = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        template = llama_cpp.llama_model_chat_template(ptr, None)
        self.chat_template: str | None = template.decode("utf-8", "replace") if template else None
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}

    # -- metadata ---------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        """A GGUF metadata value as text, or None."""
        buf = ctypes.create_string_buffer(4096)
        n = llama_cpp.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode("utf-8", "replace") if n >= 0 else None

    @property
    def size_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self.ptr))

    @property
    def n_params(self) -> int:
        return int(llama_cpp.llama_model_n_params(self.ptr))

    # -- tokens ----------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool = True) -> list[int]:
        """Text to token ids (two calls at most: llama.cpp reports the size it needs)."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special,
                                     parse_special)
        if n < 0:
            cap = -n
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special,
                                         parse_special)
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token adds to the text (control tokens add none); cached."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, False)
            cached = buf.raw[:n]
            self._pieces[token] = cached
        return cached

    def token_text(self, token: int) -> str:
        """The vocabulary's text for a token, special tokens included (for templates)."""
        text = llama_cpp.llama_vocab_get_text(self.vocab, token)
        return text.decode("utf-8", "replace") if text else ""

    def is_eog(self, token: int) -> bool:
        """End-of-generation token (EOS, EOT, <end_of_turn>...); cached."""
        cached = self._eog.get(token)
        if cached is None:
            cached = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
            self._eog[token] = cached
        return cached

    def single_token(self, text: str) -> int | None:
        """The id of ``text`` if the vocabulary has it as one (special) token."""
        ids = self.tokenize(text, add_special=False, parse_special=True)
        return ids[0] if len(ids) == 1 else None

    # -- lifetime --------------------------------------------------------------------
    def close(self) -> None:
        if getattr(self, "ptr", None):
            llama_cpp.llama_model_free(self.ptr)
            self.ptr = None

    def __enter__(self) -> LoadedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
