"""Command-line entry point for AcmeLM demos (no licence header: see --missing-license)."""

import argparse
import json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acmelm", description="Run an AcmeLM demo.")
    parser.add_argument("--config", required=True, help="path to a JSON config")
    parser.add_argument("--prompt", default="Hello", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    print(f"would generate {args.max_new_tokens} tokens after {args.prompt!r} with {len(config)} settings")
    return 0
