"""The sdist and the wheel: what they contain, and that the wheel installs and imports.

The distributions are built once per module with ``python -m build`` (the sdist first,
then the wheel from the unpacked sdist, so a file missing from ``MANIFEST.in`` that the
wheel needs shows up here too). Expected contents are computed from the source tree,
so the checks stay right as templates, static files and translations are added.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_notify"
DATA_DIRS = ("templates", "static", "locale")
# Never shipped in a wheel, whatever the source tree holds.
FORBIDDEN_PREFIXES = ("tests/", "example_project/")


@dataclass(frozen=True)
class Dists:
    sdist: Path
    wheel: Path
    sdist_names: frozenset[str]  # paths inside the sdist, without the leading "<name>-<version>/"
    wheel_names: frozenset[str]


def _clean_env() -> dict[str, str]:
    """The environment for child processes, without what would make them see this checkout."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV", "PYTHONHOME", "PIP_REQUIRE_VIRTUALENV"):
        env.pop(name, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _run(args: list[str], *, cwd: Path) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_clean_env(), capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        pytest.fail(
            f"command failed with exit code {proc.returncode}: {' '.join(args)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


def _source_files(directory: Path) -> Iterable[Path]:
    """Files under ``directory`` that belong in a distribution (no bytecode, no dotfiles)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or "__pycache__" in relative.parts or path.suffix in {".pyc", ".pyo"}:
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue
        yield path


def _relative_to_root(paths: Iterable[Path]) -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in paths}


def _only(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {directory}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)], cwd=ROOT)
    sdist = _only(out, "*.tar.gz")
    wheel = _only(out, "*.whl")
    with tarfile.open(sdist) as archive:
        sdist_names = frozenset(
            name.split("/", 1)[1] for name in archive.getnames() if "/" in name and not name.endswith("/")
        )
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = frozenset(name for name in archive.namelist() if not name.endswith("/"))
    return Dists(sdist=sdist, wheel=wheel, sdist_names=sdist_names, wheel_names=wheel_names)


def test_wheel_ships_every_module_of_the_package(dists: Dists) -> None:
    # A subpackage without __init__.py would be dropped silently by packages.find.
    expected = _relative_to_root(path for path in _source_files(PACKAGE) if path.suffix == ".py")
    assert "django_notify/__init__.py" in expected
    assert expected - dists.wheel_names == set()


def test_wheel_ships_py_typed(dists: Dists) -> None:
    assert "django_notify/py.typed" in dists.wheel_names


def test_wheel_ships_every_migration(dists: Dists) -> None:
    expected = _relative_to_root(_source_files(PACKAGE / "migrations"))
    assert "django_notify/migrations/0001_initial.py" in expected
    assert expected - dists.wheel_names == set()


@pytest.mark.parametrize("directory", DATA_DIRS)
def test_wheel_ships_every_data_file(dists: Dists, directory: str) -> None:
    expected = _relative_to_root(_source_files(PACKAGE / directory))
    assert expected - dists.wheel_names == set()


def test_wheel_has_no_tests_or_example_project(dists: Dists) -> None:
    assert sorted(name for name in dists.wheel_names if name.startswith(FORBIDDEN_PREFIXES)) == []
    assert (
        sorted(name for name in dists.wheel_names if not name.startswith(("django_notify/", "django_notify_kit-")))
        == []
    )


def test_wheel_carries_the_license(dists: Dists) -> None:
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in dists.wheel_names)


def test_sdist_ships_docs_license_changelog_and_tests(dists: Dists) -> None:
    for name in ("README.md", "LICENSE", "CHANGELOG", "pyproject.toml", "MANIFEST.in"):
        assert name in dists.sdist_names
    expected_tests = {path.relative_to(ROOT).as_posix() for path in _source_files(ROOT / "tests")}
    assert "tests/test_packaging.py" in expected_tests
    assert expected_tests - dists.sdist_names == set()


def test_wheel_installs_into_a_fresh_venv_and_imports(dists: Dists, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(env_dir)], cwd=tmp_path)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([str(python), "-m", "pip", "install", "--quiet", str(dists.wheel)], cwd=tmp_path)
    # Run from tmp_path so the checkout's django_notify/ cannot shadow the installed one.
    location = _run(
        [str(python), "-c", "import django_notify, django_notify.conf; print(django_notify.__file__)"],
        cwd=tmp_path,
    ).strip()
    assert Path(location).resolve().is_relative_to(env_dir.resolve()), location
