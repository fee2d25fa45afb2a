"""`python -m storagectl ...`: see storagectl/cli.py."""

import sys

from storagectl.cli import run

sys.exit(run())
