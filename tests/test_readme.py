"""The README's commands are the ones CI runs: keep them in sync."""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    command = (ROOT / ".ci" / "test_command").read_text().strip()
    readme = (ROOT / "README.md").read_text()
    assert command in readme, f"README.md must show the CI test command: {command}"
    assert "bash .ci/test_command" in (ROOT / ".ci" / "run").read_text()


def test_readme_opens_with_two_commands():
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```bash")[1:3]
    assert len(blocks) == 2
    assert "texgen demo" in blocks[0]
    assert "pytest" in blocks[1]
