#!/usr/bin/env python3
"""Tiny inventory service.

Settings come from two files next to this script:

* ``config.ini``    -- server and database settings (INI format)
* ``logging.json``  -- logging settings (JSON)

``python3 app.py --check`` validates the configuration, prints a one-line
summary and exits with status 0, or prints the problems and exits with 1.
"""
import argparse
import configparser
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    pass


def load_ini(path):
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    try:
        with open(path) as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error) as exc:
        raise ConfigError(f"{os.path.basename(path)}: {exc}")
    return parser


def load_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{os.path.basename(path)}: {exc}")


def settings(config_dir):
    ini = load_ini(os.path.join(config_dir, "config.ini"))
    log = load_json(os.path.join(config_dir, "logging.json"))
    problems = []

    def get(section, key, conv=str):
        try:
            return conv(ini.get(section, key))
        except (configparser.Error, ValueError) as exc:
            problems.append(f"[{section}] {key}: {exc}")
            return None

    result = {
        "host": get("server", "host"),
        "port": get("server", "port", int),
        "workers": get("server", "workers", int),
        "db_path": get("database", "path"),
        "pool_size": get("database", "pool_size", int),
        "timeout": get("database", "timeout_seconds", float),
    }
    if result["port"] is not None and not 1 <= result["port"] <= 65535:
        problems.append(f"[server] port: {result['port']} is not in 1..65535")
    if result["workers"] is not None and result["workers"] < 1:
        problems.append("[server] workers: must be >= 1")
    if result["pool_size"] is not None and result["pool_size"] < 1:
        problems.append("[database] pool_size: must be >= 1")

    if not isinstance(log, dict):
        problems.append("logging.json: top level must be an object")
        log = {}
    level = log.get("level")
    if level not in LOG_LEVELS:
        problems.append(f"logging.json: level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    result["log_level"] = level
    result["log_file"] = log.get("file")
    if not isinstance(result["log_file"], str) or not result["log_file"]:
        problems.append("logging.json: file must be a non-empty string")
    if problems:
        raise ConfigError("\n".join(problems))
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="validate the configuration and exit")
    ap.add_argument("--config-dir", default=HERE, help="directory holding config.ini and logging.json")
    args = ap.parse_args(argv)
    try:
        cfg = settings(args.config_dir)
    except ConfigError as exc:
        print("CONFIG ERROR", file=sys.stderr)
        print(exc, file=sys.stderr)
        return 1
    if args.check:
        print("CONFIG OK " + " ".join(f"{k}={cfg[k]}" for k in
              ("host", "port", "workers", "db_path", "pool_size", "timeout", "log_level", "log_file")))
        return 0
    print(f"would serve on {cfg['host']}:{cfg['port']} (not implemented in this demo)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
