"""Parse YAML while keeping where every value came from.

Errors must name the file and line of the offending field; PyYAML's plain loaders drop node
positions, so we compose the node graph ourselves and build the data and a position index
(path tuple -> line) in one walk. Duplicate keys, which PyYAML silently merges, are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]


@dataclass
class YamlSource:
    """Data parsed from one YAML file plus the line of every key and value in it."""

    path: Path
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, location: Path_) -> int:
        """Line (1-based) of the deepest known prefix of `location`; 1 when nothing matches."""
        for end in range(len(location), -1, -1):
            line = self.lines.get(tuple(location[:end]))
            if line is not None:
                return line
        return 1


class YamlSyntaxError(Exception):
    """The file is not valid YAML; carries a 1-based line and a user-facing explanation."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def parse_yaml(path: Path) -> YamlSource:
    """Read `path` into a `YamlSource`, raising `YamlSyntaxError` with a line on bad syntax."""
    text = path.read_text(encoding="utf-8")
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(text, error) from None
    source = YamlSource(path=path, data=None)
    if node is None:
        return source
    constructor = yaml.SafeLoader(text)
    try:
        source.data = _walk(node, (), source, constructor)
    finally:
        constructor.dispose()
    return source


def _walk(node: yaml.Node, where: Path_, source: YamlSource, loader: yaml.SafeLoader) -> Any:
    source.lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, str) else key
            child = (*where, key)
            if key in result:
                source.duplicates.append((child, key_node.start_mark.line + 1))
            source.lines[child] = key_node.start_mark.line + 1
            result[key] = _walk(value_node, child, source, loader)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_walk(item, (*where, index), source, loader) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _syntax_error(text: str, error: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = error.problem_mark or error.context_mark
    line = mark.line + 1 if mark else 1
    if mark is not None:
        offending = text.splitlines()[mark.line] if mark.line < len(text.splitlines()) else ""
        if "\t" in offending[: mark.column + 1] or "'\\t'" in str(error.problem):
            return YamlSyntaxError(line, "tab character in indentation; YAML indents with spaces only")
    problem = error.problem or "invalid YAML"
    context = f" ({error.context})" if error.context else ""
    return YamlSyntaxError(line, f"YAML syntax error: {problem}{context}")
