"""Newton's method on stationarity equations, from many starts, in-process, on local
processes or on a Dask cluster: types (the system protocol, statuses, results, options),
newton (the interpreted driver), compiled (the numba driver), dense_solve, restarts. Knows
nothing of sparse coding or of the losses."""
