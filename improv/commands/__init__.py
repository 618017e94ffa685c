"""One module per `improv` subcommand: HELP, add_arguments(parser), run(args, settings) -> int."""
