"""`python -m testdata [PATH ...]`: fetch the reference data (or the given files/folders) and print where it is."""
import sys

import testdata

try:
    where = testdata.fetch(sys.argv[1:] or None)
except testdata.TestDataError as exc:
    sys.exit(f"testdata: error: {exc}")
print("\n".join(str(where / p) for p in sys.argv[1:]) or where)
