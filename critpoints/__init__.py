"""critpoints: exact maps of the population loss landscapes of self-supervised learning.

The setting of Pokle, Tian, Li and Risteski (AISTATS 2022): sparse-coding data x = M z + xi,
two views by random masking, a one-layer encoder, contrastive or non-contrastive losses.
"""

from critpoints._version import __version__ as __version__
from critpoints.data.finite_measure import FiniteMeasure
from critpoints.data.moments import ViewMoments, view_moments
from critpoints.data.view_laws import ViewSample, exact_view_measure, sample_view_measure, sample_views
from critpoints.landscape.database import LandscapeDatabase
from critpoints.landscape.engine import enumerate_critical_points
from critpoints.landscape.explore import explore_minima
from critpoints.landscape.graph import LandscapeGraph, load_graph
from critpoints.landscape.mapping import map_landscape
from critpoints.landscape.merge import merge_databases
from critpoints.landscape.result import CriticalPoint, CriticalPointSet, load_result
from critpoints.losses.population_loss import PopulationLoss, population_loss
from critpoints.model.augmentation import ComplementaryMask, IndependentMask
from critpoints.model.dictionary import GivenDictionary, IdentityDictionary, RandomDictionary
from critpoints.model.latent import Bernoulli, FixedCount, OneHot, sparsity_to_counts
from critpoints.model.presets import claim_setting
from critpoints.model.setting import ClosedForm, ExactEnumeration, LossSpec, SampleAverage, Setting

__all__ = [
    "Bernoulli",
    "ClosedForm",
    "ComplementaryMask",
    "CriticalPoint",
    "CriticalPointSet",
    "ExactEnumeration",
    "FiniteMeasure",
    "FixedCount",
    "GivenDictionary",
    "IdentityDictionary",
    "IndependentMask",
    "LandscapeDatabase",
    "LandscapeGraph",
    "LossSpec",
    "OneHot",
    "PopulationLoss",
    "RandomDictionary",
    "SampleAverage",
    "Setting",
    "ViewMoments",
    "ViewSample",
    "claim_setting",
    "enumerate_critical_points",
    "explore_minima",
    "exact_view_measure",
    "load_graph",
    "load_result",
    "map_landscape",
    "merge_databases",
    "population_loss",
    "sample_view_measure",
    "sample_views",
    "sparsity_to_counts",
    "view_moments",
]
