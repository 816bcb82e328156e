"""What ``odetx train`` starts: a fresh run, or the continuation of a saved one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odetx.artefacts import default_run_dir, load_checkpoint, resolve_checkpoint_path
from odetx.config import MACHINE_KEYS, Config, as_written, flatten, load_config, read_yaml
from odetx.errors import ConfigError
from odetx.origins import require
from odetx.resolve import build_config

# Fields that may change when a run is resumed; anything else would silently
# train a different model than the checkpoint's.
RESUMABLE = ("train.epochs", *MACHINE_KEYS)


_ABSENT = object()


def _parsed(key: str, value: Any, base: dict[str, Any]) -> Any:
    """``value`` for ``key`` as the config holds it (``"1e-3"`` and ``0.001`` alike)."""
    return flatten(load_config(overrides={key: value}, base=base).to_dict()).get(key)


@dataclass(frozen=True)
class RunPlan:
    """A resolved config, the checkpoint to continue from (if any) and the run directory."""

    config: Config
    run_dir: Path
    checkpoint: dict[str, Any] | None = None


def prepare_resume(resume: str | Path, overrides: dict[str, Any]) -> RunPlan:
    """The plan for ``--resume`` (a run directory or a checkpoint) with ``overrides``."""
    path = resolve_checkpoint_path(resume, "last.pt", "--resume")
    ckpt = load_checkpoint(path, purpose="--resume")
    ckpt = {**ckpt, "config": as_written(ckpt["config"])}  # resumed as it was trained
    saved = flatten(ckpt["config"])
    for key, value in overrides.items():
        # Appending --resume to the original command repeats its flags: equal values pass.
        if key in RESUMABLE or _parsed(key, value, ckpt["config"]) == saved.get(key, _ABSENT):
            continue
        raise ConfigError(
            key,
            f"cannot change on --resume: the run has {saved.get(key)!r}, the command gives "
            f"{_parsed(key, value, ckpt['config'])!r} (may change: {', '.join(RESUMABLE)})",
        )
    out = overrides.get("train.out")
    if out is not None and Path(out).resolve() != path.parent.resolve():
        raise ConfigError(
            "train.out",
            f"a resumed run continues in its own folder, {path.parent}; drop --out "
            "(to branch a run, copy its folder and resume the copy)",
        )
    threads = overrides.get("train.threads")
    if threads is not None and _parsed("train.threads", threads, ckpt["config"]) == 0:
        # 0 asks for the default count, and a run's default is the count it recorded
        # (a run saved with 0, from before counts were recorded, gets today's default).
        overrides = {k: v for k, v in overrides.items() if k != "train.threads"}
    # The folder the run now lives in, even if it was moved since it started.
    overrides = {**overrides, "train.out": str(path.parent)}
    require(load_config(base=ckpt["config"]).plugins, f"the run in {path.parent}")
    cfg = build_config(overrides=overrides, base=ckpt["config"])
    refuse_undoing(ckpt, cfg, path)
    return RunPlan(cfg, path.parent, ckpt)


def refuse_undoing(ckpt: dict[str, Any], cfg: Config, path: Path) -> None:
    """A resume continues a run; it never rewrites what the run recorded about finished
    epochs (its config.yaml, summary.json and metrics.csv must keep agreeing).

    Raises:
        ConfigError: ``train.epochs`` is below the epochs ``ckpt`` has finished.
    """
    done = ckpt.get("epoch")
    if isinstance(done, int) and cfg.train.epochs < done:
        raise ConfigError(
            "train.epochs",
            f"the run in {path.parent} has finished {done} epochs; a resume cannot make it "
            f"{cfg.train.epochs} (give --epochs {done} or more; nothing was changed)",
        )


def prepare_run(
    file: str | Path | None, overrides: dict[str, Any], resume: str | Path | None = None
) -> RunPlan:
    """The plan for a new run from a YAML ``file`` and ``overrides``, or for ``resume``."""
    if resume is not None:
        if file is not None:  # the original command's file: like its flags, it may only repeat
            # (but for its plugins: the run records those it needs, and they are loaded)
            tree = {k: v for k, v in read_yaml(file).items() if k != "plugins"}
            overrides = {**flatten(tree), **overrides}
        if overrides.get("train.init_from") is not None:
            raise ConfigError(
                "--init-from", "starts a new run from weights; a resumed run has its own"
            )
        return prepare_resume(resume, overrides)
    cfg = build_config(file, overrides)
    if cfg.train.init_from is not None:  # before any work: the file is read when training starts
        resolve_checkpoint_path(cfg.train.init_from, "best.pt", "--init-from")
    return RunPlan(cfg, Path(cfg.train.out) if cfg.train.out else default_run_dir(cfg))
