import os
import sys

try:  # Ctrl-C while the command line is imported is 'interrupted' too, not a traceback
    from gaitforce.cli.main import entry
except KeyboardInterrupt:
    print("gaitforce: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)
entry()
