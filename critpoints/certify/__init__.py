"""Certified critical points: interval-arithmetic (Krawczyk) proofs of existence,
uniqueness and Morse index, from exact rational moments."""
