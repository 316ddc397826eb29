from pipelines import cli, train_job
from train import checkpoint as ckpt


def test_vistune_train_then_instruction_tune_from_it(task_shards, tmp_path, capsys):
    shards = f"data.shards=[{','.join(str(p) for p in task_shards)}]"
    common = [shards, "train.steps=2", "train.batch_size=2", "train.progress=false", "data.num_workers=0"]
    assert cli.main(["train", f"out={tmp_path / 'pre'}", "data.tasks=[t2i]", *common]) == 0
    pre = ckpt.latest_checkpoint(tmp_path / "pre")
    assert pre.name == "step-00000002.pt" and "trained to step 2" in capsys.readouterr().out
    assert cli.main(["train", f"out={tmp_path / 'tune'}", f"init_from={pre}", *common]) == 0
    _, config = ckpt.load_generator(ckpt.latest_checkpoint(tmp_path / "tune"))
    assert config["train"]["init_from"] == str(pre) and config["data"]["shards"] == [str(p) for p in task_shards]


def test_train_config_errors_are_one_line_before_work(tmp_path, capsys):
    assert cli.main(["train", f"out={tmp_path}", "model.size=huge", "data.shards=[x]"]) == 2
    assert cli.main(["train", f"out={tmp_path}", "train.backend=slurm", "data.shards=[x]"]) == 2
    assert cli.main(["train", f"out={tmp_path}"]) == 2
    assert cli.main(["train", f"out={tmp_path}", "+train.lrr=1", "data.shards=[x]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4
    assert "model.size 'huge' not in" in err[0] and "train.backend 'slurm' not in ['local', 'ray']" in err[1]
    assert "no training data" in err[2] and "unknown train/data keys ['lrr']" in err[3]
    assert not (tmp_path / "checkpoints").exists()


def test_mixture_group_gets_the_data_roots():
    cfg = cli.compose("train", ["mixture=default", "data.roots=[/data/encode]"])
    from omegaconf import OmegaConf

    job = train_job.config_from_dict(OmegaConf.to_container(cfg, resolve=True))
    assert job.mixture["roots"] == ["/data/encode"] and "depth" in job.mixture["sources"]
    assert job.data_desc()["mixture"]["roots"] == ["/data/encode"]
