"""The README's copy-paste examples run as they are."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(name: str) -> str:
    text = README.read_text()
    match = re.search(
        rf"<!-- {name}:start -->\n```python\n(.*?)```\n<!-- {name}:end -->", text, re.DOTALL
    )
    assert match, f"README.md has no {name} block"
    return match.group(1)


def test_testing_example_passes_with_the_installed_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_example=readme_block("testing-example"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=3)


def test_end_to_end_example_passes_with_the_emulator_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_e2e=readme_block("e2e-example"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)
