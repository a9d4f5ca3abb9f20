"""Canvas: task calls as data (``Signature``) and the workflows built from them
(``chain``, ``group``, ``chord``, ``chunks``, ``xmap``, ``xstarmap``).

App core, above ``trace`` and ``followups`` and below ``task``: a workflow applied eagerly
runs tasks and fails chords here, through ``followups`` and ``result``.
"""

from celeriac.canvas.mapping import chunks, xmap, xstarmap
from celeriac.canvas.signature import Signature, maybe_signature, signature, subtask
from celeriac.canvas.stamping import StampingVisitor
from celeriac.canvas.workflows import chain, chord, group

__all__ = [
    "Signature",
    "StampingVisitor",
    "chain",
    "chord",
    "chunks",
    "group",
    "maybe_signature",
    "signature",
    "subtask",
    "xmap",
    "xstarmap",
]
