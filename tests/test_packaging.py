"""CareGraph installs from its checkout only: building a wheel (which would lack queries/,
static/ and the GraphiQL page) fails with an explanation instead of producing a broken one."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _backend():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    [path] = config["backend-path"]
    module_file = ROOT / path / f"{config['build-backend']}.py"
    spec = importlib.util.spec_from_file_location(config["build-backend"], module_file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("hook", ["build_wheel", "build_sdist"])
def test_building_a_distribution_is_refused_with_the_way_to_deploy(hook, tmp_path):
    with pytest.raises(RuntimeError, match=r"pip install -e \."):
        getattr(_backend(), hook)(str(tmp_path))


def test_editable_installs_are_setuptools_own():
    from setuptools import build_meta

    assert _backend().build_editable is build_meta.build_editable
