"""Every derivation verifies: ``verify()`` of each module of derivations/ runs here, and
``python -m derivations`` is the one command that verifies, regenerates and writes.

``claims.verify()`` runs each proof of ``claims.PROOFS``, which tests/test_claims.py runs one
by one (parametrised, so a failure names its claim); here it is only checked that verify()
runs exactly those proofs, so that they are not run twice per suite.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

import derivations
from derivations import claims

VERIFIED_HERE = [name for name in derivations.NAMES if name != "claims"]


def test_every_derivation_has_verify():
    for module in derivations.modules():
        assert callable(getattr(module, "verify", None)), f"{module.__name__} has no verify()"


@pytest.mark.parametrize("name", VERIFIED_HERE)
def test_derivation_verifies(name):
    derivations.load(name).verify()


def test_claims_verify_runs_every_proof(monkeypatch):
    ran = []
    stubs = tuple((title, lambda title=title: ran.append(title) or {}) for title, _ in claims.PROOFS)
    monkeypatch.setattr(claims, "PROOFS", stubs)
    claims.verify()
    assert ran == [title for title, _ in stubs] and len(ran) >= 10


def test_a_failing_check_raises(monkeypatch):
    """verify() is not a formality: a wrong chain-rule coefficient is caught by the brute force."""
    import random

    pw = derivations.load("pointwise_losses")
    original = pw.representation_derivatives

    def wrong(d, r, c):
        g_r, g_c, h_rr, h_rc, h_cc = original(d, r, c)
        return g_r, g_c, h_rr, h_rc + d["phi_AB"] * r * c.T, h_cc  # 5 phi_AB r c^T instead of 4

    monkeypatch.setattr(pw, "representation_derivatives", wrong)
    with pytest.raises(AssertionError, match="Hessian"):
        pw.verify_invariant_chain_rule(2, random.Random(3))


def test_unknown_derivation_is_refused():
    with pytest.raises(ValueError, match="unknown derivation 'nothing'; known: moments"):
        derivations.load("nothing")


def test_python_dash_m_derivations_leaves_the_tree_unchanged():
    """The command regenerates, checks and rewrites no file of an up-to-date tree (one
    derivation here: every verify() and every emitted module's check run in the tests above
    and in tests/test_generated.py)."""
    result = subprocess.run(
        [sys.executable, "-m", "derivations", "pointwise_losses", "--no-verify"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "every generated module is up to date" in result.stdout, result.stdout
    assert "wrote" not in result.stdout
