"""`python -m engine`: the headless CLI without the app."""

import sys

from engine.cli import main

sys.exit(main())
