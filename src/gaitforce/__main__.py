import sys

try:  # Ctrl-C while the command line is imported is 'interrupted' too, not a traceback
    from gaitforce.cli import main

    code = main()
except KeyboardInterrupt:
    print("gaitforce: interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
