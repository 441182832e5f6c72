#!/usr/bin/env python
"""Django's command-line utility for creditmon."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "creditmon.settings")
    from monitoring.management.base import execute_cleanly

    execute_cleanly(sys.argv)


if __name__ == "__main__":
    main()
