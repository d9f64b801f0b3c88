"""scripts/floors.py: the constraints file that pins every dependency at the floor pyproject.toml states, which
.ci/run installs in .venv-floors. No network, no install."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("_floors", ROOT / "scripts" / "floors.py")
fl = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fl)


@pytest.mark.parametrize(
    ("requirement", "constraint"),
    [
        ("numpy>=2.4", "numpy==2.4"),
        ("ruff==0.17.6", "ruff==0.17.6"),
        ("opencv-python-headless >= 5.1.0.95", "opencv-python-headless==5.1.0.95"),
        ("pkg[extra,other]>=1.0,<2", "pkg==1.0"),
        ("pkg>=1.0; python_version < '3.12'", "pkg==1.0; python_version < '3.12'"),
        ("tensorboard", None),
        ("pkg<3", None),
    ],
)
def test_floor(requirement, constraint):
    assert fl.floor(requirement) == constraint


@pytest.mark.parametrize("requirement", ["numpy>>2.4", "numpy>=2.4,,", "-numpy>=2"])
def test_floor_rejects_what_it_cannot_parse(requirement):
    with pytest.raises(ValueError):
        fl.floor(requirement)


def test_floors_each_package_once_in_order_and_conflicts_refused():
    project = {
        "dependencies": ["torch>=2.13", "numpy>=2.4"],
        "optional-dependencies": {"a": ["onnx>=1.16", "tensorboard"], "b": ["Onnx>=1.16", "numpy>=2.4"]},
    }
    assert fl.floors({"project": project}) == ["torch==2.13", "numpy==2.4", "onnx==1.16"]
    project["optional-dependencies"]["c"] = ["NumPy>=2.5"]
    with pytest.raises(ValueError, match="numpy"):
        fl.floors({"project": project})


def test_pyproject_floors():
    """Every dependency of the package has a floor; torch's is the 2.13.0 .ci/run and the README install."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        pyproject = tomllib.load(f)
    constraints = fl.floors(pyproject)
    for requirement in pyproject["project"]["dependencies"]:
        assert fl.floor(requirement) in constraints
    assert "torch==2.13" in constraints
    assert fl.floors(pyproject, build=True) == ["setuptools==64"]


def test_main_prints_a_constraints_file(tmp_path, capsys):
    path = tmp_path / "pyproject.toml"
    path.write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\n'
        '[project]\nname = "x"\ndependencies = ["av>=18.1"]\n[project.optional-dependencies]\nweb = ["gradio>=6.31"]\n'
    )
    assert fl.main([str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["av==18.1", "gradio==6.31"]
    assert fl.main(["--build", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == ["setuptools==64"]
