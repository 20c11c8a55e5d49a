"""What ``python -m build`` makes: an sdist and a wheel, built without a warning, that pass
``twine check --strict``, hold the package with its data files and no tests, and install.

The sdist ships none of the test suite: the tests need the repository's scripts, fixtures and
example app, so they live there. The build runs on a copy of the working tree (what git would
commit), so that it writes nothing into the tree.
"""

from __future__ import annotations

import email
import email.message
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import flask_webpubsub

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STATIC = {"app.js", "index.html", "style.css"}


@dataclass(frozen=True)
class Built:
    output: str
    sdist: Path
    wheel: Path


def source_files() -> list[str]:
    """The files of the working tree that git would commit: tracked, or new and not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    # The byte-compiling notice that PYTHONDONTWRITEBYTECODE causes is about this machine, not
    # about the package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run(
        [PYTHON, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    [sdist] = (work / "dist").glob("*.tar.gz")
    [wheel] = (work / "dist").glob("*.whl")
    return Built(output, sdist, wheel)


def test_the_build_prints_no_warning(built: Built) -> None:
    assert [line for line in built.output.splitlines() if re.search(r"warn", line, re.I)] == []


def test_twine_check_passes_strictly(built: Built) -> None:
    result = subprocess.run(
        [PYTHON, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_is_the_package_version(built: Built) -> None:
    version = flask_webpubsub.__version__
    assert built.sdist.name == f"flask_webpubsub-{version}.tar.gz"
    assert built.wheel.name == f"flask_webpubsub-{version}-py3-none-any.whl"


def test_the_sdist_ships_the_package_and_none_of_the_tests(built: Built) -> None:
    with tarfile.open(built.sdist) as sdist:
        top = built.sdist.name.removesuffix(".tar.gz")
        names = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    package = {name for name in source_files() if name.startswith("flask_webpubsub/")}
    assert package <= names, sorted(package - names)
    assert {"LICENSE", "CHANGELOG.md", "docs/pypi.md", "pyproject.toml", "setup.cfg"} <= names
    assert [name for name in names if name.startswith(("tests", "example_app", "benchmarks"))
            or name == "conftest.py"] == []


def test_the_wheel_has_the_package_data_and_no_tests(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
    assert "flask_webpubsub/py.typed" in names
    assert {f"flask_webpubsub/emulator/static/{name}" for name in STATIC} <= names
    assert [name for name in names
            if not name.startswith(("flask_webpubsub/", "flask_webpubsub-"))] == []
    assert [name for name in names if "__pycache__" in name or name.endswith(".pyc")] == []


def test_the_wheel_metadata_describes_the_project(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata: email.message.Message = email.message_from_bytes(wheel.read(name))
    assert metadata["Version"] == flask_webpubsub.__version__
    assert metadata["Requires-Python"] == ">=3.10"
    # No address is claimed before the project has a public home.
    assert metadata.get_all("Project-URL") is None
    assert set(metadata.get_all("Provides-Extra") or ()) >= {"emulator", "identity", "server"}
    description = metadata.get_payload()
    assert isinstance(description, str)
    assert description.strip() == (ROOT / "docs" / "pypi.md").read_text().strip()


def test_the_wheel_installs_with_its_static_files(built: Built, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [PYTHON, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--target", str(target), str(built.wheel)],
        check=True, capture_output=True,
    )
    check = (
        "import importlib.resources, flask_webpubsub\n"
        f"assert flask_webpubsub.__file__.startswith({str(target)!r}), flask_webpubsub.__file__\n"
        "static = importlib.resources.files('flask_webpubsub.emulator') / 'static'\n"
        "print(sorted(p.name for p in static.iterdir()))\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", check], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == repr(sorted(STATIC))
