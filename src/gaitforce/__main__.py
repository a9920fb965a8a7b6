import sys

from gaitforce.cli import main

sys.exit(main())
