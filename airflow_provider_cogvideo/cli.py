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
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface to bind (default: 127.0.0.1, local only); any other address gets a warning and an "
        "admin API that requires a token",
    )
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
        "blocked_prompts=violence, delay_seconds=2, truncate_rate=0.5, retry_after=3, chat_error_rate=0.2; "
        "after the job is created: "
        "submit_created_error_rate=0.2, submit_created_error_codes=502,504, submit_lost_rate=0.1, "
        "submit_malformed_id_rate=0.1, malformed_id_kinds=slash,empty "
        "(see airflow_provider_cogvideo.emulator.FaultConfig)",
    )
    parser.add_argument(
        "--admin-token",
        help="require this token (header X-Emulator-Admin-Token) on the admin API /_emulator/...; "
        "default: none on loopback, a generated one (printed once) on any other address",
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
            admin_token=args.admin_token,
        )
    except ValueError as exc:
        raise SystemExit(f"cogvideo emulator: {exc}") from None
    print(f"CogVideoX emulator: base URL http://{args.host}:{args.port}{config.api_prefix}", flush=True)
    for key in keys:  # key ids only: the secret is never printed
        builtin = " (the built-in test key, DEFAULT_TEST_KEY)" if key.value == DEFAULT_TEST_KEY else ""
        print(f"  key id {key.key_id}, tier {key.tier}{builtin}", flush=True)
    serve(config, host=args.host, port=args.port)
    return 0


DEFAULT_POOL = "cogvideo"


def _build_pool(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tier", type=str.upper, metavar="V0..V3", help="the account tier (V0/V1/V2/V3 = 5/10/15/20)")
    source.add_argument("--conn-id", help="read the tier from this cogvideo connection's 'tier' extra")
    parser.add_argument(
        "--name", help=f"pool name (default: {DEFAULT_POOL!r}, or '{DEFAULT_POOL}-<model>' with --model)"
    )
    parser.add_argument(
        "--model",
        help="the model this pool is for: tier limits count per (account, model), so a DAG that uses several "
        "models needs one pool per model",
    )
    parser.set_defaults(handler=_run_pool)


def _pool_tier(args: argparse.Namespace) -> tuple[str, int, str]:
    """(tier, slots, where the tier came from); exits with a message on a bad tier or connection."""
    from airflow_provider_cogvideo.capabilities import TIER_CONCURRENCY

    if args.tier:
        if args.tier not in TIER_CONCURRENCY:
            raise SystemExit(f"cogvideo pool: unknown tier {args.tier!r}; allowed: {', '.join(TIER_CONCURRENCY)}")
        return args.tier, TIER_CONCURRENCY[args.tier], "--tier"
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

    try:
        settings = CogVideoHook(args.conn_id).settings
    except Exception as exc:  # a missing or malformed connection: say which, never a traceback
        raise SystemExit(f"cogvideo pool: cannot read connection {args.conn_id!r}: {exc}") from None
    return settings.tier, settings.concurrency, f"connection {args.conn_id!r}"


def _run_pool(args: argparse.Namespace) -> int:
    """Create or update the pool in the metadata DB of the Airflow configured here (AIRFLOW_HOME).

    ``include_deferred`` is the point: a deferred generation task is a job rendering at the API, so
    it must keep its slot or Airflow would start more jobs than the tier allows.
    """
    from airflow_provider_cogvideo.capabilities import MODEL_CAPABILITIES

    if args.model and args.model not in MODEL_CAPABILITIES:
        raise SystemExit(f"cogvideo pool: unknown model {args.model!r}; known: {', '.join(MODEL_CAPABILITIES)}")
    tier, slots, source = _pool_tier(args)
    name = args.name or (f"{DEFAULT_POOL}-{args.model}" if args.model else DEFAULT_POOL)
    scope = f"{args.model} jobs" if args.model else "jobs per model"
    description = f"CogVideoX tier {tier}: {slots} {scope} in flight; counts deferred (rendering) tasks"

    from airflow.models.pool import Pool
    from sqlalchemy.exc import SQLAlchemyError

    try:
        before = Pool.get_pool(name)
        old = (before.slots, before.include_deferred) if before is not None else None
        Pool.create_or_update_pool(name=name, slots=slots, description=description, include_deferred=True)
    except SQLAlchemyError as exc:
        raise SystemExit(
            f"cogvideo pool: the Airflow metadata DB is not usable ({type(exc).__name__}); run `airflow db migrate` "
            "first, or create the pool elsewhere with "
            f"`airflow pools set {name} {slots} '{description}' --include-deferred`"
        ) from None
    if old is None:
        action = "Created"
    elif old == (slots, True):
        action = "Unchanged"
    else:
        action = f"Updated (was {old[0]} slots, include_deferred {'on' if old[1] else 'off'})"
    print(f"{action} pool {name!r}: {slots} slots, include_deferred on (tier {tier} from {source})", flush=True)
    return 0


def _build_demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="where the throwaway .demo/ directory goes (default: here)"
    )
    parser.add_argument("--products", type=int, default=6, help="sample products to seed (default: 6)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds each emulated render takes (default: 4)")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from airflow_provider_cogvideo.demo import run_demo

    if args.products < 1:
        raise SystemExit("cogvideo demo: --products must be at least 1")
    try:
        return run_demo(args.dir.resolve(), products=args.products, duration=args.duration)
    except KeyboardInterrupt:
        print("\nInterrupted: stopped every process the demo started.", flush=True)
        return 130


SUBCOMMANDS: dict[str, tuple[str, Builder]] = {
    "emulator": ("run the local CogVideoX-compatible API emulator", _build_emulator),
    "pool": ("create or update an Airflow pool sized to the account tier (include_deferred on)", _build_pool),
    "demo": ("run the product pipeline end to end on the local emulator and a local S3", _build_demo),
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
