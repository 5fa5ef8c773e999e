"""rdscard: smart card sign-in and smart card redirection for Remote Desktop."""

import os

__version__ = "0.1.0"
PRODUCT_NAME = "rdscard"

# Built extension modules of the hot path are ignored when pure Python is asked for
# (rdscard.compiled); the check is here so that it precedes every submodule's import.
if os.environ.get("RDSCARD_PURE_PYTHON", "") not in ("", "0"):
    from rdscard.compiled import install_source_finder

    install_source_finder()
