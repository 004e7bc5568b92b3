"""Shared test data: the loss families with their options."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Every loss family with its options, as (loss, keyword arguments of Setting).
LOSS_FAMILIES = [
    ("spectral", {}),
    ("infonce", {"temperature": 0.5}),
    ("ncl_squared", {}),
    ("ncl_cosine", {}),
    ("ncl_cosine", {"tied": True}),
    ("ncl_predictor", {}),
    ("ncl_predictor", {"normalize": False}),
]
