"""Where the project's shared data lives: ``../shared`` beside the checkout, or ``$SFTLENS_SHARED``."""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR = Path(os.environ.get("SFTLENS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
GSM8K_DIR = SHARED_DIR / "data" / "gsm8k"
