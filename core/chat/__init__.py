"""Chat rules and what is kept of them: conversations, the history store (documents join here)."""
