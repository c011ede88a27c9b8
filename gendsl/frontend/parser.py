"""Text to AST: the lark LALR parser and the translation of its errors into diagnostics.

The grammar is ``grammar/gendsl.lark``.  The AST is built by a transformer run inside the LALR
parser (on each reduction), so no intermediate parse tree is built and nothing recurses: deeply
nested input cannot overflow the stack.  A parse error becomes a
:class:`~gendsl.errors.SpecSyntaxError` whose message says, in words, what was expected and what
was found instead.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re

from lark import Lark, Token, Transformer, v_args
from lark import __version__ as lark_version
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from gendsl.cache import cache_folder
from gendsl.errors import SpecSyntaxError
from gendsl.frontend import ast
from gendsl.resources import grammar_text
from gendsl.source import SPAN_NONE, Source, Span

__all__ = ["MAX_CHAIN", "MAX_DEPTH", "parse", "parse_expr"]

#: The deepest expression or block nesting accepted.  Deeper input is reported, not parsed,
#: so that every later phase may recurse freely.
MAX_DEPTH = 200

#: The most terms of one flat sum or product (``a + b + ...``): later phases recurse along it.
MAX_CHAIN = 500


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    """The value of a string literal: ``\\n``, ``\\t``, ``\\"`` and ``\\\\`` are escapes."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text[1:-1])


class _Build(Transformer):
    """Callbacks run on each LALR reduction; each returns an AST node with its span."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    # spans: the union of the first and last located child
    def _span(self, *items: object) -> Span:
        located = [self._of(i) for i in items]
        located = [s for s in located if s is not None]
        if not located:
            return SPAN_NONE
        return located[0].to(located[-1])

    def _of(self, item: object) -> Span | None:
        if isinstance(item, Token):
            return _tok_span(self.file, item)
        if isinstance(item, ast.Node):
            span = getattr(item, "span", None)
            return span if span is not None and span is not SPAN_NONE else None
        if isinstance(item, tuple | list) and item:
            return self._span(*item)
        return None

    # ------------------------------------------------------------------ expressions
    def number(self, c):
        (tok,) = c
        return ast.Num(_number(tok), _tok_span(self.file, tok))

    def string(self, c):
        (tok,) = c
        return ast.Str(_unquote(tok), _tok_span(self.file, tok))

    def name(self, c):
        (tok,) = c
        return ast.Name(str(tok), _tok_span(self.file, tok))

    def list(self, c):
        lsqb, (args, kwargs, _), rsqb = c
        if kwargs:
            raise _Misplaced(kwargs[0].span, "a named argument cannot stand in a list")
        return ast.List(args, self._span(lsqb, rsqb))

    def paren(self, c):
        lpar, inner, rpar = c  # the parentheses widen the span; no node of their own
        return dataclasses.replace(inner, span=self._span(lpar, rpar))

    def _binop(self, op: str, c: list) -> ast.BinOp:
        left, right = c
        return ast.BinOp(op, left, right, self._span(left, right))

    def add(self, c):
        return self._binop("+", c)

    def sub(self, c):
        return self._binop("-", c)

    def mul(self, c):
        return self._binop("*", c)

    def div(self, c):
        left, right = c
        if isinstance(right, ast.Name) and right.id.startswith("d") and len(right.id) > 1:
            grouped = self._derivative(left, right)
            if grouped is not None:
                return grouped
        return self._binop("/", c)

    def _derivative(self, left: ast.Expr, dx: ast.Name) -> ast.Expr | None:
        """``a * d(E) / dt`` as ``a * (d(E)/dt)``: the divisor ``dX`` of a time derivative
        belongs to the ``d(E)`` just before it, whatever the product or minus around it;
        ``None`` where there is no ``d(E)`` at the end of ``left``."""
        if isinstance(left, ast.Call) and left.func == "d":
            return ast.BinOp("/", left, dx, self._span(left, dx))
        if isinstance(left, ast.Neg):
            inner = self._derivative(left.operand, dx)
            return ast.Neg(inner, left.span.to(dx.span)) if inner is not None else None
        if isinstance(left, ast.BinOp) and left.op in ("*", "/"):
            inner = self._derivative(left.right, dx)
            if inner is None:
                return None
            return ast.BinOp(left.op, left.left, inner, left.span.to(dx.span))
        return None

    def pow(self, c):
        return self._binop("^", c)

    def neg(self, c):
        minus, operand = c
        return ast.Neg(operand, self._span(minus, operand))

    def index(self, c):
        base, _, idx, rsqb = c
        return ast.Index(base, idx, self._span(base, rsqb))

    def kwarg(self, c):
        name, value = c
        return ast.KwArg(str(name), value, self._span(name, value))

    def arguments(self, c):
        args, kwargs = [], []
        for item in c:
            if isinstance(item, ast.KwArg):
                kwargs.append(item)
            elif kwargs:
                raise _Misplaced(item.span, "a positional argument cannot follow a named one")
            else:
                args.append(item)
        return tuple(args), tuple(kwargs), self._span(*c)

    def call_args(self, c):
        lpar, (args, kwargs, _), rpar = c
        return args, kwargs, self._span(lpar, rpar)

    def call(self, c):
        name, (args, kwargs, aspan) = c
        end = aspan if aspan is not SPAN_NONE else _tok_span(self.file, name)
        span = _tok_span(self.file, name).to(end)
        return ast.Call(str(name), args, kwargs, span, _tok_span(self.file, name))

    def method_call(self, c):
        """``ae.encode(x)``: a call of a used run's method, ``func`` spelled ``"ae.encode"``."""
        obj, method, (args, kwargs, aspan) = c
        head = _tok_span(self.file, obj).to(_tok_span(self.file, method))
        return ast.Call(f"{obj}.{method}", args, kwargs, head.to(aspan), head)

    def use_stmt(self, c):
        name, source = c
        return ast.Use(str(name), source, self._span(name, source), _tok_span(self.file, name))

    # ------------------------------------------------------------------ statements
    def type(self, c):
        name, (args, kwargs, aspan) = c
        end = aspan if aspan is not SPAN_NONE else _tok_span(self.file, name)
        return ast.TypeExpr(str(name), args, kwargs, _tok_span(self.file, name).to(end))

    def decl_kind(self, c):
        return c[0]

    def decl(self, c):
        kind, name, typ = c
        return ast.Decl(
            str(kind), str(name), typ, self._span(kind, typ), _tok_span(self.file, name)
        )

    def params(self, c):
        return tuple(str(t) for t in c)

    def let_stmt(self, c):
        name, *rest = c
        params = rest[0] if len(rest) == 2 else ()
        value = rest[-1]
        return ast.Let(
            str(name), params, value, self._span(name, value), _tok_span(self.file, name)
        )

    def net_stmt(self, c):
        name, ctor = c
        return ast.Net(str(name), ctor, self._span(name, ctor), _tok_span(self.file, name))

    def given(self, c):
        return tuple(ast.Name(str(t), _tok_span(self.file, t)) for t in c)

    def sample_stmt(self, c):
        target, *rest = c
        given = rest[0] if len(rest) == 2 else ()
        dist = rest[-1]
        return ast.Sample(
            str(target), given, dist, self._span(target, dist), _tok_span(self.file, target)
        )

    def assign_stmt(self, c):
        target, value = c
        return ast.Assign(
            str(target), value, self._span(target, value), _tok_span(self.file, target)
        )

    def guide_stmt(self, c):
        return ast.Guide(tuple(c), self._span(*c))

    def layer(self, c):
        name, *rest = c
        args, kwargs, aspan = rest[0] if rest else ((), (), SPAN_NONE)
        end = aspan if aspan is not SPAN_NONE else _tok_span(self.file, name)
        return ast.Layer(str(name), args, kwargs, _tok_span(self.file, name).to(end))

    def repeat(self, c):
        count, *body = c
        span = _tok_span(self.file, count)
        if not str(count).isdigit() or int(count) < 1:
            raise _Misplaced(span, f"repeat needs a whole number of at least 1, found {count}")
        return ast.Repeat(int(count), tuple(body), self._span(count, *body))

    def flow_stmt(self, c):
        name, *body = c
        return ast.Flow(
            str(name), tuple(body), self._span(name, *body), _tok_span(self.file, name)
        )

    def sde_stmt(self, c):
        diff, rhs, time, t0, t1 = c
        return ast.SDE(
            str(diff), rhs, str(time), t0, t1, self._span(diff, t1), _tok_span(self.file, diff)
        )

    def chain_stmt(self, c):
        var, index, dist, range_var, lo, hi = c
        return ast.Chain(str(var), str(index), dist, str(range_var), lo, hi, self._span(var, hi))

    def path_stmt(self, c):
        target, value = c
        return ast.Path(str(target), value, self._span(target, value))

    def option(self, c):
        name, *rest = c
        args, kwargs, aspan = rest[0] if rest else ((), (), SPAN_NONE)
        end = aspan if aspan is not SPAN_NONE else _tok_span(self.file, name)
        return ast.Option(str(name), args, kwargs, _tok_span(self.file, name).to(end))

    def couple_stmt(self, c):
        left, right, option = c
        return ast.Couple(str(left), str(right), option, self._span(left, option))

    def predict_stmt(self, c):
        kind, value = c
        return ast.Predict(str(kind), value, self._span(kind, value), _tok_span(self.file, kind))

    def critic_stmt(self, c):
        name, *rest = c
        value = rest[0] if rest else None
        return ast.Critic(str(name), value, self._span(name, *rest))

    def critic_call(self, c):
        name, params = c
        return ast.Critic(str(name), None, self._span(name), params)

    def energy_stmt(self, c):
        name, params, *rest = c
        value = rest[0] if rest else None
        return ast.Energy(str(name), params, value, self._span(name, *rest))

    def guidance_stmt(self, c):
        return ast.Guidance(c[0], c[0].span)

    def loss_stmt(self, c):
        return ast.Loss(c[0], c[0].span)

    def sampler_stmt(self, c):
        return ast.SamplerDecl(c[0], c[0].span)

    def train_stmt(self, c):
        return ast.Train(tuple(c), self._span(*c))

    def extends(self, c):
        return c[0]

    def model(self, c):
        name, *rest = c
        base = None
        if rest and isinstance(rest[0], Token):
            base, *rest = rest
        return ast.Model(
            str(name),
            str(base) if base is not None else None,
            tuple(rest),
            self._span(name, *rest),
            _tok_span(self.file, name),
            _tok_span(self.file, base) if base is not None else SPAN_NONE,
        )

    def import_stmt(self, c):
        (path,) = c
        return ast.Import(_unquote(path), _tok_span(self.file, path))

    def start(self, c):
        imports = tuple(i for i in c if isinstance(i, ast.Import))
        models = tuple(m for m in c if isinstance(m, ast.Model))
        return ast.Program(imports, models, self._span(*c))


# Keyword spans: the statement callbacks above see only the kept tokens; we widen each
# statement's span to its keyword by re-reading the text in `_widen` below.


class _Misplaced(Exception):
    def __init__(self, span: Span, message: str):
        super().__init__(message)
        self.span = span
        self.message = message


v_args(inline=False)(_Build)


@functools.cache
def _parser() -> tuple[Lark, _Build]:
    """The LALR parser with the AST builder run on each reduction (so nothing recurses)."""
    builder = _Build("<string>")
    text = grammar_text()
    options = {"parser": "lalr", "start": "start", "maybe_placeholders": False}
    lark = Lark(text, transformer=builder, cache=_grammar_cache(text), **options)
    return lark, builder


def _grammar_cache(text: str) -> str | bool:
    """Where lark keeps the analysed LALR tables between runs (a file in gendsl's own cache
    folder, named by the grammar's hash); ``False`` when that folder cannot be made."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    digest = hashlib.sha256(f"{text}\n{lark_version}".encode()).hexdigest()[:16]
    return str(folder / f"grammar-{digest}.lalr")


# ----------------------------------------------------------------------------------- errors

_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "COMMA": "','",
    "COLON": "':'",
    "EQUAL": "'='",
    "TILDE": "'~'",
    "VBAR": "'|'",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "CIRCUMFLEX": "'^'",
    "_SEMI": "';'",
    "__ANON_0": "'..'",
    "$END": "the end of the file",
}

_STATEMENT_WORDS = [
    "data",
    "latent",
    "condition",
    "use",
    "let",
    "net",
    "guide",
    "flow",
    "sde",
    "chain",
    "path",
    "couple",
    "predict",
    "critic",
    "energy",
    "guidance",
    "loss",
    "sample",
    "train",
]


def _word(terminal: str, parser: Lark) -> str:
    if terminal in _WORDS:
        return _WORDS[terminal]
    try:
        pattern = parser.get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return terminal.lower()


def _expected_words(expected: set[str], parser: Lark) -> str:
    words = {_word(t, parser) for t in expected}
    keywords = {f"'{k}'" for k in _STATEMENT_WORDS}
    summary = []
    if len(words & keywords) >= 10:
        words -= keywords
        words.discard("a name")
        summary.append("a statement (data, latent, let, net, x ~ Dist(...), loss, ...)")
    if {"a number", "a name", "'('", "'-'"} <= words:
        words -= {"a number", "a name", "'('", "'-'", "'['", "a string"}
        summary.append("an expression")
    if {"'+'", "'*'"} <= words:
        words -= {"'+'", "'-'", "'*'", "'/'", "'^'", "'['"}
        summary.append("an operator")
    ordered = summary + sorted(words)
    if len(ordered) == 1:
        return ordered[0]
    return ", ".join(ordered[:-1]) + " or " + ordered[-1]


def _found(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    text = str(token)
    return f"'{text}'" if len(text) <= 30 else f"'{text[:27]}...'"


def _syntax_error(err: UnexpectedInput, source: Source, parser: Lark) -> SpecSyntaxError:
    file = source.name
    if isinstance(err, UnexpectedCharacters):
        ch = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else ""
        shown = repr(ch)[1:-1] if not ch.isprintable() else ch
        msg = f"unexpected character '{shown}'"
        if ch == '"':
            msg = "unterminated string: a string must close with '\"' on the same line"
        return SpecSyntaxError(msg, Span.point(file, err.line, err.column), source)
    if isinstance(err, UnexpectedEOF) or (
        isinstance(err, UnexpectedToken) and err.token.type == "$END"
    ):
        lines = source.text.splitlines() or [""]
        line = len(lines)
        col = len(lines[-1]) + 1
        accepts = getattr(err, "accepts", None) or err.expected
        expected = _expected_words(set(accepts), parser)
        return SpecSyntaxError(
            f"unexpected end of file; expected {expected}",
            Span.point(file, line, max(col - 1, 1)),
            source,
        )
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    before = source.line(tok.line)[: tok.column - 1]
    if re.search(r"(^|[^A-Za-z0-9_])repeat\s*$", before):
        return SpecSyntaxError(
            "'repeat N { ... }' is only allowed inside a flow { } block",
            _tok_span(file, tok),
            source,
        )
    if tok.type == "NUMBER" and (before[-1:].isdigit() or before[-1:] == "."):
        start = len(before.rstrip("0123456789.eE"))
        line = source.line(tok.line)
        end = tok.column - 1 + len(str(tok))
        text = line[start:end]
        return SpecSyntaxError(
            f"malformed number '{text}'",
            Span(file, tok.line, start + 1, tok.line, end + 1),
            source,
        )
    expected = _expected_words(set(err.accepts or err.expected), parser)
    return SpecSyntaxError(
        f"expected {expected}; found {_found(tok)}",
        _tok_span(file, tok),
        source,
    )


# ------------------------------------------------------------------------------ depth guard

_OPEN, _CLOSE = "([{", ")]}"


def _check_nesting(source: Source) -> None:
    """Reject bracket nesting deeper than :data:`MAX_DEPTH`, before the parser sees it."""
    depth, line, col = 0, 1, 1
    in_string = in_comment = False
    for ch in source.text:
        if in_comment:
            in_comment = ch != "\n"
        elif in_string:
            in_string = ch not in '"\n'
        elif ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecSyntaxError(
                    f"brackets nested too deeply: more than {MAX_DEPTH} levels",
                    Span.point(source.name, line, col),
                    source,
                )
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)
        if ch == "\n":
            line, col = line + 1, 1
        else:
            col += 1


_CHAINS = ({"+", "-"}, {"*", "/"})


def _chain_step(node: ast.Node, child: ast.Node) -> int:
    """How much deeper ``child`` nests than ``node``: 0 for the left operand of a left-associative
    chain of one precedence level (``a + b - c + ...`` is a list, not nesting), else 1."""
    if isinstance(node, ast.BinOp) and isinstance(child, ast.BinOp) and child is node.left:
        return 0 if any(node.op in c and child.op in c for c in _CHAINS) else 1
    return 1


def _check_depth(tree: ast.Node, source: Source) -> None:
    """Reject ASTs nested deeper than :data:`MAX_DEPTH` and chains longer than
    :data:`MAX_CHAIN` terms."""
    stack = [(tree, 0, 0)]
    while stack:
        node, depth, chain = stack.pop()
        if depth > MAX_DEPTH + 20:
            raise SpecSyntaxError(
                f"expression too deeply nested: more than {MAX_DEPTH} levels",
                getattr(node, "span", None),
                source,
            )
        if chain + 2 > MAX_CHAIN:  # the binary node at link `chain` joins chain + 2 terms
            raise SpecSyntaxError(
                f"expression too long: more than {MAX_CHAIN} terms in one sum or product; "
                "split it over several let statements",
                getattr(node, "span", None),
                source,
            )
        for child in node.children():
            step = _chain_step(node, child)
            stack.append((child, depth + step, chain + 1 if step == 0 else 0))


# --------------------------------------------------------------------------- statement spans

_KEYWORDED = (
    ast.Decl,
    ast.Let,
    ast.Net,
    ast.Guide,
    ast.Flow,
    ast.SDE,
    ast.Chain,
    ast.Path,
    ast.Couple,
    ast.Predict,
    ast.Critic,
    ast.Energy,
    ast.Guidance,
    ast.Loss,
    ast.SamplerDecl,
    ast.Train,
    ast.Model,
    ast.Repeat,
)


def _widen(source: Source, span: Span) -> Span:
    """Move a statement's start back over its leading keyword(s) on the same line."""
    text = source.line(span.line)
    col = span.column - 1
    before = text[:col].rstrip()
    if before.endswith("{"):  # guide { ..., train { ...
        before = before[:-1]
    for _ in range(2):  # "sample with", "data x" have at most two leading words
        stripped = before.rstrip()
        word_start = len(stripped)
        while word_start > 0 and (
            stripped[word_start - 1].isalnum() or stripped[word_start - 1] == "_"
        ):
            word_start -= 1
        word = stripped[word_start:]
        if word not in {*_STATEMENT_WORDS, "with", "model", "repeat"}:
            break
        col = word_start
        before = stripped[:word_start]
        if word != "with":
            break
    return Span(span.file, span.line, col + 1, span.end_line, span.end_column)


def _with_keyword_spans(program: ast.Program, source: Source) -> ast.Program:

    def fix(node):
        if isinstance(node, ast.Model):
            body = tuple(fix(s) for s in node.body)
            return dataclasses.replace(node, body=body, span=_widen(source, node.span))
        if isinstance(node, ast.Guide):
            body = tuple(fix(s) for s in node.body)
            return dataclasses.replace(node, body=body, span=_widen(source, node.span))
        if isinstance(node, ast.Flow | ast.Repeat):
            body = tuple(fix(s) for s in node.body)
            return dataclasses.replace(node, body=body, span=_widen(source, node.span))
        if isinstance(node, _KEYWORDED) and node.span is not SPAN_NONE:
            return dataclasses.replace(node, span=_widen(source, node.span))
        return node

    return dataclasses.replace(program, models=tuple(fix(m) for m in program.models))


# ------------------------------------------------------------------------------- entry points


def _source(text: str | bytes, name: str) -> Source:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            before = text[: err.start]
            line = before.count(b"\n") + 1
            col = err.start - (before.rfind(b"\n") + 1) + 1
            raise SpecSyntaxError(
                f"the file is not UTF-8 text (byte 0x{text[err.start]:02x})",
                Span.point(name, line, col),
                None,
            ) from None
    return Source(name, text)


def parse(text: str | bytes, name: str = "<string>") -> ast.Program:
    """Parse a whole ``.gen`` file into a :class:`~gendsl.frontend.ast.Program`.

    Raises :class:`~gendsl.errors.SpecSyntaxError` (located, with what was expected) on bad input;
    never any other exception for any input text.
    """
    source = _source(text, name)
    _check_nesting(source)
    parser, builder = _parser()
    builder.file = name
    try:
        program = parser.parse(source.text)
    except _Misplaced as err:
        raise SpecSyntaxError(err.message, err.span, source) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, source, parser) from None
    _check_depth(program, source)
    return _with_keyword_spans(program, source)


def parse_expr(text: str, name: str = "<expr>") -> ast.Expr:
    """Parse a single expression (used by tests and the ``derive`` command)."""
    program = parse(f"model _ {{ let _ = {text} }}", name)
    return program.models[0].body[0].value
