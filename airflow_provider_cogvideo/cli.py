"""The ``cogvideo`` command. Each subcommand is one entry of :data:`SUBCOMMANDS`: a help line and a
builder that adds its arguments and sets ``handler`` (called with the parsed arguments, returns
the exit status). Handlers import what they need themselves, so ``cogvideo --help`` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

Builder = Callable[[argparse.ArgumentParser], None]

_BYTE_UNITS = {"": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}
_BYTE_UNITS |= {"g": 1000**3, "gb": 1000**3, "gib": 1024**3}


def _byte_count(text: str) -> int:
    """``1048576``, ``500MB``, ``1GiB``..."""
    digits = text.strip().rstrip("bBiIkKmMgG")
    unit = text.strip()[len(digits) :].lower()
    if not digits.isdigit() or unit not in _BYTE_UNITS:
        raise argparse.ArgumentTypeError(f"not a byte count: {text!r} (e.g. 1048576, 500MB, 1GiB)")
    return int(digits) * _BYTE_UNITS[unit]


def _fault(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"--fault takes NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _build_emulator(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1, local only)")
    parser.add_argument("--port", type=int, default=8765, help="port to listen on (default: 8765)")
    parser.add_argument(
        "--keys",
        help="accepted API keys, 'id.secret[:TIER],...' (TIER V0..V3 sets the concurrency limit); "
        "default: the built-in test key (airflow_provider_cogvideo.emulator.DEFAULT_TEST_KEY)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a task stays PROCESSING (default: 5)")
    parser.add_argument("--jitter", type=float, default=0.2, help="duration spread, a fraction (default: 0.2)")
    parser.add_argument("--seed", type=int, help="seed for task ids, jitter and faults (default: random)")
    parser.add_argument("--data-dir", type=Path, help="where rendered videos are cached (default: a temp dir)")
    parser.add_argument("--unlimited", action="store_true", help="no per-(key, model) concurrency limit")
    parser.add_argument(
        "--payload-bytes", type=_byte_count, help="serve deterministic synthetic payloads of this size, not MP4s"
    )
    parser.add_argument("--url-ttl", type=float, help="result URLs are signed and expire after this many seconds")
    parser.add_argument("--prefix", default="/api/paas/v4", help="API path prefix (default: /api/paas/v4)")
    parser.add_argument(
        "--unknown-task-status", type=int, choices=(400, 404), default=400, help="HTTP status for an unknown task id"
    )
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="inject faults, repeatable: e.g. submit_error_rate=0.1, error_codes=500,1305, fail_rate=1, "
        "blocked_prompts=violence, delay_seconds=2, truncate_rate=0.5, retry_after=3 "
        "(see airflow_provider_cogvideo.emulator.FaultConfig)",
    )
    parser.set_defaults(handler=_run_emulator)


def _run_emulator(args: argparse.Namespace) -> int:
    from airflow_provider_cogvideo.emulator import DEFAULT_TEST_KEY, EmulatorConfig, FaultConfig, parse_keys, serve

    try:
        keys = parse_keys(args.keys or DEFAULT_TEST_KEY)
        config = EmulatorConfig(
            keys=keys,
            duration=args.duration,
            jitter=args.jitter,
            seed=args.seed,
            data_dir=args.data_dir,
            unlimited=args.unlimited,
            prefix=args.prefix,
            payload_bytes=args.payload_bytes,
            url_ttl=args.url_ttl,
            unknown_task_http_status=args.unknown_task_status,
            faults=FaultConfig.from_mapping(dict(args.fault)),
        )
    except ValueError as exc:
        raise SystemExit(f"cogvideo emulator: {exc}") from None
    print(f"CogVideoX emulator: base URL http://{args.host}:{args.port}{config.api_prefix}", flush=True)
    for key in keys:  # key ids only: the secret is never printed
        builtin = " (the built-in test key, DEFAULT_TEST_KEY)" if key.value == DEFAULT_TEST_KEY else ""
        print(f"  key id {key.key_id}, tier {key.tier}{builtin}", flush=True)
    serve(config, host=args.host, port=args.port)
    return 0


SUBCOMMANDS: dict[str, tuple[str, Builder]] = {
    "emulator": ("run the local CogVideoX-compatible API emulator", _build_emulator),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cogvideo", description="Tools of the CogVideoX Airflow provider.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, build) in SUBCOMMANDS.items():
        build(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
