"""The documents prompt template: the seed's, as the seed writes it, editable.

The seed (edge RAG) gives this shape; its explicit instruction and forced brevity are what
cut its example from 2,050 to 950 tokens. Users may edit it (the GUI's Documents pane,
``hearth-cli docs template``); an edited template must keep both placeholders. Placeholders
are substituted in one pass, so braces or a literal "{user_query}" inside a document are
left alone, and no ``str.format`` escaping is needed in templates.
"""

from __future__ import annotations

import re

from core.chat.documents.errors import DocumentsError

SEED_TEMPLATE = (
    "[CONTEXT]\n"
    "{relevant_documents}\n"
    "\n"
    "[QUESTION]\n"
    "{user_query}\n"
    "\n"
    "[INSTRUCTION]\n"
    'Answer based on context. If not in context, say "not found".\n'
    "Format: 1-2 sentences max.\n"
    "\n"
    "[ANSWER]"
)

# The system message of a documents chat: the template says what to answer from; this asks
# for the [n] markers that map an answer back to its passages. Editable (empty is allowed).
DEFAULT_SYSTEM = "The context holds numbered passages; cite the ones you use as [n]."

PLACEHOLDERS = ("{relevant_documents}", "{user_query}")
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


def check_template(template: str) -> str:
    """The template if both placeholders are in it, else :class:`DocumentsError`."""
    missing = [p for p in PLACEHOLDERS if p not in template]
    if missing:
        raise DocumentsError(f"The documents template needs {' and '.join(missing)}; "
                             "put it back or reset the template to the default.")
    return template


def render(template: str, relevant_documents: str, user_query: str) -> str:
    """The template with its placeholders filled (one pass)."""
    values = {"{relevant_documents}": relevant_documents, "{user_query}": user_query}
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)], check_template(template))
