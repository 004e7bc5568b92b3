"""The population losses: parameter layout, symmetries, the encoder, closed-form and
finite-measure evaluators (numba kernels generated from derivations/, chosen by each
family's record in critpoints.model.families), batched gradients, and the loss object of a
setting. Knows nothing of solvers."""
