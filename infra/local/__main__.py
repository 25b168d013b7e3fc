"""``python -m infra.local``: the embedded stack's command line (see :mod:`infra.local.cli`)."""

from infra.local.cli import main

main()
