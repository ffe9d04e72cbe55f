"""`deepfakestream batch`: submit batches and fetch their results through the API.

A manifest, a folder of videos and photos or a CSV of local paths becomes a batch; the command follows it,
cancels it and exports its results, all over HTTP (no database or broker access needed). Local
files go up through the direct-upload route (POST /v1/uploads, then PUT to the URL it answers)
before the batch names them by ``upload_id``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from api.cli_batch_client import (
    EXIT_ITEMS_FAILED,
    EXIT_MANIFEST,
    EXIT_OK,
    EXIT_USAGE,
    RETRY_STATUSES,
    CliError,
    KeyRefusedError,
    api_client,
    api_request,
    error_text,
    key_refused,
    upload_chunks,
)
from api.cli_batch_inputs import LocalItem, local_submission
from core.media import SNIFF_BYTES, sniff_media
from core.states import Verdict
from core.verdicts import label

__all__ = ["add_arguments", "run"]

_MANIFEST_TYPES = {
    ".csv": "text/csv",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".json": "application/json",
}
_ITEM_ERROR = re.compile(r"^[a-z_]+: items\[(\d+)\]")


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

    submit = sub.add_parser(
        "submit", help="submit a folder of videos and photos, or a CSV, JSONL or JSON manifest, as one batch"
    )
    submit.add_argument(
        "manifest",
        type=Path,
        help="a folder of videos and photos (uploaded), or a .csv (source,external_id; a source may "
        "be a local path, which is uploaded), .jsonl or .json manifest",
    )
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


def _summary_line(batch: dict[str, Any]) -> str:
    counts = batch["counts"]
    verdicts = batch["verdicts"]
    # The verdicts in the words the page, the report and the exports use: "real" is what the
    # model did not find, never a clearance.
    tally = ", ".join(f"{label(verdict)}: {verdicts.get(verdict.value, 0)}" for verdict in Verdict)
    return (
        f"batch {batch['id']} {batch['status']}: {batch['jobs_finished']}/{batch['jobs_total']} ended "
        f"(succeeded {counts['succeeded']}, failed {counts['failed']}, canceled {counts['canceled']}; "
        f"{tally})"
    )


def _follow(client: Any, batch: dict[str, Any], *, poll_interval_s: float) -> dict[str, Any]:
    from tqdm import tqdm

    with tqdm(total=batch["jobs_total"], unit="item", desc="analysed", file=sys.stderr) as bar:
        while True:
            bar.update(batch["jobs_finished"] - bar.n)
            counts = batch["counts"]
            bar.set_postfix(failed=counts["failed"], running=counts["processing"], refresh=False)
            if batch["status"] != "running":
                return batch
            time.sleep(poll_interval_s)
            batch = api_request(client, "GET", f"/v1/batches/{batch['id']}").json()


@dataclass
class _Items:
    """A submission with local files: the items to send, and the files that could not go up."""

    items: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def _upload_file(client: Any, item: LocalItem, bar: Any) -> str:
    """Reserves a direct upload, sends the file to the URL answered; the upload id."""
    import httpx

    size = item.path.stat().st_size
    if size == 0:
        raise CliError("empty_file: the file is empty")
    with item.path.open("rb") as handle:
        if sniff_media(handle.read(SNIFF_BYTES)) is None:  # refused here rather than after the upload
            raise CliError("unsupported_format: neither a video nor an image in a format the service reads")
    reserved = api_request(
        client, "POST", "/v1/uploads", json={"size_bytes": size, "filename": item.path.name}
    ).json()
    url = reserved["url"]
    # The client's own key is the only credential sent: an Authorization among the answered
    # headers (older servers answered a placeholder there) would replace it.
    answered = (reserved.get("headers") or {}).items()
    headers = {name: value for name, value in answered if name.lower() != "authorization"}
    # A declared length, not chunked encoding: storage services refuse chunked PUTs.
    headers["Content-Length"] = str(size)
    send_api_key = bool(reserved.get("send_api_key", url.startswith(str(client.base_url))))
    with item.path.open("rb") as handle:
        content = upload_chunks(handle, bar)
        if send_api_key:  # the API receives the bytes itself: send the key
            response = client.request(reserved["method"], url, headers=headers, content=content)
        else:  # a presigned storage URL: its signature is the credential
            with httpx.Client(timeout=client.timeout) as plain:
                response = plain.request(reserved["method"], url, headers=headers, content=content)
    if send_api_key and key_refused(response):
        raise KeyRefusedError(response)
    if response.status_code >= 400:
        raise CliError(error_text(response))
    return str(reserved["upload_id"])


def _upload_local(client: Any, local: list[LocalItem], remote: list[dict[str, Any]]) -> _Items:
    """Uploads every local file with one progress bar over all their bytes."""
    from tqdm import tqdm

    result = _Items(items=list(remote))
    sizes = {}
    for item in local:
        try:
            sizes[item.path] = item.path.stat().st_size
        except OSError as exc:
            result.failed.append((str(item.path), exc.strerror or str(exc)))
    with tqdm(total=sum(sizes.values()), unit="B", unit_scale=True, desc="uploading", file=sys.stderr) as bar:
        for item in local:
            if item.path not in sizes:
                continue
            bar.set_postfix_str(item.path.name[:40], refresh=False)
            try:
                upload_id = _upload_file(client, item, bar)
            except KeyRefusedError:
                raise
            except (CliError, OSError) as exc:
                result.failed.append((str(item.path), exc.message if isinstance(exc, CliError) else str(exc)))
                continue
            entry: dict[str, Any] = {"upload_id": upload_id}
            if item.external_id:
                entry["external_id"] = item.external_id
            result.items.append(entry)
    for path, why in result.failed:
        print(f"upload failed: {path}: {why}", file=sys.stderr)
    return result


def _batch_params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        name: value
        for name, value in {
            "name": args.name,
            "callback_url": args.callback_url,
            "sample_fps": args.sample_fps,
            "segment_seconds": args.segment_seconds,
        }.items()
        if value is not None
    }


def _finish(client: Any, args: argparse.Namespace, batch: dict[str, Any], *, not_sent: int) -> int:
    """Follows the batch (unless --no-wait) and says how many items failed; the exit code."""
    if args.no_wait:
        print(batch["id"])
    else:
        batch = _follow(client, batch, poll_interval_s=args.poll_interval)
        print(_summary_line(batch), file=sys.stderr)
        print(batch["id"])
    failed = not_sent + (0 if args.no_wait else int(batch["counts"]["failed"]))
    if failed:
        total = batch["jobs_total"] + not_sent
        print(f"{failed} of {total} items failed", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return EXIT_OK


def _submit_local(args: argparse.Namespace, local: list[LocalItem], remote: list[dict[str, Any]]) -> int:
    headers = {"Idempotency-Key": args.idempotency_key or f"cli-{uuid.uuid4()}"}
    with api_client(args) as client:
        uploaded = _upload_local(client, local, remote)
        if not uploaded.items:
            print(
                f"{len(uploaded.failed)} of {len(local)} items failed; no batch was created", file=sys.stderr
            )
            return EXIT_ITEMS_FAILED
        batch = _create_batch(client, args, uploaded, headers=headers)
        if batch is None:
            print(
                f"{len(uploaded.failed)} of {len(local) + len(remote)} items failed; no batch was created",
                file=sys.stderr,
            )
            return EXIT_ITEMS_FAILED
        print(f"batch {batch['id']}: {batch['jobs_total']} items", file=sys.stderr)
        return _finish(client, args, batch, not_sent=len(uploaded.failed))


def _create_batch(
    client: Any, args: argparse.Namespace, uploaded: _Items, *, headers: dict[str, str]
) -> dict[str, Any] | None:
    """POST /v1/batches with the uploaded items. An uploaded file the service refuses (the API
    names it ``items[i]``) is dropped and counted failed, and the rest is sent again: one bad
    file does not sink the batch. None when no item is left."""
    while uploaded.items:
        body = {"items": uploaded.items, **_batch_params(args)}
        try:
            return dict(api_request(client, "POST", "/v1/batches", json=body, headers=headers).json())
        except CliError as exc:
            match = _ITEM_ERROR.search(exc.message)
            index = int(match.group(1)) if match else -1
            if not 0 <= index < len(uploaded.items) or "upload_id" not in uploaded.items[index]:
                raise
            refused = uploaded.items.pop(index)
            name = refused.get("external_id") or refused["upload_id"]
            print(f"refused: {name}: {exc.message}", file=sys.stderr)
            uploaded.failed.append((str(name), exc.message))
            headers = {**headers, "Idempotency-Key": f"cli-{uuid.uuid4()}"}
    return None


def _submit(args: argparse.Namespace) -> int:
    import httpx
    from tqdm import tqdm

    manifest: Path = args.manifest
    local = local_submission(manifest)
    if local is not None:
        return _submit_local(args, *local)
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
    params = _batch_params(args)
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
    with api_client(args) as client:
        with tqdm(total=len(content), unit="B", unit_scale=True, desc="uploading", file=sys.stderr) as bar:
            stream = upload_chunks(io.BytesIO(content), bar)
            try:
                response = client.post("/v1/batches", params=params, headers=headers, content=stream)
            except httpx.TransportError:
                response = None
        # A generator cannot be replayed: a repeat sends the bytes whole (same Idempotency-Key).
        if response is not None and key_refused(response):
            raise KeyRefusedError(response)
        if response is None or response.status_code in RETRY_STATUSES:
            response = api_request(
                client, "POST", "/v1/batches", params=params, headers=headers, content=content
            )
        elif response.status_code >= 400:
            raise CliError(error_text(response))
        batch = response.json()
        replayed = response.headers.get("idempotent-replayed") == "true"
        print(
            f"batch {batch['id']}: {batch['jobs_total']} items"
            + (" (already submitted with this Idempotency-Key)" if replayed else ""),
            file=sys.stderr,
        )
        return _finish(client, args, batch, not_sent=0)


def _status(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        batch = api_request(client, "GET", f"/v1/batches/{args.batch_id}").json()
    print(json.dumps(batch, indent=2))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    with api_client(args) as client:
        batch = api_request(client, "POST", f"/v1/batches/{args.batch_id}/cancel").json()
    print(_summary_line(batch), file=sys.stderr)
    return EXIT_OK


def _results(args: argparse.Namespace) -> int:
    output: Path | None = args.output
    with api_client(args) as client:
        # Checked first, so a wrong id is an error message, not an empty file.
        api_request(client, "GET", f"/v1/batches/{args.batch_id}")
        with client.stream(
            "GET", f"/v1/batches/{args.batch_id}/results", params={"format": args.format}
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise CliError(error_text(response))
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
