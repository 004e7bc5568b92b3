"""Orbit keys and the orbit database at p = d = m = 10: the claim-3 symmetry group (spectral) and the
same setting with ncl_squared, whose group adds the entry sign flips of one-sparse data and the
row-entry permutations of a separable pair loss (derivations/symmetries.md items 6 and 7).

Prints, for each, the time per point of ``orbit_key`` and of ``OrbitDatabase.add`` (key, scan of the known
keys and the exact test among key collisions) on points of the kind the engine meets: generic
points, and signed-atom points with duplicated neurons moved by random group elements (the
tied, highly symmetric case), and beside them, as the baseline measured in the same run, the time
of one exact Hessian of the loss at the same points (what each Newton iteration pays).
Run: ``python examples/benchmark_orbits.py``.
"""

from __future__ import annotations

import time

import numpy as np

from critpoints import claim_setting, population_loss
from critpoints.landscape.orbits import OrbitDatabase, orbit_key

D = 10


def random_element(group, theta, rng):
    theta = group.flip(group.permute(theta, rng.permutation(group.m)), rng.choice([-1.0, 1.0], group.m))
    theta = group.act_on_inputs(theta, rng.permutation(D), rng.choice([-1.0, 1.0], D))
    if group.entry_sign_flips:
        theta = group.flip_entries(theta, rng.choice([-1.0, 1.0], (D, D)))
    if group.row_entry_permutations:
        theta = group.permute_row_entries(theta, np.stack([rng.permutation(D) for _ in range(D)]))
    return theta


def main() -> None:
    for loss_name in ("spectral", "ncl_squared"):
        measure(population_loss(claim_setting(loss_name, D)))


def measure(loss) -> None:
    group = loss.symmetries
    rng = np.random.default_rng(0)
    atoms = [np.repeat(rng.permutation(D)[:k], [D - k + 1] + [1] * (k - 1)) for k in range(1, D + 1)]

    def signed_atoms(rows):
        W = np.eye(D)[rows] * rng.choice([-1.0, 1.0], (D, 1))
        return loss.pack(**{name: W for name in loss.layout.names if name in ("W", "W_t")})

    tied = [random_element(group, signed_atoms(rows), rng) for rows in atoms for _ in range(40)]
    generic = [loss.manifold.project(rng.standard_normal(loss.n_params)) for _ in range(400)]
    warm = OrbitDatabase(group)  # load the compiled kernels: a key collision runs the exact test
    warm.add(tied[0])
    warm.add(tied[1])
    loss.hessian(generic[0])
    began = time.perf_counter()
    for theta in generic[:20]:
        loss.hessian(theta)
    per_hessian = (time.perf_counter() - began) / 20
    print(f"group: {group.describe()}; one Hessian of the loss (baseline): {per_hessian * 1e3:.2f} ms")
    for name, points in (("generic", generic), ("signed atoms, duplicated neurons", tied)):
        began = time.perf_counter()
        for theta in points:
            orbit_key(group, theta)
        per_key = (time.perf_counter() - began) / len(points)
        database = OrbitDatabase(group)
        began = time.perf_counter()
        for theta in points:
            database.add(theta)
        per_add = (time.perf_counter() - began) / len(points)
        print(
            f"{name:>34}: {len(points)} points, {len(database)} orbits, undecided {database.undecided}; "
            f"orbit_key {per_key * 1e3:.3f} ms/point, OrbitDatabase.add {per_add * 1e3:.3f} ms/point "
            f"({per_add / per_hessian:.2f} Hessians)"
        )


if __name__ == "__main__":
    main()
