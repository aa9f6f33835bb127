import os
import re
import time

import pytest
from hypothesis import settings, HealthCheck

settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("campaign", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_STARTED = pytest.StashKey[float]()


def pytest_addoption(parser):
    parser.addoption("--campaign", action="store_true", help="run long random campaigns")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--campaign"):
        return
    skip = pytest.mark.skip(reason="long random campaign: run with --campaign")
    for item in items:
        if item.get_closest_marker("campaign") is not None:
            item.add_marker(skip)


def pytest_sessionstart(session):
    session.config.stash[_STARTED] = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After a campaign (``tests/test_campaign.py``), its summary (``tb.campaign.write_summary``)
    from the seeds' reports."""
    records = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            nodeid = getattr(report, "nodeid", "") or ""
            seed = re.search(r"test_campaign\.py::test_random_seed\[(\d+)\]", nodeid)
            if seed is None or not (getattr(report, "when", "") == "call"
                                    or getattr(report, "outcome", "") == "failed"):
                continue
            found = dict(getattr(report, "user_properties", ())).get("campaign")
            if found is not None or int(seed.group(1)) not in records:
                records[int(seed.group(1))] = found
    if not records:
        return
    from tb.campaign import OUT, write_summary
    text = write_summary(records, time.monotonic() - config.stash[_STARTED])
    terminalreporter.write_sep("=", "campaign summary")
    terminalreporter.write_line(text)
    terminalreporter.write_line(f"(also in {OUT / 'summary.md'} and summary.json)")
