"""Every lab follows the shape written in explorer/labs/__init__.py: its four modules exist, the lab module has
frozen settings with validate() and a run() that returns an Outcome, figures come from results only, and no lab
reaches into another lab."""
import ast
import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest

from explorer.labs.outcome import Outcome
from explorer.ui.nav import LABS

ROOT = Path(__file__).resolve().parents[1]
NAMES = [Path(lab.path).stem for lab in LABS]
SHARED_LAB_MODULES = {"outcome"}  # explorer/labs/ modules every lab may use


def imported_modules(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from .labs import attention`
    return names


def test_every_lab_module_is_registered():
    """explorer/labs/ holds the labs, their parts (``<lab>_<part>.py``, a long lab split in files) and the shared
    modules: nothing else."""
    on_disk = {p.stem for p in (ROOT / "explorer/labs").glob("*.py")} - {"__init__"} - SHARED_LAB_MODULES
    parts = {m for m in on_disk if any(m.startswith(n + "_") for n in NAMES)}
    assert on_disk - parts == set(NAMES), "a lab module without a page in explorer.ui.nav.LABS, or the other way round"


@pytest.mark.parametrize("name", NAMES)
def test_lab_has_its_five_files(name):
    for path in (f"explorer/labs/{name}.py", f"explorer/viz/{name}.py", f"explorer/ui/{name}.py", f"labs/{name}.py"):
        assert (ROOT / path).is_file(), path
    assert list((ROOT / "tests").glob(f"test_{name}*.py")), f"no tests/test_{name}*.py"


@pytest.mark.parametrize("name", NAMES)
def test_lab_module_has_settings_and_run(name):
    lab = importlib.import_module(f"explorer.labs.{name}")
    settings = [c for n, c in vars(lab).items() if n.endswith("Settings") and inspect.isclass(c)
                and c.__module__ == lab.__name__]
    assert settings, f"explorer.labs.{name} defines no ...Settings class"
    for cls in settings:
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, cls
        assert callable(getattr(cls, "validate", None)), f"{cls.__name__}.validate"
    assert inspect.isfunction(getattr(lab, "run", None)), f"explorer.labs.{name}.run"
    returns = inspect.signature(lab.run).return_annotation  # a string: the labs use postponed annotations
    assert returns is Outcome or str(returns).startswith("Outcome"), "run() returns an Outcome"


@pytest.mark.parametrize("name", NAMES)
def test_layers_import_one_way(name):
    lab, viz = imported_modules(ROOT / f"explorer/labs/{name}.py"), imported_modules(ROOT / f"explorer/viz/{name}.py")
    def other_lab(module: str) -> bool:
        *package, last = module.split(".")
        return ".".join(package) in ("explorer.labs", "explorer.viz") and last != name \
            and any(last == n or last.startswith(n + "_") for n in NAMES if n != name)

    assert not {m for m in lab | viz if other_lab(m)}, f"{name} imports another lab: {sorted(filter(other_lab, lab | viz))}"
    assert not {m for m in lab | viz if m.split(".")[0] == "streamlit" or m.startswith("explorer.ui")}, \
        "only explorer/ui/ and labs/ use streamlit"
    assert "torch" not in {m.split(".")[0] for m in viz}, f"explorer/viz/{name}.py draws results, it computes nothing"
    page = imported_modules(ROOT / f"labs/{name}.py")
    assert not {m for m in page if m.split(".")[0] in ("torch", "transformers", "tokenizers")}, \
        f"labs/{name}.py is a thin page: computing belongs in explorer/labs/{name}.py"


def test_only_ui_and_pages_import_streamlit():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "explorer").rglob("*.py")
                 if "ui" not in p.relative_to(ROOT / "explorer").parts[:1]
                 and any(m.split(".")[0] == "streamlit" for m in imported_modules(p))]
    assert not offenders
