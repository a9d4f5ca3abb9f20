"""``python -m celeriac ...``: the same command line as the ``celeriac`` script."""

from celeriac.cli import main

if __name__ == "__main__":
    main()
