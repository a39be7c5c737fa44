"""Text from outside the app (URLs, file and folder names, archive contents, error messages that quote
them) shown as plain text in Streamlit's Markdown-rendering elements.

``st.error``, ``st.warning``, ``st.success``, ``st.info``, ``st.markdown``, ``st.caption``, metric and
widget labels all render Markdown plus Streamlit's extensions (``:emoji:``, ``:material/icon:``,
``:red[...]``, ``$LaTeX$``) and GFM autolinks. ``plain(text)`` neutralises every construct that could
turn user text into a link, an image, emphasis, a heading, a list, code, a directive or math, while
keeping ordinary file names and messages readable (``/``, ``.``, ``:`` before a space or ``/``, ``-``,
word-internal ``_`` and parentheses are left alone). No Streamlit import: tested directly.
"""

from __future__ import annotations

import re

__all__ = ["plain"]

ZWSP = "\u200b"  # invisible; breaks ":name:" shortcodes and autolink literals without changing the text shown

_ESCAPED = set("\\`*[]{}")  # backslash-escaped: link/image brackets, emphasis, code
# as character references (CommonMark core, so every renderer shows the character itself and no
# extension - GFM strikethrough/tables, remark-math, raw HTML - ever sees its delimiter)
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "~": "&#126;", "$": "&#36;", "|": "&#124;"}
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # "_" that could open/close emphasis
_SHORTCODE = re.compile(r":(?=[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_]+)?:)")  # ":smile:", ":material/home:"
_DIRECTIVE = re.compile(r":(?=[A-Za-z]+\\\[)")  # ":red\[" after escaping "["
_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|file|javascript|data)(:)|\b(www)(\.)|(@)")
_BLOCK_START = re.compile(r"^(\s*)(#{1,6}|[-+*]|\d{1,9}[.)]|=+|-+)(?=\s|$)")  # ">" is an entity already


def _autolink(m: re.Match) -> str:
    if m.group(1):
        return f"{m.group(1)}{ZWSP}{m.group(2)}"
    if m.group(3):
        return f"{m.group(3)}{ZWSP}{m.group(4)}"
    return f"{ZWSP}@"


def plain(text) -> str:
    """``text`` (anything; ``str()`` is taken) as Markdown source that renders exactly as the text, on one
    line: newlines become spaces, Markdown/Streamlit syntax characters are backslash-escaped, and a
    zero-width space breaks shortcodes and autolinks (``http://``, ``www.``, ``a@b.c``)."""
    s = " ".join(str(text).split("\n")).replace("\r", " ").replace("\t", " ").strip()
    s = "".join("\\" + ch if ch in _ESCAPED else _ENTITIES.get(ch, ch) for ch in s)
    s = _UNDERSCORE.sub(r"\\_", s)
    s = _SHORTCODE.sub(":" + ZWSP, s)
    s = _DIRECTIVE.sub(":" + ZWSP, s)
    s = _AUTOLINK.sub(_autolink, s)
    m = _BLOCK_START.match(s)
    if m:  # a heading, quote, list item or rule at the start
        marker = m.group(2)
        s = m.group(1) + marker[:-1] + "\\" + marker[-1] + s[m.end() :]
    if s.startswith("!"):
        s = "\\" + s
    return s
