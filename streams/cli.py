"""The ``embedstream`` command: worker, publish, tail, search, top, dev stack and demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError
from pydantic_settings import SettingsError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from encoders.errors import EncoderError
from encoders.modality import Modality
from streams.errors import EmbedstreamError
from streams.logs import configure_logging
from streams.settings import Settings, mask_url_password

logger = logging.getLogger(__name__)

EXIT_FAILURE = 1
EXIT_USAGE = 2

# The worker's web server at the default web_host and web_port.
DEFAULT_TOP_URL = "http://127.0.0.1:6066"


def _metadata(pairs: Sequence[str]) -> dict[str, str | int | float]:
    metadata: dict[str, str | int | float] = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator or not name:
            raise ValueError(f"invalid --metadata {pair!r}: expected KEY=VALUE")
        metadata[name] = value
    return metadata


def _cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from streams.worker import run_worker

    return run_worker(settings)


def _cmd_publish(settings: Settings, args: argparse.Namespace) -> int:
    from streams.publish import publish, records_for_files

    modality = Modality(args.modality)
    records = records_for_files(modality, args.files, _metadata(args.metadata), raw=args.raw)
    if not records:
        print(f"nothing to publish: the {modality} files have no events", file=sys.stderr)
        return EXIT_FAILURE
    sent = asyncio.run(publish(settings, modality, records))
    print(f"published {sent} {modality} events to {settings.input_topic(modality)}")
    return 0


def _cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from streams.tail import format_deadletter, format_match, tail

    if args.what == "matches":
        topic, formatter = settings.topic_matches, format_match
    else:
        topic, formatter = settings.topic_deadletter, format_deadletter
    asyncio.run(
        tail(
            settings, topic, formatter,
            from_beginning=args.from_beginning, max_records=args.max, timeout_s=args.timeout,
        )
    )
    return 0


def _cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from streams.search import search_text

    modalities = [Modality(m) for m in args.modality] if args.modality else None
    filters = {name: str(value) for name, value in _metadata(args.filter).items()}
    matches = search_text(settings, args.text, args.space, args.k, modalities, filters)
    if not matches:
        scope = " that match the filters" if filters or modalities else ""
        print(f"no stored items{scope} in space {args.space!r}")
        return 0
    for match in matches:
        print(f"{match.similarity:.3f}  {match.modality:<5} {match.id}  {match.metadata or ''}")
    return 0


def _cmd_dev(settings: Settings, args: argparse.Namespace) -> int:
    from streams.devstack import dev_down, dev_status, dev_up

    state_dir = Path(settings.data_dir) / "stack"
    if args.action == "up":
        endpoints = dev_up(state_dir, kafka_port=args.kafka_port, redis_port=args.redis_port)
        print("embedded stack is up; point the worker and the CLI at it with:")
        for name, value in endpoints.env().items():
            print(f"export {name}={value}")
        return 0
    if args.action == "down":
        stopped = dev_down(state_dir)
        print("embedded stack stopped" if stopped else "no embedded stack was running")
        return 0
    status = dev_status(state_dir)
    if status is None:
        print("no embedded stack is running")
        return EXIT_FAILURE
    for name, value in status.env().items():
        print(f"{name}={value}")
    return 0


def _cmd_top(settings: Settings, args: argparse.Namespace) -> int:
    from streams.top import run_top

    token = settings.web_token.get_secret_value() if settings.web_token else None
    return run_top(args.url, args.interval, token=token)


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    if "log_level" not in settings.model_fields_set:
        # The demo prints its own progress, and INFO lines would bury it.
        configure_logging("WARNING", settings.log_format)
    return run_demo(Path(args.workdir) if args.workdir else None)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="embedstream",
        description="Real-time multimodal embedding: Kafka in, Redis vector search and matches out. "
        "Settings come from EMBEDSTREAM_* environment variables (see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run a stream processor until interrupted")
    worker.set_defaults(handler=_cmd_worker)

    publish = commands.add_parser("publish", help="publish files as input events")
    publish.add_argument("modality", choices=[m.value for m in Modality])
    publish.add_argument("files", nargs="+", type=Path, metavar="FILE",
                         help="text: one event per non-empty line; image/audio: one event per file")
    publish.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                         help="metadata for every event (repeatable)")
    publish.add_argument("--raw", action="store_true",
                         help="image/audio: send the file bytes as the record value, id in the key")
    publish.set_defaults(handler=_cmd_publish)

    tail = commands.add_parser("tail", help="print match events or dead-letter records as they arrive")
    tail.add_argument("what", choices=["matches", "deadletter"])
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N records")
    tail.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                      help="stop after this many seconds")
    tail.set_defaults(handler=_cmd_tail)

    search = commands.add_parser("search", help="find the stored items nearest to a text")
    search.add_argument("text")
    search.add_argument("--space", required=True, help="name of the space to search")
    search.add_argument("-k", type=int, default=5, help="number of results (default: 5)")
    search.add_argument("--modality", action="append", choices=[m.value for m in Modality],
                        help="only items of this modality (repeatable; default: all of the space)")
    search.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                        help="only items whose indexed metadata FIELD equals VALUE (repeatable)")
    search.set_defaults(handler=_cmd_search)

    dev = commands.add_parser("dev", help="run the embedded Kafka broker and Redis (no Docker)")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.add_argument("--kafka-port", type=int, default=9092, help="broker port (default: 9092)")
    dev.add_argument("--redis-port", type=int, default=6379, help="Redis port (default: 6379)")
    dev.set_defaults(handler=_cmd_dev)

    top = commands.add_parser("top", help="show a running worker's throughput, latency and lag in the terminal")
    top.add_argument("--url", default=DEFAULT_TOP_URL,
                     help=f"the worker's web server, or its /metrics URL (default: {DEFAULT_TOP_URL})")
    top.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                     help="time between two reads of the worker's metrics, s (default: 1)")
    top.set_defaults(handler=_cmd_top)

    demo = commands.add_parser(
        "demo", help="run the whole pipeline on the embedded stack with real sentences and photos"
    )
    demo.add_argument("--workdir", default=None, help="directory for the demo's stack and models")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # errors() without the input values: they may hold passwords.
        problems = [
            f"  {'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        print("embedstream: invalid settings:\n" + "\n".join(problems), file=sys.stderr)
        return EXIT_USAGE
    except SettingsError as exc:
        print(f"embedstream: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format)
    try:
        return int(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except (EmbedstreamError, EncoderError, FileNotFoundError, ValueError, KeyError) as exc:
        logger.debug("command failed", exc_info=True)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"embedstream: {message}", file=sys.stderr)
        return EXIT_FAILURE
    except (RedisConnectionError, RedisTimeoutError) as exc:
        print(f"embedstream: cannot reach Redis at {mask_url_password(settings.redis_url)}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KafkaConnectionError as exc:
        print(f"embedstream: cannot reach Kafka at {settings.kafka_broker}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KafkaError as exc:
        print(f"embedstream: Kafka request to {settings.kafka_broker} failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (RedisError, OSError) as exc:
        print(f"embedstream: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
