"""Can this model draft for that one? The check llama.cpp makes before speculating.

Speculation feeds the draft's token ids to the target, so both must spell every token the
same way. This mirrors llama.cpp's ``common_speculative_are_compatible`` (common/
speculative.cpp): same vocabulary type, same BOS/EOS ids and add-flags, vocabulary sizes
within 128 of each other, and identical token text from id 5 on (ids below 5 are control
tokens that families number differently without harm). Unlike llama.cpp, which only logs a
warning, the first difference found becomes the user's message.

:func:`check_files` loads vocabularies only (no weights), so the GUI can filter a list of
candidate drafts cheaply; :func:`check_models` works on models already loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import llama_cpp

from core import llama_log
from core.engine.runtime.model_file import check_model_file
from core.errors import HearthError, ModelFileError

VOCAB_MAX_SIZE_DIFFERENCE = 128  # SPEC_VOCAB_MAX_SIZE_DIFFERENCE
VOCAB_CHECK_START_TOKEN_ID = 5  # SPEC_VOCAB_CHECK_START_TOKEN_ID

_VOCAB_TYPES = {0: "none", 1: "SentencePiece", 2: "BPE", 3: "WordPiece", 4: "Unigram",
                5: "RWKV", 6: "PLaMo-2"}


class IncompatibleDraftError(HearthError):
    """The draft model's vocabulary differs from the target's, so it cannot draft for it."""


def _text(vocab: object, token: int) -> bytes:
    return llama_cpp.llama_vocab_get_text(vocab, token) or b""


def first_difference(target_vocab: object, draft_vocab: object) -> str | None:
    """The first vocabulary difference that rules out speculation, in words, or None."""
    v_t, v_d = target_vocab, draft_vocab
    type_t, type_d = llama_cpp.llama_vocab_type(v_t), llama_cpp.llama_vocab_type(v_d)
    if type_t != type_d:
        return (f"the vocabulary types differ (target {_VOCAB_TYPES.get(type_t, type_t)}, "
                f"draft {_VOCAB_TYPES.get(type_d, type_d)})")
    for name, add_fn, id_fn in (
        ("BOS", llama_cpp.llama_vocab_get_add_bos, llama_cpp.llama_vocab_bos),
        ("EOS", llama_cpp.llama_vocab_get_add_eos, llama_cpp.llama_vocab_eos),
    ):
        add_t, add_d = bool(add_fn(v_t)), bool(add_fn(v_d))
        if add_t != add_d:
            return (f"the target {'adds' if add_t else 'does not add'} a {name} token and the "
                    f"draft {'does' if add_d else 'does not'}")
        id_t, id_d = id_fn(v_t), id_fn(v_d)
        if add_t and id_t != id_d:
            return f"the {name} token ids differ (target {id_t}, draft {id_d})"
    n_t, n_d = llama_cpp.llama_vocab_n_tokens(v_t), llama_cpp.llama_vocab_n_tokens(v_d)
    if abs(n_t - n_d) > VOCAB_MAX_SIZE_DIFFERENCE:
        return (f"the vocabulary sizes differ by more than {VOCAB_MAX_SIZE_DIFFERENCE} "
                f"(target {n_t:,} tokens, draft {n_d:,})")
    for token in range(VOCAB_CHECK_START_TOKEN_ID, min(n_t, n_d)):
        text_t, text_d = _text(v_t, token), _text(v_d, token)
        if text_t != text_d:
            return (f"token {token} differs (target {text_t.decode('utf-8', 'replace')!r}, "
                    f"draft {text_d.decode('utf-8', 'replace')!r})")
    return None


def _refusal(target: str, draft: str, difference: str) -> IncompatibleDraftError:
    return IncompatibleDraftError(
        f"{draft} cannot draft for {target}: {difference}. "
        "Choose a draft model from the same family as the target (same tokenizer)."
    )


def check_models(target: object, draft: object) -> None:
    """Raise :class:`IncompatibleDraftError` unless ``draft`` can draft for ``target``
    (both :class:`core.engine.runtime.model.LoadedModel`)."""
    difference = first_difference(target.vocab, draft.vocab)  # type: ignore[attr-defined]
    if difference:
        raise _refusal(target.path.name, draft.path.name, difference)  # type: ignore[attr-defined]


@contextmanager
def vocab_only(path: Path) -> Iterator[object]:
    """A model loaded without its weights (milliseconds even for large files); yields
    its ``llama_vocab`` pointer."""
    check_model_file(path)
    llama_log.install()
    llama_cpp.llama_backend_init()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    position = llama_log.mark()
    ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not ptr:
        reason = "; ".join(llama_log.errors_since(position)[-1:]) or "no reason given"
        raise ModelFileError(f"llama.cpp could not read the vocabulary of {path.name} "
                             f"({reason}); check the file.")
    try:
        yield llama_cpp.llama_model_get_vocab(ptr)
    finally:
        llama_cpp.llama_model_free(ptr)


def compatibility_problem(target: Path, draft: Path) -> str | None:
    """Why ``draft`` cannot draft for ``target`` (one phrase), or None if it can."""
    target, draft = Path(target), Path(draft)
    with vocab_only(target) as v_t, vocab_only(draft) as v_d:
        return first_difference(v_t, v_d)


def check_files(target: Path, draft: Path) -> None:
    """Raise :class:`IncompatibleDraftError` unless the GGUF ``draft`` can draft for
    ``target``; reads vocabularies only."""
    difference = compatibility_problem(target, draft)
    if difference:
        raise _refusal(Path(target).name, Path(draft).name, difference)
