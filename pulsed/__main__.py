"""`python -m pulsed` is the `pulsed` command."""

import sys

from pulsed._cli import main

sys.exit(main())
