"""The package people install: the studies ship inside it and run from any directory."""
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_list_covers_every_subpackage():
    """pyproject lists packages explicitly (simlab.scenarios lives outside simlab/): keep it whole."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"simlab"} | {f"simlab.{p.parent.name}" for p in (ROOT / "simlab").glob("*/__init__.py")}
    assert listed == found | {"simlab.scenarios"}


@pytest.mark.slow
def test_a_built_wheel_runs_the_registered_studies_from_any_directory(tmp_path):
    """Build the wheel, install it into a fresh venv (dependencies borrowed from this environment
    through a .pth file, so nothing is downloaded), then from an unrelated directory: `simlab list`
    finds the studies, and one quick claim runs, judged against the shipped baseline."""
    # a PYTHONPATH pointing at a source tree (with its egg-info) makes pip see simlab as installed
    env = {k: v for k, v in os.environ.items() if k not in ("SIMLAB_SCENARIOS", "SIMLAB_STORE", "PYTHONPATH")}
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300, env=env)
    wheel = next(wheels.glob("simlab-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    (site / "borrowed_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True,
                   capture_output=True, timeout=300, env=env)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "scenarios").mkdir(parents=True)
    (elsewhere / "scenarios" / "notes.py").write_text("raise SystemExit('an unrelated file')\n")
    simlab = venv / "bin" / "simlab"
    listed = subprocess.run([simlab, "list"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "claim dpo.fisher" in listed.stdout and str(venv) in subprocess.run(
        [py, "-c", "import simlab; print(simlab.__file__)"], cwd=elsewhere, env=env, capture_output=True,
        text=True).stdout
    checked = subprocess.run([simlab, "check", "dpo.fisher", "--workers", "1", "--no-progress", "--no-figures"],
                             cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "dpo.fisher" in checked.stdout and (elsewhere / "results" / "simlab.sqlite").is_file()
    refused = subprocess.run([simlab, "check", "dpo.fisher", "--workers", "1", "--no-progress", "--no-figures",
                              "--update-baseline"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "inside the installed simlab package" in refused.stderr
