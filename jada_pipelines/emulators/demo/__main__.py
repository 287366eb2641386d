"""`python -m jada_pipelines.emulators.demo`, which `make demo` runs."""

import sys

from jada_pipelines.emulators.demo.launch import main

sys.exit(main())
