"""One module per ``distilrt`` subcommand (see :mod:`distilrt.runtime.cli`)."""
