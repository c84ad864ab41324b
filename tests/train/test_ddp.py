"""torchrun with 2 CPU processes (gloo): disjoint shards per rank, rank 0 alone saves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pillsnap.train.checkpoint import load_checkpoint

# Runs in each torchrun process: records what its rank trained on and what it saved.
WORKER = '''
import hashlib, json, os, sys
from pathlib import Path
from pillsnap.config import load_config
from pillsnap.train import classifier

rank = os.environ["RANK"]
seen, saves = [], []
real_save = classifier.save_atomic
def recording_save(state, path):
    saves.append(Path(path).name)
    return real_save(state, path)
classifier.save_atomic = recording_save
def hook(images, labels):
    for image in images:
        seen.append(hashlib.sha1(image.contiguous().numpy().tobytes()).hexdigest())
cfg = load_config(None, sys.argv[1:], env_file=None, environ={})
classifier.train_classifier(cfg, on_batch=hook)
Path(f"rank{rank}.json").write_text(json.dumps({"seen": seen, "saves": saves}))
'''


def test_two_gloo_ranks_train_disjoint_shards_and_only_rank0_saves(tiny_args: list[str],
                                                                   in_tmp: Path) -> None:
    (in_tmp / "worker.py").write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "worker.py", *tiny_args, "train.batch_size=4", "train.augment=none"],
        check=False, cwd=in_tmp, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((in_tmp / f"rank{r}.json").read_text()) for r in (0, 1)]
    # augment=none: a sample's pixels are the same whenever it is drawn, so distinct hashes
    # are distinct samples (random crops would make any two draws differ).
    seen = [set(r["seen"]) for r in ranks]
    assert len(seen[0]) == len(seen[1]) == 16  # 32 train crops split in two
    assert not seen[0] & seen[1]
    # after the last epoch rank 0 alone adds the open-set statistics to best.pt
    assert ranks[0]["saves"] == ["last.pt", "best.pt", "best.pt"] and ranks[1]["saves"] == []
    assert log_has_open_set(in_tmp)
    log = (in_tmp / "runs" / "t" / "train.log").read_text(encoding="utf-8")
    assert "decision: distributed=gloo (2 processes (CPU, no CUDA))" in log
    assert log.count("eval epoch 0:") == 1
    assert log.count("decision: train.augment=none") == 1
    # two processes of 4 double the global batch: the lr follows by the sqrt rule
    assert log.count("decision: train.lr=0.001414 (sqrt rule: global batch 8 (4 x 1 "
                     "accumulated x 2 processes); train.lr=0.001 is for 4)") == 1


def log_has_open_set(run: Path) -> bool:
    log = (run / "runs" / "t" / "train.log").read_text(encoding="utf-8")
    return log.count("open set: Gaussian statistics of 32 training crops") == 1


# Each rank records the batches it trains on; rank 0's mid-epoch last.pt is also kept as
# mid<step>.pt, to resume from one after the run has finished.
RESUME_WORKER = '''
import hashlib, json, os, shutil, sys
from pathlib import Path
from pillsnap.config import load_config
from pillsnap.train import classifier, midepoch

real_save = midepoch.save_atomic
def keeping_save(state, path):
    real_save(state, path)
    shutil.copy(path, Path(path).with_name(f"mid{state['step']}.pt"))
    return path
midepoch.save_atomic = keeping_save
seen = []
def hook(images, labels):
    seen.append(hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest())
cfg = load_config(None, sys.argv[1:], env_file=None, environ={})
classifier.train_classifier(cfg, on_batch=hook)
Path(f"{cfg.run.name}-rank{os.environ['RANK']}.json").write_text(json.dumps(seen))
'''


def _torchrun(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "worker.py", *args], check=False, cwd=cwd, env=env, capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_ranks_resume_a_mid_epoch_checkpoint_at_the_same_batch(tiny_args: list[str],
                                                                   in_tmp: Path) -> None:
    (in_tmp / "worker.py").write_text(RESUME_WORKER, encoding="utf-8")
    # 16 crops per rank in batches of 2: 8 steps. The clock trigger at 1e-9 minutes is due at
    # every step: rank 0's clock, shared with rank 1 through a broadcast each time.
    base = [*tiny_args, "train.batch_size=2", "train.checkpoint_every_minutes=1e-9",
            "run.deterministic=true", "models.classifier.open_set.fit_samples=0"]
    _torchrun([*base, "run.name=whole"], in_tmp)
    whole = in_tmp / "runs" / "whole"
    mid = load_checkpoint(whole / "mid3.pt")
    assert mid["position"]["batch"] == 3 and mid["position"]["world"] == 2
    assert len(mid["rng"]) == 2  # both ranks' random states, gathered for rank 0 to write
    assert not torch.equal(mid["rng"][0]["torch"], mid["rng"][1]["torch"])

    _torchrun([*base, "run.name=resumed", f"train.resume={whole / 'mid3.pt'}"], in_tmp)
    log = (in_tmp / "runs" / "resumed" / "train.log").read_text(encoding="utf-8")
    assert "(continuing at epoch 0 batch 3/8, step 3)" in log
    for rank in (0, 1):  # each rank trains the rest of its own shard, from the same batch
        before = json.loads((in_tmp / f"whole-rank{rank}.json").read_text())
        after = json.loads((in_tmp / f"resumed-rank{rank}.json").read_text())
        assert len(before) == 8 and after == before[3:]
    a, b = (load_checkpoint(in_tmp / "runs" / name / "last.pt") for name in ("whole", "resumed"))
    assert a["step"] == b["step"] == 8
    for key in ("model", "ema"):
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key
