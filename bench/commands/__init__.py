"""One module per command or command group; bench/cli.py registers them."""
