"""`vistune train`: config dict -> dataclasses -> one of three launchers of `train.loop.train`.

    vistune train mixture=generation model.size=base                                   # pre-train
    vistune train mixture=default init_from=outputs/pre/checkpoints/step-00100000.pt   # instruction-tune
    vistune train data.shards=[outputs/encode/t2i/*.tar] data.tasks=[t2i]              # plain shard list
    torchrun --nproc_per_node=8 -m pipelines.cli train ...                                       # DDP
    vistune train train.backend=ray ray.address=auto ray.num_workers=16 ray.use_gpu=true         # Ray Train
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

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
        if self.mixture is not None:
            return MixtureStreamFactory(self.mixture)
        return ShardListStream(self.shards, seed=self.shard_seed)

    def data_desc(self) -> dict[str, Any]:
        """What the checkpoint records about the data (JSON-able)."""
        if self.mixture is not None:
            return {"mixture": self.mixture}
        return {"shards": list(self.shards), "seed": self.shard_seed}


def _pick(data: dict, schema: type, where: str) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise TypeError(f"unknown {where} keys {unknown}; allowed: {sorted(fields)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def config_from_dict(cfg: dict[str, Any]) -> TrainJobConfig:
    """The resolved Hydra config (plain dict) -> TrainJobConfig. TypeError on unknown keys."""
    cfg = dict(cfg)
    data, train = dict(cfg.pop("data", {})), dict(cfg.pop("train", {}))
    model, ray_cfg, mixture = cfg.pop("model", {}), cfg.pop("ray", {}), cfg.pop("mixture", None)
    out, init_from, resume = cfg.pop("out"), cfg.pop("init_from", None), cfg.pop("resume", "auto")
    if cfg:
        raise TypeError(f"unknown train config keys {sorted(cfg)}; allowed: data, init_from, mixture, model, out, "
                        f"ray, resume, train")
    backend = train.pop("backend", "local")
    optim = OptimConfig(**_pick(train.pop("optim", {}), OptimConfig, "train.optim"))
    shards, seed, roots = data.pop("shards", []) or [], data.pop("seed", 0), data.pop("roots", None)
    if mixture is not None and not mixture.get("roots"):
        mixture = {**mixture, "roots": roots}
    loop_fields = _pick({**train, **data}, TrainConfig, "train/data")
    tc = TrainConfig(out=out, init_from=init_from, resume=str(resume), optim=optim, **loop_fields)
    mc = GeneratorConfig(**_pick(model, GeneratorConfig, "model"))
    return TrainJobConfig(train=tc, model=mc, shards=tuple(shards), shard_seed=seed, mixture=mixture,
                          backend=backend, ray=dict(ray_cfg))


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
    from train import distributed
    from train.loop import train

    job = config_from_dict(config["job"])
    ctx = distributed.ray_context()
    result = train(job.train, job.model, job.stream_factory(), ctx, job.data_desc())
    import ray.train

    # report is a collective in Ray Train: every rank must call it (rank 0's metrics are kept)
    ray.train.report({"step": result.step, "loss": result.losses.get(result.step, float("nan"))})


def run_ray(job_dict: dict[str, Any], job: TrainJobConfig) -> Any:
    """Ray Train's TorchTrainer with `ray.num_workers` workers; checkpoints go to `out` as usual."""
    from pipelines.ray_runtime import ray_session
    from train import distributed

    r = job.ray
    with ray_session(r.get("address"), r.get("num_cpus")):
        return distributed.run_ray(_ray_worker, {"job": job_dict}, num_workers=int(r.get("num_workers", 2)),
                                   use_gpu=bool(r.get("use_gpu", False)), storage_path=f"{job.train.out}/ray",
                                   cpus_per_worker=float(r.get("cpus_per_worker", 1)))


def describe(result: TrainResult | None, out: str) -> str:
    if result is None:
        return f"trained with Ray Train; checkpoints and metrics.jsonl in {out}"
    last = result.losses.get(result.step)
    loss = f", loss {last:.4f}" if last is not None else ""
    start = f" (resumed from {result.resumed_from})" if result.resumed_from else ""
    return f"trained to step {result.step}{loss}{start}; newest checkpoint {result.checkpoint}"
