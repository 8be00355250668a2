"""Production leaves sandbox/ out: nothing the site runs may import it or name a class in it."""

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("ticketing", "cinemas", "bookings", "waiting")


def sandbox_references(source):
    """Each import of the sandbox package in `source`, and each string naming a dotted path inside it."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] == "sandbox")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] == "sandbox":
            yield node.module
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("sandbox."):
            yield node.value  # a dotted path for import_string, e.g. a setting's default


def test_nothing_the_site_runs_refers_to_the_sandbox_service():
    found = [
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for package in SHIPPED
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        for name in sandbox_references(path.read_text())
    ]

    assert found == []


def test_the_check_sees_an_import_and_a_dotted_path_but_not_the_word():
    lines = ["import sandbox.payment_service", "from sandbox import payment_service", 'PATH = "sandbox.service.x"']

    assert list(sandbox_references("\n".join([*lines, 'name = "sandbox"']))) == [
        "sandbox.payment_service",
        "sandbox",
        "sandbox.service.x",
    ]
