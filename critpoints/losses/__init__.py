"""The population losses: parameter layout, symmetries, closed-form and finite-measure
evaluators (numba kernels generated from derivations/), batched gradients, and the loss
object of a setting. Knows nothing of solvers."""
