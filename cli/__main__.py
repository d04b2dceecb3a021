"""`python -m cli …` is `live3dpe …`."""
import sys

from cli.main import main

sys.exit(main())
