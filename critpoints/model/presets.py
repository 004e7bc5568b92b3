"""Settings of the paper's claims, by name.

:func:`claim_setting` builds the setting in which derivations/CLAIMS.md states claims 2–4: the
identity dictionary (p = d), signed one-hot latents, no noise, independent masks with drop
probability q, a symmetric-ReLU encoder with the fixed bias −β, and unit rows. There

* the population loss is an exact finite sum (derivations/MODEL.md §5: 8d (z, D1, D2) patterns);
* for ``spectral`` with m = d and 0 < β < 1 the global minima are exactly the signed
  permutations of M, at (1 − q)² (−2(1 − β)² + (1 − β)⁴/d), and every assignment of the
  neurons to atoms (one per partition of d) is a strict local minimum (claim 3);
* for ``ncl_cosine`` the global minimum 2 − 2(1 − q)² is attained on a full-dimensional set that
  contains W = M and bad points (claim 2).
"""

from __future__ import annotations

from typing import Any

from critpoints import _validation as check
from critpoints.model.setting import LossSpec, Setting


def claim_setting(
    loss: str | LossSpec = "spectral",
    d: int = 4,
    *,
    m: int | None = None,
    beta: float = 0.3,
    q: float = 0.5,
    **keywords: Any,
) -> Setting:
    """The setting of the paper's claims 2–4 (see the module docstring) for ``loss``.

    Parameters
    ----------
    loss : str or LossSpec
        Any loss family; its options (``temperature``, ``tied``, ...) go in ``keywords``.
    d : int
        Atoms, = input dimension p.
    m : int, optional
        Neurons (default d).
    beta : float
        The fixed symrelu bias is −beta (claim 3 needs 0 < beta < 1).
    q : float
        Drop probability of the independent masks, in [0, 1).
    **keywords
        Any other keyword of :class:`~critpoints.model.setting.Setting` (they override the
        preset's, e.g. ``constraint="none"``).
    """
    beta = check.real("beta", beta)
    preset: dict[str, Any] = dict(
        p=d,
        d=d,
        m=d if m is None else m,
        loss=loss,
        dictionary="identity",
        latent="one_hot",
        noise=0.0,
        augmentation=("independent_mask", q),
        encoder="symrelu",
        bias=-beta,
        constraint="unit_rows",
    )
    return Setting(**{**preset, **keywords})
