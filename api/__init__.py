"""Prediction service: a FastAPI app serving the registered champion, as a process, container or Lambda."""
