"""Entry point for `python -m studio.toolserver`."""

from studio.toolserver.server import main

# The guard matters: the regex tool's forkserver re-imports the main module in its workers.
if __name__ == "__main__":
    main()
