"""`aihp`, the command line: an entry point beside api/ and workers/ (cli -> engine.services ->
engine.domain). The Typer app is `cli.main:app`."""
