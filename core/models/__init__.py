"""Where models come from: the bundled ones, the Hugging Face Hub, the library on disk."""
