"""Evaluator modules generated from the sympy derivations in derivations/."""
