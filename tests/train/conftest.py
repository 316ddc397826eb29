import pytest

from tests.train.fixtures import write_task_shards


@pytest.fixture(scope="session")
def task_shards(tmp_path_factory):
    """Two shards of 8 samples (alternating depth / t2i) at 32 px."""
    return write_task_shards(tmp_path_factory.mktemp("task_shards"))
