"""`vistune <stage> [hydra overrides]`: one Hydra config per stage under pipelines/conf.

    vistune demo size=512 out=/tmp/demo
    vistune demo --cfg job          # print the resolved config and exit
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf


def _run_demo(cfg: DictConfig) -> None:
    from pipelines import demo

    conf = demo.DemoConfig(**_plain(cfg, demo.DemoConfig))
    stats = demo.run(conf)
    width = max(len(k) for k in stats)
    print(f"{'round trip':<{width}}  error")
    for key, row in stats.items():
        text = (f"AbsRel {row['abs_rel']:.3%}  max {row['max_rel']:.3%}  finite->inf {row['finite_to_inf']:.2%}"
                f"  sky->finite {row['sky_to_finite']:.2%}" if "abs_rel" in row
                else f"mean {row['mean_deg']:.3f} deg  max {row['max_deg']:.3f} deg")
        print(f"{key:<{width}}  {text}")
    print(f"wrote {conf.out}/contact_sheet.png and {conf.out}/roundtrip.json")


def _ray_stage(job: str, run: str) -> Callable[[DictConfig], None]:
    """The runner of a Ray stage whose module `pipelines.<job>` has config_from_dict, `run` and describe:
    build and check the config, check that `out` is writable, then start (or join) Ray and run."""

    def runner(cfg: DictConfig) -> None:
        import importlib

        from formats.shards import ensure_output_dir
        from pipelines.ray_runtime import ray_session

        module = importlib.import_module(f"pipelines.{job}")
        try:
            conf = module.config_from_dict(OmegaConf.to_container(cfg, resolve=True))
        except TypeError as err:
            raise ConfigError(str(err)) from err
        ensure_output_dir(conf.out)  # before Ray starts
        with ray_session(cfg.ray.address, cfg.ray.num_cpus):
            summary = getattr(module, run)(conf)
        print(module.describe(summary))

    return runner


_run_render = _ray_stage("render_job", "run_render")
_run_encode = _ray_stage("encode_job", "run_encode")
_run_annotate = _ray_stage("annotate_job", "run_annotate")


def _run_mix(cfg: DictConfig) -> None:
    from pipelines import mix_job

    data = OmegaConf.to_container(cfg, resolve=True)
    action = data.get("action", "resolve")
    if action not in mix_job.ACTIONS:
        raise ConfigError(f"mix action {action!r}; allowed: {list(mix_job.ACTIONS)}")
    result = getattr(mix_job, action)(data)
    print(mix_job.describe(action, result))
    if action == "check":
        print(f"report: {data['out']}/check.json")


def _run_preview(cfg: DictConfig) -> None:
    from pipelines import mix_job

    print(f"wrote {mix_job.preview(OmegaConf.to_container(cfg, resolve=True))}")


def _run_train(cfg: DictConfig) -> None:
    from pipelines import train_job

    data = OmegaConf.to_container(cfg, resolve=True)
    try:
        job = train_job.config_from_dict(data)
    except TypeError as err:
        raise ConfigError(str(err)) from err
    result = train_job.run_ray(data, job) if job.backend == "ray" else train_job.run_local(job)
    print(train_job.describe(None if job.backend == "ray" else result, job.train.out))


def _run_eval(cfg: DictConfig) -> None:
    from pipelines import eval_job

    try:
        conf = eval_job.config_from_dict(OmegaConf.to_container(cfg, resolve=True))
    except TypeError as err:
        raise ConfigError(str(err)) from err
    print(eval_job.describe(eval_job.run_eval(conf)))


def _run_run(cfg: DictConfig) -> None:
    from pipelines import run_job

    data = OmegaConf.to_container(cfg, resolve=True)
    try:
        run_job.check_stage_configs(data, run_job.check_config(data))
    except run_job.RunError as err:
        raise ConfigError(str(err)) from err
    print(run_job.describe(run_job.run(data)))


# stage -> (config name, runner, one-line help). Only stages that exist are listed.
STAGES: dict[str, tuple[str, Callable[[DictConfig], None], str]] = {
    "run": ("run", _run_run, "the whole pipeline from one config (render ... eval), skipping completed work"),
    "demo": ("demo", _run_demo, "round-trip sample depth/normal maps through the codecs; write a contact sheet"),
    "render": ("render", _run_render, "render seeded procedural Blender scenes into raw shards with Ray"),
    "annotate": ("annotate", _run_annotate, "pseudo-label web images (masks, referring expressions) into raw shards"),
    "encode": ("encode", _run_encode, "raw render/annotate shards -> task shards with Parquet manifests, with Ray"),
    "mix": ("mix", _run_mix, "mixture over manifests: `mix` resolves, `mix stats` ratios, `mix check` duplicates"),
    "preview": ("preview", _run_preview, "contact sheets of random task samples (PNG + HTML)"),
    "train": ("train", _run_train, "pre-train or instruction-tune the generator on task shards / the mixture"),
    "eval": ("eval", _run_eval, "score checkpoints on held-out shards: decode, metrics, JSON + HTML report"),
}


class ConfigError(ValueError):
    """A bad stage name or config value, reported in one line before any work starts."""


def _plain(cfg: DictConfig, schema: type) -> dict[str, Any]:
    """Config -> kwargs for a dataclass, tuples for lists; unknown keys are an error."""
    data = OmegaConf.to_container(cfg, resolve=True)
    fields = {f.name for f in dataclasses.fields(schema)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; allowed: {sorted(fields)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}


def compose(stage: str, overrides: list[str]) -> DictConfig:
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; allowed: {sorted(STAGES)}")
    try:
        with initialize_config_module(config_module="pipelines.conf", version_base="1.3"):
            cfg = hydra_compose(config_name=STAGES[stage][0], overrides=overrides)
            if overrides:  # against the same config groups (preset=..., mixture=...) without value overrides
                groups = [o for o in overrides if _override_key(o) not in cfg]
                check_value_types(_plain_tree(hydra_compose(config_name=STAGES[stage][0], overrides=groups)),
                                  _plain_tree(cfg))
            return cfg
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(_one_line(str(err))) from err


def _override_key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~").split(".", 1)[0].split("@", 1)[0]


def _plain_tree(cfg: DictConfig) -> Any:
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except Exception:  # an interpolation that cannot resolve yet: the stage reports it itself
        return OmegaConf.to_container(cfg, resolve=False)


def check_value_types(default: Any, given: Any, key: str = "") -> None:
    """A value whose default is a number or a boolean must stay one (null is left to the stage).

    `vistune render n_scenes=abc` then fails naming the key, instead of deep inside the stage
    with Python's "'<' not supported between 'str' and 'int'".
    """
    if isinstance(default, dict) and isinstance(given, dict):
        for k in default.keys() & given.keys():
            check_value_types(default[k], given[k], f"{key}.{k}" if key else str(k))
        return
    if default is None or given is None:
        return
    if isinstance(default, bool):
        ok, want = isinstance(given, bool), "true or false"
    elif isinstance(default, int):
        ok, want = isinstance(given, int) and not isinstance(given, bool), "an integer"
    elif isinstance(default, float):
        ok, want = isinstance(given, (int, float)) and not isinstance(given, bool), "a number"
    else:
        return
    if not ok:
        raise ConfigError(f"{key} must be {want} (default {default!r}), got {given!r}")


def _one_line(message: str) -> str:
    """Hydra's first line, plus the choices it lists on later lines (`preset=huge` -> the presets)."""
    lines = message.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Available options in"):
            options = []
            for option in lines[i + 1:]:
                if not option.startswith("\t"):
                    break
                options.append(option.strip())
            return f"{lines[0]}; allowed: {options}"
    return lines[0]


def _usage() -> str:
    lines = ["usage: vistune <stage> [key=value ...] [--cfg job]", "", "stages:"]
    lines += [f"  {name:<10} {info[2]}" for name, info in STAGES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage == "mix" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"action={rest[0]}"] + rest[1:]  # `vistune mix stats` == `vistune mix action=stats`
    show_cfg = False
    if "--cfg" in rest:
        i = rest.index("--cfg")
        if rest[i + 1:i + 2] != ["job"]:
            print("vistune: error: only `--cfg job` is supported", file=sys.stderr)
            return 2
        show_cfg = True
        del rest[i:i + 2]
    try:
        cfg = compose(stage, rest)
        if show_cfg:
            print(OmegaConf.to_yaml(cfg, resolve=True), end="")
            return 0
        STAGES[stage][1](cfg)
    except ConfigError as err:
        print(f"vistune {stage}: config error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"vistune {stage}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a full disk, an output that became unwritable: errno and path say it
        print(f"vistune {stage}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
