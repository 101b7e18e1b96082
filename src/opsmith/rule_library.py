"""Read the root-cause rule library: the bundled file, then the user's directories (analysis.rule_dirs).

A user rule with a bundled rule's id replaces it. Each file is parsed once and read again only when
it changed (its modification time, size or inode), so a server explaining many runs pays once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from opsmith.domain.root_cause_rules import Rule, RuleFileError, merge_rules, parse_rules

__all__ = ["BUNDLED_RULES", "bundled_rules", "load_rules"]

BUNDLED_RULES = Path(__file__).resolve().parent / "bundled" / "root_causes.yaml"

_PARSED: dict[str, tuple[tuple[int, ...], list[Rule]]] = {}


def load_rules(directories: Iterable[Path] = ()) -> list[Rule]:
    """The bundled rules, then those of every `*.yaml`/`*.yml` file of each directory, in name order."""
    libraries = [read_rule_file(BUNDLED_RULES)]
    for directory in directories:
        if not directory.is_dir():
            raise RuleFileError(
                f"rule directory {directory} does not exist", hint="fix analysis.rule_dirs in opsmith.yaml"
            )
        libraries += [read_rule_file(path) for path in sorted(directory.glob("*.y*ml"))]
    return merge_rules(*libraries)


def bundled_rules() -> list[Rule]:
    return load_rules(())


def read_rule_file(path: Path) -> list[Rule]:
    """The rules of one file, parsed again only when the file changed."""
    try:
        info = path.stat()
        stamp = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
        found = _PARSED.get(str(path))
        if found is not None and found[0] == stamp:
            return found[1]
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(
            f"cannot read rule file {path}: {exc}", hint="check the file and its permissions"
        ) from exc
    rules = parse_rules(text, source=str(path))
    _PARSED[str(path)] = (stamp, rules)
    return rules
