"""The package as a stranger gets it: a wheel built from the sources, installed into a fresh
virtualenv, runs `ds2cli recipes`, trains the tiny recipe (a few hundred synthetic utterances,
tiny settings) and decodes, all from a folder outside the clone. The fresh venv sees this venv's
dependencies through a .pth file (no download); ds2cli itself must come from the wheel."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "exp", "build", "*.egg-info", "__pycache__", ".pytest_cache",
                              "work", "results")
SETS = ["data.options={num_train = 200, num_dev = 4, num_test = 4}", "data.stats_utterances=20", "data.jobs=2",
        'model.conv=[{channels = 16, kernel = [1, 11], stride = [1, 3]}]', "model.rnn_layers=1",
        "model.rnn_hidden=16", "train.epochs=1", "train.max_batch_seconds=20.0",
        "train.num_workers=0", "train.threads=1", "lm.order=2", 'lm.prune="0 0"']


def sh(*cmd, cwd=None, env=None, timeout=120) -> str:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_a_wheel_installs_and_runs_the_tiny_recipe_outside_the_clone(tmp_path):
    src = tmp_path / "src"  # build from a copy: the clone gets no build/ or egg-info
    shutil.copytree(REPO, src, ignore=SKIP)
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", src)
    wheel = next((tmp_path / "dist").glob("ds2cli-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "ds2cli/recipes/tiny.toml" in names and "ds2cli/data_prep/synth.py" in names
    assert {n.split("/")[0] for n in names} <= {"ds2cli", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)

    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # away from the clone and its PYTHONPATH: pip would take the clone's ds2cli.egg-info for an install
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel, cwd=tmp_path, env=clean)
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
    (site / "shared-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    outside = tmp_path / "outside"
    outside.mkdir()
    env = dict(clean)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OMP_NUM_THREADS"] = "1"
    where = sh(python, "-c", "import ds2cli; print(ds2cli.__file__)", cwd=outside, env=env).strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(REPO)

    ds2cli = venv / "bin" / "ds2cli"
    listed = sh(ds2cli, "recipes", cwd=outside, env=env)
    assert "tiny" in listed and "librispeech" in listed
    sets = [x for s in SETS for x in ("--set", s)]
    sh(ds2cli, "train", "--recipe", "tiny", "--exp-dir", "exp/tiny", "--quiet", *sets, cwd=outside, env=env,
       timeout=240)
    assert (outside / "exp" / "tiny" / "checkpoints" / "best.pt").is_file()
    assert len((outside / "exp" / "tiny" / "manifests" / "train.jsonl").read_text().splitlines()) >= 190
    out = sh(ds2cli, "decode", "--recipe", "tiny", "--exp-dir", "exp/tiny", "--manifest", "exp/tiny/manifests/test.jsonl",
             "--out", "hyp.jsonl", "--json", "--quiet", *sets, cwd=outside, env=env)
    meta = json.loads((outside / "hyp.jsonl").read_text().splitlines()[0])["_meta"]
    assert meta["method"] == "beam" and (outside / meta["lm"]).resolve() == (outside / "exp/tiny/lm/lm.bin").resolve()
    assert "decoded 4 of 4 utterances" in out
