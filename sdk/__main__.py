"""``python -m drivetrain``: the same command line as the ``drivetrain`` script."""

from drivetrain.cli import main

if __name__ == "__main__":
    main()
