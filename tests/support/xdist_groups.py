"""pytest-xdist: keep the tests that share an expensive fixture on one worker; hand the slow ones out first.

A plugin (``tests/conftest.py`` loads it). Each test gets a *group*: the widest non-function fixture it
uses outside the root conftest — a module-scoped stack (``tests/e2e/test_supervision.py``), a tier's
session fixture (``tests/e2e``'s ``local_stack``, the browser tier's API and Chromium) — or an explicit
``@pytest.mark.xdist_group(name)``. Tests without one are spread one by one.

xdist's own ``--dist loadgroup`` marks a group by renaming the test (``nodeid@group``), which pytest 9.2
no longer allows, so it silently spreads every group over all workers. Here each worker writes the
groups it collected to a file the controller passes it (``pytest_configure_node``), and the controller's
scheduler (``pytest_xdist_make_scheduler``, used for ``--dist loadgroup``) reads the unit of each test
from it. Collection order decides the order units are handed out (``--no-loadscope-reorder``): the e2e
and slow units are moved first, so the run does not end waiting on one of them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

GROUPS_DIR = "einvoice_groups_dir"  # the key in each worker's workerinput
_ATTR = "_einvoice_groups_dir"  # the controller's folder, on its config
#: Fixtures of the root conftest and of plugins are cheap per worker (one moto server each): they group nothing.
_ROOT_BASEIDS = ("", "tests")
_SCOPE_RANK = {"session": 0, "package": 1, "module": 2, "class": 3}


def fixture_group(item: pytest.Item) -> str | None:
    """The widest non-function fixture the item uses outside the root conftest (its ``baseid``)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    widest: tuple[int, str] | None = None
    for name in getattr(item, "fixturenames", ()):
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fixture = defs[-1]
        if fixture.scope == "function" or fixture.baseid in _ROOT_BASEIDS:
            continue
        candidate = (_SCOPE_RANK.get(fixture.scope, 9), fixture.baseid)
        widest = candidate if widest is None else min(widest, candidate)
    return widest[1] if widest else None


def group_of(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    if mark is not None:
        return str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    return fixture_group(item)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = {group_of(i) or i.nodeid for i in items if i.get_closest_marker("e2e") or i.get_closest_marker("slow")}

    def weight(item: pytest.Item) -> int:  # stable sort: a module keeps its own order
        if item.get_closest_marker("e2e"):
            return 0
        return 1 if (group_of(item) or item.nodeid) in slow else 2

    items.sort(key=weight)


@pytest.hookimpl(tryfirst=True)  # before xdist tells the controller its collection is complete
def pytest_collection_finish(session: pytest.Session) -> None:
    workerinput: dict[str, Any] | None = getattr(session.config, "workerinput", None)
    if not workerinput or GROUPS_DIR not in workerinput:
        return
    groups = {item.nodeid: g for item in session.items if (g := group_of(item)) is not None}
    path = Path(workerinput[GROUPS_DIR]) / f"{workerinput['workerid']}.json"
    path.with_suffix(".tmp").write_text(json.dumps(groups))
    path.with_suffix(".tmp").replace(path)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    config = node.config
    folder = getattr(config, _ATTR, None)
    if folder is None:
        folder = tempfile.mkdtemp(prefix="pytest-groups-")
        setattr(config, _ATTR, folder)
    node.workerinput[GROUPS_DIR] = folder


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FixtureGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """A unit per group the workers wrote; every other test is a unit of its own."""

        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:
                folder = getattr(self.config, _ATTR, None)
                found = sorted(Path(folder).glob("*.json")) if folder else []
                self._groups = json.loads(found[0].read_text()) if found else {}
            group = self._groups.get(nodeid)
            return f"group:{group}" if group is not None else nodeid

    return FixtureGroupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, _ATTR, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
