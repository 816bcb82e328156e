"""The training loop: AdamW, cosine schedule with warmup, label smoothing, clipping.

Everything around the loop lives with its kind: devices, precision, processes and
loaders in :mod:`odetx.runtime`, the checkpoint's contents in
:mod:`odetx.training.state`, what a resume may change in :mod:`odetx.training.start`,
files in :mod:`odetx.artefacts`.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from odetx.artefacts import RunDir, load_checkpoint, run_identity
from odetx.artefacts.lock import RunLock
from odetx.config import Config
from odetx.data import DATASETS
from odetx.data.base import DataInfo
from odetx.errors import Interrupted, TrainingError
from odetx.evaluation import EvalResult, evaluate
from odetx.evaluation.loop import flat_targets, scored
from odetx.models import build_model, count_params
from odetx.runtime import distributed
from odetx.runtime.compile import graph_breaks
from odetx.runtime.cpu import cpu_kind
from odetx.runtime.device import resolve_device
from odetx.runtime.loaders import collate_present, make_loader, shard
from odetx.runtime.precision import amp_label, autocast, grad_scaler
from odetx.runtime.threads import apply_threads
from odetx.training.board import Board, require_tensorboard
from odetx.training.ema import weight_average
from odetx.training.mixing import MixedTargets, mix_batch
from odetx.training.optim import build_optimizer
from odetx.training.regularise import Terms, collecting, reg_columns
from odetx.training.reporting import NullReporter, Reporter
from odetx.training.sampling import RepeatedSampler, micro_batches, optimizer_steps
from odetx.training.schedule import cosine_with_warmup, warmup_length
from odetx.training.start import refuse_undoing
from odetx.training.state import Progress, rank_seed, restore, snapshot
from odetx.training.transfer import init_from

EpochCallback = Callable[[int, dict[str, Any]], None]


def val_columns(val: EvalResult, suffix: str = "") -> dict[str, float]:
    """A validation result as metrics.csv columns (``suffix``: ``_ema`` for the average)."""
    cols = {"val_loss": val.loss, "val_acc": val.acc}
    if val.top5 is not None:
        cols["val_top5"] = val.top5
    if val.lm:
        cols.update(val_bpb=val.bpb, val_ppl=val.ppl)
    return {f"{k}{suffix}": v for k, v in cols.items()}


class Trainer:
    """Trains a resolved ``cfg`` into ``run_dir``; continues from ``ckpt`` when given."""

    def __init__(
        self,
        cfg: Config,
        run_dir: str | Path,
        ckpt: dict | None = None,
        reporter: Reporter | None = None,
        callbacks: Sequence[EpochCallback] = (),
        force: bool = False,
    ) -> None:
        # Before any parallel work: resizing torch's thread pool once it has run can abort.
        self.threads = apply_threads(cfg.train.threads, distributed.local_processes())
        # The count used, not how it was chosen, goes into config.yaml and the checkpoints:
        # a resume reuses it, and the same count is what makes a rerun bit-exact.
        cfg = replace(cfg, train=replace(cfg.train, threads=self.threads.count))
        self.cfg = cfg
        self.reg_terms = Terms.of(cfg.train)
        device = resolve_device(cfg.train.device)
        self.dist = distributed.from_env(device)
        self.device = self.dist.device(device)
        # Under torchrun every rank must write to rank 0's directory (a default name
        # carries a timestamp that ranks would not agree on).
        self.run = RunDir(self.dist.broadcast(str(run_dir)))
        if ckpt is not None:  # before any file is touched
            refuse_undoing(ckpt, cfg, self.run.last)
        self.ckpt = ckpt
        self.reporter = (reporter or NullReporter()) if self.dist.is_main else NullReporter()
        self.callbacks = list(callbacks)
        self.force = force
        self.lock = RunLock(self.run.path)
        self.board: Board | None = None
        if cfg.train.tensorboard and self.dist.is_main:
            require_tensorboard()  # before any work or file
        if ckpt is None and self.dist.is_main and not force:
            self.run.claim()  # refused before any work; ``force`` clears it under the lock

    def _setup(self) -> None:
        cfg, t, d = self.cfg, self.cfg.train, self.dist
        torch.manual_seed(t.seed)
        entry = DATASETS[cfg.data.name]
        self.info: DataInfo = entry.info(cfg.data)
        self.splits = entry.load(cfg.data)
        self.model = build_model(cfg.model, cfg.solver, self.info).to(self.device)
        self.fresh: list[str] = []  # weights train.init_from left at their initialisation
        if self.ckpt is None and t.init_from is not None:
            self.fresh = init_from(self.model, t.init_from, cfg.model)
        self.autocast = autocast(t.amp, self.device)
        self.scaler = grad_scaler(t.amp, self.device)
        # ``self.model`` is the plain module (weights, NFE counters); the wrapped ones run it.
        self.train_model: nn.Module = self.model
        self.ddp: DistributedDataParallel | None = None
        if d.enabled:
            self.train_model = self.ddp = DistributedDataParallel(self.model)
        self.eval_model: nn.Module = self.model
        if t.compile:
            self.train_model = torch.compile(self.train_model)
            self.eval_model = torch.compile(self.model)
        # Mixing blends pixels; token ids cannot be blended, so sequence data never mixes.
        self.mixing = self.info.kind == "image" and (t.mixup > 0 or t.cutmix > 0)
        self.optimizer = build_optimizer(self.model, t)
        self.ema = weight_average(self.model, t.ema, t.ema_every)
        self._make_loaders()
        self.progress = Progress()
        if d.is_main:  # one writer per run directory, from here to the end of the run
            self.run.path.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
            self.run.clean()
        if self.ckpt is not None:
            self.progress = restore(
                self.ckpt,
                self.model,
                self.optimizer,
                self.scaler,
                d,
                t.seed,
                str(self.run.last),
                self.ema,
            )
            if d.is_main:
                self.run.sync(self.ckpt)
                if "history" not in self.ckpt:  # written before checkpoints kept their rows
                    self.progress.history = self.run.read_metrics()
        else:
            if d.is_main:
                self.run.claim(self.force)
            if d.enabled:  # same initial weights everywhere, then distinct draws per rank
                torch.manual_seed(rank_seed(t.seed, d.rank))
        self.wall_before = self.progress.wall_time_s
        if d.is_main:
            self.run.write_config(cfg.to_dict())
        if t.tensorboard and d.is_main:
            resumed = self.progress.epoch if self.ckpt is not None else None
            self.board = Board(self.run.path, resumed)

    def _make_loaders(self) -> None:
        t, d, workers = self.cfg.train, self.dist, self.cfg.data.num_workers
        batch = distributed.check_batch(t.batch_size, d.world_size)
        self.train_loader = make_loader(self.splits.train, batch, True, workers)
        self.sampler: DistributedSampler | RepeatedSampler | None = None
        repeats = self.cfg.data.repeated_aug
        if repeats > 1:
            self.sampler = RepeatedSampler(
                len(self.splits.train), repeats, t.seed, d.rank, d.world_size
            )
        elif d.enabled:
            self.sampler = DistributedSampler(
                self.splits.train, d.world_size, d.rank, shuffle=True, seed=t.seed
            )
        if self.sampler is not None:
            self.train_loader = DataLoader(
                self.splits.train,
                batch_size=batch,
                sampler=self.sampler,
                num_workers=workers,
                collate_fn=collate_present,
            )
        self.val_loader, self.test_loader = (
            make_loader(shard(split, d.rank, d.world_size), 2 * batch, False, workers)
            if split is not None
            else None  # an image folder without test/
            for split in (self.splits.val, self.splits.test)
        )
        # The schedule counts optimiser steps: ``train.accumulate`` micro-batches make one.
        self.steps_per_epoch = optimizer_steps(len(self.train_loader), t.accumulate)
        self.total_steps = self.steps_per_epoch * t.epochs
        self.warmup_steps = warmup_length(
            t.warmup_epochs, t.warmup_steps, self.steps_per_epoch, self.total_steps
        )

    def _recipe_header(self) -> dict[str, Any]:
        """What differs from plain AdamW on whole batches from fresh weights."""
        t = self.cfg.train
        out: dict[str, Any] = {}
        if t.optimizer != "adamw":
            out["optimizer"] = t.optimizer
        if t.accumulate > 1:
            out["effective batch"] = f"{t.batch_size} x {t.accumulate} accumulated"
        if self.ema is not None:
            out["weight EMA"] = f"decay {t.ema:g} (best.pt chosen by it)"
        if t.init_from is not None and self.ckpt is None:
            fresh = f"; new head: {', '.join(self.fresh)}" if self.fresh else ""
            out["init from"] = f"{t.init_from}{fresh}"
        return out

    def _data_header(self) -> dict[str, Any]:
        """Image folders: what the files decided (classes, size, channels) and the splits."""
        info = self.info
        if not info.classes:
            return {}
        names = ", ".join(info.classes[:8]) + (", …" if len(info.classes) > 8 else "")
        splits = (self.splits.train, self.splits.val, self.splits.test)
        sizes = " / ".join(f"{len(s):,}" if s is not None else "no test" for s in splits)
        colour = "grey" if info.in_chans == 1 else "RGB"
        return {
            "classes": f"{len(info.classes)} ({names})",
            "images": f"{info.image_size}x{info.image_size} {colour}; {sizes} (train/val/test)",
        }

    def _sync_at(self, last: bool) -> contextlib.AbstractContextManager:
        """DDP averages gradients over processes at a step's last micro-batch only."""
        if last or self.ddp is None:
            return contextlib.nullcontext()
        return self.ddp.no_sync()

    def _stop(self, loss_value: float, batch: int) -> None:
        kept = (
            f"{self.run.last} still holds epoch {self.saved_epoch}"
            if self.saved_epoch
            else "no epoch had finished, so nothing was saved"
        )
        error = TrainingError(
            f"non-finite loss ({loss_value}) at epoch {self.progress.epoch + 1}, "
            f"batch {batch}; "
            f"stopped, and {kept}. Try a lower --lr, more solver steps or a smaller model"
        )
        error.every_rank = True  # the loss is summed over ranks: all of them stop here
        raise error

    def _train_epoch(self) -> dict[str, float]:
        t, model, stack = self.cfg.train, self.train_model, self.model.stack
        model.train()
        # Shuffle order is a function of (seed, epoch) alone, so a resumed run sees
        # exactly the batches an uninterrupted one would.
        if self.sampler is not None:
            self.sampler.set_epoch(self.progress.epoch)
        else:
            self.train_loader.generator.manual_seed(t.seed * 1_000_003 + self.progress.epoch)
        if hasattr(self.splits.train, "set_epoch"):  # text: this epoch's random windows
            self.splits.train.set_epoch(self.progress.epoch)
        sums = {"loss": 0.0, "correct": 0.0, "n": 0, "nfe_f": 0.0, "nfe_b": 0.0, "batches": 0}
        if self.reg_terms.active:
            sums.update(reg_kinetic=0.0, reg_jacobian=0.0)
        lr = t.lr
        start = time.perf_counter()
        self.reporter.epoch_start(self.progress.epoch + 1, t.epochs, self.steps_per_epoch)
        k = t.accumulate
        for i, group in enumerate(micro_batches(self.train_loader, k)):
            lr = cosine_with_warmup(
                self.progress.step, self.total_steps, self.warmup_steps, t.lr, t.min_lr_ratio
            )
            for param_group in self.optimizer.param_groups:
                param_group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            # Each micro-batch's mean loss weighted by its share of the step's targets: the
            # gradients add up to those of the step's examples as one batch.
            targets_in_step = sum(scored(batch[-1]) for batch in group)
            for j, batch in enumerate(group):
                stack.reset_nfe()
                *inputs, y = (b.to(self.device, non_blocking=True) for b in batch)
                mixed = None
                if self.mixing:
                    inputs[0], mixed = mix_batch(inputs[0], y, t.mixup, t.cutmix)
                with self._sync_at(j == len(group) - 1):
                    with self.autocast(), self._regularising() as reg:
                        logits = model(*inputs)
                    logits, y = flat_targets(logits, y)  # a language model's tokens: examples
                    targets = mixed or MixedTargets(y, y, 1.0)
                    nfe_f = stack.nfe()
                    loss = targets.loss(logits.float(), t.label_smoothing)
                    penalty = reg.loss(self.reg_terms) if reg is not None else 0.0
                    # Every rank sees every rank's loss, so a blow-up anywhere stops all of
                    # them together with the same message instead of leaving the others waiting.
                    loss_value = self.dist.sum([loss.item()])[0] / self.dist.world_size
                    if not math.isfinite(loss_value):
                        self._stop(loss_value, i * k + j + 1)
                    n = scored(y)
                    share = loss + penalty if reg is not None else loss
                    share = share if len(group) == 1 else share * (n / targets_in_step)
                    self.scaler.scale(share).backward()
                sums["loss"] += loss.item() * n
                sums["correct"] += targets.correct(logits)
                sums["n"] += n
                sums["nfe_f"] += nfe_f
                sums["nfe_b"] += stack.nfe() - nfe_f
                sums["batches"] += 1
                if reg is not None:
                    sums["reg_kinetic"] += float(torch.as_tensor(reg.kinetic).detach())
                    sums["reg_jacobian"] += float(torch.as_tensor(reg.jacobian).detach())
            if t.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.progress.step += 1
            if self.ema is not None:
                self.ema.step(self.model, self.progress.step)
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
            **reg_columns(self.reg_terms, sums),
        }

    def _regularising(self) -> contextlib.AbstractContextManager:
        """The penalised training path when a regulariser or STEER is on, else nothing
        (with every term 0 the step is today's, bit for bit)."""
        if not self.reg_terms.active:
            return contextlib.nullcontext()
        return collecting(self.model.stack, self.reg_terms)

    def fit(self) -> dict[str, Any]:
        """Train to ``train.epochs``; returns the summary also written to ``summary.json``."""
        try:
            return self._fit()
        finally:
            if self.board is not None:
                self.board.close()
            self.lock.release()

    def _fit(self) -> dict[str, Any]:
        self._setup()
        cfg = self.cfg
        self.reporter.start(
            {
                **run_identity(cfg),
                "dim": cfg.model.dim,
                "params": count_params(self.model),
                **self._data_header(),
                "device": str(self.device),
                "threads": f"{self.threads.count} ({self.threads.why})",
                "cpu": cpu_kind(),  # bit-exact reruns need the same kind (its SIMD kernels)
                # Only what differs from plain float32 eager training on one process.
                **({"fused layer": True} if cfg.model.fused else {}),
                **(
                    {"amp": amp_label(cfg.train.amp, self.device)} if cfg.train.amp != "off" else {}
                ),
                **({"compile": True} if cfg.train.compile else {}),
                **self._recipe_header(),
                **({"processes": self.dist.world_size} if self.dist.world_size > 1 else {}),
                "run": str(self.run.path),
                "resumed_from_epoch": self.progress.epoch if self.ckpt is not None else None,
            }
        )
        started = time.perf_counter()
        self.saved_epoch = self.progress.epoch
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
        p = self.progress
        while p.epoch < self.cfg.train.epochs:
            row = self._train_epoch()
            p.epoch += 1
            val = self._evaluate(self.val_loader)
            row = {"epoch": p.epoch, **row, **val_columns(val)}
            if self.ema is not None:
                # The average is what eval, export and predict use, so it picks best.pt too.
                val = self._evaluate(self.val_loader, self.ema.module)
                row.update(val_columns(val, "_ema"))
            p.wall_time_s = self.wall_before + time.perf_counter() - started
            # Ties go to the later epoch: small validation sets tie often, and the later
            # weights have seen more of the schedule's low-learning-rate tail. A language
            # model's next-token accuracy says little; its loss decides.
            if val.lm:
                improved = val.loss <= p.best_val_loss
            else:
                improved = val.acc >= p.best_val_acc
            if improved:
                p.best_val_acc, p.best_val_loss, p.best_epoch = val.acc, val.loss, p.epoch
            p.history.append(row)
            payload = snapshot(
                self.cfg, self.info, self.model, self.optimizer, self.scaler, p, self.dist, self.ema
            )
            if self.dist.is_main:
                self.run.commit(payload)
            self.saved_epoch = p.epoch  # from here a resume continues after this epoch
            if self.dist.is_main:
                self.run.derive(payload)
            if self.board is not None:
                self.board.log(row)
            self.reporter.epoch_end(row)
            for callback in self.callbacks:
                callback(p.epoch, row)

    def _evaluate(self, loader: DataLoader, model: nn.Module | None = None) -> EvalResult:
        """``model`` (default: the trained weights) on ``loader``."""
        if model is None:
            model, stack = self.eval_model, self.model.stack
        else:
            stack = model.stack
        return evaluate(model, loader, self.device, self.autocast, self.dist.sum, stack)

    def _test(self, model: nn.Module | None = None) -> EvalResult | None:
        """``model`` on the test split; ``None`` where the data has none."""
        return None if self.test_loader is None else self._evaluate(self.test_loader, model)

    def _undecodable(self) -> dict[str, Any]:
        """``summary.json``'s count of files left out because they do not decode, for data
        read from files that can fail so (image folders); every process's findings."""
        splits = [self.splits.train, self.splits.val, self.splits.test]
        found = [s.undecodable() for s in splits if hasattr(s, "undecodable")]
        if not found:
            return {}
        paths = set().union(*self.dist.gather(sorted(set().union(*found))))
        return {"undecodable_files": len(paths)}

    def _finish(self, wall: float) -> dict[str, Any]:
        # The weights eval uses: the average when there is one.
        used = self.ema.module if self.ema is not None else None
        last = self._test(used)
        # Rank 0 reads best.pt and hands it on, so nodes need no shared filesystem.
        best_states = None
        if self.dist.is_main:
            best_ckpt = load_checkpoint(self.run.best, map_location="cpu")
            best_states = {k: best_ckpt[k] for k in ("model", "model_ema") if k in best_ckpt}
        best_states = self.dist.broadcast(best_states)
        self.model.load_state_dict(best_states["model"])
        raw = None
        if self.ema is not None:
            self.ema.module.load_state_dict(best_states["model_ema"])
            raw = self._test()
        best = self._test(used)
        # Without a test split the cost per forward is measured on validation.
        nfe = best.nfe if best is not None else self._evaluate(self.val_loader, used).nfe
        lm = self.info.kind == "text"
        cfg, p = self.cfg, self.progress
        summary = {
            **run_identity(cfg),
            "seed": cfg.train.seed,
            "params": count_params(self.model),
            "epochs": p.epoch,
            "best_epoch": p.best_epoch,
            "best_val_acc": p.best_val_acc,
            **({"best_val_loss": p.best_val_loss, "unit": self.info.unit} if lm else {}),
            "test": best.to_dict() if best is not None else None,
            "test_last": last.to_dict() if last is not None else None,
            **({"no_test_split": self.splits.missing} if best is None else {}),
            **({"weights": "ema"} if self.ema is not None else {}),
            **({"test_raw": raw.to_dict()} if raw is not None else {}),
            "nfe_forward": nfe,
            **self._undecodable(),
            "wall_time_s": wall,
            "device": str(self.device),
            "processes": self.dist.world_size,
            "threads": self.threads.count,
            "cpu": cpu_kind(),
            "amp": cfg.train.amp,
            "torch": torch.__version__,
        }
        if cfg.train.compile:
            summary["graph_breaks"] = graph_breaks()
        if self.dist.is_main:
            self.run.write_summary(summary)
        self.reporter.finish(summary)
        return summary
