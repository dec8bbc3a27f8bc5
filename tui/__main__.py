"""`vggtab` / `python -m tui`: the app by default, the headless commands otherwise (tui.cli)."""

import sys

from tui.cli import main

if __name__ == "__main__":
    sys.exit(main())
