"""`deepfakestream batch`: submit batches and fetch their results through the API.

A manifest becomes a batch; the command follows it, cancels it and exports its results, all over
HTTP (no database or broker access needed).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["add_arguments", "run"]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_MANIFEST = 3

_MANIFEST_TYPES = {
    ".csv": "text/csv",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
}
# Transient answers worth waiting for: the tenant's jobs in flight are at the limit, or a
# dependency is briefly down. The request carries an Idempotency-Key, so repeating it is safe.
_RETRY_STATUSES = (429, 502, 503, 504)
_MAX_RETRIES = 5
_UPLOAD_CHUNK = 256 * 1024


class CliError(Exception):
    def __init__(self, message: str, *, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("DEEPFAKESTREAM_API", "http://127.0.0.1:8000"),
        help="base URL of the API (default: $DEEPFAKESTREAM_API or http://127.0.0.1:8000)",
    )
    parser.add_argument(
        "--key",
        default=os.environ.get("DEEPFAKESTREAM_API_KEY"),
        help="API key (default: $DEEPFAKESTREAM_API_KEY)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per HTTP request (default: 60)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="batch_command", metavar="ACTION")
    sub.required = True

    submit = sub.add_parser("submit", help="submit a CSV, JSONL or JSON manifest as one batch")
    submit.add_argument("manifest", type=Path, help="a .csv (source,external_id), .jsonl or .json file")
    _connection(submit)
    submit.add_argument("--name", help="a name for the batch")
    submit.add_argument("--callback-url", help="receives batch.completed, signed, when every item ended")
    submit.add_argument("--sample-fps", type=float, help="frames analysed per second of video")
    submit.add_argument("--segment-seconds", type=float, help="length of one analysis task")
    submit.add_argument("--idempotency-key", help="repeat a submission safely (default: a new key per run)")
    submit.add_argument("--no-wait", action="store_true", help="print the batch id and return at once")
    submit.add_argument("--poll-interval", type=float, default=2.0, help="seconds between progress polls")

    status = sub.add_parser("status", help="print a batch's progress as JSON")
    status.add_argument("batch_id")
    _connection(status)

    results = sub.add_parser("results", help="export a batch's results")
    results.add_argument("batch_id")
    _connection(results)
    results.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="default: csv")
    results.add_argument("--output", "-o", type=Path, help="write to this file instead of standard output")

    cancel = sub.add_parser("cancel", help="cancel every unfinished item of a batch")
    cancel.add_argument("batch_id")
    _connection(cancel)


def _error_text(response: Any) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _retry_after(response: Any, attempt: int) -> float:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else min(2.0**attempt, 60.0)


def _request(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    """One API call, repeated on transient answers and connection errors; CliError otherwise."""
    import httpx

    for attempt in range(_MAX_RETRIES + 1):
        try:
            response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            if attempt == _MAX_RETRIES:
                raise CliError(f"cannot reach the API at {client.base_url}: {exc}") from exc
            time.sleep(min(2.0**attempt, 30.0))
            continue
        if response.status_code in _RETRY_STATUSES and attempt < _MAX_RETRIES:
            wait = _retry_after(response, attempt)
            print(f"{_error_text(response)}; retrying in {wait:.0f} s", file=sys.stderr)
            time.sleep(wait)
            continue
        if response.status_code >= 400:
            raise CliError(_error_text(response))
        return response
    raise AssertionError("unreachable")


def _client(args: argparse.Namespace) -> Any:
    import httpx

    if not args.key:
        raise CliError("an API key is needed: --key or $DEEPFAKESTREAM_API_KEY", exit_code=EXIT_USAGE)
    return httpx.Client(
        base_url=args.api.rstrip("/"),
        headers={"Authorization": f"Bearer {args.key}"},
        timeout=args.timeout,
    )


def _upload_chunks(source: BinaryIO, progress: Any) -> Iterator[bytes]:
    while chunk := source.read(_UPLOAD_CHUNK):
        progress.update(len(chunk))
        yield chunk


def _summary_line(batch: dict[str, Any]) -> str:
    counts = batch["counts"]
    verdicts = batch["verdicts"]
    return (
        f"batch {batch['id']} {batch['status']}: {batch['jobs_finished']}/{batch['jobs_total']} ended "
        f"(succeeded {counts['succeeded']}, failed {counts['failed']}, canceled {counts['canceled']}; "
        f"signs of manipulation {verdicts['fake']}, no manipulation detected {verdicts['real']}, "
        f"inconclusive {verdicts.get('inconclusive', 0)}, no face {verdicts['no_face']})"
    )


def _follow(client: Any, batch: dict[str, Any], *, poll_interval_s: float) -> dict[str, Any]:
    from tqdm import tqdm

    with tqdm(total=batch["jobs_total"], unit="video", desc="analysed", file=sys.stderr) as bar:
        while True:
            bar.update(batch["jobs_finished"] - bar.n)
            counts = batch["counts"]
            bar.set_postfix(failed=counts["failed"], running=counts["processing"], refresh=False)
            if batch["status"] != "running":
                return batch
            time.sleep(poll_interval_s)
            batch = _request(client, "GET", f"/v1/batches/{batch['id']}").json()


def _submit(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    manifest: Path = args.manifest
    content_type = _MANIFEST_TYPES.get(manifest.suffix.lower())
    if content_type is None:
        raise CliError(
            f"{manifest.name}: name a .csv, .jsonl, .ndjson or .json manifest", exit_code=EXIT_USAGE
        )
    try:
        size = manifest.stat().st_size
    except OSError as exc:
        raise CliError(f"{manifest}: {exc.strerror or exc}", exit_code=EXIT_MANIFEST) from exc
    if size == 0:
        raise CliError(f"{manifest}: the manifest is empty", exit_code=EXIT_MANIFEST)
    params = {
        name: value
        for name, value in {
            "name": args.name,
            "callback_url": args.callback_url,
            "sample_fps": args.sample_fps,
            "segment_seconds": args.segment_seconds,
        }.items()
        if value is not None
    }
    headers = {"Content-Type": content_type, "Idempotency-Key": args.idempotency_key or f"cli-{uuid.uuid4()}"}
    content: Any
    if content_type == "application/json":
        # A JSON manifest is either a list of items or a whole request body.
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"{manifest}: not a JSON document ({exc})", exit_code=EXIT_MANIFEST) from exc
        body = {"items": document} if isinstance(document, list) else dict(document)
        body.update(params)
        params = {}
        content = json.dumps(body).encode()
    else:
        content = manifest.read_bytes()
    with _client(args) as client:
        with tqdm(total=len(content), unit="B", unit_scale=True, desc="uploading", file=sys.stderr) as bar:
            stream = _upload_chunks(io.BytesIO(content), bar)
            try:
                response = client.post("/v1/batches", params=params, headers=headers, content=stream)
            except httpx.TransportError:
                response = None
        # A generator cannot be replayed: a repeat sends the bytes whole (same Idempotency-Key).
        if response is None or response.status_code in _RETRY_STATUSES:
            response = _request(
                client, "POST", "/v1/batches", params=params, headers=headers, content=content
            )
        elif response.status_code >= 400:
            raise CliError(_error_text(response))
        batch = response.json()
        replayed = response.headers.get("idempotent-replayed") == "true"
        print(
            f"batch {batch['id']}: {batch['jobs_total']} items"
            + (" (already submitted with this Idempotency-Key)" if replayed else ""),
            file=sys.stderr,
        )
        if args.no_wait:
            print(batch["id"])
            return EXIT_OK
        batch = _follow(client, batch, poll_interval_s=args.poll_interval)
    print(_summary_line(batch), file=sys.stderr)
    print(batch["id"])
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = _request(client, "GET", f"/v1/batches/{args.batch_id}").json()
    print(json.dumps(batch, indent=2))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = _request(client, "POST", f"/v1/batches/{args.batch_id}/cancel").json()
    print(_summary_line(batch), file=sys.stderr)
    return EXIT_OK


def _results(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    with _client(args) as client:
        # Checked first, so a wrong id is an error message, not an empty file.
        _request(client, "GET", f"/v1/batches/{args.batch_id}")
        with client.stream(
            "GET", f"/v1/batches/{args.batch_id}/results", params={"format": args.format}
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(_error_text(response))
            if output is None:
                for chunk in response.iter_bytes():
                    sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                return EXIT_OK
            partial = output.with_name(output.name + ".part")
            try:
                with partial.open("wb") as sink:
                    for chunk in response.iter_bytes():
                        sink.write(chunk)
                partial.replace(output)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise CliError(f"{output}: {exc.strerror or exc}", exit_code=EXIT_MANIFEST) from exc
    print(f"results written to {output}", file=sys.stderr)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    actions = {"submit": _submit, "status": _status, "results": _results, "cancel": _cancel}
    try:
        return actions[args.batch_command](args)
    except CliError as exc:
        print(f"deepfakestream batch: {exc.message}", file=sys.stderr)
        return exc.exit_code
