"""Score checkpoints, or a directory of anyone's predictions, on held-out task shards; write
eval.json and report.html (the body of `vistune eval`).

    summary = run_eval(EvalJobConfig(checkpoint=("ck/step-00001000.pt",), data=("outputs/eval_shards",)))
    summary = run_eval(EvalJobConfig(predictions="preds/", data=("outputs/nyuv2",)))

Each checkpoint is loaded with `train.checkpoint.load_generator` and sampled with
`train.predict.predict` (square images at the model resolution). What a prediction depicts
follows `prediction_region`: `center` (the center square of the input, what the model trained on
vistune's square crops; the truth is scored on that window), `full` (the whole frame: the input is
resized keeping its aspect ratio and padded to the model's square, the padding is cut from the
answer, and its decoded values are brought back to the truth's resolution), or `auto` (full for
samples whose json records a protocol, i.e. imported benchmarks; center for vistune's own split).
With `predictions=DIR`, DIR holds one image per eval sample named `<sample key>.png|.jpg|.webp`,
scored through the same path (a missing or unreadable file is a counted `missing_prediction` /
`bad_prediction` failure naming it, or an error with `on_error=raise`). The oracle and baseline
rows are computed once. With `base`, the base model is evaluated too and the tuned (last) checkpoint is
compared with it on the generation samples (win rates, including the held-out flow loss).
Single process: generation is the cost and runs on one device; shard-parallel Ray wiring can
follow the render job's pattern when eval sets grow. `pipelines/eval_job.py` builds the config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from encode.resize import ResizePolicy, plan, resize_image
from encode.sample import TASK_GROUPS, TaskSample
from evals.comparison import compare_generation
from evals.data import iter_eval_samples, load_eval_samples, shard_paths
from evals.depth import PROTOCOLS
from evals.evaluator import ALL, EvalResult, Evaluator
from evals.failure import EvalFailure
from evals.reference import Baseline
from evals.report import write_report
from evals.flip import flip_ensemble
from evals.scoring import GENERATION_TASKS, HEADLINE, SCORED_TASKS
from evals.vae_floor import add_vae_oracle, own_vae, resolve_vae_dir
from formats.atomic import atomic_write_text
from formats.members import SampleError, read_rgb
from train.threads import use_cpu_threads

JSON_VERSION = 1
_STEP = re.compile(r"step[-_]?(\d+)")
PREDICTION_EXTS = (".png", ".jpg", ".jpeg", ".webp")
PREDICTION_REGIONS = ("auto", "full", "center")
ON_ERROR = ("skip", "raise")


@dataclass(frozen=True)
class EvalJobConfig:
    checkpoint: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    out: str = "outputs/eval"
    predictions: str | None = None         # a directory of <sample key>.png|jpg|webp (instead of checkpoints)
    prediction_region: str = "auto"        # auto | full | center (see the module docstring)
    on_error: str = "skip"                 # a missing / unreadable prediction file: skip (counted) | raise
    base: str | None = None                # the pre-instruction-tuning checkpoint (generation preserved)
    train_data: tuple[str, ...] = ()       # training shards for the baseline statistics (empty: the eval set)
    max_train_samples: int = 2000
    tasks: tuple[str, ...] | None = None   # None: every scored task present
    max_samples: int | None = None
    batch_size: int = 8
    steps: int = 20                        # sampling steps
    guidance: float = 3.0
    vision_steps: int | None = None        # sampling steps for vision tasks (None: `steps`); a model trained
    vision_guidance: float | None = None   # with p_t_one answers them in one step (None: `guidance`)
    select_steps: tuple[int, ...] = ()     # candidates for each vision task's steps, chosen on the val split
    select_guidance: tuple[float, ...] = ()  # candidates for its guidance (empty: vision_guidance / guidance)
    max_val_samples: int = 32              # val-split samples per vision task for the selection
    flip_ensemble: bool = False            # depth / normals answered as the mean of the image's and its
                                           # mirror's answers (evals/flip.py; twice their sampling cost)
    seed: int = 0
    device: str = "cpu"
    ema: bool = True
    depth_protocol: str = "vistune"        # for sources whose samples name none
    depth_protocols: dict[str, str] = field(default_factory=dict)  # source -> protocol (overrides)
    loss_draws: int = 4                    # flow-loss noise draws per generation sample; 0 disables
    examples_per_task: int = 4
    threads: int = 0                       # torch CPU threads (0: the CPUs this process is given)
    vae: str | None = None                 # a VAE or pipeline dir for the `vae-oracle` row (evals/vae_floor.py);
                                           # None: a latent model's own VAE (model.kind=diffusers), none for a pixel one

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"eval.threads must be >= 0 (0: the CPUs this process is given), got {self.threads}")
        if not self.checkpoint and not self.predictions:
            raise ValueError("eval: give at least one checkpoint (checkpoint=path or checkpoint=[a,b]) "
                             "or a directory of predictions (predictions=DIR)")
        if self.predictions and (self.checkpoint or self.base):
            raise ValueError("eval: give checkpoint= (and base=) or predictions=, not both")
        if self.prediction_region not in PREDICTION_REGIONS:
            raise ValueError(f"eval.prediction_region must be one of {list(PREDICTION_REGIONS)}, "
                             f"got {self.prediction_region!r}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"eval.on_error must be one of {list(ON_ERROR)}, got {self.on_error!r}")
        if not self.data:
            raise ValueError("eval: give the held-out shards (data=dir, file or glob, or a list of them)")
        bad = sorted(set(self.tasks or ()) - set(SCORED_TASKS))
        if bad:
            raise ValueError(f"eval.tasks {bad} are not scored tasks; allowed: {list(SCORED_TASKS)}")
        for name in [self.depth_protocol, *self.depth_protocols.values()]:
            if name not in PROTOCOLS:
                raise ValueError(f"eval: unknown depth protocol {name!r}; known: {sorted(PROTOCOLS)}")
        if any(n < 1 for n in self.select_steps) or (self.select_guidance and not self.select_steps):
            raise ValueError(f"eval.select_steps must be >= 1 and given with select_guidance, got "
                             f"{list(self.select_steps)} and {list(self.select_guidance)}")
        if self.vision_steps is not None and self.vision_steps < 1:
            raise ValueError(f"eval.vision_steps must be >= 1 or null, got {self.vision_steps}")
        if self.batch_size < 1 or self.steps < 1 or self.loss_draws < 0:
            raise ValueError(f"eval: need batch_size >= 1, steps >= 1, loss_draws >= 0; got "
                             f"{self.batch_size}, {self.steps}, {self.loss_draws}")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"eval.max_samples must be >= 1 or null, got {self.max_samples}")


def checkpoint_step(path: str, config: dict[str, Any]) -> int | None:
    """The training step of a checkpoint: from its file name (step-00001000.pt), else its config."""
    m = _STEP.search(Path(path).name)
    if m:
        return int(m.group(1))
    step = config.get("step")
    return int(step) if isinstance(step, (int, float)) else None


def check_same_model(configs: dict[str, dict[str, Any]]) -> None:
    """Checkpoints compared in one report must share their model config (one run, or a run and its base)."""
    items = list(configs.items())
    first_path, first = items[0]
    for path, cfg in items[1:]:
        if cfg.get("model") != first.get("model"):
            diff = sorted(k for k in set(cfg.get("model", {})) | set(first.get("model", {}))
                          if cfg.get("model", {}).get(k) != first.get("model", {}).get(k))
            raise ValueError(f"eval: checkpoint {path!r} has another model config than {first_path!r} "
                             f"(differs in {diff}); compare checkpoints of one run (and its base) only")


def trained_tasks(config: dict[str, Any]) -> list[str] | None:
    """The tasks a run trained on, where its config says (None: all)."""
    for scope in (config, config.get("train") or {}):
        if isinstance(scope, dict) and scope.get("tasks"):
            return list(scope["tasks"])
    return None


def flow_losses(model: Any, samples: list, seed: int, draws: int, batch_size: int) -> dict[str, float]:
    """Held-out flow-matching loss per generation sample: the model's own training objective
    (`Generator.forward`) on unseen data, averaged over `draws` seeded noise / timestep draws;
    the same draws for every model, so a comparison is paired."""
    import torch

    from train.data import prepare

    gen = [s for s in samples if s.task in GENERATION_TASKS]
    out: dict[str, list[float]] = {s.key: [] for s in gen}
    device = next(model.parameters()).device
    with torch.no_grad():
        for lo in range(0, len(gen), batch_size):
            chunk = [prepare(s, model.resolution, resize="resize") for s in gen[lo:lo + batch_size]]
            target = torch.from_numpy(np.stack([c["target"] for c in chunk])).to(device).float() / 127.5 - 1.0
            image = torch.from_numpy(np.stack([c["image"] for c in chunk])).to(device).float() / 127.5 - 1.0
            has = torch.tensor([c["has_image"] for c in chunk], device=device)
            for d in range(draws):
                g = torch.Generator(device=device).manual_seed(seed * 100003 + lo * 131 + d)
                per = model(target, image, has, [c["prompt"] for c in chunk], g)["per_sample"]
                for c, v in zip(chunk, per.cpu().tolist()):
                    out[c["key"]].append(float(v))
    return {k: float(np.mean(v)) for k, v in out.items() if v}


def _json_safe(x: Any) -> Any:
    """NaN / inf -> None (strict JSON), numpy scalars -> Python numbers."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _default_loader(path: str, device: str, ema: bool):
    from train.checkpoint import load_generator

    return load_generator(path, map_location=device, ema=ema)


def _default_config(path: str) -> dict[str, Any]:
    from train.checkpoint import load_checkpoint

    return load_checkpoint(path, map_location="cpu")["config"]


def _default_predict(model, samples, steps, guidance, seed, batch_size):
    from train.predict import predict

    return predict(model, samples, steps=steps, guidance=guidance, seed=seed, batch_size=batch_size)


def with_flip_ensemble(predictor: Callable) -> Callable:
    """`predictor` answering depth and normals samples by the mirror ensemble (evals/flip.py)."""

    def predict(model, samples, steps, guidance, seed, batch_size):
        return flip_ensemble(lambda batch: predictor(model, batch, steps, guidance, seed, batch_size))(samples)

    return predict


def run_eval(conf: EvalJobConfig, loader: Callable = _default_loader, predictor: Callable = _default_predict,
             config_reader: Callable = _default_config, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Evaluate every checkpoint (and the base); write eval.json and report.html under conf.out.

    `loader(path, device, ema) -> (model, run config)`, `predictor(model, samples, steps, guidance,
    seed, batch_size) -> images` and `config_reader(path) -> run config` default to the training
    checkpoint readers and `train.predict.predict` (tests inject stand-ins).
    """
    shard_paths(conf.data)  # a typo in data= is reported before any checkpoint is read
    if conf.predictions:
        return run_eval_predictions(conf, log)
    if conf.vae is not None:
        resolve_vae_dir(conf.vae)  # a missing VAE too
    use_cpu_threads(conf.threads)  # not the machine's cores: see formats/cpus.py
    if conf.flip_ensemble:
        predictor = with_flip_ensemble(predictor)
    paths = list(conf.checkpoint) + ([conf.base] if conf.base else [])
    check_same_model({p: config_reader(p) for p in paths})  # before any sampling: a mismatch wastes no GPU hour
    samples = load_eval_samples(conf.data, conf.tasks, conf.max_samples)
    if not samples:
        raise ValueError(f"eval: no eval-split samples of tasks {list(conf.tasks or SCORED_TASKS)} in {list(conf.data)}")
    baseline = _fit_baseline(conf, samples)
    log(f"eval: {len(samples)} samples from {len(shard_paths(conf.data))} shards; baseline from {baseline.origin}")
    results, base_result = _evaluate_all(conf, paths, samples, baseline, loader, predictor, log)
    comparison = compare_generation(results[-1], base_result) if base_result is not None else None
    report_results = results + ([base_result] if base_result is not None else [])
    return _write(conf, samples, report_results, comparison)


def run_eval_predictions(conf: EvalJobConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the images in `conf.predictions` (one per eval sample, by key); write eval.json and report.html."""
    reader = PredictionDir(conf.predictions, conf.on_error)
    samples = load_eval_samples(conf.data, conf.tasks, conf.max_samples)
    if not samples:
        raise ValueError(f"eval: no eval-split samples of tasks {list(conf.tasks or SCORED_TASKS)} in {list(conf.data)}")
    baseline = _fit_baseline(conf, samples)
    name = Path(conf.predictions).resolve().name or "predictions"
    ev = Evaluator(reader, samples, name=name, batch_size=conf.batch_size, depth_protocol=conf.depth_protocol,
                   depth_protocols=conf.depth_protocols, baseline=baseline, examples_per_task=conf.examples_per_task,
                   prediction_region=_region(conf.prediction_region), unrecorded_region="full")
    n_numbers = len(dict(ev.run()))
    res = ev.result
    unused = reader.unused({s.key for s in samples})
    res.info.update(predictions=str(conf.predictions), role="predictions", step=None,
                    unmatched_files=len(unused), unmatched_examples=unused[:5])
    n_fail = sum(1 for f in res.failures if f["predictor"] == "model")
    log(f"eval: {name}: {len(samples)} samples, {n_numbers} numbers, {n_fail} failed samples"
        + (f"; {len(unused)} files in {conf.predictions} name no eval sample (e.g. {unused[:3]})" if unused else ""))
    return _write(conf, samples, [res], None)


class PredictionDir:
    """predict_fn reading `<root>/<sample key>.png|.jpg|.jpeg|.webp` (decompression-bomb limit of
    formats.members). A missing or unreadable file is an EvalFailure the evaluator counts (reason
    `missing_prediction` / `bad_prediction`, the file named), or a ValueError under on_error=raise."""

    def __init__(self, root: str | Path, on_error: str = "skip") -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"eval: predictions={str(root)!r} is not a directory")
        self.on_error = on_error
        self.files: dict[str, Path] = {}
        for path in sorted(self.root.iterdir()):
            if path.suffix.lower() not in PREDICTION_EXTS or not path.is_file():
                continue
            if path.stem in self.files:
                raise ValueError(f"eval: two predictions for sample {path.stem!r} in {root}: "
                                 f"{self.files[path.stem].name} and {path.name}")
            self.files[path.stem] = path

    def unused(self, keys: set[str]) -> list[str]:
        """File names that name no eval sample (a typo or another split)."""
        return sorted(p.name for stem, p in self.files.items() if stem not in keys)

    def _fail(self, reason: str, message: str) -> EvalFailure:
        if self.on_error == "raise":
            raise ValueError(f"eval: {message} (on_error=raise; on_error=skip counts it as a failed sample)")
        return EvalFailure(reason, message)

    def read(self, sample: TaskSample) -> np.ndarray | EvalFailure:
        path = self.files.get(sample.key)
        if path is None:
            return self._fail("missing_prediction", f"no prediction for sample {sample.key!r} ({sample.task}): "
                                                    f"expected {self.root / sample.key}.png|.jpg|.webp")
        try:
            return read_rgb(path.read_bytes(), what=str(path))
        except (SampleError, OSError) as err:
            return self._fail("bad_prediction", f"cannot read prediction {path}: {err}")

    def __call__(self, batch: list[TaskSample]) -> list[np.ndarray | EvalFailure]:
        return [self.read(s) for s in batch]


def _region(name: str) -> str:
    return {"center": "center_square"}.get(name, name)


def letterbox_inputs(batch: list[TaskSample], full: list[bool], resolution: int | None) -> list[TaskSample]:
    """Samples whose prediction depicts the full frame get their input resized, aspect kept, and padded
    (black) to a `resolution` square (None: the input's long side), the model's native square input."""
    out = []
    for s, is_full in zip(batch, full):
        if is_full and s.input is not None and s.input.shape[0] != s.input.shape[1]:
            h, w = s.input.shape[:2]
            geom = plan(h, w, ResizePolicy(size=int(resolution or max(h, w)), mode="pad"))
            s = dataclasses.replace(s, input=resize_image(s.input, geom))
        out.append(s)
    return out


def unletterbox(pred: Any, frame_hw: tuple[int, int]) -> Any:
    """Cut the padding of a square answer to a letterboxed input: the part that depicts the
    `frame_hw` frame (its aspect ratio, rounded to whole pixels). Anything else is returned as is."""
    if not isinstance(pred, np.ndarray) or pred.ndim < 2 or pred.shape[0] != pred.shape[1] or not 8 <= pred.shape[0]:
        return pred
    geom = plan(frame_hw[0], frame_hw[1], ResizePolicy(size=pred.shape[0], mode="pad"))
    return pred[geom.pad_y:geom.pad_y + geom.out_h, geom.pad_x:geom.pad_x + geom.out_w]


def full_frame_predict(fn: Callable[[list], list], batch: list[TaskSample], full: list[bool],
                       resolution: int | None) -> list:
    """`fn` on `batch`, where `full` says so with the native full-frame handling: letterboxed input in,
    padding cut from the answer (the scorer then decodes it and resizes the values to the truth)."""
    preds = list(fn(letterbox_inputs(batch, full, resolution)))
    return [unletterbox(p, s.input.shape[:2]) if f and s.input is not None and s.input.shape[0] != s.input.shape[1]
            else p for s, f, p in zip(batch, full, preds)]


def _fit_baseline(conf: EvalJobConfig, samples: list) -> Baseline:
    """Trivial-predictor statistics from the training shards (at most max_train_samples per task), else
    the eval set. Per task: shards are read in task order, and one global cap filled up with the first
    tasks' samples and left the later ones (normals after depth) unfitted."""
    if not conf.train_data:
        return Baseline.fit(samples, origin="eval set (no training data given)")
    tasks = sorted({s.task for s in samples})
    train = iter_eval_samples(shard_paths(conf.train_data), tasks, with_raw=False, split="train")
    return Baseline.fit(_capped_per_task(train, conf.max_train_samples, tasks),
                        origin=f"{conf.max_train_samples} training samples per task at most of {list(conf.train_data)}")


def _capped_per_task(samples: Iterable, cap: int, tasks: list[str]) -> Iterator:
    """The first `cap` samples of every task; stops reading once every task of `tasks` has them."""
    seen = dict.fromkeys(tasks, 0)
    for s in samples:
        if seen.get(s.task, 0) < cap:
            seen[s.task] = seen.get(s.task, 0) + 1
            yield s
        if all(n >= cap for n in seen.values()):
            return


def _evaluate_all(conf: EvalJobConfig, paths: list[str], samples: list, baseline: Baseline, loader: Callable,
                  predictor: Callable, log: Callable[[str], None]) -> tuple[list[EvalResult], EvalResult | None]:
    """Every checkpoint, then the base (the last path, when given): (checkpoint results, base result)."""
    configs: dict[str, dict[str, Any]] = {}
    results: list[EvalResult] = []
    base_result: EvalResult | None = None
    val = validation_samples(conf)  # decoded once, shared by every checkpoint's sampling choice
    for i, path in enumerate(paths):
        model, configs[path] = loader(path, conf.device, conf.ema)
        check_same_model(configs)
        is_base = conf.base is not None and i == len(paths) - 1
        res, n_numbers = _evaluate(conf, model, path, configs[path], is_base, i == 0, samples, baseline, predictor,
                                   val)
        # the held-out flow loss only feeds the tuned-vs-base comparison: the last checkpoint and the base
        if conf.loss_draws and conf.base and (is_base or i == len(conf.checkpoint) - 1):
            _add_flow_losses(res, flow_losses(model, samples, conf.seed, conf.loss_draws, conf.batch_size))
        n_fail = sum(1 for f in res.failures if f["predictor"] == "model")
        log(f"eval: {res.name}: {n_numbers} numbers, {n_fail} failed samples")
        if is_base:
            base_result = res
        else:
            results.append(res)
        del model  # before the next checkpoint loads: one model on the device at a time
    return results, base_result


def _evaluate(conf: EvalJobConfig, model: Any, path: str, config: dict[str, Any], is_base: bool, references: bool,
              samples: list, baseline: Baseline, predictor: Callable, val: list) -> tuple[EvalResult, int]:
    """One model's EvalResult (with the oracle / baseline rows when `references`), its info filled
    in, and how many metric numbers it has."""
    chosen = choose_sampling(conf, model, predictor, baseline, val=val)
    ev = Evaluator(lambda batch: model_predictions(ev, predictor, model, batch, conf, chosen), samples,
                   name="base" if is_base else Path(path).name, batch_size=conf.batch_size,
                   depth_protocol=conf.depth_protocol, depth_protocols=conf.depth_protocols, baseline=baseline,
                   references=references, examples_per_task=conf.examples_per_task,
                   prediction_region=_region(conf.prediction_region))
    vae = conf.vae if conf.vae is not None else own_vae(model)  # eval.vae, else a latent model's own
    add_vae_oracle(ev, vae, getattr(model, "resolution", None), conf.device, conf.batch_size)
    metrics = dict(ev.run())
    res = ev.result
    res.info.update(checkpoint=str(path), step=checkpoint_step(path, config), steps=conf.steps,
                    guidance=conf.guidance, vision_steps=sampling(conf, "depth")[0],
                    vision_guidance=sampling(conf, "depth")[1], sampling_chosen_on_val=chosen or None,
                    seed=conf.seed, model=config.get("model"),
                    role="base" if is_base else "checkpoint", trained_tasks=trained_tasks(config))
    return res, len(metrics)


def sampling(conf: EvalJobConfig, task: str, chosen: dict | None = None) -> tuple[int, float]:
    """(steps, guidance) for samples of `task`: chosen on the val split, else the vision or general settings."""
    if chosen and task in chosen:
        return tuple(chosen[task])
    if TASK_GROUPS.get(task) == "vision":
        return (conf.vision_steps or conf.steps,
                conf.guidance if conf.vision_guidance is None else conf.vision_guidance)
    return conf.steps, conf.guidance


def model_predictions(ev: Evaluator, predictor: Callable, model: Any, batch: list, conf: EvalJobConfig,
                      chosen: dict | None = None) -> list:
    """The model's answers for `batch`, full-frame samples (ev.region_of) through `full_frame_predict`."""
    full = [ev.region_of(s) == "full" for s in batch]
    return full_frame_predict(lambda b: predict_by_group(predictor, model, b, conf, chosen), batch, full,
                              getattr(model, "resolution", None))


def predict_by_group(predictor: Callable, model: Any, batch: list, conf: EvalJobConfig,
                     chosen: dict | None = None) -> list:
    """Predictions for `batch`, each sample sampled with its task's (steps, guidance); one call when all agree."""
    groups: dict[tuple[int, float], list[int]] = {}
    for i, s in enumerate(batch):
        groups.setdefault(sampling(conf, s.task, chosen), []).append(i)
    out: list = [None] * len(batch)
    for (steps, guidance), idx in groups.items():
        preds = predictor(model, [batch[i] for i in idx], steps, guidance, conf.seed, conf.batch_size)
        for i, pred in zip(idx, preds):
            out[i] = pred
    return out


def validation_samples(conf: EvalJobConfig) -> list:
    """Up to `max_val_samples` val-split samples of every vision task (read once per eval run)."""
    if not conf.select_steps:
        return []
    per_task: dict[str, list] = {}
    for s in load_eval_samples(conf.data, conf.tasks, None, split="val"):
        if TASK_GROUPS.get(s.task) == "vision" and len(per_task.setdefault(s.task, [])) < conf.max_val_samples:
            per_task[s.task].append(s)
    return [s for samples in per_task.values() for s in samples]


# The metrics a sampling choice weighs per task (else the headline alone). Depth has two headline
# numbers that a setting can trade against each other: measured on the smoke model, 4 steps at
# guidance 3 beat one step on AbsRel (0.83 vs 0.84) while delta1 fell from 0.219 to 0.143; chosen by
# AbsRel alone it reported the worse model. The choice is the best mean rank over these metrics.
SELECT_METRICS: dict[str, list[tuple[str, bool]]] = {"depth": [("abs_rel", True), ("delta1", False)]}


def best_candidate(options: list[tuple[list[float], tuple[int, float]]], metrics: list[tuple[str, bool]]):
    """The candidate with the best mean rank over `metrics` (ties: the first metric, then fewer steps)."""
    def rank(i: int, j: int) -> int:  # candidates strictly better than candidate j on metric i
        lower = metrics[i][1]
        vj = options[j][0][i]
        return sum((v[i] < vj) if lower else (v[i] > vj) for v, _ in options)

    def key(j: int):
        first = options[j][0][0] if metrics[0][1] else -options[j][0][0]
        return (sum(rank(i, j) for i in range(len(metrics))), first, options[j][1])

    return options[min(range(len(options)), key=key)][1]


def choose_sampling(conf: EvalJobConfig, model: Any, predictor: Callable, baseline: Baseline,
                    log: Callable[[str], None] = print, val: list | None = None) -> dict[str, tuple[int, float]]:
    """Per vision task, the (steps, guidance) candidate that scores best on the val split: by its
    headline metric, or the best mean rank over SELECT_METRICS where a task has several.

    Never on the eval split: a setting picked on the samples it is scored on would report the luck
    of the pick as skill. Empty when no candidates are configured or the data has no val split.
    """
    if not conf.select_steps:
        return {}
    val = validation_samples(conf) if val is None else val
    if not val:
        log("eval: no val-split samples (encode.settings.val_fraction=0): sampling settings not selected")
        return {}
    guidances = conf.select_guidance or (sampling(conf, "depth")[1],)
    scores: dict[str, list[tuple[float, tuple[int, float]]]] = {}
    for steps in conf.select_steps:
        for guidance in guidances:
            fn = lambda b, st=steps, g=guidance: predictor(model, b, st, g, conf.seed, conf.batch_size)  # noqa: E731
            ev = Evaluator(lambda b, fn=fn: full_frame_predict(fn, b, [ev.region_of(s) == "full" for s in b],
                                                               getattr(model, "resolution", None)),
                           val, batch_size=conf.batch_size, depth_protocol=conf.depth_protocol,
                           depth_protocols=conf.depth_protocols, baseline=baseline, references=False,
                           prediction_region=_region(conf.prediction_region))
            list(ev.run())
            for task, metrics in ev.result.metrics.get("model", {}).items():
                values = [metrics.get(ALL, {}).get(metric) for metric, _ in SELECT_METRICS.get(task, [HEADLINE[task]])]
                if all(v is not None and math.isfinite(v) for v in values):
                    scores.setdefault(task, []).append((values, (steps, guidance)))
    chosen = {task: best_candidate(options, SELECT_METRICS.get(task, [HEADLINE[task]])) for task, options in scores.items()}
    log(f"eval: sampling chosen on {len(val)} val samples: {chosen}")
    return chosen


def _add_flow_losses(res: EvalResult, losses: dict[str, float]) -> None:
    """Each model record of a generation sample gets its held-out flow loss (for the win rates)."""
    for r in res.records:
        if r["predictor"] == "model" and r["key"] in losses:
            r["flow_loss"] = losses[r["key"]]


def _write(conf: EvalJobConfig, samples: list, results: list[EvalResult],
           comparison: dict[str, Any] | None) -> dict[str, Any]:
    """eval.json (strict JSON, written atomically) and report.html under conf.out; the run summary."""
    out = Path(conf.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"version": JSON_VERSION, "data": list(conf.data), "n_samples": len(samples),
           "tasks": sorted({s.task for s in samples}), "results": [r.to_json() for r in results],
           "comparison": comparison}
    atomic_write_text(out / "eval.json", json.dumps(_json_safe(doc), indent=1, sort_keys=True, allow_nan=False))
    report = write_report(results, out, comparison)
    return {"json": out / "eval.json", "report": report, "results": results, "comparison": comparison}
