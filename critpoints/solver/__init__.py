"""Newton's method on stationarity equations, from many starts, in-process, on local
processes or on a Dask cluster. Knows nothing of sparse coding or of the losses."""
