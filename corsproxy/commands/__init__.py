"""One module per sub-command's I/O (`probe`, `demo`); the decisions they print come from below."""
