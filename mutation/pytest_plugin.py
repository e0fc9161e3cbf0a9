"""pytest plugin for mutation runs (``-p mutation.pytest_plugin`` in ``[tool.mutmut]``).

* The ``oauth_cc-mutation`` Hypothesis profile, registered before ``tests/properties/conftest.py``
  loads the profile that ``HYPOTHESIS_PROFILE`` names (``make mutation`` names this one). Every
  mutant runs the property tests again, so they get fewer examples than in ``make test``, and a
  fixed seed, so a mutant is killed or survives the same way in every run.
* Fastest tests first while a mutant is under test: mutmut stops at the first failure (``-x``),
  so running the quick, focused tests before the slow ones (property tests, the HTTP fuzz, the
  worker and fetch tests with real sleeps) is what makes a killed mutant cheap. The durations
  are the ones mutmut measured in its stats run. Outside a mutant's run the order is untouched.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

from hypothesis import settings

settings.register_profile(
    "oauth_cc-mutation", deadline=None, max_examples=25, derandomize=True, database=None, print_blob=True
)


def _durations() -> dict[str, float]:
    try:
        from mutmut.state import state

        durations = dict(state().duration_by_test)
    except Exception:  # not under mutmut, or another mutmut version
        durations = {}
    if not durations and os.path.exists("mutmut-stats.json"):
        with open("mutmut-stats.json", encoding="utf-8") as f:
            durations = json.load(f).get("duration_by_test", {})
    return durations


def pytest_collection_modifyitems(session: Any, config: Any, items: list[Any]) -> None:
    # Mutation runs build the test database from the models (--no-migrations): a test that runs
    # the migrations themselves cannot work there (`make lint` and `make test` cover them).
    if config.getoption("nomigrations", default=False):
        kept = [item for item in items if item.get_closest_marker("migrations") is None]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
    if "__mutmut_" not in os.environ.get("MUTANT_UNDER_TEST", ""):
        return
    durations = _durations()
    items.sort(key=lambda item: durations.get(item.nodeid, math.inf))
