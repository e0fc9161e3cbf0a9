#!/usr/bin/env python
"""Management entry point for the stock DOT benchmark site (run from this directory)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_bench.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
