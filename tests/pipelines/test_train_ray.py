"""Ray Train's TorchTrainer with 2 CPU workers (pipelines/train_ray.py) runs the same training loop."""

import json

import pytest
import torch

from pipelines import train_job
from tests.train.fixtures import train_job_dict, write_task_shards
from train import checkpoint as ckpt


@pytest.fixture(scope="module")
def task_shards(tmp_path_factory):
    """Two shards of 8 samples (alternating depth / t2i) at 32 px, as in tests/train."""
    return write_task_shards(tmp_path_factory.mktemp("task_shards"))


@pytest.mark.slow
def test_ray_train_torch_trainer_with_two_cpu_workers(task_shards, tmp_path):
    pytest.importorskip("ray.train.torch")
    job = train_job_dict(task_shards, tmp_path, "train.steps=2", "train.backend=ray", "ray.num_workers=2",
                         "ray.num_cpus=3", "ray.cpus_per_worker=1")
    train_job.run_ray(job, train_job.config_from_dict(job))
    state = torch.load(ckpt.latest_checkpoint(tmp_path), weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 2
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2] and all(r["loss"] > 0 for r in records)
