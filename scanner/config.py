"""Project configuration: `[tool.provscan]` in pyproject.toml, or a `.provscan.toml` file.

Looked up from the working directory upwards, stopping at the repository root (the first
directory holding `.git`); `.provscan.toml` wins over pyproject.toml in the same directory.
Unknown keys and bad values are errors that name the key; command-line flags override.

    [tool.provscan]
    index = ".provscan-index"            # or redis://HOST:PORT/DB?prefix=NAME
    references = ["qwen", "llama"]       # names in the index (default: all of them)
    fail-on = "unattributed"             # unattributed | any | never
    min-similarity = 0.55
    min-tokens = 40
    max-file-size = "1MiB"
    ignore = ["tests/fixtures/*"]        # scanned paths to leave out (fnmatch)
    missing-license = false
    baseline = ".provscan-baseline.json"
    hook-server = true                   # keep a resident server for `provscan hook` (scanner/hookserver.py)

    [tool.provscan.license-policy]
    require-spdx = true                  # every file states an SPDX-License-Identifier
    copyright-holder = "Acme AI Inc."    # every file names this holder (or one of a list)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from scanner.errors import UsageError

FAIL_ON = ("unattributed", "any", "never")


class ConfigError(UsageError):
    pass


@dataclass
class Config:
    path: Path | None = None
    index: str | None = None
    references: list[str] = field(default_factory=list)
    fail_on: str | None = None
    min_similarity: float | None = None
    min_tokens: int | None = None
    max_file_size: int | None = None
    ignore: list[str] = field(default_factory=list)
    missing_license: bool = False
    baseline: str | None = None
    require_spdx: bool = False
    copyright_holders: list[str] = field(default_factory=list)
    hook_server: bool = True

    def resolve(self, value: str | None) -> str | None:
        """A path from the config is relative to the config file's directory."""
        if value is None or self.path is None or "://" in value:
            return value
        return str((self.path.parent / value))


def project_config(start: Path) -> Config:
    """The configuration that applies in directory start (an empty one when there is none)."""
    here = start.resolve()
    for directory in [here, *here.parents]:
        dotfile = directory / ".provscan.toml"
        if dotfile.is_file():
            return load_config(dotfile, _read(dotfile))
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file():
            data = _read(pyproject)  # read once: the hook runs on every commit
            if "provscan" in data.get("tool", {}):
                return load_config(pyproject, data)
        if (directory / ".git").exists():
            break
    return Config()


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _size(key: str, value, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]i?[bB]?)?\s*", value) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"{where}: bad value for '{key}': {value!r} (a size such as 1048576 or \"2MiB\")")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[(m.group(2) or "").lower()[:1]]


def _strings(key: str, value, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: bad value for '{key}': {value!r} (a list of strings)")
    return value


def load_config(path: Path, data: dict) -> Config:
    """Validate the parsed file at path."""
    table = data.get("tool", {}).get("provscan", {}) if path.name == "pyproject.toml" else data
    where = f"{path}" + (" [tool.provscan]" if path.name == "pyproject.toml" else "")
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    cfg = Config(path=path)
    for key, value in table.items():
        if key == "index":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: bad value for 'index': {value!r} (a directory or redis:// URL)")
            cfg.index = value
        elif key == "references":
            cfg.references = _strings(key, value, where)
        elif key == "fail-on":
            if value not in FAIL_ON:
                raise ConfigError(f"{where}: bad value for 'fail-on': {value!r} (one of {', '.join(FAIL_ON)})")
            cfg.fail_on = value
        elif key == "min-similarity":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ConfigError(f"{where}: bad value for 'min-similarity': {value!r} (a number in (0, 1])")
            cfg.min_similarity = float(value)
        elif key == "min-tokens":
            if isinstance(value, bool) or not isinstance(value, int) or value < 5:
                raise ConfigError(f"{where}: bad value for 'min-tokens': {value!r} (an integer of at least 5)")
            cfg.min_tokens = value
        elif key == "max-file-size":
            cfg.max_file_size = _size(key, value, where)
        elif key == "ignore":
            cfg.ignore = _strings(key, value, where)
        elif key == "missing-license":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: bad value for 'missing-license': {value!r} (true or false)")
            cfg.missing_license = value
        elif key == "baseline":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}: bad value for 'baseline': {value!r} (a file path)")
            cfg.baseline = value
        elif key == "hook-server":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: bad value for 'hook-server': {value!r} (true or false)")
            cfg.hook_server = value
        elif key == "license-policy":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: bad value for 'license-policy': {value!r} (a table)")
            for sub, subvalue in value.items():
                if sub == "require-spdx":
                    if not isinstance(subvalue, bool):
                        raise ConfigError(f"{where}: bad value for 'license-policy.require-spdx': {subvalue!r} (true or false)")
                    cfg.require_spdx = subvalue
                elif sub == "copyright-holder":
                    cfg.copyright_holders = _strings("license-policy.copyright-holder", subvalue, where)
                else:
                    raise ConfigError(f"{where}: unknown key 'license-policy.{sub}' (known: require-spdx, copyright-holder)")
        else:
            raise ConfigError(f"{where}: unknown key '{key}' (known: index, references, fail-on, min-similarity, "
                              "min-tokens, max-file-size, ignore, missing-license, baseline, hook-server, license-policy)")
    return cfg
