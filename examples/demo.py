"""A tour of one setting: the data model, its exact moments and its finite view law.

Run from the repository root after installing the package::

    python examples/demo.py

It builds the contrastive setting of derivations/CLAIMS.md, claim 3 (M = I, one-hot latents, independent
masks, symmetric-ReLU encoder with a fixed negative bias, unit rows, spectral loss) and
prints its view moments and the size of the exact enumeration behind its population loss.
"""

from __future__ import annotations

import numpy as np

import critpoints


def main() -> None:
    setting = critpoints.Setting(
        p=4,
        d=4,
        m=4,
        dictionary="identity",
        latent="one_hot",
        augmentation=("independent_mask", 0.5),
        encoder="symrelu",
        bias=-0.3,
        constraint="unit_rows",
        loss="spectral",
    )
    print(setting.describe())
    moments = critpoints.view_moments(setting)
    np.set_printoptions(precision=4, suppress=True)
    for name in moments._fields:
        half = len(name) // 2  # "zz" -> z, z; "x1x2" -> x1, x2
        print(f"\nE[{name[:half]} {name[half:]}^T] =\n{getattr(moments, name)}")
    measure = critpoints.exact_view_measure(setting)
    print(
        f"\nexact view law: {len(measure.pair_weight)} distinct (x1, x2) pairs, "
        f"{len(measure.anchor_weight)} distinct single views"
    )


if __name__ == "__main__":
    main()
