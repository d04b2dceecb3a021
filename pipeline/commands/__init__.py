"""One module per `live3dpe` subcommand (see pipeline/cli.py)."""
