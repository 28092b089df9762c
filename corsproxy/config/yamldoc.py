"""YAML files -> plain Python values, with the line of every node and ${VAR} interpolation.

A file is composed into YAML nodes, which carry line numbers, and turned into plain values
plus a table `path -> line`, so that whoever checks the values can point at the line of any
key or list item. `${VAR}` and `${VAR:-default}` are replaced on every string value except
those of the keys the caller names as verbatim.

Nothing here knows the config schema: a `Doc` only collects the problems found while reading
and, later, while checking its values.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from corsproxy.errors import ConfigProblem

YAML_SUFFIXES = (".yaml", ".yml")
MAX_DEPTH = 32
# Aliases let a few hundred bytes stand for billions of nodes ("billion laughs": 493 bytes once
# took 58 s and 4.8 GB). A config of a thousand routes has ~50,000 nodes; reading more is refused.
MAX_NODES = 200_000

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

PathKey = tuple[str | int, ...]


@dataclasses.dataclass
class Doc:
    """One file as plain values, with the 1-based line of each path (key or list item)."""

    file: str
    data: Any
    lines: dict[PathKey, int]
    problems: list[ConfigProblem]      # shared by every document of one load
    # Each interpolated string: its text as written and the (value, "${NAME}") pairs put into it,
    # so that whatever is displayed shows the variable, never its value (it may be a secret).
    written: dict[PathKey, tuple[str, tuple[tuple[str, str], ...]]] = dataclasses.field(default_factory=dict)

    @property
    def variables(self) -> tuple[str, ...]:
        """The ${VAR} names this file reads, sorted."""
        return tuple(sorted({name[2:-1] for _, pairs in self.written.values() for _, name in pairs}))

    def written_under(self, path: PathKey) -> list[tuple[PathKey, str]]:
        """(path, text as written) of each string read through ${VAR} at `path` or below it."""
        return [(where, text) for where, (text, _) in self.written.items() if where[:len(path)] == path]

    def line(self, path: PathKey) -> int:
        """The line of `path`, else of its nearest located parent, else line 1."""
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def where(self, path: PathKey) -> str:
        return f"{self.file}:{self.line(path)}"

    def add(self, path: PathKey, message: str, hint: str = "") -> None:
        self.problems.append(ConfigProblem(self.file, self.line(path), dotted(path), message, hint))


def dotted(path: PathKey) -> str:
    """("routes", 0, "cors", "alow_origins") -> "routes[0].cors.alow_origins"."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def show(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping", type(None): "nothing (null)"}
    return names.get(type(value), type(value).__name__)


def config_files(path: str, problems: list[ConfigProblem]) -> list[str]:
    """The file itself, or a directory's *.yaml/*.yml files in name order."""
    if not os.path.isdir(path):
        return [path]
    names = sorted(name for name in os.listdir(path)
                   if name.endswith(YAML_SUFFIXES) and os.path.isfile(os.path.join(path, name)))
    if not names:
        problems.append(ConfigProblem(path, None, "", "no *.yaml or *.yml file in this directory",
                                      "add a config file, or point -c at one"))
    return [os.path.join(path, name) for name in names]


def read_file(file: str, env: Mapping[str, str], problems: list[ConfigProblem],
              verbatim: Collection[str]) -> Doc | None:
    """Parse one file into a Doc; None (with a problem) when it cannot be read or parsed.

    The values of the keys in `verbatim` are not interpolated. An empty file reads as None.
    """
    doc = Doc(file, None, {}, problems)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        doc.add((), "not UTF-8 text", "save the file as UTF-8")
        return None
    except OSError as exc:
        problems.append(ConfigProblem(file, None, "", f"cannot read: {exc.strerror or exc}",
                                      "check the path given with -c or $CORSPROXY_CONFIG"))
        return None
    try:
        doc.data = _parse(doc, text, env, verbatim)
    except yaml.YAMLError as exc:
        _syntax_problem(doc, exc, text)
        return None
    return doc


def _parse(doc: Doc, text: str, env: Mapping[str, str], verbatim: Collection[str]) -> Any:
    # Building the loader already raises ReaderError for a control character in the text.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if (culprit := _over_limit(node)) is not None:
            doc.problems.append(ConfigProblem(
                doc.file, culprit.start_mark.line + 1, "",
                f"this value expands to more than {MAX_NODES:,} YAML nodes through aliases (*name)",
                "write the values out, or repeat an alias fewer times; a config never needs this many"))
            return None
        return _Reader(doc, loader, env, verbatim).plain(node, (), 0)
    finally:
        loader.dispose()


class _TooBig(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _over_limit(root: yaml.Node) -> yaml.Node | None:
    """The innermost node whose expansion passes MAX_NODES, else None.

    Composing is linear (an alias is the same node object again); expanding is not. Sizes are
    counted once per node object and summed per reference, so this costs one pass over the
    composed graph, not over its expansion.
    """
    sizes: dict[int, int] = {}

    def size(node: yaml.Node, depth: int) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        if depth > MAX_DEPTH:           # plain() refuses it, naming the path
            return 1
        sizes[id(node)] = 1             # a node inside itself (recursive alias) counts once here
        children = ([part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode)
                    else node.value if isinstance(node, yaml.SequenceNode) else ())
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise _TooBig(node)
        sizes[id(node)] = total
        return total

    try:
        size(root, 0)
    except _TooBig as exc:
        return exc.node
    return None


def _syntax_problem(doc: Doc, exc: yaml.YAMLError, text: str) -> None:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    message = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    line = mark.line + 1 if mark else None
    if isinstance(exc, yaml.reader.ReaderError):      # a bad character: its offset, no mark
        line = text.count("\n", 0, exc.position) + 1
    problem = ConfigProblem(doc.file, line, "",
                            f"YAML syntax error: {message}",
                            "check the indentation and quoting of this line and the one before")
    doc.problems.append(problem)


class _Reader:
    """YAML nodes -> plain values, recording each path's line and interpolating ${VAR}."""

    def __init__(self, doc: Doc, loader: yaml.SafeLoader, env: Mapping[str, str],
                 verbatim: Collection[str]) -> None:
        self.doc, self.loader, self.env, self.verbatim = doc, loader, env, verbatim

    def plain(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        if depth > MAX_DEPTH:
            self.doc.add(path, f"nested more than {MAX_DEPTH} levels deep",
                         "a recursive YAML alias (*name inside &name) cannot be used")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self._located(item, (*path, i), item, depth)
                    for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _located(self, mark_node: yaml.Node, path: PathKey, node: yaml.Node, depth: int) -> Any:
        self.doc.lines[path] = mark_node.start_mark.line + 1
        return self.plain(node, path, depth + 1)

    def _mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> dict[str, Any]:
        self.loader.flatten_mapping(node)            # YAML merge keys (<<: *defaults)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(self._construct(key_node, path)) if isinstance(key_node, yaml.ScalarNode) else "?"
            duplicate = key in result
            result[key] = self._located(key_node, (*path, key), value_node, depth)
            if duplicate:
                self.doc.add((*path, key), "duplicate key", "keep only one of them")
        return result

    def _construct(self, node: yaml.Node, path: PathKey) -> Any:
        try:
            return self.loader.construct_object(node)
        except ValueError:         # e.g. 2024-13-45 looks like a date but is none: keep the text
            return node.value
        except yaml.YAMLError as exc:
            self.doc.add(path, f"cannot read this value: {getattr(exc, 'problem', exc)}",
                         "remove the !tag, or quote the value")
            return None

    def _scalar(self, node: yaml.Node, path: PathKey) -> Any:
        value = self._construct(node, path)
        if not isinstance(value, str) or (path and path[-1] in self.verbatim):
            return value
        pairs: list[tuple[str, str]] = []
        text = _VARIABLE.sub(lambda m: self._variable(m, path, pairs), value)
        if pairs:
            self.doc.written[path] = (value, tuple(pairs))
        if text == value or node.style is not None:
            return text
        # An unquoted ${VAR} takes the type its value spells (port: ${PORT:-8080} is a number).
        tag = self.loader.resolve(yaml.ScalarNode, text, (True, False))
        try:
            return self.loader.construct_object(yaml.ScalarNode(tag, text))
        except (ValueError, yaml.YAMLError):
            return text

    def _variable(self, match: re.Match[str], path: PathKey, pairs: list[tuple[str, str]]) -> str:
        name, default = match.group(1), match.group(2)
        value = self.env.get(name)
        pairs.append((value or default or "", f"${{{name}}}"))
        if default is not None and not value:
            return default
        if value is None:
            self.doc.add(path, f"undefined variable ${{{name}}}",
                         f"set {name} in the environment, or give a default: ${{{name}:-value}}")
            return ""
        return value
