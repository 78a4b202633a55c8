"""fastnn's version, and the source folder that hides an installed fastnn (``fastnn._install``)."""
import os
import re
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import fastnn
from fastnn import _install
from fastnn.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_version_is_the_installed_metadata_or_pyproject():
    pyproject = (ROOT / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    assert _install.FALLBACK_VERSION == declared
    assert fastnn.__version__ == _install.package_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", fastnn.__version__)


def test_version_falls_back_where_fastnn_is_not_installed(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert _install.package_version() == _install.FALLBACK_VERSION


def test_dash_dash_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"fastnn {fastnn.__version__}\n"


def _package(folder, *, source=False, built=False):
    """A minimal fastnn/ in ``folder``: a source checkout (setup.py beside it) and/or with a built extension."""
    package = folder / "fastnn"
    (package / "_kernels" / "cython").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if source:
        (folder / "setup.py").write_text("")
        (folder / "pyproject.toml").write_text("")
    if built:
        (package / "_kernels" / "cython" / ("_dense" + EXTENSION_SUFFIXES[0])).write_bytes(b"")
    return package


def test_a_source_folder_without_its_build_hiding_an_install_is_detected(tmp_path):
    src = _package(tmp_path / "src", source=True)
    site = _package(tmp_path / "site", built=True)
    other = _package(tmp_path / "other")
    path = [str(tmp_path / "src"), str(tmp_path / "other"), str(tmp_path / "site")]
    # The one `import fastnn` would find from another folder.
    assert _install.shadowed_install(src, path=path, finders=[]) == other.resolve()
    assert _install.shadowed_install(src, path=path[::2], finders=[]) == site.resolve()
    message = _install.shadowing_message(site, src)
    assert f"source folder {tmp_path / 'src'}" in message and str(site) in message
    assert "Run from another folder, or `pip install -e .`" in message


def test_no_warning_for_a_built_checkout_an_install_or_a_lone_checkout(tmp_path):
    site = _package(tmp_path / "site", built=True)
    built = _package(tmp_path / "built", source=True, built=True)
    lone = _package(tmp_path / "lone", source=True)
    unbuilt_install = _package(tmp_path / "wheel")  # installed without a compiler
    for package in (built, lone, unbuilt_install):
        path = [str(package.parent)] + ([str(site.parent)] if package is not lone else [])
        assert _install.shadowed_install(package, path=path, finders=[]) is None, package


def test_an_editable_install_found_by_its_finder_counts(tmp_path):
    src = _package(tmp_path / "src", source=True)
    editable = _package(tmp_path / "editable", source=True, built=True)

    class EditableFinder:  # what setuptools' editable installs put on sys.meta_path
        @staticmethod
        def find_spec(name, path=None, target=None):
            from importlib.util import spec_from_file_location

            return spec_from_file_location(name, editable / "__init__.py") if name == "fastnn" else None

    assert _install.shadowed_install(src, path=[str(src.parent)], finders=[EditableFinder]) == editable.resolve()


def test_python_dash_m_from_an_unbuilt_source_folder_says_why(tmp_path):
    # `pip install .`, then `python -m fastnn` in the source folder: here a copy of the
    # source without its extensions, and this checkout standing for the installed fastnn.
    if not _install.has_built_extensions(ROOT / "fastnn"):
        pytest.skip("this checkout's extensions are not built")
    src = tmp_path / "src"
    shutil.copytree(ROOT / "fastnn", src / "fastnn", ignore=shutil.ignore_patterns(
        "*.so", "*.pyd", "*.c", "__pycache__"))
    for name in ("setup.py", "pyproject.toml"):
        shutil.copy(ROOT / name, src / name)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="default")
    result = subprocess.run([sys.executable, "-m", "fastnn", "--version"], cwd=src, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("fastnn ")
    assert f"you are running from the source folder {src}" in result.stderr
    assert f"hides the fastnn installed at {ROOT / 'fastnn'}" in result.stderr
    assert result.stderr.count("you are running from the source folder") == 1
