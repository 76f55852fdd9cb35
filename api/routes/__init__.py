"""HTTP routes, one module per resource: predict, model, kg, ops (health, readiness, metrics)."""
