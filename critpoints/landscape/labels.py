"""Labels of a stationary point from the ground truth M (derivations/MODEL.md §6).

* alignment a_j = max_i |cos(w_i, M_j)| for each atom j, w_i the rows of the online
  encoder W (a zero row has cosine 0);
* ``collapsed``: the representation f(x) is the same for every input x of the data;
* ``good``: not collapsed and min_j a_j >= tau_good;  ``bad``: neither.

To make "bad" readable the label carries the number of recovered atoms (a_j >= tau_good),
the dead neurons (f_i(x) = 0 on every input) and the duplicated neurons (a neuron aligned,
|cos| >= tau_good, with an atom another neuron already recovers), and whether a symrelu
pre-activation sits exactly on a kink for some view (``nonsmooth``: the Hessian there is
that of a one-sided piece).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np

from critpoints.losses.encoder import represent
from critpoints.model.setting import Setting

#: Default alignment threshold for "recovered" / "good".
DEFAULT_TAU_GOOD = 0.95

#: Every label a point can have.
LABELS = ("good", "bad", "collapsed")

#: Inputs used to decide collapse and dead neurons when the data support is not enumerated.
DATA_SAMPLE_SIZE = 4096


@dataclass(frozen=True)
class Label:
    """Ground-truth label of a point.

    Attributes
    ----------
    label : str
        "collapsed", "good" or "bad".
    alignment : ndarray (d,)
        a_j = max_i |cos(w_i, M_j)|.
    recovered : int
        Atoms with a_j >= tau_good.
    dead : int
        Neurons with f_i(x) = 0 on every input.
    duplicated : int
        Neurons aligned with an atom that another neuron already recovers.
    nonsmooth : bool
        Some pre-activation of some view lies on a symrelu kink.
    """

    label: str
    alignment: np.ndarray
    recovered: int
    dead: int
    duplicated: int
    nonsmooth: bool


def encode(setting: Setting, params: dict[str, np.ndarray], inputs: np.ndarray, branch: str = "W") -> np.ndarray:
    """Representations f(x) (rows) of ``inputs`` (rows) under the online (W) or target (W_t)
    encoder (critpoints.losses.encoder, the evaluators' encoder)."""
    if setting.encoder == "linear":
        return represent(inputs, params[branch], None)
    bias_name = "b" if branch == "W" else "b_t"
    bias = params[bias_name] if setting.trainable_bias else cast(np.ndarray, setting.bias)
    return represent(inputs, params[branch], bias)


def data_inputs(setting: Setting) -> np.ndarray:
    """Inputs x spanning the data: M z over the latent support (noise-free), else a seeded sample."""
    if setting.noise == 0 and sum(setting.latent.support_counts(setting.d).values()) <= DATA_SAMPLE_SIZE:
        codes, _ = setting.latent.support(setting.d)
        return codes @ setting.dictionary_matrix().T
    from critpoints.data.view_laws import sample_views

    return sample_views(setting, DATA_SAMPLE_SIZE, seed=0).x


def atom_cosines(weights: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
    """|cos(w_i, M_j)| as an (m, d) array (M has unit columns; a zero row gives 0)."""
    norms = np.linalg.norm(weights, axis=1)
    return np.abs(weights @ dictionary) / np.where(norms > 0, norms, 1.0)[:, None]


def alignment(weights: np.ndarray, dictionary: np.ndarray) -> np.ndarray:
    """a_j = max_i |cos(w_i, M_j)|."""
    return atom_cosines(weights, dictionary).max(axis=0)


def label_point(
    setting: Setting,
    params: dict[str, np.ndarray],
    *,
    views: np.ndarray | None = None,
    tau_good: float = DEFAULT_TAU_GOOD,
    tolerance: float = 1e-9,
) -> Label:
    """Label the point ``params`` (the dict of ``PopulationLoss.unpack``) of ``setting``.

    ``views`` are the view points on which the loss is evaluated (for the kink check);
    ``tolerance`` is the absolute threshold for "constant", "dead" and "on a kink".
    """
    cosines = atom_cosines(params["W"], setting.dictionary_matrix())
    atoms = cosines.max(axis=0)
    inputs = data_inputs(setting)
    representation = encode(setting, params, inputs)
    scale = max(1.0, float(np.abs(representation).max(initial=0.0)))
    collapsed = bool(np.all(np.abs(representation - representation[0]) <= tolerance * scale))
    dead = int(np.sum(np.all(np.abs(representation) <= tolerance * scale, axis=0)))

    aligned = cosines.max(axis=1) >= tau_good
    best_atom = cosines.argmax(axis=1)
    duplicated = int(aligned.sum() - len(np.unique(best_atom[aligned])))

    nonsmooth = False
    if setting.encoder == "symrelu" and views is not None:
        for branch, bias_name in (("W", "b"), ("W_t", "b_t")):
            if branch in params:
                bias = np.abs(params[bias_name] if setting.trainable_bias else cast(np.ndarray, setting.bias))
                pre = np.abs(views @ params[branch].T)
                on_kink = np.abs(pre - bias) <= tolerance * np.maximum(1.0, bias)
                nonsmooth |= bool(np.any(on_kink & (bias > 0)))  # sigma_0 is the identity: no kink

    good = not collapsed and atoms.min() >= tau_good
    return Label(
        label="collapsed" if collapsed else "good" if good else "bad",
        alignment=atoms,
        recovered=int(np.sum(atoms >= tau_good)),
        dead=dead,
        duplicated=duplicated,
        nonsmooth=nonsmooth,
    )
