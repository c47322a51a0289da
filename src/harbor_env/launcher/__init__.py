"""The launcher: the command line (`python -m src.train`, `uv run rl`) that reads a prime-rl run
config, checks it, and either runs an eval-only job here or hands the run over to prime-rl's own
`rl` on prime-rl's own environment. Nothing in the plugin (taskset, harness, environment) imports it."""
