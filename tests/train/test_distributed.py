"""DDP on 2 CPU processes (gloo, the torchrun environment); Ray Train is tests/pipelines/test_train_ray.py."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from pipelines import train_job
from tests.train.fixtures import train_job_dict as _job_dict
from train import checkpoint as ckpt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_rank(rank: int, world: int, port: int, job: dict, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train_job.run_local(train_job.config_from_dict(job))
    # every rank reports its loss curve and a fingerprint of its final weights
    from train.checkpoint import load_checkpoint

    state = load_checkpoint(result.checkpoint)
    fingerprint = sum(float(v.double().sum()) for v in state["model"].values())
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump({"losses": result.losses, "fingerprint": fingerprint, "resumed": str(result.resumed_from)}, f)


def _spawn_ddp(job: dict, out) -> list[dict]:
    mp.spawn(_ddp_rank, args=(2, _free_port(), job, str(out)), nprocs=2, join=True)
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.slow
def test_ddp_two_cpu_processes_train_in_step_and_resume(task_shards, tmp_path):
    job = _job_dict(task_shards, tmp_path, "train.steps=2")
    first = _spawn_ddp(job, tmp_path)
    assert first[0]["losses"] == first[1]["losses"]  # the loss is all-reduced: one global value
    state = torch.load(ckpt.latest_checkpoint(tmp_path), weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    pos = [r["data"]["positions"]["0"]["index"] for r in state["ranks"]]
    assert pos[0] != pos[1]  # each rank read its own part of the stream
    second = _spawn_ddp(_job_dict(task_shards, tmp_path, "train.steps=4"), tmp_path)
    assert second[0]["resumed"].endswith("step-00000002.pt") and sorted(second[0]["losses"]) == ["3", "4"]
    assert second[0]["fingerprint"] == second[1]["fingerprint"]  # ranks hold identical weights
    with pytest.raises(ckpt.CheckpointError, match="written by 2 ranks, this run has 1"):
        train_job.run_local(train_job.config_from_dict(_job_dict(task_shards, tmp_path, "train.steps=6")))

