"""A griffe extension for the API reference: the library's docstrings, written with Sphinx's
habits, read as Markdown by mkdocstrings.

When the package has been loaded, before anything is rendered:

* module constants assigned together (``A, B = "a", "b"``), which griffe does not see, become
  attributes of their module;
* an attribute without a docstring takes the ``#:`` comment lines right above it, and a method
  without one takes the docstring of the method it overrides;
* a role such as ``:func:`name``` (also ``class``, ``meth``, ``mod``, ``attr``, ``data``,
  ``exc``, ``obj``) becomes a cross-reference to the object's full path, the name looked up as
  Python would from the documented object (its class, its module; inherited members too);
  ``~a.b.c`` shows ``c``. A private target (a name with a leading underscore, or one that its
  module's ``__all__`` leaves out) is not in the reference and stays code. A name that resolves
  nowhere stays a link to that name, which fails the strict build;
* a paragraph ending in ``::`` introduces a literal block: the ``::`` becomes ``:`` (and
  vanishes where it stands alone) and the indented block becomes a fenced ``text`` block;
* a simple table (columns marked by ``====  ====`` borders, a row whose first cell is empty
  continuing the row above) becomes a Markdown table;
* inside a list, indentation is rounded up to Markdown's 4 spaces (reST nests a list under
  ``1. `` with 3), so that nested lists stay nested;
* a configuration field declared as ``name: type = _option(kind, default, help, ...)`` (the
  fields of ``TrainConfig``) shows its default as its value, in the class's signature too, and
  its help text as its docstring.
"""
from __future__ import annotations

import ast
import re
import textwrap

import griffe

ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([\w.]+)`")
LIST_MARKER = re.compile(r"(\s*)((?:[-*+]|\d+\.)\s+)?")
COMMENT = re.compile(r"^\s*#:\s?(.*)$")
BORDER = re.compile(r"^\s*=+(\s+=+)+\s*$")


# ----------------------------------------------------------------------------- tables
def table_rows(lines: list[str], ends: list[int]) -> list[list[str]]:
    """The rows of a simple table's lines, cut at the columns' right edges ``ends``."""
    rows = []
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip([0, *ends[:-1]], [*ends[:-1], len(line)])]
        if rows and not cells[0]:
            rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
        elif any(cells):
            rows.append(cells)
    return rows


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def markdown_tables(text: str) -> str:
    """reST's simple tables as Markdown tables (an empty header where the table has none)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        if not BORDER.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        ends = [m.end() for m in re.finditer("=+", lines[i])]
        borders, j = [i], i + 1
        while j < len(lines) and not (borders[-1] != i and (j == borders[-1] + 1) and not lines[j].strip()):
            if BORDER.match(lines[j]):
                borders.append(j)
            j += 1
        header = table_rows(lines[borders[0] + 1:borders[1]], ends) if len(borders) > 2 else [[""] * len(ends)]
        body = table_rows(lines[borders[-2] + 1:borders[-1]], ends)
        out += [markdown_row(header[0]), markdown_row(["---"] * len(ends)), *map(markdown_row, body)]
        i = borders[-1] + 1
    return "\n".join(out)


# ----------------------------------------------------------------------------- literal blocks
def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def text_column(line: str) -> int:
    """The column of a line's text, after its indentation and list marker."""
    spaces, marker = LIST_MARKER.match(line).groups()
    return len(spaces) + len(marker or "")


def fence_column(line: str) -> int:
    """Where a block after ``line`` starts: its text's column, rounded up to Markdown's 4."""
    return -(-text_column(line) // 4) * 4


def fenced_literal_blocks(text: str) -> str:
    """reST's ``::`` literal blocks as fenced text blocks."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            out.append(line)
            continue
        lead = line.rstrip()[:-2].rstrip()
        if lead.strip():
            out.append(lead + ":")
        base, start = text_column(line), i
        while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) > base):
            i += 1
        while i > start and not lines[i - 1].strip():
            i -= 1
        pad = " " * fence_column(line)
        block = textwrap.dedent("\n".join(lines[start:i])).strip("\n")
        out += ["", pad + "```text", *[pad + b if b else b for b in block.splitlines()], pad + "```", ""]
    return "\n".join(out)


def markdown_list_indents(text: str) -> str:
    """Lines indented inside a list (one opened at column 0), re-indented to a multiple of 4;
    fenced blocks (placed at such a column by :func:`fenced_literal_blocks`) keep their lines."""
    out, in_list, in_fence = [], False, False
    for line in text.splitlines():
        indent = indent_of(line)
        if line.strip().startswith("```"):
            in_fence = not in_fence
        elif line.strip() and indent == 0 and not in_fence:
            in_list = LIST_MARKER.match(line).group(2) is not None
        elif line.strip() and in_list and not in_fence:
            line = " " * (-(-indent // 4) * 4) + line.lstrip()
        out.append(line)
    return "\n".join(out)


# ----------------------------------------------------------------------------- roles
def scopes(obj: griffe.Object):
    """Where a name in ``obj``'s docstring is looked up: the object if it holds members, then its parents."""
    scope = obj if (obj.is_class or obj.is_module) else obj.parent
    while scope is not None:
        yield scope
        scope = scope.parent


def lookup(obj: griffe.Object, name: str) -> griffe.Object | None:
    """The object ``name`` means in ``obj``'s docstring (aliases followed), or None."""
    first, *rest = name.split(".")
    candidates = [scope.all_members.get(first) if scope.is_class else scope.members.get(first) for scope in scopes(obj)]
    found = next((c for c in candidates if c is not None), None)
    try:
        found = found[".".join(rest)] if found is not None and rest else found
        if found is None:
            found = obj.modules_collection[name]
        return found.final_target if found.is_alias else found
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def is_documented(target: griffe.Object) -> bool:
    """Whether the reference renders ``target``: public along its whole path."""
    while target is not None:
        if target.name.startswith("_") and not target.is_module or not target.is_public:
            return False
        target = target.parent
    return True


def markdown_roles(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        short, name = match.groups()
        shown = name.rsplit(".", 1)[-1] if short else name
        target = lookup(obj, name)
        if target is not None and not is_documented(target):
            return f"`{shown}`"
        return f"[`{shown}`][{target.path if target is not None else name}]"
    return ROLE.sub(replace, text)


# ----------------------------------------------------------------------------- missing docstrings
def comment_above(attr: griffe.Object) -> str | None:
    """The ``#:`` lines right above an attribute's assignment, joined, or None."""
    lines, comment, row = attr.module.lines, [], (attr.lineno or 0) - 2
    while row >= 0 and COMMENT.match(lines[row]):
        comment.insert(0, COMMENT.match(lines[row]).group(1))
        row -= 1
    return "\n".join(comment) or None


def overridden_docstring(method: griffe.Object) -> str | None:
    """The docstring of the first method of that name up the class's bases, or None."""
    for base in method.parent.mro():
        member = base.members.get(method.name)
        if member is not None and member.docstring is not None:
            return member.docstring.value
    return None


def missing_docstring(obj: griffe.Object) -> str | None:
    if obj.is_attribute:
        return comment_above(obj)
    if obj.is_function and obj.parent.is_class:
        return overridden_docstring(obj)
    return None


def unpacked_constants(module: griffe.Module) -> list[griffe.Attribute]:
    """The module-level names of ``A, B = a, b`` assignments that griffe has not loaded."""
    found = []
    for node in ast.parse("\n".join(module.lines)).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Tuple)
                and isinstance(node.value, ast.Tuple) and len(node.value.elts) == len(node.targets[0].elts)):
            continue
        for target, value in zip(node.targets[0].elts, node.value.elts):
            if isinstance(target, ast.Name) and target.id not in module.members:
                found.append(griffe.Attribute(target.id, value=ast.unparse(value), lineno=node.lineno,
                                              endlineno=node.end_lineno))
    return found


def option_field(attr: griffe.Object) -> tuple[str, str] | None:
    """``(default, help)`` of an attribute declared as ``_option(kind, default, help, ...)``, or None."""
    try:
        call = ast.parse(str(attr.value), mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_option"
            and len(call.args) >= 3 and isinstance(call.args[2], ast.Constant)):
        return None
    default = "{}" if ast.literal_eval(call.args[0]) == "init" else ast.unparse(call.args[1])
    return default, call.args[2].value


def show_option_fields(cls: griffe.Class) -> None:
    """The default and help text of each ``_option`` field of ``cls``, in its attributes and its signature."""
    fields = {name: found for name, attr in cls.members.items()
              if attr.is_attribute and attr.value is not None and (found := option_field(attr))}
    for name, (default, help_text) in fields.items():
        attr = cls.members[name]
        attr.value = default
        if attr.docstring is None:
            attr.docstring = griffe.Docstring(help_text, lineno=attr.lineno, parent=attr)
    init = cls.all_members.get("__init__")
    if fields and init is not None and not init.is_alias:
        for parameter in init.parameters:
            if parameter.name in fields:
                parameter.default = fields[parameter.name][0]


def walk(obj: griffe.Object):
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from walk(member)


class RestToMarkdown(griffe.Extension):
    """Completes and rewrites every docstring of the loaded package once, before mkdocstrings parses it."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        for module in [obj for obj in walk(pkg) if obj.is_module and obj.filepath]:
            for attr in unpacked_constants(module):
                module.set_member(attr.name, attr)
                attr.labels.add("module-attribute")
        objects = list(walk(pkg))
        for cls in [obj for obj in objects if obj.is_class]:
            show_option_fields(cls)
        for obj in objects:
            if obj.docstring is None and (text := missing_docstring(obj)):
                obj.docstring = griffe.Docstring(text, lineno=obj.lineno, parent=obj)
        for obj in objects:
            if obj.docstring is not None:
                text = markdown_list_indents(fenced_literal_blocks(markdown_tables(obj.docstring.value)))
                obj.docstring.value = markdown_roles(obj, text)
