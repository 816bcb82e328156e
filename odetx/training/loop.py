"""The training loop: AdamW, cosine schedule with warmup, label smoothing, clipping, resume."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from odetx.config import Config, build_config
from odetx.data import DATASETS
from odetx.data.base import DataInfo
from odetx.errors import ConfigError, Interrupted, TrainingError
from odetx.models import build_model, count_params, resolve_model
from odetx.solvers import resolve_solver
from odetx.training import distributed
from odetx.training.checkpoint import load_checkpoint, resolve_checkpoint_path, save_checkpoint
from odetx.training.evaluate import EvalResult, evaluate
from odetx.training.mixing import MixedTargets, mix_batch
from odetx.training.precision import amp_label, autocast, grad_scaler
from odetx.training.reporting import NullReporter, Reporter
from odetx.training.rundir import RunDir
from odetx.training.schedule import cosine_with_warmup

EpochCallback = Callable[[int, dict[str, Any]], None]
# Fields that may change when a run is resumed; anything else would silently
# train a different model than the checkpoint's.
RESUMABLE = (
    "train.epochs",
    "train.device",
    "train.out",
    "data.root",
    "data.download",
    "data.num_workers",
    "train.compile",
)


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``name`` as a torch device; ``key`` names the setting in errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(key, f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(key, "cuda was requested but no CUDA device is available")
    return device


def resolved(cfg: Config) -> Config:
    """The config with preset and solver defaults filled in (what is saved with a run)."""
    return dataclasses.replace(
        cfg, model=resolve_model(cfg.model), solver=resolve_solver(cfg.solver)
    )


def make_loader(
    dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int = 0
) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        generator=generator,
        drop_last=False,
    )


def shard(dataset, rank: int, world_size: int):
    """Every ``world_size``-th example from ``rank``: disjoint shards, no padding, so
    metrics summed over ranks count each example exactly once."""
    if world_size == 1:
        return dataset
    return Subset(dataset, range(rank, len(dataset), world_size))


def graph_breaks() -> int:
    """Graph breaks torch.compile has met in this process so far."""
    from torch._dynamo.utils import counters

    return int(sum(counters["graph_break"].values()))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on norms, biases, positions and the class token (DeiT practice)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def prepare_resume(resume: str | Path, overrides: dict[str, Any]) -> tuple[Config, dict, Path]:
    """Config, checkpoint and run directory for ``--resume`` (a run dir or a checkpoint)."""
    path = resolve_checkpoint_path(resume, "last.pt")
    ckpt = load_checkpoint(path)
    for key in overrides:
        if key not in RESUMABLE:
            raise ConfigError(key, f"cannot change on --resume (allowed: {', '.join(RESUMABLE)})")
    out = overrides.get("train.out")
    if out is not None and Path(out).resolve() != path.parent.resolve():
        raise ConfigError(
            "train.out",
            f"a resumed run continues in its own folder, {path.parent}; drop --out "
            "(to branch a run, copy its folder and resume the copy)",
        )
    # The folder the run now lives in, even if it was moved since it started.
    overrides = {**overrides, "train.out": str(path.parent)}
    cfg = build_config(overrides=overrides, base=ckpt["config"])
    return cfg, ckpt, path.parent


class Trainer:
    """Trains ``cfg`` into ``run_dir``; resumes from ``ckpt`` when given."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        ckpt: dict | None = None,
        reporter: Reporter | None = None,
        callbacks: Sequence[EpochCallback] = (),
    ) -> None:
        self.cfg = resolved(cfg)
        device = resolve_device(cfg.train.device)
        self.dist = distributed.from_env(device)
        self.device = self.dist.device(device)
        # Under torchrun every rank must write to rank 0's directory (a default name
        # carries a timestamp that ranks would not agree on).
        self.run = RunDir(self.dist.broadcast(str(run_dir)))
        self.ckpt = ckpt
        self.reporter = (reporter or NullReporter()) if self.dist.is_main else NullReporter()
        self.callbacks = list(callbacks)
        if ckpt is None and self.run.has_run():
            raise ConfigError(
                "train.out",
                f"{self.run.path} already holds a run; resume it with --resume {self.run.path} "
                "or choose another --out",
            )

    def _setup(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        entry = DATASETS[cfg.data.name]
        self.info: DataInfo = entry.info(cfg.data)
        self.splits = entry.load(cfg.data)
        self.model = build_model(cfg.model, cfg.solver, self.info).to(self.device)
        t = cfg.train
        self.autocast = autocast(t.amp, self.device)
        self.scaler = grad_scaler(t.amp, self.device)
        # ``self.model`` is the plain module (weights, NFE counters); the wrapped ones run it.
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            self.train_model = DistributedDataParallel(self.model)
        self.eval_model: nn.Module = self.model
        if t.compile:
            self.train_model = torch.compile(self.train_model)
            self.eval_model = torch.compile(self.model)
        # Mixing blends pixels; token ids cannot be blended, so sequence data never mixes.
        self.mixing = self.info.kind == "image" and (cfg.train.mixup > 0 or cfg.train.cutmix > 0)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, cfg.train.weight_decay), lr=cfg.train.lr
        )
        d = self.dist
        batch = distributed.check_batch(t.batch_size, d.world_size)
        workers = cfg.data.num_workers
        self.train_loader = make_loader(self.splits.train, batch, True, workers)
        self.sampler: DistributedSampler | None = None
        if d.enabled:
            self.sampler = DistributedSampler(
                self.splits.train, d.world_size, d.rank, shuffle=True, seed=t.seed
            )
            self.train_loader = DataLoader(
                self.splits.train, batch_size=batch, sampler=self.sampler, num_workers=workers
            )
        self.val_loader = make_loader(
            shard(self.splits.val, d.rank, d.world_size), 2 * batch, False, workers
        )
        self.test_loader = make_loader(
            shard(self.splits.test, d.rank, d.world_size), 2 * batch, False, workers
        )
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = self.steps_per_epoch * t.epochs
        self.warmup_steps = round(t.warmup_epochs * self.steps_per_epoch)
        self.epoch, self.step = 0, 0
        self.best_val_acc, self.best_epoch = -1.0, 0
        self.wall_before = 0.0
        if self.ckpt is not None:
            self.model.load_state_dict(self.ckpt["model"])
            self.optimizer.load_state_dict(self.ckpt["optimizer"])
            if "scaler" in self.ckpt:
                self.scaler.load_state_dict(self.ckpt["scaler"])
            states = self.ckpt["rng"].get("ranks", [self.ckpt["rng"]["torch"]])
            if len(states) == d.world_size:
                torch.set_rng_state(states[d.rank])
            else:  # resumed on another number of processes: a fresh, distinct stream per rank
                torch.manual_seed(t.seed * 1_000_003 + self.ckpt["epoch"] * 1009 + d.rank)
            self.epoch, self.step = self.ckpt["epoch"], self.ckpt["step"]
            self.best_val_acc, self.best_epoch = self.ckpt["best_val_acc"], self.ckpt["best_epoch"]
            self.wall_before = self.ckpt.get("wall_time_s", 0.0)
            if d.is_main:
                self.run.truncate_metrics(self.epoch)
        else:
            if d.is_main:
                self.run.path.mkdir(parents=True, exist_ok=True)
            if d.enabled:  # same initial weights everywhere, then distinct draws per rank
                torch.manual_seed(t.seed * 1_000_003 + d.rank)
        if d.is_main:
            self.run.write_config(self.cfg.to_dict())

    def _payload(self, wall: float) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(),
            "data_info": dataclasses.asdict(self.info),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "ranks": self.dist.gather(torch.get_rng_state()),
            },
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "wall_time_s": wall,
            "params": count_params(self.model),
        }

    def _train_epoch(self) -> dict[str, float]:
        t, model, stack = self.cfg.train, self.train_model, self.model.stack
        model.train()
        # Shuffle order is a function of (seed, epoch) alone, so a resumed run sees
        # exactly the batches an uninterrupted one would.
        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        else:
            self.train_loader.generator.manual_seed(t.seed * 1_000_003 + self.epoch)
        sums = {"loss": 0.0, "correct": 0.0, "n": 0, "nfe_f": 0.0, "nfe_b": 0.0, "batches": 0}
        lr = t.lr
        start = time.perf_counter()
        self.reporter.epoch_start(self.epoch + 1, t.epochs, self.steps_per_epoch)
        for i, batch in enumerate(self.train_loader):
            lr = cosine_with_warmup(
                self.step, self.total_steps, self.warmup_steps, t.lr, t.min_lr_ratio
            )
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            stack.reset_nfe()
            *inputs, y = (b.to(self.device, non_blocking=True) for b in batch)
            if self.mixing:
                inputs[0], targets = mix_batch(inputs[0], y, t.mixup, t.cutmix)
            else:
                targets = MixedTargets(y, y, 1.0)
            with self.autocast():
                logits = model(*inputs)
            nfe_f = stack.nfe()
            loss = targets.loss(logits.float(), t.label_smoothing)
            # Every rank sees every rank's loss, so a blow-up anywhere stops all of them
            # together with the same message instead of leaving the others waiting.
            loss_value = self.dist.sum([loss.item()])[0] / self.dist.world_size
            if not math.isfinite(loss_value):
                kept = (
                    f"{self.run.last} still holds epoch {self.saved_epoch}"
                    if self.saved_epoch
                    else "no epoch had finished, so nothing was saved"
                )
                error = TrainingError(
                    f"non-finite loss ({loss_value}) at epoch {self.epoch + 1}, batch {i + 1}; "
                    f"stopped, and {kept}. Try a lower --lr, more solver steps or a smaller model"
                )
                error.every_rank = True  # the loss is summed over ranks: all of them stop here
                raise error
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if t.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.step += 1
            n = y.numel()
            sums["loss"] += loss.item() * n
            sums["correct"] += targets.correct(logits)
            sums["n"] += n
            sums["nfe_f"] += nfe_f
            sums["nfe_b"] += stack.nfe() - nfe_f
            sums["batches"] += 1
            seconds = time.perf_counter() - start
            self.reporter.batch(
                i + 1,
                {
                    "loss": sums["loss"] / sums["n"],
                    "acc": sums["correct"] / sums["n"],
                    "nfe": nfe_f,
                    "samples_per_s": sums["n"] / seconds if seconds > 0 else 0.0,
                },
            )
        seconds = time.perf_counter() - start
        keys = list(sums)
        sums = dict(zip(keys, self.dist.sum([sums[k] for k in keys]), strict=True))
        return {
            "train_loss": sums["loss"] / sums["n"],
            "train_acc": sums["correct"] / sums["n"],
            "lr": lr,
            "nfe_forward": sums["nfe_f"] / sums["batches"],
            "nfe_backward": sums["nfe_b"] / sums["batches"],
            "seconds": seconds,
            "samples_per_s": sums["n"] / seconds if seconds > 0 else 0.0,
        }

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``; returns the summary also written to ``summary.json``."""
        self._setup()
        cfg = self.cfg
        params = count_params(self.model)
        self.reporter.start(
            {
                "dataset": cfg.data.name,
                "preset": cfg.model.preset,
                "scheme": cfg.model.arch,
                "solver": cfg.solver.method,
                "steps": cfg.solver.steps,
                "depth": cfg.model.depth,
                "groups": cfg.model.groups,
                "dim": cfg.model.dim,
                "params": params,
                "device": str(self.device),
                # Only what differs from plain float32 eager training on one process.
                **({"fused layer": True} if cfg.model.fused else {}),
                **(
                    {"amp": amp_label(cfg.train.amp, self.device)} if cfg.train.amp != "off" else {}
                ),
                **({"compile": True} if cfg.train.compile else {}),
                **({"processes": self.dist.world_size} if self.dist.world_size > 1 else {}),
                "run": str(self.run.path),
                "resumed_from_epoch": self.epoch if self.ckpt is not None else None,
            }
        )
        started = time.perf_counter()
        self.saved_epoch = self.epoch
        try:
            self._epochs(started)
        except KeyboardInterrupt:
            if not self.dist.is_main:
                raise Interrupted("") from None  # rank 0 speaks for the run
            if self.saved_epoch == 0:
                raise Interrupted(
                    "interrupted before the first epoch finished; nothing to resume"
                ) from None
            raise Interrupted(
                f"interrupted; {self.run.last} holds epoch {self.saved_epoch} "
                f"of {cfg.train.epochs}; "
                f"continue with: odetx train --resume {self.run.path}"
            ) from None
        except RuntimeError as e:
            if self.dist.enabled and distributed.peer_lost(e):
                raise TrainingError("") from None  # the rank that failed has said why
            raise
        finally:
            self.reporter.close()
        return self._finish(self.wall_before + time.perf_counter() - started)

    def _epochs(self, started: float) -> None:
        cfg = self.cfg
        while self.epoch < cfg.train.epochs:
            row = self._train_epoch()
            self.epoch += 1
            val = self._evaluate(self.val_loader)
            row = {"epoch": self.epoch, **row, "val_loss": val.loss, "val_acc": val.acc}
            wall = self.wall_before + time.perf_counter() - started
            # Ties go to the later epoch: small validation sets tie often, and the later
            # weights have seen more of the schedule's low-learning-rate tail.
            improved = val.acc >= self.best_val_acc
            if improved:
                self.best_val_acc, self.best_epoch = val.acc, self.epoch
            payload = self._payload(wall)  # on every rank: it gathers their RNG states
            if self.dist.is_main:
                save_checkpoint(self.run.last, payload)
                if improved:
                    save_checkpoint(self.run.best, payload)
                self.run.append_metrics(row)
            self.saved_epoch = self.epoch
            self.reporter.epoch_end(row)
            for callback in self.callbacks:
                callback(self.epoch, row)

    def _evaluate(self, loader: DataLoader) -> EvalResult:
        return evaluate(
            self.eval_model, loader, self.device, self.autocast, self.dist.sum, self.model.stack
        )

    def _finish(self, wall: float) -> dict[str, Any]:
        last = self._evaluate(self.test_loader)
        # Rank 0 reads best.pt and hands it on, so nodes need no shared filesystem.
        best_state = None
        if self.dist.is_main:
            best_state = load_checkpoint(self.run.best, map_location="cpu")["model"]
        self.model.load_state_dict(self.dist.broadcast(best_state))
        best = self._evaluate(self.test_loader)
        cfg = self.cfg
        summary = {
            "dataset": cfg.data.name,
            "preset": cfg.model.preset,
            "scheme": cfg.model.arch,
            "solver": cfg.solver.method,
            "steps": cfg.solver.steps,
            "depth": cfg.model.depth,
            "groups": cfg.model.groups,
            "seed": cfg.train.seed,
            "params": count_params(self.model),
            "epochs": self.epoch,
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val_acc,
            "test": best.to_dict(),
            "test_last": last.to_dict(),
            "nfe_forward": best.nfe,
            "wall_time_s": wall,
            "device": str(self.device),
            "processes": self.dist.world_size,
            "amp": cfg.train.amp,
            "torch": torch.__version__,
        }
        if cfg.train.compile:
            summary["graph_breaks"] = graph_breaks()
        if self.dist.is_main:
            self.run.write_summary(summary)
        self.reporter.finish(summary)
        return summary
