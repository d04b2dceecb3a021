"""`live3dpe` subcommands of the network package: `edit` (one still image) and `conformance`."""
