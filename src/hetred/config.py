"""Typed settings: defaults < TOML file < ``HETRED_*`` environment < command-line flags.

A config file (``--config FILE``) is TOML::

    [paths]
    raw = "/work/03946/hetdex/maverick"     # raw archive root (HETRED_RAW)
    red = "/scratch/hetred"                 # reduction root (HETRED_RED)

    [stages.bias]                           # free-form settings per stage
    scale_lo = 2.0
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hetred.errors import HetredError
from hetred.layout import Layout


@dataclass
class Config:
    """All settings of one hetred invocation."""

    raw: Path = field(default_factory=lambda: Path("raw"))
    red: Path = field(default_factory=lambda: Path("red"))
    verbosity: int = 0
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "defaults"
    file: Path | None = None     #: the config file read, if any

    @property
    def layout(self) -> Layout:
        return Layout(self.raw, self.red)

    def stage(self, name: str) -> dict[str, Any]:
        """Settings of one stage (empty when the file has none)."""
        return dict(self.stages.get(name, {}))


def load_config(path: str | Path | None = None, raw: str | Path | None = None,
                red: str | Path | None = None, verbosity: int = 0,
                environ: dict[str, str] | None = None) -> Config:
    """Build the configuration with the documented precedence."""
    env = os.environ if environ is None else environ
    cfg = Config(verbosity=verbosity)
    sources = ["defaults"]
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise HetredError(f"config file {p} does not exist") from None
        except OSError as err:
            raise HetredError(f"config file {p} cannot be read: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise HetredError(f"config file {p} is not text (UTF-8 TOML)") from None
        except tomllib.TOMLDecodeError as err:
            raise HetredError(f"config file {p} is not valid TOML: {err}") from None
        check_tables(data, p)
        cfg.file = p
        paths = data.get("paths", {})
        if "raw" in paths:
            cfg.raw = _path(paths["raw"], "paths", "raw", p)
        if "red" in paths:
            cfg.red = _path(paths["red"], "paths", "red", p)
        cfg.stages = {k: dict(v) for k, v in data.get("stages", {}).items()}
        sources.append(str(p))
    if env.get("HETRED_RAW"):
        cfg.raw = Path(env["HETRED_RAW"]).expanduser()
        sources.append("HETRED_RAW")
    if env.get("HETRED_RED"):
        cfg.red = Path(env["HETRED_RED"]).expanduser()
        sources.append("HETRED_RED")
    if raw is not None:
        cfg.raw = Path(raw).expanduser()
        sources.append("--raw")
    if red is not None:
        cfg.red = Path(red).expanduser()
        sources.append("--red")
    cfg.source = " < ".join(sources)
    return cfg


def _path(value: Any, table: str, key: str, path: Path) -> Path:
    """A ``[paths]`` value as a Path; a one-line error naming the file and key otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise HetredError(f"config file {path}: [{table}] {key} = {value!r} is not a path "
                          f"(give a quoted string, e.g. {key} = \"/scratch/hetred\")")
    return Path(value).expanduser()


#: the tables a config file may have, and the keys of [paths]
SECTIONS = ("paths", "stages", "slurm")
PATH_KEYS = ("raw", "red")
#: the [stages.X] tables: the stages with settings (hetred.jobs.registry StageSpec.table; a test
#: keeps both in step)
STAGE_TABLES = ("bias", "bgmodel", "flat", "sci", "astrom", "throughput", "calfib", "detect", "resmap",
                "fullsky", "h5", "report")


def _unknown(kind: str, key: str, known: tuple[str, ...], path: Path) -> HetredError:
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return HetredError(f"config file {path}: unknown {kind} {key!r}{hint} (known: {', '.join(known)})")


def check_tables(data: dict[str, Any], path: Path) -> None:
    """A misspelt table or ``[paths]`` key is an error naming it and the file, with the closest
    known name (a misspelt table would otherwise be ignored, silently)."""
    for key, value in data.items():
        if key not in SECTIONS:
            raise _unknown("table", f"[{key}]" if isinstance(value, dict) else key,
                           tuple(f"[{s}]" for s in SECTIONS) if isinstance(value, dict) else SECTIONS, path)
    for table in ("paths", "stages", "slurm"):
        if table in data and not isinstance(data[table], dict):
            raise HetredError(f"config file {path}: {table} must be a table [{table}], got {data[table]!r}")
    for key in data.get("paths", {}):
        if key not in PATH_KEYS:
            raise _unknown("[paths] key", key, PATH_KEYS, path)
    for key, value in data.get("stages", {}).items():
        if key not in STAGE_TABLES:
            raise _unknown("table", f"[stages.{key}]", tuple(f"[stages.{t}]" for t in STAGE_TABLES), path)
        if not isinstance(value, dict):
            raise HetredError(f"config file {path}: stages.{key} must be a table [stages.{key}], got {value!r}")


def parse_stage_table(cls: type, values: dict[str, Any] | None, table: str,
                      special: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``[stages.X]`` table ``values`` checked against the settings dataclass ``cls``.

    Unknown keys are an error naming the known ones. Each value is converted by the type of
    the field's default: bool (only true/false), int (whole numbers, not bools), float,
    tuple (of floats), str (``""`` and None become None). ``special`` maps a field name to its
    own converter (called with the value; it raises HetredError, TypeError or ValueError).
    Returns the converted keyword arguments of ``cls``; range checks are the caller's.
    """
    from dataclasses import fields

    values = dict(values or {})
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise HetredError(f"[{table}]: unknown setting(s) {', '.join(unknown)} (known: {', '.join(known)})")
    out: dict[str, Any] = {}
    for name, value in values.items():
        default = getattr(cls, name)
        try:
            if special and name in special:
                out[name] = special[name](value)
            elif isinstance(default, bool) or isinstance(value, bool):
                if not (isinstance(default, bool) and isinstance(value, bool)):
                    raise TypeError
                out[name] = value
            elif isinstance(default, int):
                if int(value) != value:
                    raise ValueError
                out[name] = int(value)
            elif isinstance(default, float):
                out[name] = float(value)
            elif isinstance(default, tuple):
                out[name] = tuple(float(v) for v in value)
            else:
                out[name] = None if value in (None, "") else str(value)
        except HetredError:
            raise
        except (TypeError, ValueError):
            raise HetredError(f"[{table}]: {name} = {value!r} is not a valid "
                              f"{type(default).__name__ if default is not None else 'value'}") from None
    return out
