"""Certified critical points: interval-arithmetic (Krawczyk) proofs of existence,
uniqueness and Morse index, from exact rational moments.

balls (ball arithmetic), exact (exact moments and view laws), models (interval models of
the losses from the generated arb kernels), proofs (Krawczyk, inertia, transversality) and
certificate (:func:`~critpoints.certify.certificate.certify_point`)."""
