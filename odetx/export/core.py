"""Export a checkpoint to a self-contained artefact, checked against the eager model.

The artefact is written to a temporary file beside its destination, loaded back
with plain torch, compared with the eager model on fresh inputs, and only then
renamed into place; on any failure nothing is left behind.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import odetx
from odetx.artefacts import resolve_checkpoint_path
from odetx.config import SolverConfig
from odetx.errors import ConfigError, OdetxError
from odetx.evaluation import LoadedModel, load_model
from odetx.export.check import Latency, Parity, check_parity, measure_latency
from odetx.export.formats import FORMATS, ExportFormat, format_for
from odetx.export.inputs import EXAMPLE_BATCH, input_spec
from odetx.io import atomic_write, remove_stale_temps
from odetx.solvers import SOLVERS

DEFAULT_FORMAT = "torchscript"
PARITY_BATCHES = (1, 3, 17)
TOLERANCE = 1e-5  # float32 logits; eager and exported run the same kernels
FIXED_STEP_EXAMPLE = "--solver rk4 --steps 4"


class ExportError(OdetxError):
    """The model could not be exported, or the artefact does not match the eager model."""


@dataclass(frozen=True)
class ExportReport:
    """What was written and how it was checked."""

    path: Path
    format: ExportFormat
    checkpoint: Path
    arch: str
    solver: SolverConfig
    trained_solver: SolverConfig
    signature: list[str]
    call: str
    parity: Parity
    latency: Latency
    size_bytes: int

    @property
    def overridden(self) -> bool:
        return self.solver != self.trained_solver

    @property
    def load_hint(self) -> str:
        return self.format.load_hint.format(path=self.path)

    @property
    def steps(self) -> str:
        return steps_note(self.solver, self.format)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.format.name,
            "checkpoint": str(self.checkpoint),
            "arch": self.arch,
            "solver": dataclasses.asdict(self.solver),
            "trained_solver": dataclasses.asdict(self.trained_solver),
            "solver_overridden": self.overridden,
            "signature": self.signature,
            "load": self.load_hint,
            "call": self.call,
            "steps": self.steps,
            "parity": {
                "max_abs_diff": self.parity.worst,
                "per_batch": {str(b): d for b, d in self.parity.diffs.items()},
                "tolerance": self.parity.tolerance,
            },
            "latency": {
                "eager_ms": 1e3 * self.latency.eager_s,
                "exported_ms": 1e3 * self.latency.exported_s,
                "ratio": self.latency.ratio,
                "batch": self.latency.batch,
                "repeats": self.latency.repeats,
            },
            "size_bytes": self.size_bytes,
            "note": self.format.note,
        }


def choose_format(name: str | None, out: Path | None) -> ExportFormat:
    """``--format``, else the format ``--out``'s suffix names, else TorchScript.

    ``--out`` must end in the format's suffix: a file's name should not claim another
    kind than it holds (readers go by content, people by the name).
    """
    try:
        fmt = format_for(name, out)
    except KeyError as e:
        raise ConfigError("--format", e.args[0]) from None
    if out is None:
        return fmt or FORMATS[DEFAULT_FORMAT]
    suffixes = ", ".join(f"*{f.suffix} ({n})" for n, f in FORMATS.items())
    if fmt is None:
        raise ConfigError("--out", f"{out.name} names no export format; name the file {suffixes}")
    implied = format_for(None, out)
    if implied is not None and implied.name != fmt.name:
        raise ConfigError(
            "--out",
            f"{out.name} has the {implied.name} suffix {implied.suffix} but --format is "
            f"{fmt.name}; name the file *{fmt.suffix} or drop --format",
        )
    if out.suffix != fmt.suffix:
        raise ConfigError(
            "--out",
            f"{out.name} does not end in {fmt.suffix}; name the {fmt.name} file *{fmt.suffix}",
        )
    return fmt


def check_destination(out: Path, checkpoint: Path, force: bool) -> None:
    """Refuse a destination that cannot or should not be written, before any work."""
    if out.resolve() == checkpoint.resolve():
        raise ConfigError("--out", f"{out} is the checkpoint itself; name another file")
    if not out.parent.is_dir():
        raise ConfigError("--out", f"folder {out.parent} does not exist")
    if out.is_dir():
        raise ConfigError("--out", f"{out} is a folder; name the file to write")
    if out.exists() and not force:
        raise ConfigError("--out", f"{out} already exists; pass --force to overwrite it")


# Per-sample adaptive steps are a data-dependent loop over a batch that shrinks as samples
# finish; only TorchScript keeps such a loop (torch.export and ONNX capture one graph of
# fixed control flow, where the loop's trip count and the compacted shapes are data).
PER_SAMPLE_FORMATS = ("torchscript",)


def steps_note(solver: SolverConfig, fmt: ExportFormat) -> str:
    """How the artefact's steps are set: per-sample tolerances are runtime attributes."""
    if solver.per_sample:
        return (
            f"per sample, adaptive ({solver.method}); runtime: for b in "
            "m.stack.blocks.children(): b.rtol = 1e-4; b.atol = 1e-5"
        )
    return fmt.steps


def refuse_adaptive(loaded: LoadedModel, fmt: ExportFormat) -> None:
    """torchdiffeq's adaptive solvers take input-dependent step counts, which tracing would
    freeze; odetx's per-sample integrator is scriptable, so TorchScript takes it."""
    method = loaded.solver.method
    if not SOLVERS[method].adaptive:
        return
    if loaded.solver.per_sample:
        if fmt.name in PER_SAMPLE_FORMATS:
            return
        raise ConfigError(
            "--format",
            f"{fmt.title} captures one graph of fixed control flow, but per-sample adaptive "
            "steps are a data-dependent loop over a shrinking batch; export with "
            "--format torchscript, or with a fixed-step solver, e.g. "
            f"{FIXED_STEP_EXAMPLE}",
        )
    which = (
        f"{method} is an adaptive solver"
        if loaded.overridden
        else f"the model was trained with {method}, an adaptive solver"
    )
    raise ConfigError(
        "solver.method",
        f"{which} (torchdiffeq) whose step count depends on the input, so it cannot be baked "
        f"into an artefact; export with --per-sample (odetx's own integrator, TorchScript) "
        f"or with a fixed-step solver, e.g. {FIXED_STEP_EXAMPLE}",
    )


def metadata(loaded: LoadedModel, fmt: ExportFormat, signature: list[str]) -> str:
    """``odetx.json``: enough to know what the artefact is without odetx; ``plugins``: those
    whose entries made it (the run's, and the format's own if a plugin adds it)."""
    config = dataclasses.replace(loaded.config, solver=loaded.solver)
    made_by = FORMATS.origin(fmt.name)
    plugins = dict.fromkeys([*config.plugins, *([made_by] if made_by is not None else [])])
    return json.dumps(
        {
            "odetx_version": odetx.__version__,
            "torch_version": torch.__version__,
            "plugins": [p.to_dict() for p in plugins],
            "format": fmt.name,
            "checkpoint": str(loaded.path),
            "config": config.to_dict(),
            "trained_solver": dataclasses.asdict(loaded.trained_solver),
            "data_info": dataclasses.asdict(loaded.info),
            "signature": signature,
            "steps": steps_note(loaded.solver, fmt),
        },
        indent=2,
    )


def export_checkpoint(
    checkpoint: str | Path,
    out: Path | None = None,
    fmt: str | None = None,
    solver_overrides: dict[str, Any] | None = None,
    force: bool = False,
    batch_sizes: Sequence[int] = PARITY_BATCHES,
    tolerance: float | None = None,
    ema: bool = True,
) -> ExportReport:
    """Export ``checkpoint`` (a file or a run directory) integrated by its solver or
    ``solver_overrides``, in eval mode on CPU.

    Args:
        out: destination; default: the checkpoint's path with the format's suffix.
        fmt: a :data:`~odetx.export.formats.FORMATS` name; default: from ``out``'s suffix,
            else TorchScript.
        force: overwrite an existing ``out``.
        batch_sizes: batch sizes of the parity check (the largest is also timed).
        tolerance: the largest ``|eager - exported|`` accepted; default: the format's
            own limit, else :data:`TOLERANCE`.
        ema: export a ``train.ema`` run's weight average (False: its trained weights).

    Raises:
        ConfigError: a bad format, destination or solver (nothing is written).
        CheckpointError: a missing, corrupt or untrusted checkpoint.
        ExportError: capture failed or parity does not hold (nothing is written).
    """
    format_ = choose_format(fmt, out)
    if format_.requires is not None:
        format_.requires()
    if tolerance is None:
        tolerance = format_.tolerance if format_.tolerance is not None else TOLERANCE
    ckpt_path = resolve_checkpoint_path(checkpoint, "best.pt")
    out = out if out is not None else ckpt_path.with_suffix(format_.suffix)
    check_destination(out, ckpt_path, force)
    loaded = load_model(ckpt_path, solver_overrides, device="cpu", ema=ema)
    refuse_adaptive(loaded, format_)
    model = loaded.model.cpu().eval().requires_grad_(False)
    spec = input_spec(loaded.info)
    signature = spec.describe()

    example = spec.sample(EXAMPLE_BATCH, torch.Generator().manual_seed(0))
    try:
        artefact = format_.build(model, example, spec.dynamic_shapes())
    except Exception as e:  # capture failures are torch's many exception types
        first = (str(e).strip().splitlines() or [""])[0]
        others = ", ".join(n for n in FORMATS if n != format_.name)
        raise ExportError(
            f"{format_.title} could not capture this model ({type(e).__name__}: {first}); "
            f"try --format {others}"
        ) from None

    gen = torch.Generator().manual_seed(1)  # fresh inputs, unlike the traced example
    batches = {b: spec.sample(b, gen, short=i % 2 == 1) for i, b in enumerate(batch_sizes)}
    remove_stale_temps(out.parent, (out.name,))  # what a killed export left behind
    try:
        with atomic_write(out) as (f, tmp):
            format_.save(artefact, f, metadata(loaded, format_, signature))
            f.flush()
            exported = format_.load(tmp)
            parity = check_parity(model, exported, batches, tolerance)
            if not parity.ok:
                raise ExportError(
                    f"parity check failed: max |eager - exported| = {parity.worst:.3g} "
                    f"(batch {parity.worst_batch}; limit {tolerance:g}); nothing was written "
                    f"to {out}"
                )
            latency = measure_latency(model, exported, batches[max(batches)])
            size = tmp.stat().st_size
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None
    return ExportReport(
        out,
        format_,
        loaded.path,
        loaded.config.model.arch,
        loaded.solver,
        loaded.trained_solver,
        signature,
        spec.call,
        parity,
        latency,
        size,
    )
