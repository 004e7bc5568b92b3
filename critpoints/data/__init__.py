"""Laws of the data and the views: exact second moments, finite view laws (exact
enumeration of the support, fixed samples) as finite measures."""
