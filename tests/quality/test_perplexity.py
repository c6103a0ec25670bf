"""Perplexity and KL divergence over the shipped text, on real llama.cpp models."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.engine.runtime import perplexity as ppl
from core.engine.runtime.model import LoadedModel
from core.errors import ConfigError
from core.telemetry.benchmark import heldout_text

N_CTX = 64
N_TOKENS = 4 * N_CTX  # 4 chunks, 31 scored tokens each: quick, still above noise


@pytest.fixture(scope="module")
def tokens(default_model: Path) -> list[int]:
    with LoadedModel(default_model) as model:
        return ppl.text_tokens(model, heldout_text())[:N_TOKENS]


@pytest.fixture(scope="module")
def f32_reference(model_variants: dict[str, Path], tokens: list[int]):
    """The F32 variant's log-probs recorded once, and its own result."""
    with LoadedModel(model_variants["F32"]) as model:
        store = ppl.reference_for(model, tokens, N_CTX)
        result = ppl.score_text(model.path, tokens, n_ctx=N_CTX, record=store, model=model)
    yield store, result
    store.close()


def test_shipped_text_is_long_enough_for_llama_perplexity_defaults(default_model) -> None:
    with LoadedModel(default_model) as model:
        n = len(ppl.text_tokens(model, heldout_text()))
    assert n >= 4 * 512  # four 512-token chunks: llama-perplexity's default context


def test_perplexity_is_the_mean_nll_of_the_scored_tokens(default_model, tokens) -> None:
    result = ppl.score_text(default_model, tokens, n_ctx=N_CTX)
    assert result.n_chunks == 4 and result.n_scored == 4 * ppl.scored_per_chunk(N_CTX)
    assert 1.0 < result.perplexity < 1000.0
    assert result.perplexity == pytest.approx(math.exp(result.nll_mean))
    assert result.kl is None


def test_a_model_against_itself_has_zero_kl(default_model, tokens) -> None:
    with LoadedModel(default_model) as model:
        store = ppl.reference_for(model, tokens, N_CTX)
        with store:
            own = ppl.score_text(default_model, tokens, n_ctx=N_CTX, record=store, model=model)
            again = ppl.score_text(default_model, tokens, n_ctx=N_CTX, compare=store,
                                   model=model)
    assert again.kl is not None
    assert again.kl.mean < 1e-4 and again.kl.same_top_pct == 100.0  # uint16 coding only
    assert again.perplexity == pytest.approx(own.perplexity, rel=1e-6)


def test_q8_0_is_closer_to_f32_than_q4_k_m(model_variants, tokens, f32_reference) -> None:
    store, _ = f32_reference
    kl = {q: ppl.score_text(model_variants[q], tokens, n_ctx=N_CTX, compare=store).kl
          for q in ("Q4_K_M", "Q8_0")}
    assert kl["Q4_K_M"] is not None and kl["Q8_0"] is not None
    assert 0 < kl["Q8_0"].mean < kl["Q4_K_M"].mean


def test_reference_coding_round_trips_within_its_step() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(3, 1000)).astype(np.float32)
    log_z = np.log(np.exp(logits.astype(np.float64)).sum(axis=1)).astype(np.float32)
    with ppl.ReferenceLogprobs(3, 1000, [], "synthetic") as store:
        store.store(0, logits, log_z)
        decoded = store.logprobs(0, 3)
    exact = logits - log_z[:, None]
    kept = exact > (logits.max(axis=1) - log_z - ppl.LOGPROB_FLOOR)[:, None]
    step = 16.0 / 65535
    assert np.abs(decoded[kept] - exact[kept]).max() <= step


def test_bad_input_is_one_clear_error(default_model, tokens) -> None:
    with pytest.raises(ConfigError, match="fewer than one"):
        ppl.score_text(default_model, tokens[:10], n_ctx=N_CTX)
    with LoadedModel(default_model) as model:
        store = ppl.reference_for(model, tokens, N_CTX)
        with store, pytest.raises(ConfigError, match="other tokens"):
            ppl.score_text(default_model, list(reversed(tokens)), n_ctx=N_CTX, compare=store,
                           model=model)


@pytest.mark.slow
def test_matches_llama_perplexity(default_model, model_variants, tmp_path) -> None:
    """The same text, context and reference through llama.cpp's own tool: perplexity and
    KL agree with Hearth's."""
    from bench.llama_bench import ensure_tool

    exe = ensure_tool("llama-perplexity")
    text = tmp_path / "text.txt"
    text.write_text(heldout_text())
    with LoadedModel(model_variants["F32"]) as model:
        tokens = ppl.text_tokens(model, heldout_text())[: 8 * 128]
        store = ppl.reference_for(model, tokens, 128)
        with store:
            ref = ppl.score_text(model.path, tokens, n_ctx=128, record=store, model=model)
            mine = ppl.score_text(default_model, tokens, n_ctx=128, compare=store)
    base = tmp_path / "f32.kld"
    common = ["-f", str(text), "-c", "128", "-b", "128", "--chunks", "8", "-t", "2"]
    out = subprocess.run([str(exe), "-m", str(model_variants["F32"]), *common,
                          "--kl-divergence-base", str(base)], capture_output=True, text=True,
                         check=True)
    theirs_ref = float(re.findall(r"Final estimate: PPL = ([\d.]+)", out.stdout + out.stderr)[0])
    out = subprocess.run([str(exe), "-m", str(default_model), *common, "--kl-divergence-base",
                          str(base), "--kl-divergence"], capture_output=True, text=True,
                         check=True)
    log = out.stdout + out.stderr
    theirs_kl = float(re.findall(r"Mean\s+KLD:\s+([\d.]+)", log)[0])
    theirs_ppl = float(re.findall(r"Mean PPL\(Q\)\s*:\s*([\d.]+)", log)[0])
    assert ref.perplexity == pytest.approx(theirs_ref, rel=2e-3)
    assert mine.perplexity == pytest.approx(theirs_ppl, rel=2e-3)
    assert mine.kl is not None and mine.kl.mean == pytest.approx(theirs_kl, rel=0.05, abs=2e-4)
