"""The service's routes, one module per concern: prediction, the model, health and metrics."""
