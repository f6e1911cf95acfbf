"""Shared test fixtures and the markers by cost.

- `../shared` (goldens, videos) beside the repository: `shared_dir`.
- `seeded_weights`: SAM2PLUS_WEIGHTS=seeded and the app's work folder under the test's tmp_path.
- `app_server`: one app (default limits, seeded weights) on 127.0.0.1 for the whole test session; `server_models`:
  its model provider (real models unless a test gives it stand-ins, for that test only).
- `ray_cluster`: one local Ray cluster for the whole test session.
- Hypothesis: a small profile by default, the full counts when CI=true.
- Markers by cost, set from what a test uses (its code, its fixtures' code and the test modules' helpers it
  calls): `model`, `server`, `browser`, `subprocess`, `cluster`, `parity`; `slow` is their union. The
  developer loop is `pytest -m "not slow"`.
"""

from __future__ import annotations

import atexit
import inspect
import os
import shutil
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable

import pytest
import torch
from hypothesis import HealthCheck, settings

from sam2_plus.config import MODEL_ALIASES, MODEL_CONFIG_FILES

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
SHARED = REPO.parent / "shared"

# Gradio's cache of uploads and served files, private to this test run: the app's cache cleaning
# (delete_cache) in another test run on the same machine deleted this run's uploads mid-job (seen here).
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="sam2plus-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)


def _import_anyio_now() -> None:
    """anyio imports its parts on first use (a lazy importer), and pytest rewrites the asserts of a plugin's
    modules (anyio is one) as they are imported. An app served by a test would import them in a server thread
    while this thread imports too, and Python 3.11's parser is not safe in two threads at once: once in about a
    dozen runs a served file was cut short (`SystemError: AST constructor recursion depth mismatch` in
    `anyio.open_file`). Imported here, before any server starts, nothing is left to parse in a server thread."""
    import anyio
    import anyio.abc

    for module in (anyio, anyio.abc):
        for name in dir(module):
            getattr(module, name)


_import_anyio_now()

# --------------------------------------------------------------------------- Hypothesis

_HYPOTHESIS = dict(derandomize=True, database=None,
                   deadline=None,  # timing varies on a shared CPU; the example counts bound a run
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=400, **_HYPOTHESIS)
settings.register_profile("dev", max_examples=40, **_HYPOTHESIS)
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")

# --------------------------------------------------------------------------- markers by cost

COSTS = {
    "model": "builds a real-size network (an official SAM 2.1 / SAM 2++ config at 1024x1024)",
    "server": "serves the app on 127.0.0.1",
    "browser": "drives Chromium through Playwright",
    "subprocess": "starts a Python process of its own",
    "cluster": "starts a local Ray cluster",
    "parity": "runs the parity goldens of ../shared/golden",
}
# The names (in a test's code or its fixtures') that show each cost, besides real model names for `model`.
COST_NAMES = {
    "server": {"build_demo", "app_server"},
    "browser": {"sync_playwright", "open_page"},
    "subprocess": {"subprocess", "Popen"},
    "cluster": {"ray_cluster"},
    "parity": {"run_case"},
}
REAL_MODEL_NAMES = frozenset(MODEL_CONFIG_FILES) | frozenset(MODEL_ALIASES)


def pytest_configure(config: pytest.Config) -> None:
    for name, what in COSTS.items():
        config.addinivalue_line("markers", f"{name}: {what} (set by tests/conftest.py; part of slow)")


def _mentions_real_model(value: Any) -> bool:
    if isinstance(value, str):
        return value in REAL_MODEL_NAMES
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_mentions_real_model(v) for v in value)
    return False


class _Uses:
    """The names and constants reachable from a test: its code, its fixtures' code, and the code of the
    functions defined in tests/ that these call (followed through module globals)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.real_model = False
        self._seen: set[int] = set()

    def add_function(self, func: Any) -> None:
        func = inspect.unwrap(getattr(func, "__func__", func))
        code = getattr(func, "__code__", None)
        if code is not None:
            self._add_code(code, getattr(func, "__globals__", {}))

    def _add_code(self, code: types.CodeType, module_globals: dict) -> None:
        if id(code) in self._seen:
            return
        self._seen.add(id(code))
        self.names.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self._add_code(const, module_globals)
            elif _mentions_real_model(const):
                self.real_model = True
        for name in code.co_names:
            value = module_globals.get(name)
            if _mentions_real_model(value):
                self.real_model = True
            elif callable(value) and _defined_in_tests(inspect.unwrap(value)):
                self.add_function(value)


def _defined_in_tests(value: Any) -> bool:
    try:
        source = inspect.getsourcefile(value)
    except TypeError:
        return False
    return source is not None and Path(source).resolve().parent == TESTS


def _is_parity_case(value: Any) -> bool:
    """A parity case's folder (../shared/golden/cases/*, tests/parity_cases/*): it runs a real-size model."""
    return isinstance(value, Path) and (value / "case.json").is_file()


def costs_of(item: pytest.Item) -> set[str]:
    uses = _Uses()
    uses.add_function(getattr(item, "obj", None))
    for defs in item._fixtureinfo.name2fixturedefs.values():
        uses.add_function(defs[-1].func)
    params = list(getattr(getattr(item, "callspec", None), "params", {}).values())
    found = {cost for cost, names in COST_NAMES.items() if names & (uses.names | set(item.fixturenames))}
    if any(_is_parity_case(v) for v in params):
        found |= {"parity", "model"}
    if uses.real_model or any(_mentions_real_model(v) for v in params):
        found.add("model")
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        costs = costs_of(item)
        for cost in sorted(costs):
            item.add_marker(cost)
        if costs:
            item.add_marker("slow")


# --------------------------------------------------------------------------- fixtures


def needs_cuda(test):
    """A CUDA test: marked `cuda` (bench/gpu_check.py runs them with `-m cuda`) and skipped without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")(test))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "golden").is_dir():
        pytest.skip("../shared is not present (goldens and test videos live there)")
    return SHARED


@pytest.fixture
def seeded_weights(monkeypatch, tmp_path) -> None:
    """Stand-in weights (SAM2PLUS_WEIGHTS=seeded) and the app's work folder in this test's tmp_path."""
    monkeypatch.setenv("SAM2PLUS_WEIGHTS", "seeded")
    monkeypatch.setenv("SAM2PLUS_APP_TMP", str(tmp_path / "app-tmp"))


SERVER_MODELS: list[Any] = []  # the shared app's model provider, once it runs


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterable[str]:
    """The URL of one app with the default limits and seeded weights, shared by the tests that need nothing
    else of it (tests that change the limits or the heartbeat launch their own); its models: `server_models`."""
    from app_fakes import StandInModels, launch_app
    from sam2_plus.app.settings import AppLimits

    models = StandInModels()
    with pytest.MonkeyPatch.context() as patch, \
            launch_app(AppLimits(), patch, tmp_path_factory.mktemp("shared-app-tmp"), models=models) as url:
        SERVER_MODELS.append(models)
        yield url
        SERVER_MODELS.remove(models)


@pytest.fixture
def server_models(app_server):
    """The shared app's model provider (app_fakes.StandInModels): a test gives it stand-ins with `use(...)`; the
    real models come back after the test (and the real finder, after `use_finder(...)`)."""
    models = SERVER_MODELS[0]
    yield models
    models.use()
    models.use_finder()
    models.use_detector()


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray on this machine with as many CPUs as this process has threads (at least 2), started once for the
    test session and stopped at its end (the batch uses this connection)."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-cluster.txt)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=max(2, torch.get_num_threads()), num_gpus=0, include_dashboard=False,
                 log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()
