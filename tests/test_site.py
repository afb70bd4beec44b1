"""The documentation site (mkdocs.yml, docs/): built once per session as ``make docs`` builds it
(conftest's ``built_site``), then read as files: every page of the nav is there, every API page
documents its module's public names, the search index knows the layers, every link inside the
site resolves, and nothing is loaded from outside it (the site works offline). The griffe
extension that reads the docstrings (docs/hooks/griffe_rest.py) is tested on its own below."""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import pkgutil
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

import numpy_rnn

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
#: public modules of the package: each has a page docs/api/<module>.md
MODULES = sorted(m.name for m in pkgutil.iter_modules(numpy_rnn.__path__) if not m.name.startswith("_"))


class _NavLoader(yaml.SafeLoader):
    """mkdocs.yml's own tags (!ENV, !relative, python objects) read as plain values: only the nav matters here."""


_NavLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
_NavLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)


def nav_files(entry=None) -> list[str]:
    """The source files of every page in mkdocs.yml's nav, relative to docs/."""
    if entry is None:
        entry = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_NavLoader)["nav"]
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        return [f for value in entry.values() for f in nav_files(value)]
    return [f for item in entry for f in nav_files(item)]


def html_of(source: str) -> str:
    return re.sub(r"\.(md|ipynb)$", ".html", source)


class _Page(HTMLParser):
    """The ids of a page and the URLs it refers to: (tag, attribute, value)."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.refs.append((tag, name, value))


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def pages(built_site) -> dict[Path, _Page]:
    return {path: parse(path) for path in built_site.rglob("*.html")}


# ----------------------------------------------------------------------------- the build
def test_the_strict_build_printed_no_warning(built_site):
    log = (built_site.parent / "build.log").read_text(encoding="utf-8")
    assert "Documentation built" in log
    assert not [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))], log


def test_every_page_of_the_nav_exists_and_was_built(built_site):
    files = nav_files()
    assert "index.md" in files and "api/layers.md" in files and any(f.startswith("tutorials/") for f in files)
    assert not [f for f in files if not (ROOT / "docs" / f).exists()], "the nav names missing pages"
    assert not [f for f in files if not (built_site / html_of(f)).exists()], "pages of the nav not built"


def test_every_tutorial_is_in_the_nav_and_rendered_with_its_outputs(built_site):
    tutorials = sorted(p.name for p in (ROOT / "docs" / "tutorials").glob("*.ipynb"))
    assert [f"tutorials/{name}" for name in tutorials] == [f for f in nav_files() if f.startswith("tutorials/")]
    for name in tutorials:
        html = (built_site / "tutorials" / html_of(name)).read_text(encoding="utf-8")
        assert "jp-OutputArea-output" in html, f"{name}: rendered without outputs"


# ----------------------------------------------------------------------------- API reference
def public_names(module) -> list[str]:
    """``__all__``, or else the classes and functions the module defines without a leading underscore."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items() if not name.startswith("_")
            and (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__ == module.__name__]


def test_every_public_module_has_an_api_page_in_the_nav():
    pages = {f"api/{name}.md" for name in MODULES}
    assert pages <= set(nav_files()), sorted(pages - set(nav_files()))
    assert {p.stem for p in API.glob("*.md")} - {"index"} == set(MODULES)


@pytest.mark.parametrize("name", [m for m in MODULES if m != "cli"])
def test_the_api_page_documents_every_public_name_of_its_module(name, pages, built_site):
    module = importlib.import_module(f"numpy_rnn.{name}")
    ids = pages[built_site / "api" / f"{name}.html"].ids
    missing = [n for n in public_names(module) if f"numpy_rnn.{name}.{n}" not in ids]
    assert f"numpy_rnn.{name}" in ids and not missing, missing


def test_the_command_line_page_holds_every_command_s_help(built_site):
    from numpy_rnn.cli import build_parser

    html = (built_site / "api" / "cli.html").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name in commands:
        assert f"usage: numpy-rnn {name}" in html, name


def public_callables():
    """``(module, label, object)`` for every public class and function of every public module and
    every public method (static and class methods included) that such a class defines."""
    for name in MODULES:
        module = importlib.import_module(f"numpy_rnn.{name}")
        for obj_name in public_names(module):
            obj = getattr(module, obj_name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield module, f"{name}.{obj_name}", obj
            if inspect.isclass(obj):
                for member_name, member in vars(obj).items():
                    function = getattr(member, "__func__", member)
                    if inspect.isfunction(function) and not member_name.startswith("_"):
                        yield module, f"{name}.{obj_name}.{member_name}", function


def docstring(obj) -> str:
    """``inspect.getdoc(obj)`` (an override without a docstring inherits its base's), less the one
    that dataclasses and named tuples write from the fields (``Name(a, b)``), which says nothing."""
    text = inspect.getdoc(obj) or ""
    return "" if inspect.isclass(obj) and text.startswith(f"{obj.__name__}(") else text


def test_every_public_class_function_and_method_has_a_docstring():
    missing = [label for _, label, obj in public_callables() if not docstring(obj)]
    assert not missing, missing


#: parameters that a module's docstring defines once for all its functions: module -> names
MODULE_WIDE_PARAMETERS = {"init": {"shape", "rng", "dtype"},
                          "optim": {"params", "lr", "weight_decay", "eps", "optimizer"},
                          "gradcheck": {"rtol", "atol"},
                          "losses": {"reduction", "lengths"},
                          "cli": {"args"}}


def names_in_code(text: str) -> set[str]:
    """The names that a code span (``name`` or `name`) of ``text`` starts with, after any signs
    or brackets (``-clip_value``)."""
    return set(re.findall(r"`+[^`\w]*([A-Za-z_]\w*)", text))


def documented_parameters(module, obj) -> set[str]:
    """The parameter names that the documentation applying to ``obj`` names in code."""
    text = docstring(obj)
    if inspect.isclass(obj):
        text += "\n" + (inspect.getdoc(obj.__init__) or "")
    names = names_in_code(text) | MODULE_WIDE_PARAMETERS.get(module.__name__.rpartition(".")[2], set())
    if dataclasses.is_dataclass(obj):
        names |= {f.name for f in dataclasses.fields(obj) if f.metadata.get("help")}
    return names


def named_parameters(obj) -> list[str]:
    """``obj``'s parameters but ``self``, ``cls``, ``*args``, ``**kwargs`` and private ones (a
    leading underscore, e.g. a dataclass's internal field); none for an exception that keeps the
    built-in constructor, which has no signature."""
    try:
        parameters = inspect.signature(obj).parameters.values()
    except ValueError:
        return []
    return [p.name for p in parameters if p.name not in ("self", "cls") and not p.name.startswith("_")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def test_module_wide_parameters_are_defined_in_their_module_s_docstring():
    for name, parameters in MODULE_WIDE_PARAMETERS.items():
        module = importlib.import_module(f"numpy_rnn.{name}")
        assert parameters <= names_in_code(module.__doc__), (name, parameters - names_in_code(module.__doc__))


def test_every_public_parameter_is_named_in_the_documentation_that_applies():
    """Every parameter (but ``self``, ``cls``, ``*args``, ``**kwargs`` and private ones) of every
    public class (its constructor's, in the class or ``__init__`` docstring), function and method
    is named in code (``name`` or `name`) in its docstring, or for an override without one in the
    docstring it inherits (as the site shows it). Also accepted: a name that
    MODULE_WIDE_PARAMETERS says the module's docstring defines once for all its functions (the
    test above checks that it does), and a dataclass field carrying its own ``help`` text (a
    TrainConfig flag: the site shows it in the signature, the command line in ``--help``)."""
    missing = []
    for module, label, obj in public_callables():
        documented = documented_parameters(module, obj)
        missing += [f"{label}({name})" for name in named_parameters(obj) if name not in documented]
    assert not missing, f"{len(missing)} parameters not documented: {missing}"


# ----------------------------------------------------------------------------- search, maths, links
def test_the_search_index_finds_simple_rnn(built_site):
    index = json.loads((built_site / "search" / "search_index.json").read_text(encoding="utf-8"))
    locations = [doc["location"] for doc in index["docs"] if "SimpleRNN" in doc["title"] + doc["text"]]
    assert "api/layers.html#numpy_rnn.layers.SimpleRNN" in locations
    assert any(loc.startswith("layers/simple_rnn.html") for loc in locations)
    assert (built_site / "search" / "search_index.js").exists(), "offline search needs the index as a script"


def test_the_layer_pages_hold_equations_for_mathjax_served_by_the_site(built_site, pages):
    for layer in ("simple_rnn", "lstm", "gru"):
        html = (built_site / "layers" / f"{layer}.html").read_text(encoding="utf-8")
        assert html.count('<div class="arithmatex">') >= 2, layer
        assert ("script", "src", "../assets/mathjax/MathJax.js") in pages[built_site / "layers" / f"{layer}.html"].refs
    mathjax = built_site / "assets" / "mathjax"
    assert (mathjax / "MathJax.js").exists() and (mathjax / "config" / "TeX-AMS-MML_HTMLorMML-full.js").exists()
    assert any((mathjax / "fonts" / "HTML-CSS" / "STIX-Web" / "woff").iterdir())


def test_nothing_is_loaded_from_outside_the_site(pages):
    """Scripts, styles, images and fonts come from the site itself: it works offline."""
    outside = {(path.name, value) for path, page in pages.items() for tag, attr, value in page.refs
               if urlsplit(value).scheme in ("http", "https") or value.startswith("//")
               if not (tag == "a" and attr == "href")}
    assert not outside, sorted(outside)


def test_every_link_inside_the_site_resolves(pages, built_site):
    """Relative links, with their anchors. 404.html is left out: a server shows it at any depth, so
    its links start at the server's root."""
    broken = []
    for path, page in pages.items():
        if path.name == "404.html":
            continue
        for _, _, value in page.refs:
            url = urlsplit(value)
            if url.scheme or value.startswith(("//", "#", "javascript:")) or not url.path:
                continue
            target = (path.parent / unquote(url.path)).resolve()
            if not target.is_relative_to(built_site.resolve()) or not target.exists():
                broken.append(f"{path.relative_to(built_site)}: {value}")
            elif url.fragment and target.suffix == ".html" and unquote(url.fragment) not in pages[target].ids:
                broken.append(f"{path.relative_to(built_site)}: {value} (no such anchor)")
    assert not broken, broken


# ----------------------------------------------------------------------------- the docstring reader
def _extension():
    spec = importlib.util.spec_from_file_location("griffe_rest", ROOT / "docs" / "hooks" / "griffe_rest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_rest_literal_block_becomes_a_fenced_block_at_its_list_item_s_column():
    ext = _extension()
    text = "Steps::\n\n    a = b\n      c\n\nAfter.\n\n1. one::\n\n       D = 1\n\n   * nested\n\n::\n\n    x\n"
    assert ext.markdown_list_indents(ext.fenced_literal_blocks(text)).splitlines() == [
        "Steps:", "", "```text", "a = b", "  c", "```", "", "", "After.", "",
        "1. one:", "", "    ```text", "    D = 1", "    ```", "", "", "    * nested", "",
        "", "```text", "x", "```"]


def test_a_role_becomes_a_link_to_the_full_path_or_code_where_the_target_is_private():
    import griffe

    ext = _extension()
    package = griffe.load("numpy_rnn", search_paths=[str(ROOT / "src")])
    rnn = package["models.RNN.get_weights"]
    assert ext.markdown_roles(rnn, "see :meth:`state_dict`") == "see [`state_dict`][numpy_rnn.module.Module.state_dict]"
    assert ext.markdown_roles(rnn, ":class:`~numpy_rnn.layers.LSTM`") == "[`LSTM`][numpy_rnn.layers.LSTM]"
    assert ext.markdown_roles(package["train"], ":func:`_update_ratios`") == "`_update_ratios`"
    assert ext.markdown_roles(rnn, ":func:`nowhere`") == "[`nowhere`][nowhere]"  # fails the strict build


def test_a_rest_simple_table_becomes_a_markdown_table():
    text = ("Before:\n\n=====  ==========\nkey    value\n=====  ==========\n"
            "``a``  one | two\n       continued\nb      three\n=====  ==========\n\nAfter.")
    assert _extension().markdown_tables(text).splitlines() == [
        "Before:", "", "| key | value |", "| --- | --- |", "| ``a`` | one \\| two continued |", "| b | three |", "", "After."]


def test_a_config_field_shows_its_default_and_its_help_in_the_signature_and_the_attributes():
    import griffe

    package = griffe.load("numpy_rnn", search_paths=[str(ROOT / "src")])
    config = package["config.TrainConfig"]
    _extension().show_option_fields(config)
    assert str(config["train_chars"].value) == "0" and str(config["init"].value) == "{}"
    assert config["task"].docstring.value == "task" and "first N characters" in config["train_chars"].docstring.value
    defaults = {p.name: str(p.default) for p in config["__init__"].parameters}
    assert defaults["hidden_size"] == "64" and defaults["cell"] == "None" and defaults["model"] == "'sequence'"
