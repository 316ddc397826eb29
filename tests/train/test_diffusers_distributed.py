"""model.kind=diffusers under DDP (gloo, 2 CPU processes) and Ray Train (2 workers), through `vistune train`'s config."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

pytest.importorskip("diffusers")
pytest.importorskip("peft")

from pipelines import train_job  # noqa: E402
from tests.train.diffusers_fixtures import write_sd_pipeline  # noqa: E402
from tests.train.fixtures import train_job_dict  # noqa: E402
from train import checkpoint as ckpt  # noqa: E402


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    return write_sd_pipeline(tmp_path_factory.mktemp("sd") / "sd")


def _job(task_shards, out, sd_dir, *extra):
    return train_job_dict(task_shards, out, "train.steps=2", "model.kind=diffusers", f"model.path={sd_dir}",
                          "model.train=lora", "model.lora_rank=4", *extra)


def _rank(rank: int, world: int, port: int, job: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train_job.run_local(train_job.config_from_dict(job))
    state = ckpt.load_checkpoint(result.checkpoint)
    fingerprint = sum(float(v.double().sum()) for v in state["model"].values())
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"losses": result.losses, "fingerprint": fingerprint}, f)


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_a_lora_step(task_shards, sd_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, port, _job(task_shards, tmp_path, sd_dir), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 2
    state = torch.load(ckpt.latest_checkpoint(tmp_path), weights_only=True)
    assert state["world_size"] == 2 and all("lora_" in k or ".conv_in." in k for k in state["model"])
    assert ranks[0]["fingerprint"] == ranks[1]["fingerprint"]  # ranks hold identical trainable weights


@pytest.mark.slow
def test_ray_train_two_workers_run_a_diffusers_step(task_shards, sd_dir, tmp_path):
    pytest.importorskip("ray.train.torch")
    job = _job(task_shards, tmp_path, sd_dir, "train.backend=ray", "ray.num_workers=2", "ray.num_cpus=3",
               "ray.cpus_per_worker=1")
    train_job.run_ray(job, train_job.config_from_dict(job))
    state = torch.load(ckpt.latest_checkpoint(tmp_path), weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 2 and state["config"]["model"]["kind"] == "diffusers"
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all(r["loss"] > 0 for r in records)
