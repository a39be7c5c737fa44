"""``python -m stca_engine`` (also what ``torchrun -m stca_engine train ...`` runs)."""

import os
import sys

from .cli import main

code = main()
if int(os.environ.get("WORLD_SIZE", "1")) > 1:
    from .distributed import exit_worker

    exit_worker(code)
sys.exit(code)
