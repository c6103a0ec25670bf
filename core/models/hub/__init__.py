"""The Hugging Face Hub: search, file lists, remote headers, resumable verified downloads."""
