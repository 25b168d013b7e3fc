"""Pulumi program: the MLOps platform on Docker, plus LocalStack with the prediction API as a Lambda.

Run through the Pulumi CLI (``Pulumi.yaml`` has ``main: infra/``); see ``docs/pulumi-docker.md``. Everything is
defined in :mod:`infra.components`; this file only reads the config, builds the platform and exports.
"""

import sys
from pathlib import Path

# Pulumi runs this file by path: make the repository root importable even without the editable install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.components import MlopsPlatform, StackConfig

platform = MlopsPlatform("mlops", StackConfig.load())
for output_name, value in platform.stack_outputs.items():
    pulumi.export(output_name, value)
