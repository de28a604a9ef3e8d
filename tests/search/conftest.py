"""Make the shared search test helpers (`search_helpers.py`) importable from the test modules."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
