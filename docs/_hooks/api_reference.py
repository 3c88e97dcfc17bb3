"""MkDocs hook: the API reference, generated at build time from ``tfstiffness/__init__.py``.

Every name of ``tfstiffness.__all__`` gets a page. A function or class is documented at the
module ``_EXPORTS`` names (griffe follows a re-export there to the source that defines it),
a submodule where ``_SUBMODULES`` points, a renamed submodule as the alias it is. Nothing
here names a module: when a name moves, ``_EXPORTS`` moves with it and the reference
follows, with no edit under docs/.

Used by ``mkdocs.yml`` (``hooks:``); ``api_entries()`` is also what tests/docs checks.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "tfstiffness"

#: Section titles of the reference, by the first folder of the defining module.
SECTIONS = {
    "engine": "Engine: Gram matrices and rules",
    "measures": "Measures",
    "streaming": "Streaming and distribution",
    "distributed": "Streaming and distribution",
    "callback": "Training callbacks",
    "influence": "Influence (TracIn)",
    "errors": "Errors",
}
SUBMODULE_SECTION = "Submodules"
RENAMED_SECTION = "Renamed submodules"


@dataclass(frozen=True)
class Entry:
    """One public name: its page and what the page documents."""

    name: str
    kind: str  # "export", "submodule" or "renamed"
    target: str  # dotted path of the documented object (or of the new submodule)
    section: str

    @property
    def uri(self) -> str:
        return f"api/{self.name}.md"


def _literal(tree: ast.Module, name: str):
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{PACKAGE}/__init__.py defines no {name}")


def public_tables(root: Path = ROOT) -> tuple[dict, dict, dict]:
    """``_EXPORTS``, ``_SUBMODULES`` and ``_RENAMED`` of the package, read without importing it."""
    tree = ast.parse((root / PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    return tuple(_literal(tree, n) for n in ("_EXPORTS", "_SUBMODULES", "_RENAMED"))


def api_entries(root: Path = ROOT) -> list[Entry]:
    """One entry per name of ``tfstiffness.__all__``, in the order of ``__all__``."""
    exports, submodules, renamed = public_tables(root)
    entries = []
    for name, module in exports.items():
        top = module.split(".")[0]
        entries.append(Entry(name, "export", f"{PACKAGE}.{module}.{name}",
                             SECTIONS.get(top, top.replace("_", " ").capitalize())))
    for name, module in submodules.items():
        entries.append(Entry(name, "submodule", f"{PACKAGE}.{module}", SUBMODULE_SECTION))
    for name, new in renamed.items():
        entries.append(Entry(name, "renamed", f"{PACKAGE}.{submodules[new]}", RENAMED_SECTION))
    return entries


def _source(module: str, root: Path) -> ast.Module | None:
    base = root / Path(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return ast.parse(path.read_text(encoding="utf-8"))
    return None


def summary(entry: Entry, root: Path = ROOT) -> str:
    """The first line of the documented object's docstring ("" when the source has none).

    Follows one ``from X import name`` re-export; read with ``ast``, so nothing is imported.
    """
    module, name = ((entry.target, None) if entry.kind != "export"
                    else entry.target.rsplit(".", 1))
    for _ in range(3):
        tree = _source(module, root)
        if tree is None:
            return ""
        if name is None:
            doc = ast.get_docstring(tree)
            break
        node = next((n for n in tree.body if isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name), None)
        if node is not None:
            doc = ast.get_docstring(node)
            break
        origin = next((n for n in tree.body if isinstance(n, ast.ImportFrom) and n.level == 0
                       and any(a.name == name for a in n.names)), None)
        if origin is None:
            return ""
        module = origin.module
    else:
        return ""
    return (doc or "").strip().split("\n\n")[0].replace("\n", " ").replace("|", "\\|")


def lazy_exports(entry: Entry, root: Path = ROOT) -> dict[str, str]:
    """Names a package submodule exports lazily (``__all__ = list(_TABLE)``, ``_TABLE`` a literal
    dict of name -> module of the package, as ``tfs.data`` does): name -> dotted path. Griffe
    cannot see them in the package, so the page documents each where its table says."""
    init = root / Path(*entry.target.split(".")) / "__init__.py"
    if not init.exists():
        return {}
    tree = ast.parse(init.read_text(encoding="utf-8"))
    table = None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                                 for t in node.targets)):
            value = node.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]
            if isinstance(value, ast.Name):
                table = value.id
    if table is None:
        return {}
    try:
        names = _literal(tree, table)
    except (LookupError, ValueError):
        return {}
    if not isinstance(names, dict):
        return {}
    return {name: f"{entry.target}.{module}.{name}" for name, module in names.items()}


def page(entry: Entry, renamed: dict, entries: list[Entry]) -> str:
    if entry.kind == "export":
        return (f"# `tfs.{entry.name}`\n\n`import tfstiffness as tfs`; defined in "
                f"`{entry.target.rsplit('.', 1)[0]}`.\n\n::: {entry.target}\n")
    if entry.kind == "submodule":
        text = (f"# `tfs.{entry.name}`\n\nThe submodule `{entry.target}`, reachable as "
                f"`tfs.{entry.name}`.\n\n")
        if entry.name == "rules":
            text += ("The contract a rule keeps (what it receives, what it returns, the safety "
                     "net) is in [Custom rules](../guides/custom-rules.md#the-contract).\n\n")
        own = [e.name for e in entries if e.kind == "export"
               and e.target.rsplit(".", 1)[0] == entry.target]
        if own:
            text += ("With pages of their own: "
                     + ", ".join(f"[`{n}`]({n}.md)" for n in own) + ".\n\n")
        filters = ", ".join(['"!^_"'] + [f'"!^{n}$"' for n in own])
        text += (f"::: {entry.target}\n    options:\n      show_submodules: false\n"
                 f"      filters: [{filters}]\n")
        exported = {e.name for e in entries if e.kind == "export"}
        for name, path in lazy_exports(entry).items():
            if name in exported:
                text += f"\n`{name}`: see [`tfs.{name}`]({name}.md).\n"
            else:
                text += f"\n::: {path}\n    options:\n      heading_level: 3\n"
        return text
    new = renamed[entry.name]
    return (f"# `tfs.{entry.name}` (renamed)\n\n`tfs.{entry.name}` is the old name of "
            f"[`tfs.{new}`]({new}.md) (`{entry.target}`). It still works, with a "
            "`DeprecationWarning`, until 0.3.\n")


def index_page(entries: list[Entry]) -> str:
    lines = ["# API reference", "",
             ("Every public name of `tfstiffness` (`import tfstiffness as tfs`; the names of "
             "`tfs.__all__`), grouped by the part of the package that defines it. Each page "
             "is generated from the docstrings at build time."), ""]
    for section in _sections(entries):
        lines += [f"## {section}", "", "| name | what it is | module |", "|---|---|---|"]
        for e in entries:
            if e.section == section:
                module = e.target.rsplit(".", 1)[0] if e.kind == "export" else e.target
                lines.append(f"| [`tfs.{e.name}`]({e.name}.md) | {summary(e)} | `{module}` |")
        lines.append("")
    return "\n".join(lines)


def _sections(entries: list[Entry]) -> list[str]:
    order = []
    for e in entries:
        if e.section not in order:
            order.append(e.section)
    return order


# ---- MkDocs events -------------------------------------------------------------------------

def on_config(config, **kwargs):
    entries = api_entries()
    reference = [{"Index": "api/index.md"}]
    for section in _sections(entries):
        reference.append({section: [{e.name: e.uri} for e in entries if e.section == section]})
    for i, item in enumerate(config["nav"]):
        if isinstance(item, dict) and "API reference" in item:
            config["nav"][i] = {"API reference": reference}
    return config


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    entries = api_entries()
    _, _, renamed = public_tables()
    files.append(File.generated(config, "api/index.md", content=index_page(entries)))
    for e in entries:
        files.append(File.generated(config, e.uri, content=page(e, renamed, entries)))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    files.append(File.generated(config, "index.md", content=readme_as_home(readme)))
    return files


def readme_as_home(readme: str) -> str:
    """README.md as the site's home page: its links into docs/ made relative to docs/."""
    return readme.replace("](docs/", "](").replace('src="docs/', 'src="')


_NOTEBOOK_LINK = re.compile(r'href="((?:\.\./)+)([^":#]+?)\.md(#[^"]*)?"')


def notebook_links(html: str) -> str:
    """A tutorial's ``../guides/x.md`` links (right on GitHub) as the site's page URLs.

    mkdocs-jupyter leaves Markdown links of a notebook as written, and the page of
    ``tutorials/NAME.ipynb`` is served one folder deeper, at ``tutorials/NAME/``.
    """
    def url(m: re.Match) -> str:
        path = m.group(2)
        path = path[:-len("index")] if path.endswith("index") else path + "/"
        return f'href="../{m.group(1)}{path}{m.group(3) or ""}"'

    return _NOTEBOOK_LINK.sub(url, html)


def on_post_page(output, page, config, **kwargs):
    if page.file.src_uri.endswith(".ipynb"):
        return notebook_links(output)
    return output
