"""Plugins for a command line, loaded before any of its options are read.

Every command takes ``--plugin MODULE_OR_FILE.py`` (repeatable), and ``train`` a
``--config`` file whose ``plugins:`` list names more. They are loaded, with the
installed plugins (entry points of the group ``odetx.plugins``), before the command's
options are checked, so that ``--arch``, ``--solver``, ``--model`` and ``--dataset``
accept the entries they add. So are the plugins a run named on the command line
recorded (``odetx compare RUN --solver ssprk3``), where they can be loaded: where they
cannot, the command itself says so, in one line naming the plugin, when it opens the run.
"""

from __future__ import annotations

from pathlib import Path

from odetx.artefacts.checkpoint import load_checkpoint
from odetx.artefacts.modelfile import CHECKPOINT, identify
from odetx.config import Config, PluginRef, from_dict, read_yaml
from odetx.errors import ConfigError, OdetxError
from odetx.origins import ensure, load, load_installed, require

PLUGIN_FLAG = "--plugin"
CONFIG_FLAGS = ("-c", "--config")


def _values(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """Every value given to one of ``flags`` (``--flag V`` or ``--flag=V``) before ``--``."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in flags and i + 1 < len(args):
            out.append(args[i + 1])
        for flag in flags:
            if flag.startswith("--") and arg.startswith(f"{flag}="):
                out.append(arg.split("=", 1)[1])
    return out


def _config_plugins(path: str | Path) -> tuple[PluginRef, ...]:
    """The ``plugins:`` a config file names; nothing when it cannot be read here (the
    command reports that itself, as it always has)."""
    try:
        tree = read_yaml(path)
        if "plugins" not in tree:
            return ()
        return from_dict(Config, {"plugins": tree["plugins"]}).plugins
    except ConfigError:
        return ()


def _run_plugins(arg: str) -> tuple[PluginRef, ...]:
    """The plugins recorded by the run ``arg`` names, if it names one: a run directory or
    a checkpoint (its run's ``config.yaml``, else its own config)."""
    p = Path(arg)
    try:
        if p.is_dir():
            return _config_plugins(p / "config.yaml") if (p / "config.yaml").is_file() else ()
        if not p.is_file() or identify(p).kind != CHECKPOINT:
            return ()
        if (p.parent / "config.yaml").is_file():
            return _config_plugins(p.parent / "config.yaml")
        recorded = load_checkpoint(p)["config"].get("plugins", [])
        return from_dict(Config, {"plugins": recorded}).plugins
    except (OdetxError, OSError):
        return ()


def load_for(args: list[str]) -> None:
    """Load the installed plugins, then those ``args`` (a command's line) name.

    Raises:
        PluginError: a plugin that cannot be loaded, named with its failing entry.
    """
    load_installed()
    for spec in _values(args, (PLUGIN_FLAG,)):
        load(spec)
    for path in _values(args, CONFIG_FLAGS):
        require(_config_plugins(path), f"config file {path}", trusted=True)
    for arg in args:
        if arg.startswith("-"):
            continue
        for ref in _run_plugins(arg):
            try:
                ensure(ref)
            except OdetxError:
                pass  # said in one line by the command, when it opens the run
