# The technician CLI: port, session, syntax, accounts (docs/cli.md).
