"""The landscape layer: starts, symmetry orbits, spectra, labels from the ground truth,
and the enumeration of stationary points into a result table."""
