"""The flat parameter vector theta and its named blocks.

Every evaluator works on one float64 vector theta. Its blocks, present only where the
setting has them, are in this order, each stored row-major:

====== ========== =====================================================
name   shape      present when
====== ========== =====================================================
W      (m, p)     always: the online encoder (or the only / tied one)
W_t    (m, p)     two-encoder losses: ncl_squared, untied ncl_cosine, ncl_predictor
b      (m,)       symrelu with a trainable bias
b_t    (m,)       trainable bias and two encoders
P      (m, m)     ncl_predictor
====== ========== =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

BLOCK_ORDER = ("W", "W_t", "b", "b_t", "P")


@dataclass(frozen=True)
class ParameterLayout:
    """Names, shapes and offsets of the blocks of theta.

    Attributes
    ----------
    shapes : dict[str, tuple[int, ...]]
        The blocks present, in ``BLOCK_ORDER``.
    """

    shapes: dict

    @classmethod
    def for_model(cls, *, m: int, p: int, two_encoders: bool, trainable_bias: bool, predictor: bool) -> ParameterLayout:
        """The layout of a model with the given parts."""
        shapes: dict[str, tuple[int, ...]] = {"W": (m, p)}
        if two_encoders:
            shapes["W_t"] = (m, p)
        if trainable_bias:
            shapes["b"] = (m,)
            if two_encoders:
                shapes["b_t"] = (m,)
        if predictor:
            shapes["P"] = (m, m)
        return cls(shapes)

    @property
    def names(self) -> tuple[str, ...]:
        """Block names present, in order."""
        return tuple(self.shapes)

    @cached_property
    def _slices(self) -> dict[str, slice]:
        slices, start = {}, 0
        for name, shape in self.shapes.items():
            stop = start + int(np.prod(shape))
            slices[name] = slice(start, stop)
            start = stop
        return slices

    @cached_property
    def size(self) -> int:
        """Length n of theta."""
        return max((block.stop for block in self._slices.values()), default=0)

    def slice(self, name: str) -> slice:
        """Where block ``name`` lives in theta."""
        try:
            return self._slices[name]
        except KeyError:
            raise ValueError(f"this setting has no parameter block {name!r}; it has {', '.join(self.names)}") from None

    def pack(self, **arrays: np.ndarray) -> np.ndarray:
        """theta from one array per block; every block of the layout is required, no other."""
        missing = [name for name in self.names if name not in arrays]
        extra = [name for name in arrays if name not in self.shapes]
        if missing or extra:
            raise ValueError(
                f"pack needs exactly the blocks {', '.join(self.names)}; "
                f"missing: {', '.join(missing) or 'none'}, not in this setting: {', '.join(extra) or 'none'}"
            )
        parts = []
        for name, shape in self.shapes.items():
            array = np.asarray(arrays[name], dtype=np.float64)
            if array.shape != shape:
                raise ValueError(f"{name} must have shape {shape}, got shape {array.shape}")
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} must have finite entries, got {array!r}")
            parts.append(array.ravel())
        return np.concatenate(parts)

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """One array (a copy) per block of theta."""
        theta = self.check(theta)
        return {name: theta[self.slice(name)].reshape(shape).copy() for name, shape in self.shapes.items()}

    def check(self, theta: np.ndarray, name: str = "theta") -> np.ndarray:
        """theta as a float64 vector of the right length with finite entries, or a clear error."""
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != (self.size,):
            raise ValueError(
                f"{name} must be a vector of length {self.size} (blocks {', '.join(self.names)}), "
                f"got shape {theta.shape}"
            )
        if not np.all(np.isfinite(theta)):
            raise ValueError(f"{name} must have finite entries (no NaN or inf)")
        return theta
