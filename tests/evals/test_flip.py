"""evals/flip.py: the mirror ensemble cancels a left-right bias and keeps the codecs' special values."""

import numpy as np
import pytest

from encode import codecs
from evals.flip import combine_depth, flip_ensemble
from evals.job import with_flip_ensemble
from evals.scoring import score_sample
from evals.protocols import get as protocol
from tests.evals.samples import eval_samples


def _biased_predictor(samples_by_key):
    """Answers from the truth, with a bias that points right in whatever image it is shown:
    normals tilted toward +x, depth scaled up toward the right edge. It tells a mirrored question
    from the original by its input, so it is what a model with a left-right bias would answer."""

    def predict(batch):
        out = []
        for s in batch:
            orig = samples_by_key[s.key]
            flipped = not np.array_equal(s.input, orig.input)
            codec = codecs.from_spec(s.meta["codec"])
            if s.task == "normals":
                n = orig.raw["normals"].copy()
                if flipped:
                    n = n[:, ::-1].copy()
                    n[..., 0] *= -1
                n[..., 0] += 0.4
                n /= np.linalg.norm(n, axis=-1, keepdims=True)
                out.append(codec.encode(n))
            else:
                d = orig.raw["depth"][:, ::-1] if flipped else orig.raw["depth"]
                ramp = np.exp(0.4 * (np.linspace(-1, 1, d.shape[1])))[None]
                out.append(codec.encode(np.where(np.isfinite(d), d * ramp, d).astype(np.float32)))
        return out

    return predict


@pytest.mark.parametrize("task, metric", [("normals", "mean_deg"), ("depth", "abs_rel")])
def test_mirror_ensemble_cancels_a_left_right_bias(task, metric):
    samples = [s for s in eval_samples(2) if s.task == task]
    predict = _biased_predictor({s.key: s for s in samples})
    proto = protocol("vistune")
    single = [score_sample(s, p, proto).metrics[metric] for s, p in zip(samples, predict(samples))]
    both = [score_sample(s, p, proto).metrics[metric] for s, p in zip(samples, flip_ensemble(predict)(samples))]
    assert min(single) > (5.0 if task == "normals" else 0.05)
    assert max(both) < 0.2 * min(single)  # normals: a tilt and its mirror renormalize to unequal lengths


def test_other_tasks_pass_through_and_the_job_wrapper_keeps_the_signature():
    samples = eval_samples(1)
    calls = []

    def predictor(model, batch, steps, guidance, seed, batch_size):
        calls.append(len(batch))
        return [s.target for s in batch]

    preds = with_flip_ensemble(predictor)(None, samples, 1, 1.0, 0, 8)
    assert calls == [len(samples) + 2]  # the depth and normals questions asked once more, mirrored
    for s, p in zip(samples, preds):
        assert (p is s.target) == (s.task not in ("depth", "normals"))


def test_depth_combination_rules():
    a = np.array([1.0, 4.0, np.inf, np.inf, np.nan, np.nan, 2.0], np.float32)
    b = np.array([4.0, 1.0, np.inf, 3.0, 5.0, np.nan, np.nan], np.float32)
    out = combine_depth(a, b)
    np.testing.assert_allclose(out[:2], [2.0, 2.0], rtol=1e-6)  # geometric mean
    assert np.isposinf(out[2])                                 # both no hit: no hit
    assert out[3] == 3.0 and out[4] == 5.0 and out[6] == 2.0   # a lone no-answer / no-hit defers
    assert np.isnan(out[5])
