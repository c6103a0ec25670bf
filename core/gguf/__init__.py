"""GGUF as a file format: reading headers, validating files, quantizing. No HTTP here."""
