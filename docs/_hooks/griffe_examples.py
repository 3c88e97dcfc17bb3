"""Griffe extension: the package's docstrings as griffe's Google parser reads them.

- ``Example:`` sections read as ``Examples:`` (Napoleon accepts both spellings, griffe only
  the plural, and would otherwise render doctest outputs such as ``['conv_1', ...]`` as
  Markdown).
- An entry documenting several parameters at once (``x2, y2: an optional second set``) becomes
  one entry per parameter with the same text, so each gets its row, type and default.

Used by mkdocs.yml's mkdocstrings options; the package's source is left as it is.
"""

from __future__ import annotations

import re

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_GROUPED = re.compile(r"^(\s+)([A-Za-z_]\w*(?:, [A-Za-z_]\w*)+): (.*)$")


def split_grouped_entries(text: str) -> str:
    """``a, b: text`` (with its continuation lines) -> ``a: text`` and ``b: text``."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = _GROUPED.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent, names, first = m.group(1), m.group(2).split(", "), m.group(3)
        j = i + 1
        while j < len(lines) and lines[j].strip() and (
                len(lines[j]) - len(lines[j].lstrip()) > len(indent)):
            j += 1
        for name in names:
            out.append(f"{indent}{name}: {first}")
            out.extend(lines[i + 1:j])
        i = j
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    """Rewrites the docstrings as objects are loaded (see the module docstring)."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.docstring is not None:
            value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = split_grouped_entries(value)
