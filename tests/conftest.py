import os

import pytest
from hypothesis import settings, HealthCheck

settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("campaign", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--campaign", action="store_true", help="run long random campaigns")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--campaign"):
        return
    skip = pytest.mark.skip(reason="long random campaign: run with --campaign")
    for item in items:
        if "campaign" in item.keywords:
            item.add_marker(skip)
