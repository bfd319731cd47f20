"""``python -m preflight_lab serve``: run a lab fleet in the foreground for demos and benchmarks.

Prints ``KUBECONFIG=<path>``, ``FLEET=<path>`` and then ``READY`` (flushed) once every cluster
listens, and runs until SIGTERM or SIGINT, so a benchmark can start it, parse two lines and kill it.

``--with-brokers`` gives every healthy cluster Meshery's current Operator with a LoadBalancer Broker
whose LB IP is a loopback address where a real ``nats-server`` (token auth) listens on 4222. Every
address comes from :mod:`preflight_lab.addresses`, so several labs (and test suites) run side by side.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from preflight_lab.addresses import allocate
from preflight_lab.broker import NATS_PORT
from preflight_lab.fleet import ClusterSpec, LabFleet, describe, parse_mix, specs_from_mix
from preflight_lab.meshery import MesherySetup


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m preflight_lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a lab fleet until SIGTERM/SIGINT")
    serve.add_argument("--dir", required=True, help="where to write kubeconfig.yaml, fleet.yaml and exec plugins")
    serve.add_argument("--clusters", type=int, default=10, help="number of clusters (default 10)")
    serve.add_argument(
        "--scenario-mix",
        default="healthy=1",
        help="weights, e.g. healthy=8,refused=1,hung-exec=1 (default healthy)",
    )
    serve.add_argument("--prefix", default="lab", help="context name prefix (default lab)")
    serve.add_argument(
        "--with-brokers",
        action="store_true",
        help="healthy clusters get a current-generation Meshery Operator and a real NATS broker behind a LoadBalancer",
    )
    serve.add_argument(
        "--realistic",
        action="store_true",
        help="answer as heavily as a real 1.30-era cluster (full discovery, dressed objects, 3 nodes, full rule lists)",
    )
    serve.add_argument("--verbose", "-v", action="store_true", help="list the clusters on stderr")
    return parser


def add_brokers(specs: Sequence[ClusterSpec]) -> None:
    """Give each healthy spec a current-generation LoadBalancer Broker whose LB IP is its broker address."""
    for spec in specs:
        if spec.scenario == "healthy" and spec.meshery is None:
            address = allocate(NATS_PORT)
            spec.meshery = MesherySetup(
                generation="current", service_type="LoadBalancer", lb_ip=address, broker_address=address
            )


def serve(args: argparse.Namespace) -> int:
    if args.clusters < 1:
        print("--clusters must be at least 1", file=sys.stderr)
        return 2
    try:
        specs = specs_from_mix(args.clusters, parse_mix(args.scenario_mix), args.prefix)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.with_brokers:
        try:
            add_brokers(specs)
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with LabFleet(specs, args.dir, realistic=args.realistic) as fleet:
        if args.verbose:
            print(describe(fleet), file=sys.stderr, flush=True)
        print(f"KUBECONFIG={fleet.kubeconfig_path}", flush=True)
        print(f"FLEET={fleet.fleet_path}", flush=True)
        print("READY", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse enforces the subcommand


if __name__ == "__main__":
    sys.exit(main())
