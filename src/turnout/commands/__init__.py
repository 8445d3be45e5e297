"""The ``turnout`` subcommands that are more than a few lines, one module each; ``cli`` builds
the parser and dispatches to them."""
