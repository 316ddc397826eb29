"""`vistune train`: config dict -> dataclasses -> one of three launchers of `train.loop.train`.

    vistune train mixture=generation model.size=base                                   # pre-train
    vistune train mixture=default init_from=outputs/pre/checkpoints/step-00100000.pt   # instruction-tune
    vistune train data.shards=[outputs/encode/t2i/*.tar] data.tasks=[t2i]              # plain shard list
    torchrun --nproc_per_node=8 -m pipelines.cli train ...                                       # DDP
    vistune train train.backend=ray ray.address=auto ray.num_workers=16 ray.use_gpu=true         # Ray Train
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from formats.config import ConfigError, from_dict
from pipelines import train_ray
from train.data import MixtureStreamFactory, ShardListStream, StreamFactory
from train.loop import OptimConfig, TrainConfig, TrainResult
from train.model import GeneratorConfig

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class TrainJobConfig:
    train: TrainConfig
    model: GeneratorConfig
    shards: tuple[str, ...] = ()
    shard_seed: int = 0
    mixture: dict | None = None
    backend: str = "local"
    ray: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"train.backend {self.backend!r} not in {list(BACKENDS)}")
        if self.mixture is None and not self.shards:
            raise ValueError("no training data: set data.shards=[...] (task shard globs) or a mixture block")

    def stream_factory(self) -> StreamFactory:
        """The training stream: the mixture when given, else the shard list in a seeded order."""
        if self.mixture is not None:
            return MixtureStreamFactory(self.mixture)
        return ShardListStream(self.shards, seed=self.shard_seed)

    def data_desc(self) -> dict[str, Any]:
        """What the checkpoint records about the data (JSON-able)."""
        if self.mixture is not None:
            return {"mixture": self.mixture}
        return {"shards": list(self.shards), "seed": self.shard_seed}


TOP_KEYS = ("data", "init_from", "mixture", "model", "out", "ray", "resume", "train")


def config_from_dict(cfg: dict[str, Any]) -> TrainJobConfig:
    """The resolved Hydra config (plain dict) -> TrainJobConfig. ConfigError names an unknown key or bad value."""
    cfg = dict(cfg)
    unknown = sorted(set(cfg) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown train config keys {unknown}; allowed: {', '.join(TOP_KEYS)}")
    if "out" not in cfg:
        raise ConfigError("train config: missing required key 'out'")
    data, train = dict(cfg.get("data") or {}), dict(cfg.get("train") or {})
    backend = train.pop("backend", "local")
    shards, seed, roots = data.pop("shards", []) or [], data.pop("seed", 0), data.pop("roots", None)
    mixture = cfg.get("mixture")
    if mixture is not None and not mixture.get("roots"):
        mixture = {**mixture, "roots": roots}
    return from_dict(TrainJobConfig, {
        "train": _train_config(cfg, train, data), "model": from_dict(GeneratorConfig, cfg.get("model"), "model"),
        "shards": tuple(shards), "shard_seed": seed, "mixture": mixture, "backend": backend,
        "ray": dict(cfg.get("ray") or {})})


def _train_config(cfg: dict[str, Any], train: dict[str, Any], data: dict[str, Any]) -> TrainConfig:
    """TrainConfig from the train and data blocks (loop fields live in both) and the top-level run keys."""
    optim = from_dict(OptimConfig, train.pop("optim", None), "train.optim")
    top = {"out": cfg["out"], "init_from": cfg.get("init_from"), "resume": str(cfg.get("resume", "auto")),
           "optim": optim}
    loop = {**train, **data}
    clash = sorted(set(loop) & set(top))
    if clash:  # these are top-level keys (`out=...`), not train.* / data.* ones
        raise ConfigError(f"train/data keys {clash} belong at the top level of the train config")
    return from_dict(TrainConfig, {**loop, **top}, "train/data")


def run_local(job: TrainJobConfig) -> TrainResult:
    """This process trains; under torchrun each process is one DDP rank."""
    from train import distributed
    from train.loop import train

    ctx = distributed.init_torchrun(job.train.device)
    try:
        return train(job.train, job.model, job.stream_factory(), ctx, job.data_desc())
    finally:
        distributed.shutdown()


def _ray_worker(config: dict) -> None:
    """One Ray Train worker (TorchTrainer has set up the process group)."""
    from train.loop import train

    job = config_from_dict(config["job"])
    result = train(job.train, job.model, job.stream_factory(), train_ray.ray_context(), job.data_desc())
    train_ray.report({"step": result.step, "loss": result.losses.get(result.step, float("nan"))})


def run_ray(job_dict: dict[str, Any], job: TrainJobConfig) -> Any:
    """Ray Train's TorchTrainer with `ray.num_workers` workers; checkpoints go to `out` as usual."""
    from pipelines.ray_runtime import ray_session

    r = job.ray
    with ray_session(r.get("address"), r.get("num_cpus")):
        return train_ray.fit(_ray_worker, {"job": job_dict}, num_workers=int(r.get("num_workers", 2)),
                             use_gpu=bool(r.get("use_gpu", False)), storage_path=f"{job.train.out}/ray",
                             cpus_per_worker=float(r.get("cpus_per_worker", 1)))


def describe(result: TrainResult | None, out: str) -> str:
    """One line for the console: the step reached, its loss and the newest checkpoint."""
    if result is None:
        return f"trained with Ray Train; checkpoints and metrics.jsonl in {out}"
    last = result.losses.get(result.step)
    loss = f", loss {last:.4f}" if last is not None else ""
    start = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    return f"trained to step {result.step}{loss}{start}; newest checkpoint {result.checkpoint}"
