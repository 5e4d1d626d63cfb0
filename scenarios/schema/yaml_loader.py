"""Reading a scenario file, hardened: at most ``MAX_FILE_BYTES`` of UTF-8 text, safe YAML
(no tags) at most ``MAX_YAML_DEPTH`` levels deep, without duplicate keys, aliases that
contain themselves or alias bombs; and ``--set`` overrides (``apply_overrides``). Each
problem is a ScenarioError naming the file (or the ``--set``) and where. The shipped
scenarios lie next to the checked-in JSON schema, ``SCHEMA_PATH``."""

from __future__ import annotations

from pathlib import Path

import yaml

from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.schema.scenario_error import ScenarioError, _show

SCHEMA_PATH = Path(__file__).parent.with_name("scenario.schema.json")
MAX_FILE_BYTES = 32 * 1024 * 1024  # a scenario file is at most this big
MAX_YAML_DEPTH = 64  # nesting levels of a scenario file
MAX_YAML_NODES = 1_000_000  # YAML aliases may expand a file to at most this many values


def shipped_scenarios() -> list[str]:
    return sorted(p.stem for p in SCHEMA_PATH.parent.glob("*.yaml"))


class _Loader(yaml.SafeLoader):
    """Safe YAML with at most ``MAX_YAML_DEPTH`` levels of nesting."""

    _depth = 0

    def compose_node(self, parent, index):
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_DEPTH} levels of nesting; allowed: at most "
                f"{MAX_YAML_DEPTH}", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """Where and what of a PyYAML error: 'at line L, column C: problem (context)'."""
    if isinstance(exc, yaml.reader.ReaderError):
        pos = exc.position
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        return (f"at line {line}, column {column}: character U+{ord(char):04X} is not allowed; "
                "allowed: printable text (no control characters)")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"({str(exc).splitlines()[0]})"
    mark = exc.problem_mark or exc.context_mark
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = exc.problem or exc.context or "unknown problem"
    if exc.problem and exc.context:
        cm = exc.context_mark
        problem += f" ({exc.context}" + (f" from line {cm.line + 1}, column {cm.column + 1})"
                                         if cm else ")")
    if "constructor for the tag" in problem:
        problem += "; allowed: plain YAML, no tags"
    if "'\\t'" in problem:
        problem += "; allowed: indenting with spaces, not tabs"
    return where + problem


def _big(n: int) -> str:
    return f"{n:,}" if n < 10**12 else f"about 10^{len(str(n)) - 1}"


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "top level"


def _children(node: yaml.Node) -> list[tuple]:
    if isinstance(node, yaml.MappingNode):
        return [(getattr(k, "value", "?"), c) for k, v in node.value for c in (k, v)]
    if isinstance(node, yaml.SequenceNode):
        return list(enumerate(node.value))
    return []


def _check_duplicates(node: yaml.MappingNode, path: tuple, where: str) -> None:
    seen: dict[tuple, int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
            continue
        ident, line = (key.tag, key.value), key.start_mark.line + 1
        if ident in seen:
            lines = f"line {line}" if seen[ident] == line else f"lines {seen[ident]} and {line}"
            raise ScenarioError([(f"{where}: {_dotted((*path, key.value))}: key given twice "
                                 f"({lines}); allowed: each key once in a mapping")])
        seen[ident] = line


def _check_nodes(root: yaml.Node, where: str) -> None:
    """Refuse duplicate keys, aliases that contain themselves and alias bombs: aliases may
    add at most ``MAX_YAML_NODES`` values to the file."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack = [(root, (), False)]
    while stack:
        node, path, closing = stack.pop()
        if closing:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for _, c in _children(node))
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise ScenarioError([(f"{where}: {_dotted(path)}: a YAML alias refers to a node "
                                 "that contains it; allowed: aliases of finished nodes")])
        open_.add(id(node))
        stack.append((node, path, True))
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node, path, where)
        stack += [(c, (*path, label), False) for label, c in reversed(_children(node))]
    added = size[id(root)] - len(size)
    if added > MAX_YAML_NODES:
        label, _ = max(_children(root), key=lambda lc: size[id(lc[1])], default=(None, root))
        raise ScenarioError([(f"{where}: {_dotted(() if label is None else (label,))}: YAML "
                             f"aliases expand the file by {_big(added)} values (an alias "
                             f"bomb?); allowed: at most {MAX_YAML_NODES:,} values added by "
                             "aliases")])


def _parse_yaml(text: str, where: str):
    """The data of one YAML document; ScenarioError naming ``where`` on bad YAML, duplicate
    keys, deep nesting or alias bombs."""
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{where}: not valid YAML {_yaml_problem(exc, text)}"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _read_text(path: Path) -> str:
    """The file's text: at most ``MAX_FILE_BYTES``, UTF-8."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError([(f"{path}: cannot read ({exc.strerror or exc}); allowed: a "
                             "scenario file (YAML) or a shipped scenario: "
                             f"{', '.join(shipped_scenarios())}")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioError([(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; allowed: a "
                             f"scenario file of at most {MAX_FILE_BYTES >> 20} MiB")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        at = exc.start
        line, column = data.count(b"\n", 0, at) + 1, at - data.rfind(b"\n", 0, at)
        utf16 = " (the file looks like UTF-16)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise ScenarioError([(f"{path}: line {line}, column {column}: byte 0x{data[at]:02x} is "
                             f"not UTF-8{utf16}; allowed: UTF-8 text")]) from None


def apply_overrides(raw: dict, overrides: list[str], source: str) -> dict:
    """Apply ``key.path=value`` settings (value parsed as YAML) to a raw scenario; a
    numeric part indexes a list (``templates.1.count=300``)."""
    for item in overrides:
        key, sep, text = item.partition("=")
        parts = key.split(".")
        if not sep or not all(p.strip() for p in parts):
            raise ScenarioError([f"{source}: --set {item!r}: expected key.path=value"])
        value = _parse_yaml(text, f"{source}: --set {key}")
        node = raw
        for depth, part in enumerate(parts):
            here, last = ".".join(parts[:depth]) or "the scenario", depth == len(parts) - 1
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                part = int(part)
            elif isinstance(node, list):
                allowed = f"indexes 0–{len(node) - 1}" if node else "none, it is empty"
                raise ScenarioError([(f"{source}: --set {key}: no such field to set, {here} is "
                                     f"a list of {len(node)}; allowed: {allowed}")])
            elif not isinstance(node, dict):
                raise ScenarioError([(f"{source}: --set {key}: no such field to set, {here} is "
                                     f"{_show(node)}; allowed: fields of mappings and lists")])
            elif not last and node.get(part) is None:
                node[part] = {}
            if last:
                node[part] = value
            else:
                node = node[part]
    return _switched_mechanism(raw, [o.partition("=")[0] for o in overrides])


PER_MECHANISM = ("max_rounds",)  # fields every market has whose value suits one mechanism


def _switched_mechanism(raw: dict, keys: list[str]) -> dict:
    """Where ``--set market.mechanism=NAME`` switches the mechanism, the file's parameters
    of the mechanism it had are left behind, its round limit too (5 rounds of a P2V
    market are no limit for an ADMM market); those set on the command line stay, and are
    checked against the new one's."""
    market = raw.get("market")
    if "market.mechanism" not in keys or not isinstance(market, dict):
        return raw
    mech = mechanisms.registry().get(market.get("mechanism"))
    if mech is None:
        return raw
    given = {k.split(".", 2)[1] for k in keys if k.startswith("market.")}
    raw["market"] = {k: v for k, v in market.items() if k in given
                     or (k in mech.params.model_fields and k not in PER_MECHANISM)}
    return raw
