"""The engine on llama.cpp's low-level API: model, context, sequences, sampling, prompts, text."""
