"""Speculative decoding: a draft model, the quantized twin, prompt lookup."""
