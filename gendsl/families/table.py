"""The one table of model families: every other part of gendsl looks a family up here.

Adding a family is one plugin module (a :class:`~gendsl.families.base.Family`) and one line in
:data:`TABLE` (see ``docs/families.md``).  Importing this module imports neither torch nor sympy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from gendsl.families.adversarial import ADVERSARIAL
from gendsl.families.base import Family, NodeStyle
from gendsl.families.diffusion import DIFFUSION
from gendsl.families.energy import ENERGY
from gendsl.families.flow import FLOW
from gendsl.families.latent import LATENT
from gendsl.families.matching import MATCHING

__all__ = [
    "DEFAULT",
    "FAMILIES",
    "KEYWORDS",
    "TABLE",
    "family",
    "family_of_keyword",
    "node_styles",
    "recognise",
]

#: family name -> plugin, in the order the docs list them.
TABLE: Mapping[str, Family] = MappingProxyType(
    {f.name: f for f in (LATENT, FLOW, DIFFUSION, MATCHING, ADVERSARIAL, ENERGY)}
)

#: The names of the model families.
FAMILIES: tuple[str, ...] = tuple(TABLE)


def _default() -> str:
    (name,) = [f.name for f in TABLE.values() if not f.recognise]
    return name


#: The family of a model that writes no statement :data:`KEYWORDS` knows.
DEFAULT: str = _default()

#: statement keyword -> the family that statement puts its model in.
KEYWORDS: Mapping[str, str] = MappingProxyType(
    {keyword: f.name for f in TABLE.values() for keyword in f.recognise}
)


def family(name: str) -> Family:
    """The plugin of the family ``name``.

    :raises KeyError: no family has that name (the checker only produces names of the table).
    """
    return TABLE[name]


def family_of_keyword(keyword: str) -> str | None:
    """The family a statement with this keyword puts its model in (``None``: it does not
    decide the family)."""
    return KEYWORDS.get(keyword)


def recognise(keywords: Iterable[str]) -> str | None:
    """The family of a model whose statements have these keywords: the one family they decide,
    :data:`DEFAULT` if none decides, ``None`` if they decide two (the checker reports that)."""
    found = {KEYWORDS[k] for k in keywords if k in KEYWORDS}
    if len(found) > 1:
        return None
    return found.pop() if found else DEFAULT


def node_styles() -> dict[str, NodeStyle]:
    """The drawing style of every graph node kind that some family's statements add."""
    styles: dict[str, NodeStyle] = {}
    for f in TABLE.values():
        for kind, style in f.nodes.items():
            if styles.setdefault(kind, style) != style:
                raise AssertionError(f"two families draw node kind {kind!r} differently")
    return styles
