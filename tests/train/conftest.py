import pytest

from tests.train.fixtures import write_task_shards


@pytest.fixture(scope="session")
def task_shards(tmp_path_factory):
    """Two shards of 8 samples (alternating depth / t2i) at 32 px."""
    return write_task_shards(tmp_path_factory.mktemp("task_shards"))


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test process: the suite runs on 2 cores with 2 xdist workers, and
    oversubscribed OpenMP threads spin-wait on each other (measured 6x slower steps under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
