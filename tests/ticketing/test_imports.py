"""The apps import one way and in no cycle, and no module takes another's private names.

The contracts are import-linter's (pinned in requirements.txt), kept in pyproject.toml's [tool.importlinter]:
`.venv/bin/lint-imports` checks them by hand too. Its acyclic_siblings contract can't see a cycle between a
package's __init__ and a module inside it (they are not siblings), so the modules' own graph, from grimp (which
import-linter builds on), is searched for any cycle as well. Python has no notion of a private name, so a walk of
the modules' syntax finds those.

Each check has a negative control: the same check meets the fault it forbids (written into a copy of the apps, or
added to the graph) and reports it, so a check that silently stopped looking (a renamed option, an app left out)
can't pass.
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from django.conf import settings

APPS = ("ticketing", "cinemas", "bookings", "waiting")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def copy_of_the_apps(to):
    """The apps' Python files and the contracts, copied under `to`, to write faults into."""
    for app in APPS:
        shutil.copytree(settings.BASE_DIR / app, to / app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(settings.BASE_DIR / "pyproject.toml", to)
    return to


def written_into(root, path, line):
    with (root / path).open("a") as module:
        module.write(f"\n{line}\n")


def lint_imports(root):
    """`(passed, report)` of lint-imports over the apps under `root` (it imports them from its working directory)."""
    run = subprocess.run(
        [LINT_IMPORTS, "--config", "pyproject.toml", "--no-cache", "--no-logo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.returncode == 0, run.stdout + run.stderr


class TestTheContracts:
    def test_the_apps_keep_them(self):
        passed, report = lint_imports(settings.BASE_DIR)
        assert passed, report
        assert "Contracts: 5 kept, 0 broken." in report, report

    @pytest.mark.parametrize(
        ("path", "line", "reported"),
        [
            ("bookings/availability.py", "import waiting.models", "bookings.availability -> waiting.models"),
            # The cycle bookings had, put back: a service imports the tasks, which import the services.
            ("bookings/services/mail.py", "import bookings.tasks", "No cycles are allowed in bookings."),
            # The web plumbing waiting took from bookings' pages and API before it moved to ticketing.
            ("waiting/views.py", "import bookings.views", "waiting is not allowed to import bookings.views"),
            ("waiting/api.py", "import bookings.api", "waiting is not allowed to import bookings.api"),
            ("bookings/admin.py", "import cinemas.admin", "bookings is not allowed to import cinemas.admin"),
            ("cinemas/admin.py", "import ticketing.admin", "cinemas is not allowed to import ticketing.admin"),
        ],
        ids=[
            "bookings importing waiting breaks the layers",
            "an import cycle breaks acyclic_siblings",
            "waiting's pages importing bookings' pages breaks the web layers",
            "waiting's API importing bookings' API breaks the web layers",
            "bookings' admin importing the catalog's admin breaks the web layers",
            "an app's admin importing the site's admin breaks the web layers",
        ],
    )
    def test_a_fault_written_into_a_copy_of_the_apps_breaks_them(self, tmp_path, path, line, reported):
        root = copy_of_the_apps(tmp_path)
        written_into(root, path, line)
        passed, report = lint_imports(root)
        assert not passed
        assert reported in report, report


# --- Cycles between any two modules ------------------------------------------------------------------------


def the_apps_graph():
    return grimp.build_graph(*APPS, cache_dir=None)


def import_cycles(graph):
    """The graph's cycles: each set of two or more modules that import one another, directly or not, sorted.

    Tarjan's strongly connected components, iterative (a recursion as deep as the longest chain of imports).
    """
    order, lowest, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):
        order[module] = lowest[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        return module, iter(sorted(graph.find_modules_directly_imported_by(module)))

    for start in sorted(graph.modules):
        if start in order:
            continue
        path = [visit(start)]
        while path:
            module, imported = path[-1]
            for other in imported:
                if other not in order:
                    path.append(visit(other))
                    break
                if other in on_stack:
                    lowest[module] = min(lowest[module], order[other])
            else:
                path.pop()
                if path:
                    importer = path[-1][0]
                    lowest[importer] = min(lowest[importer], lowest[module])
                if lowest[module] == order[module]:
                    members = set()
                    while module not in members:
                        members.add(stack.pop())
                    on_stack -= members
                    if len(members) > 1:
                        cycles.append(sorted(members))
    return sorted(cycles)


class TestNoModuleCycle:
    def test_no_module_of_the_apps_imports_itself_through_others(self):
        graph = the_apps_graph()
        assert {"ticketing.settings", "bookings.services.holds", "waiting.services"} <= graph.modules
        assert import_cycles(graph) == []

    def test_a_cycle_through_a_packages_init_is_found(self):
        """What acyclic_siblings can't see: bookings.services (its __init__) imports errors, which would import it;
        every module of the package that imports errors (itself, or through holds) is on it, and the package
        imports them all: one cycle (prices imports none of them)."""
        graph = the_apps_graph()
        graph.add_import(importer="bookings.services.errors", imported="bookings.services")
        modules = (
            "",
            ".add_ons",
            ".box_office",
            ".cancellations",
            ".errors",
            ".gift_cards",
            ".holds",
            ".mail",
            ".my_bookings",
            ".payments",
            ".promo_codes",
            ".sales_tally",
            ".tickets",
        )
        assert import_cycles(graph) == [[f"bookings.services{module}" for module in modules]]

    def test_a_longer_cycle_is_found_whole(self):
        """The cycle bookings had: mail queued its task by importing the tasks, which import the services."""
        graph = the_apps_graph()
        graph.add_import(importer="bookings.services.mail", imported="bookings.tasks")
        cycle = [
            "bookings.services",
            "bookings.services.box_office",
            "bookings.services.cancellations",
            "bookings.services.mail",
            "bookings.services.my_bookings",
            "bookings.tasks",
        ]
        assert import_cycles(graph) == [cycle]


# --- Private names ----------------------------------------------------------------------------------------------


def modules_under(root):
    """`{dotted name: path}` of the apps' modules under `root`."""
    modules = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_names_taken(root):
    """`["path:line: name", ...]`: each place a module of the apps takes a private name of another one of them,
    by `from module import _name` or as `module._name` on a module it imported. Private names of classes and
    objects (`instance._state`) and of other packages are not looked at."""
    modules = modules_under(root)
    taken = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        bound = {}  # a name an import binds in this module -> the dotted name it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    head = alias.name.partition(".")[0]  # `import a.b` binds `a`; `import a.b as x` binds x to a.b
                    bound[alias.asname or head] = alias.name if alias.asname else head
            elif isinstance(node, ast.ImportFrom):
                source = node.module or ""
                if node.level:  # relative: from the package, or as many packages up as dots
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    source = f"{base}.{source}" if source else base
                for alias in node.names:
                    if source in modules and is_private(alias.name):
                        taken.append(f"{path.relative_to(root)}:{node.lineno}: {source}.{alias.name}")
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and is_private(node.attr):
                head, _, rest = (dotted(node.value) or "").partition(".")
                if head not in bound:
                    continue
                module = f"{bound[head]}.{rest}" if rest else bound[head]
                if module in modules and module != name:
                    taken.append(f"{path.relative_to(root)}:{node.lineno}: {module}.{node.attr}")
    return sorted(taken)


def dotted(node):
    """The dotted name an expression such as `a.b.c` spells, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


class TestNoPrivateNamesTaken:
    def test_no_module_of_the_apps_takes_another_ones_private_names(self):
        assert len(modules_under(settings.BASE_DIR)) > 100
        assert private_names_taken(settings.BASE_DIR) == []

    def test_a_private_name_imported_is_found(self, tmp_path):
        """What payments took from holds before: a private helper of another module."""
        root = copy_of_the_apps(tmp_path)
        written_into(root, "bookings/services/payments.py", "from bookings.services.holds import _held")
        lines = len((root / "bookings/services/payments.py").read_text().splitlines())
        assert private_names_taken(root) == [f"bookings/services/payments.py:{lines}: bookings.services.holds._held"]

    def test_a_private_name_read_off_a_module_is_found(self, tmp_path):
        root = copy_of_the_apps(tmp_path)
        written_into(root, "waiting/services.py", "from bookings import notices\nnotices._listener")
        written_into(root, "waiting/tasks.py", "import bookings.notices\nbookings.notices._pushing")
        lines = {
            path: len((root / path).read_text().splitlines()) for path in ("waiting/services.py", "waiting/tasks.py")
        }
        assert private_names_taken(root) == [
            f"waiting/services.py:{lines['waiting/services.py']}: bookings.notices._listener",
            f"waiting/tasks.py:{lines['waiting/tasks.py']}: bookings.notices._pushing",
        ]

    def test_a_modules_own_private_names_are_its_own(self, tmp_path):
        root = copy_of_the_apps(tmp_path)
        written_into(root, "bookings/notices.py", "import bookings.notices\nbookings.notices._listener")
        assert private_names_taken(root) == []
