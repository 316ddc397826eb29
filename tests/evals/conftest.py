import pytest

from tests.evals.samples import eval_samples, write_shard
from evals.data import load_eval_samples


@pytest.fixture(scope="session")
def eval_shard(tmp_path_factory):
    """One eval shard of 2 scenes x 7 tasks, written with ShardWriter."""
    return write_shard(eval_samples(2), tmp_path_factory.mktemp("eval_shard"))


@pytest.fixture
def samples(eval_shard):
    """The shard read back through iter_samples / from_sample (fresh objects per test)."""
    return load_eval_samples([eval_shard])

from tests.train.conftest import one_torch_thread  # noqa: E402,F401  (autouse: one intra-op thread per xdist worker, as in tests/train)
