"""`vistune <stage> [hydra overrides]`: one Hydra config per stage under pipelines/conf.

The stages, and how each builds, runs and reports, are the table in pipelines/stages.py; this
module composes the config, turns config mistakes into one stderr line (exit code 2) and runs.

    vistune demo size=512 out=/tmp/demo
    vistune demo --cfg job          # print the resolved config and exit
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from formats.config import ConfigError
from formats.cpus import passive_omp_wait
from pipelines.stages import STAGES, run_stage

__all__ = ["ConfigError", "STAGES", "check_value_types", "compose", "main"]


def run(stage: str, cfg: DictConfig) -> None:
    """Build stage `stage`'s job config from the composed `cfg`, run it and print its report."""
    conf, summary = run_stage(stage, OmegaConf.to_container(cfg, resolve=True))
    print(STAGES[stage].describe(conf, summary))


def compose(stage: str, overrides: list[str]) -> DictConfig:
    """Stage `stage`'s Hydra config with `overrides`; ConfigError for an unknown stage, key or group
    option, or a value of the wrong type (see check_value_types)."""
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; allowed: {sorted(STAGES)}")
    try:
        with initialize_config_module(config_module="pipelines.conf", version_base="1.3"):
            cfg = hydra_compose(config_name=STAGES[stage].config, overrides=overrides)
            if overrides:  # against the same config groups (preset=..., mixture=...) without value overrides
                groups = [o for o in overrides if _override_key(o) not in cfg]
                check_value_types(_plain_tree(hydra_compose(config_name=STAGES[stage].config, overrides=groups)),
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
    lines += [f"  {name:<10} {info.help}" for name, info in STAGES.items()]
    return "\n".join(lines)


_signals: list[int] = []  # SIGTERMs received during the current main()


class Cancelled(KeyboardInterrupt):
    """SIGTERM, raised where the stage is as a KeyboardInterrupt (what Ray's blocking calls let through), so
    that it unwinds as Ctrl-C does."""


@contextlib.contextmanager
def _cancel_on_sigterm() -> Iterator[None]:
    """SIGTERM raises Cancelled for the duration of the block (main thread only: where signals land)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _signals.append(signum)  # Ray's blocking calls re-raise a plain KeyboardInterrupt: remember which
        raise Cancelled()

    _signals.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """`vistune <stage> [key=value ...] [--cfg job]`; exit code 2 for a bad config (one stderr line),
    130 / 143 for a run cancelled with Ctrl-C / SIGTERM (one line: nothing partial is left under a
    final name, scratch files are removed, a rerun resumes)."""
    passive_omp_wait()  # before anything imports torch: see formats/cpus.py
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    stage, rest = argv[0], argv[1:]
    if stage == "mix" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"action={rest[0]}"] + rest[1:]  # `vistune mix stats` == `vistune mix action=stats`
    if stage == "import" and rest and "=" not in rest[0] and not rest[0].startswith("-"):
        rest = [f"format={rest[0]}"] + rest[1:]  # `vistune import nyuv2 ...` == `vistune import format=nyuv2 ...`
    if stage == "export" and "--lora-only" in rest:
        rest = [r for r in rest if r != "--lora-only"] + ["lora_only=true"]
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
        with _cancel_on_sigterm():
            run(stage, cfg)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (Cancelled)
        how = "SIGTERM" if _signals else "Ctrl-C"
        print(f"vistune {stage}: cancelled ({how}); completed output is kept, partial output removed; "
              f"rerun the same command to resume", file=sys.stderr)
        return 143 if _signals else 130
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
