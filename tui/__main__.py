"""The `vggtab` console script: the app by default, the engine's headless commands otherwise."""

from __future__ import annotations

import argparse
import sys

from engine.cli import main as cli_main


def launch_app(args: argparse.Namespace) -> int:
    from tui.app import launch_app as run_app  # Textual is imported only when the app is wanted
    return run_app(args.embeddings, args.tabular, results_dir=args.results_dir, models_dir=args.models_dir) or 0


def main() -> None:
    sys.exit(cli_main(sys.argv[1:], launch_app=launch_app))


if __name__ == "__main__":
    main()
