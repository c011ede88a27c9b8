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
    "STATEMENTS",
    "TABLE",
    "family",
    "family_of_keyword",
    "family_of_statement",
    "node_styles",
    "recognise",
    "statement_keyword",
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


#: syntax-tree class of a family-deciding statement -> its keyword.
STATEMENTS: Mapping[type, str] = MappingProxyType(
    {cls: keyword for f in TABLE.values() for keyword, cls in f.recognise.items()}
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


def statement_keyword(stmt: object) -> str:
    """The keyword that opens a family-deciding statement (``sde``, ``chain``, ``path``...).

    :raises KeyError: the statement decides no family.
    """
    return STATEMENTS[type(stmt)]


def family_of_statement(stmt: object) -> str | None:
    """The family a statement puts its model in (``None``: it does not decide it)."""
    keyword = STATEMENTS.get(type(stmt))
    return None if keyword is None else KEYWORDS[keyword]


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
