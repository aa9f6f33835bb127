"""The formal proofs (flow/formal.py, `make formal`): the quick ones here, the rest with
--campaign. The mutants, deliberately broken blocks, must fail: a proof that passes them
proves nothing."""

import pytest

from flow.formal import PROOFS, run
from flow.tools import BUILD

QUICK = [name for name, proof in PROOFS.items() if proof.quick]
SLOW = [name for name, proof in PROOFS.items() if not proof.quick]


def _check(name):
    outcome = run(PROOFS[name], BUILD / "formal_tests")
    assert outcome.status == outcome.proof.expect, (
        f"{name}: {outcome.status}, expected {outcome.proof.expect}: {outcome.detail}")


@pytest.mark.parametrize("name", QUICK)
def test_quick_proof(name):
    _check(name)


@pytest.mark.campaign
@pytest.mark.parametrize("name", SLOW)
def test_slow_proof(name):
    _check(name)


def test_every_block_has_a_mutant_that_fails_or_a_proof():
    assert {p.expect for p in PROOFS.values()} == {"PASS", "FAIL"}
    assert all(p.mode in ("bmc", "prove") and p.depth > 0 for p in PROOFS.values())
