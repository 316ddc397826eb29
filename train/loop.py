"""The training loop: pre-training and instruction-tuning are the same loop on different streams.

    result = train(TrainConfig(out="runs/x", steps=1000), GeneratorConfig(size="base"), factory)

AdamW (no decay on biases, norms and embeddings), linear warmup then cosine decay to
`min_lr_ratio`, gradient clipping, gradient accumulation, EMA weights, bf16 autocast on GPU,
optional `torch.compile` of the denoiser. Every `ckpt_every` steps (and at the end) rank 0
writes an atomic checkpoint; a rerun with `resume=auto` continues from the newest one with the
same data order, noise and losses. A non-finite loss stops the run before the optimizer step,
naming the step and batch keys; the newest checkpoint on disk is the last good one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from formats.atomic import atomic_write_text
from train import checkpoint as ckpt
from train.data import BatchStream, DataConfig, StreamFactory, TaskBatch, check_batch
from train.distributed import DistContext
from train.ema import EMA
from train.model import Generator, GeneratorConfig
from train.threads import use_cpu_threads

PRECISIONS = ("auto", "bf16", "fp32")
INIT_WEIGHTS = ("ema", "model")


class NonFiniteLossError(RuntimeError):
    """The loss (or gradient norm) became NaN/inf; the run stopped without saving."""


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1      # cosine decays the lr to lr * min_lr_ratio at the last step
    grad_clip: float = 1.0         # max global gradient L2 norm; <= 0 disables

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.optim: need lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1; got {self}")


@dataclass(frozen=True)
class TrainConfig:
    out: str
    steps: int = 1000
    batch_size: int = 8             # per rank and micro-batch; global batch = batch_size * grad_accum * ranks
    grad_accum: int = 1
    num_workers: int = 0            # DataLoader workers per rank (0: read in the training process)
    resize: str = "error"           # samples at another resolution: error (named) | resize (crop + resample)
    tasks: tuple[str, ...] | None = None  # train on these tasks only (pre-training: ("t2i", "edit"))
    loss_mask: bool = True          # depth/normals pixels whose truth is undefined (sky, invalid) carry no loss
    hflip: float = 0.0              # chance to mirror a depth/normals/semantic/instance sample (train/data.py)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema_decay: float = 0.999
    precision: str = "auto"         # auto: bf16 autocast on GPU, fp32 on CPU
    compile: bool = False           # torch.compile the denoiser
    device: str = "auto"
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 500
    keep: int = 3                   # newest checkpoints kept (<= 0: all)
    resume: str = "auto"            # auto: newest checkpoint in out/checkpoints | never | a checkpoint path
    init_from: str | None = None    # fresh runs start from this checkpoint's weights (instruction-tuning)
    init_weights: str = "ema"       # which weights of init_from: ema | model
    tensorboard: bool = True
    progress: bool = True
    threads: int = 0                # torch CPU threads (0: the CPUs this process is given, formats/cpus.py)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"train.threads must be >= 0 (0: the CPUs this process is given), got {self.threads}")
        if self.steps < 1 or self.grad_accum < 1 or self.log_every < 1 or self.ckpt_every < 1:
            raise ValueError(f"train: steps, grad_accum, log_every and ckpt_every must be >= 1, got "
                             f"{self.steps}, {self.grad_accum}, {self.log_every}, {self.ckpt_every}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train.precision {self.precision!r} not in {list(PRECISIONS)}")
        if self.init_weights not in INIT_WEIGHTS:
            raise ValueError(f"train.init_weights {self.init_weights!r} not in {list(INIT_WEIGHTS)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}")

    def data_config(self, resolution: int) -> DataConfig:
        return DataConfig(resolution=resolution, batch_size=self.batch_size, num_workers=self.num_workers,
                          resize=self.resize, tasks=self.tasks, loss_mask=self.loss_mask,
                          hflip=self.hflip)


@dataclass
class TrainResult:
    step: int                                         # the step the run ended at
    losses: dict[int, float]                          # step -> loss (global mean), steps of this run
    checkpoint: Path | None                           # newest checkpoint written
    resumed_from: Path | None = None


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup over `warmup` steps, then cosine from 1 to `min_ratio` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only: not on biases, norm scales, embeddings or positions."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or name.endswith((".pos", "embed.weight")) or ".embed." in name
        (no_decay if skip else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class MetricsLog:
    """Rank 0's JSONL metrics (`<out>/metrics.jsonl`) and TensorBoard scalars (`<out>/tb`)."""

    def __init__(self, out: Path, start_step: int, tensorboard: bool) -> None:
        self.path = out / "metrics.jsonl"
        out.mkdir(parents=True, exist_ok=True)
        self._truncate_after(start_step)
        self.tb = None
        if tensorboard:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:  # optional: JSONL stays the record
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(out / "tb"), purge_step=start_step + 1 if start_step else None)

    def _truncate_after(self, step: int) -> None:
        """A resumed run rewrites history after its checkpoint: drop records of the lost steps."""
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in keep))

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _noise_generator(seed: int, rank: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + rank) % (2 ** 63))
    return g


class Trainer:
    """State of one run: model, EMA, optimizer, scheduler, data stream, noise generator."""

    def __init__(self, cfg: TrainConfig, model_cfg: GeneratorConfig, factory: StreamFactory,
                 ctx: DistContext | None = None, data_desc: dict | None = None) -> None:
        self.cfg, self.ctx = cfg, ctx or DistContext.local(cfg.device)
        self.model_cfg = model_cfg.resolved()
        self.config = {"model": dataclasses.asdict(self.model_cfg), "train": _plain(dataclasses.asdict(cfg)),
                       "data": data_desc or {}}
        self.out = Path(cfg.out)
        use_cpu_threads(cfg.threads)  # not the machine's cores: see formats/cpus.py
        torch.manual_seed(cfg.seed)  # the model init; everything after draws from self.noise
        self.model: Generator = self.model_cfg.build()
        self.config["model"] = _plain(self.model.config_dict())  # a pretrained base adds its path + hash
        self.resumed_from = self._resume_path()
        if self.resumed_from is None and cfg.init_from:
            self._init_weights(cfg.init_from)
        self.model.to(self.ctx.device)
        self.ema = EMA(self.model, cfg.ema_decay)
        fused = self.ctx.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                                           betas=tuple(cfg.optim.betas), eps=cfg.optim.eps, fused=fused or None)
        o = cfg.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, cfg.steps, o.min_lr_ratio))
        self.noise = _noise_generator(cfg.seed, self.ctx.rank, self.ctx.device)
        self.step = 0
        data_state = self._load_state(self.resumed_from) if self.resumed_from else None
        if cfg.compile:
            self.model.dit.compile()  # in place: parameter names (and checkpoints) stay the same
        self.ddp = self.ctx.wrap(self.model)
        self.stream = BatchStream(factory, cfg.data_config(self.model.resolution), self.ctx.rank,
                                  self.ctx.world_size, state=data_state, pin_memory=self.ctx.device.type == "cuda")
        self.autocast = self._autocast()
        self.last_checkpoint = self.resumed_from

    # -- setup ---------------------------------------------------------------------------------
    def _resume_path(self) -> Path | None:
        if self.cfg.resume == "never":
            return None
        if self.cfg.resume == "auto":
            return ckpt.latest_checkpoint(self.out)
        return Path(self.cfg.resume)

    def _init_weights(self, path: str) -> None:
        state = ckpt.load_checkpoint(path)
        ckpt.check_same_base(state["config"], self.config, path)
        ckpt.load_weights(self.model, state[self.cfg.init_weights],
                          f"init_from checkpoint {path!r} ({self.cfg.init_weights} weights)")

    def _load_state(self, path: Path) -> dict:
        state = ckpt.load_checkpoint(path, map_location=self.ctx.device)
        if state["world_size"] != self.ctx.world_size:
            raise ckpt.CheckpointError(f"checkpoint {str(path)!r} was written by {state['world_size']} ranks, this run has "
                                       f"{self.ctx.world_size}: exact resume needs the same number")
        ckpt.check_same_base(state["config"], self.config, path)
        ckpt.load_weights(self.model, state["model"], f"checkpoint {str(path)!r}")
        self.ema.load_state_dict(state["ema"], state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        mine = state["ranks"][self.ctx.rank]
        ckpt.set_rng_state(mine["rng"], self.noise)
        return mine["data"]

    def _autocast(self) -> contextlib.AbstractContextManager:
        p = self.cfg.precision
        if p == "fp32" or (p == "auto" and self.ctx.device.type != "cuda"):
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=torch.bfloat16)

    # -- steps ---------------------------------------------------------------------------------
    def train_step(self) -> dict[str, Any]:
        """One optimizer step over grad_accum micro-batches; returns its stats."""
        cfg, t0 = self.cfg, time.perf_counter()
        data_time, total, keys = 0.0, torch.zeros((), device=self.ctx.device), []
        task_losses: dict[str, list[float]] = {}
        per_task: list[tuple[list[str], torch.Tensor]] = []
        for k in range(cfg.grad_accum):
            td = time.perf_counter()
            batch: TaskBatch = next(self.stream)
            data_time += time.perf_counter() - td
            check_batch(batch, self.model.resolution)
            keys += batch.keys
            b = batch.to_model(self.ctx.device)
            sync = self.ddp.no_sync() if self.ctx.distributed and k < cfg.grad_accum - 1 else contextlib.nullcontext()
            with sync:
                with self.autocast:
                    out = self.ddp(b.target, b.image, b.has_image, b.prompts, generator=self.noise, weight=b.weight)
                (out["loss"] / cfg.grad_accum).backward()
            total = total + out["loss"].detach().float() / cfg.grad_accum
            per_task.append((batch.tasks, out["per_sample"]))
        # one all-reduce carries the loss and a non-finite flag, so every rank stops together
        stats = torch.stack([torch.nan_to_num(total, nan=0.0, posinf=0.0, neginf=0.0), (~torch.isfinite(total)).float()])
        stats = self.ctx.all_reduce_sum(stats).tolist()
        if stats[1] > 0:
            self._stop(f"loss is {total.item()} on this rank" if not math.isfinite(total.item())
                       else "loss is non-finite on another rank", keys)
        grad_norm = self._clip()
        if not math.isfinite(grad_norm):
            self._stop(f"gradient norm is {grad_norm}", keys)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model)
        self.step += 1
        for tasks, per_sample in per_task:
            for task, value in zip(tasks, per_sample.tolist()):
                task_losses.setdefault(task, []).append(value)
        n = cfg.batch_size * cfg.grad_accum * self.ctx.world_size
        dt = time.perf_counter() - t0
        return {"step": self.step, "loss": stats[0] / self.ctx.world_size, "lr": self.scheduler.get_last_lr()[0],
                "grad_norm": grad_norm, "step_time": dt, "data_time": data_time, "samples_per_s": n / dt,
                **{f"loss/{t}": sum(v) / len(v) for t, v in sorted(task_losses.items())}}

    def _clip(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.optim.grad_clip > 0:
            return float(torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip))
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))

    def _stop(self, what: str, keys: list[str]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        good = str(self.last_checkpoint) if self.last_checkpoint else "none (no checkpoint written yet)"
        raise NonFiniteLossError(f"{what} at step {self.step + 1} (rank {self.ctx.rank}) on batch keys {keys}; "
                                 f"stopped before the optimizer step; last good checkpoint: {good}")

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> Path | None:
        """All ranks call this (it gathers their RNG and data states); rank 0 writes."""
        mine = {"rng": ckpt.rng_state(self.noise), "data": self.stream.state_dict()}
        ranks = self.ctx.gather(mine)
        path = None
        if self.ctx.is_main:
            path = ckpt.save_checkpoint(ckpt.checkpoint_path(self.out, self.step), {
                "step": self.step, "config": self.config, "world_size": self.ctx.world_size,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(), "ema_updates": self.ema.updates,
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "ranks": ranks})
            ckpt.prune_checkpoints(self.out, self.cfg.keep)
        self.ctx.barrier()
        self.last_checkpoint = ckpt.checkpoint_path(self.out, self.step)
        return path


def _plain(x: Any) -> Any:
    """Tuples -> lists so the config round-trips through JSON and weights_only loading alike."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def train(cfg: TrainConfig, model_cfg: GeneratorConfig, factory: StreamFactory, ctx: DistContext | None = None,
          data_desc: dict | None = None, on_step: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train until `cfg.steps` (resuming from the newest checkpoint with resume=auto).

    `on_step(stats)` is called after every step (tests use it to interrupt a run).
    """
    from tqdm import tqdm

    trainer = Trainer(cfg, model_cfg, factory, ctx, data_desc)
    start, main = trainer.step, trainer.ctx.is_main
    log = MetricsLog(trainer.out, start, cfg.tensorboard) if main else None
    bar = tqdm(total=cfg.steps, initial=start, disable=not (main and cfg.progress), unit="step", dynamic_ncols=True)
    losses: dict[int, float] = {}
    window: list[dict[str, Any]] = []
    try:
        while trainer.step < cfg.steps:
            stats = trainer.train_step()
            losses[stats["step"]] = stats["loss"]
            window.append(stats)
            bar.update(1)
            bar.set_postfix(loss=f"{stats['loss']:.4f}", samples_s=f"{stats['samples_per_s']:.1f}", refresh=False)
            if log and (trainer.step % cfg.log_every == 0 or trainer.step == cfg.steps):
                log.write(_mean_window(window))
                window = []
            if trainer.step % cfg.ckpt_every == 0 or trainer.step == cfg.steps:
                trainer.save()
            if on_step:
                on_step(stats)
    finally:
        bar.close()
        if log:
            log.close()
    return TrainResult(trainer.step, losses, trainer.last_checkpoint, trainer.resumed_from)


def _mean_window(window: list[dict[str, Any]]) -> dict[str, Any]:
    """Average every numeric stat over the steps since the last record (step, lr: the last)."""
    keys = {k for s in window for k in s}
    rec: dict[str, Any] = {"step": window[-1]["step"], "lr": window[-1]["lr"]}
    for k in sorted(keys - rec.keys()):
        vals = [s[k] for s in window if k in s]
        rec[k] = sum(vals) / len(vals)
    rec["samples_per_s"] = sum(s["samples_per_s"] * s["step_time"] for s in window) / sum(s["step_time"] for s in window)
    return rec
