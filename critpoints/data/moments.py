"""Exact second moments of the latent, the input and the two views (derivations/MODEL.md §1–2).

Lambda = E[z z^T] comes from the latent family, Sigma = E[x x^T] = M Lambda M^T + sigma^2 I,
and the view moments from the augmentation's action on Sigma. Every identity used here is
derived in derivations/moments.py and written up in derivations/moments.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from critpoints.model.setting import Setting


class ViewMoments(NamedTuple):
    """Second moments of a setting's data and views (all exact).

    Attributes
    ----------
    zz : ndarray (d, d)
        Lambda = E[z z^T].
    xx : ndarray (p, p)
        Sigma = E[x x^T] = M Lambda M^T + sigma^2 I.
    x1x1, x1x2, x2x2 : ndarray (p, p)
        E[x1 x1^T], E[x1 x2^T], E[x2 x2^T] of the two views. A negative x' is a view of an
        independent input, so E[x' x'^T] = E[x2 x2^T] = E[x1 x1^T].
    """

    zz: np.ndarray
    xx: np.ndarray
    x1x1: np.ndarray
    x1x2: np.ndarray
    x2x2: np.ndarray


def view_moments(setting: Setting) -> ViewMoments:
    """Exact second moments (Lambda, Sigma, E[x1 x1^T], E[x1 x2^T], E[x2 x2^T]) of a setting."""
    dictionary = setting.dictionary_matrix()
    latent_moment = setting.latent.second_moment(setting.d)
    input_moment = dictionary @ latent_moment @ dictionary.T + setting.noise**2 * np.eye(setting.p)
    x1x1, x1x2, x2x2 = setting.augmentation.view_moments(input_moment)
    return ViewMoments(zz=latent_moment, xx=input_moment, x1x1=x1x1, x1x2=x1x2, x2x2=x2x2)
