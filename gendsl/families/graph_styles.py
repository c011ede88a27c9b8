"""Graph node styles that more than one family's statements add."""

from __future__ import annotations

from gendsl.families.base import NodeStyle

__all__ = ["NOISE", "NOISED", "PROCESS"]

#: An ``sde``, ``chain`` or ``path`` statement.
PROCESS = NodeStyle("shape=box style=rounded", "D", "white")
#: The ``x_t`` a process or path introduces.
NOISED = NodeStyle('shape=circle style=filled fillcolor="#dde8f4"', "o", "#dde8f4")
#: The noise ``w`` of a path.
NOISE = NodeStyle("shape=circle style=dotted", "o", "white", "dotted")
