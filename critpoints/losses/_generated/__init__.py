"""Numba evaluator modules generated from the sympy derivations in derivations/ (do not edit)."""
