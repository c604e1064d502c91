import sys

from podbay.cli.main import main

sys.exit(main())
