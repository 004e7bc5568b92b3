"""Products of unit spheres: projections, tangent bases, retractions and the
Riemannian gradient, Hessian and field Jacobian. Generic geometry, no sparse coding."""
