"""Small, real GGUF files for hub and library tests (written by gguf-py's GGUFWriter)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter

# llama_ftype values used below (include/llama.h): general.file_type in the header.
FTYPE = {"F32": 0, "F16": 1, "Q8_0": 7, "Q4_K_M": 15}
TEMPLATE = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"


def write_tiny_gguf(
    path: Path,
    *,
    n_bytes: int = 1 << 20,
    ftype: str = "Q8_0",
    arch: str = "llama",
    context_length: int = 4096,
    chat_template: bool = True,
    seed: int = 0,
    name: str = "Tiny Test",
) -> Path:
    """A valid GGUF of about ``n_bytes`` whose header says ``ftype``; the tensor is random
    float32 data (the header, not the tensor types, is what Hearth reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(2)
    writer.add_context_length(context_length)
    writer.add_embedding_length(64)
    writer.add_head_count(4)
    writer.add_file_type(FTYPE[ftype])
    if chat_template:
        writer.add_chat_template(TEMPLATE)
    n = max(256, n_bytes // 4)
    data = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    writer.add_tensor("token_embd.weight", data.reshape(-1, 256) if n % 256 == 0 else data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
