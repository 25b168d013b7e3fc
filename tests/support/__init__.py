"""Helpers shared by the test tiers and the benchmarks: free ports, polling, processes, moto S3 and MLflow.

Plain functions and classes, no fixtures: each tier's ``conftest.py`` decides the scope. The modules import
their heavy dependencies (moto, boto3, psutil) inside the functions that need them.
"""
