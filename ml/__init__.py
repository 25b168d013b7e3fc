"""ML library: dataset specs, ETL steps, model search logged to MLflow, and the champion/challenger gate."""
