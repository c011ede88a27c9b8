"""Model families as plugins: one :class:`Family` object per family, in one table.

Each family (latent, flow, diffusion, matching, adversarial, energy) is one module of this
package holding its :class:`Family`: how a model is recognised as one, its derivation, a lazy
reference to its back end, its samplers and how its graph nodes are drawn.  :mod:`.table` holds
the one table the checker, the symbolic core, the drawing code and the back-end registry read.
Importing this package imports neither torch nor sympy; see ``docs/families.md``.
"""

from __future__ import annotations

from gendsl.families.base import Family, NodeStyle, resolve
from gendsl.families.table import (
    DEFAULT,
    FAMILIES,
    KEYWORDS,
    STATEMENTS,
    TABLE,
    family,
    family_of_keyword,
    family_of_statement,
    node_styles,
    recognise,
    statement_keyword,
)

__all__ = [
    "DEFAULT",
    "FAMILIES",
    "KEYWORDS",
    "STATEMENTS",
    "TABLE",
    "Family",
    "NodeStyle",
    "family",
    "family_of_keyword",
    "family_of_statement",
    "node_styles",
    "recognise",
    "resolve",
    "statement_keyword",
]
