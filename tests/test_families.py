"""The loss-family registry (critpoints.model.families): its records are consistent with the
generated kernels and with the setting, and malformed records are refused."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import LOSS_FAMILIES

import critpoints
from critpoints.losses._generated import closed_form_kernels, pointwise_kernels
from critpoints.losses.closed_form import closed_form_families
from critpoints.model.families import (
    BUILTIN_FAMILIES,
    OPTIONS,
    LossFamily,
    PairTerm,
    family_names,
    loss_family,
    unregister_family,
)


def test_the_tests_cover_every_built_in_family():
    assert {name for name, _ in LOSS_FAMILIES} == {family.name for family in BUILTIN_FAMILIES}
    assert family_names()[: len(BUILTIN_FAMILIES)] == tuple(family.name for family in BUILTIN_FAMILIES)


@pytest.mark.parametrize("family", BUILTIN_FAMILIES, ids=lambda family: family.name)
def test_every_kernel_a_record_names_is_generated(family):
    pytest.importorskip("flint")
    from critpoints.certify._generated import interval_kernels

    terms = [family.pair] + ([family.unnormalized_pair] if family.unnormalized_pair else [])
    for term in terms:
        assert term.kernel in pointwise_kernels.KERNELS
        assert hasattr(pointwise_kernels, f"{term.kernel}_table") and hasattr(interval_kernels, term.kernel)
    assert (family.name in closed_form_kernels.FAMILIES) == family.closed_form
    if family.closed_form:
        assert closed_form_kernels.BLOCKS[closed_form_kernels.FAMILIES.index(family.name)] == family.encoders


def test_closed_form_families_are_the_generated_ones():
    assert closed_form_families() == closed_form_kernels.FAMILIES


@pytest.mark.parametrize(
    ("loss", "options", "label", "two_encoders"),
    [
        ("spectral", {}, "spectral", False),
        ("infonce", {}, "infonce(tau=0.5)", False),
        ("infonce", {"temperature": 0.2}, "infonce(tau=0.2)", False),
        ("ncl_squared", {}, "ncl_squared", True),
        ("ncl_cosine", {}, "ncl_cosine", True),
        ("ncl_cosine", {"tied": True}, "ncl_cosine(tied)", False),
        ("ncl_predictor", {}, "ncl_predictor", True),
        ("ncl_predictor", {"normalize": False}, "ncl_predictor(unnormalized)", True),
        ("ncl_predictor", {"predictor_constraint": "unit_rows"}, "ncl_predictor(P unit_rows)", True),
        (
            "ncl_predictor",
            {"normalize": False, "predictor_constraint": "unit_rows"},
            "ncl_predictor(unnormalized, P unit_rows)",
            True,
        ),
    ],
)
def test_labels_and_encoders_from_the_records(loss, options, label, two_encoders):
    spec = critpoints.LossSpec(loss, **options)
    assert str(spec) == label and spec.two_encoders == two_encoders
    for name, option in OPTIONS.items():
        taken = name in loss_family(loss).options
        assert (getattr(spec, name) is None) == (not taken)
        if taken and name not in options:
            assert getattr(spec, name) == option.default


def _valid(**changes) -> LossFamily:
    fields = dict(name="x", summary="x", contrastive=False, encoders=2, pair=PairTerm("cosine", -2.0))
    return LossFamily(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(repulsion="hinge"), r"unknown repulsion 'hinge'"),
        (dict(options=("margin",)), r"unknown option 'margin'"),
        (dict(encoders=3), r"encoders must be 1 or 2, got encoders=3"),
        (dict(contrastive=True), r"contrastive exactly when it has a repulsion"),
        (dict(options=("normalize",)), r"the option normalize goes with an unnormalized_pair"),
        (dict(encoders=1, options=("tied",)), r"tied encoders and a predictor need encoders=2"),
        (dict(options=("temperature",)), r"the option temperature goes with a term that uses it"),
        (dict(pair=PairTerm("cosine", -1.0, over_temperature=True)), r"the option temperature goes with"),
    ],
)
def test_malformed_records_are_refused(changes, message):
    _valid()  # the unchanged record is fine
    with pytest.raises(ValueError, match=message):
        _valid(**changes)


def test_registry_refuses_unknown_and_built_in_removals():
    with pytest.raises(ValueError, match=r"unknown loss 'simclr'; known: 'spectral', 'infonce'"):
        loss_family("simclr")
    with pytest.raises(ValueError, match="built in and cannot be unregistered"):
        unregister_family("ncl_cosine")
    assert dataclasses.is_dataclass(loss_family("ncl_cosine")) and "ncl_cosine" in family_names()
