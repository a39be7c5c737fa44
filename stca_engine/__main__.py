"""``python -m stca_engine`` (also what ``torchrun -m stca_engine train ...`` runs)."""
import sys

from .cli import main

sys.exit(main())
