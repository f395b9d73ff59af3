"""The README's Python example runs, and its test command is the one CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if "pytest" in line and not line.lstrip().startswith("#")]
    assert ci and ci[0] in (ROOT / "README.md").read_text()


def test_readme_generated_blocks_are_current():
    """The scenario table and the expected verdicts are generated (`simlab readme`): stale blocks fail."""
    from simlab.report import update_readme

    assert update_readme(ROOT / "README.md", check_only=True) == [], "run `simlab readme` and commit README.md"
