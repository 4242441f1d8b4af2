"""Checks on text that becomes part of an identity (user ids, subjects, roles)."""

from __future__ import annotations

import unicodedata

_UNCLEAN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def is_clean(text: str) -> bool:
    """No control, format, line-separator or lone-surrogate characters: JSON escapes can carry
    any of them, and they make ids that print alike differ, or break encoding later."""
    return not any(unicodedata.category(c) in _UNCLEAN_CATEGORIES for c in text)
