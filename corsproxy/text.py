"""Text from the outside world, made safe to show on a terminal (stdlib only).

A hostile server's header, body or origin can hold terminal escape sequences (a title change,
a screen clear, a cursor move that draws a fake verdict line), C1 controls such as U+009B (CSI
on many terminals) and bidi overrides such as U+202E that reorder what is shown. Everything
probe prints and every console log value passes through `printable`.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every non-printable character escaped as Python writes it (``\\x1b``,
    ``\\x9b``, ``\\u202e``, ``\\n``); printable text, non-ASCII letters included, is unchanged.

    str.isprintable() is False exactly for the Unicode categories that can move the cursor or
    reorder text: Cc (C0, DEL, C1), Cf (bidi controls, zero-width), Zl, Zp, other separators
    than space, surrogates and unassigned code points.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
