"""The client: a thin layer over the coordinator's ClientService (gRPC).

Everything the CLI checks on the coordinator's side is checked there for
Python too: prompt lines, teachers, export formats and filters. The export
is formatted by the coordinator (ExportRequest.layout), so the lines, splits
and dataset card are the CLI's, byte for byte.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
import time
from typing import (Any, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Union)

import grpc

from distillery import rows as _rows
from distillery.rows import RowError
from distillery.v1 import client_service_pb2 as pb
from distillery.v1 import client_service_pb2_grpc as pb_grpc
from distillery.v1 import types_pb2

# As the CLI's: a chunk is one gRPC message, well under the smallest
# --max-message-mb the coordinator takes (1 MiB).
_SUBMIT_CHUNK_BYTES = 512 << 10
_SUBMIT_CHUNK_LINES = 4096
_DEFAULT_PORT = 7070

_MODES = {"online": types_pb2.JOB_MODE_ONLINE,
          "batch": types_pb2.JOB_MODE_BATCH,
          "auto": types_pb2.JOB_MODE_AUTO}


class DistilleryError(Exception):
    """A call the coordinator refused or could not serve.

    `code` is the gRPC status code's name ("INVALID_ARGUMENT", "NOT_FOUND",
    ...), `message` the coordinator's own words, and `line` the prompt line
    (row) it names, if any.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
        m = re.match(r"line (\d+):", message)
        self.line: Optional[int] = int(m.group(1)) if m else None


def _error(e: grpc.RpcError) -> DistilleryError:
    code = e.code().name if e.code() is not None else "UNKNOWN"
    return DistilleryError(code, e.details() or code)


_STATE_NAMES = {
    types_pb2.JOB_STATE_SUBMITTING: "submitting",
    types_pb2.JOB_STATE_RUNNING: "running",
    types_pb2.JOB_STATE_COMPLETED: "completed",
    types_pb2.JOB_STATE_CANCELLED: "cancelled",
    types_pb2.JOB_STATE_FAILED: "failed",
    types_pb2.JOB_STATE_PAUSED: "paused",
}


@dataclasses.dataclass(frozen=True)
class Job:
    """A job as the coordinator had it when this was read.

    `state` is one of submitting, running, completed, cancelled, failed,
    paused. `percent` is the share of tasks settled (answered or
    dead-lettered). `proto` is the full distillery.v1.Job message.
    """

    id: str
    state: str
    percent: float
    cost_usd: float
    prompts: int
    tasks_total: int
    tasks_done: int
    tasks_failed: int
    error: str
    proto: Any = dataclasses.field(repr=False, compare=False)

    @property
    def running(self) -> bool:
        """Still harvesting (not ended, not paused)."""
        return self.state in ("submitting", "running")

    @staticmethod
    def from_proto(job: Any) -> "Job":
        c = job.counters
        settled = c.tasks_done + c.tasks_failed
        return Job(id=job.id,
                   state=_STATE_NAMES.get(job.state, "unknown"),
                   percent=100.0 * settled / c.tasks_total
                   if c.tasks_total else 0.0,
                   cost_usd=c.cost_usd, prompts=c.prompts,
                   tasks_total=c.tasks_total, tasks_done=c.tasks_done,
                   tasks_failed=c.tasks_failed, error=job.error, proto=job)


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What export_to wrote: each split's file and record count."""

    paths: Dict[str, str]
    records: Dict[str, int]
    card: Optional[str]
    duplicates_left_out: int
    near_duplicates_left_out: int

    @property
    def total(self) -> int:
        return sum(self.records.values())


JobRef = Union[str, Job]


def _job_id(job: JobRef) -> str:
    return job.id if isinstance(job, Job) else str(job)


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _target(address: str) -> str:
    """HOST[:PORT] or http://HOST:PORT, as the CLI's --coordinator."""
    for scheme in ("http://", "https://"):
        if address.startswith(scheme):
            address = address[len(scheme):]
    address = address.rstrip("/")
    if not address:
        raise ValueError("coordinator address is empty")
    if address.startswith("["):  # [v6]:port
        return address if "]:" in address else f"{address}:{_DEFAULT_PORT}"
    if address.count(":") == 1 or address.startswith("unix:"):
        return address
    if address.count(":") > 1:  # a bare IPv6 address
        return f"[{address}]:{_DEFAULT_PORT}"
    return f"{address}:{_DEFAULT_PORT}"


def split_path(path: str, name: str) -> str:
    """"data.jsonl" -> "data.train.jsonl", as `distillery export --split`."""
    head, base = os.path.split(path)
    dot = base.rfind(".")
    if dot <= 0:
        return os.path.join(head, f"{base}.{name}")
    return os.path.join(head, f"{base[:dot]}.{name}{base[dot:]}")


class Client:
    """A connection to a coordinator.

    Args:
      address: HOST[:PORT] (port 7070 when left out), as the CLI's
        --coordinator; defaults to $DISTILLERY_COORDINATOR, else
        127.0.0.1:7070.
      tls_ca: PEM CA of the coordinator's certificate: connect with TLS.
      tls_cert, tls_key: a client certificate, for a coordinator requiring
        mTLS.
      tls_server_name: the name to check the certificate against.
      token: the bearer token; else token_file's, else $DISTILLERY_TOKEN.
      connect_timeout: seconds to wait for the coordinator to answer.
    """

    def __init__(self, address: Optional[str] = None, *,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None,
                 tls_server_name: Optional[str] = None,
                 token: Optional[str] = None, token_file: Optional[str] = None,
                 connect_timeout: float = 20.0):
        if address is None:
            address = os.environ.get("DISTILLERY_COORDINATOR",
                                     "127.0.0.1:7070")
        self.target = _target(address)
        if token is None and token_file is not None:
            token = (_read(token_file) or b"").decode("utf-8").strip()
            if not token:
                raise ValueError(f"{token_file} is empty")
        if token is None:
            token = os.environ.get("DISTILLERY_TOKEN") or None
        self._metadata = (("authorization", f"Bearer {token}"),) if token \
            else ()
        options = [("grpc.max_receive_message_length", 256 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]
        if tls_ca is not None:
            if (tls_cert is None) != (tls_key is None):
                raise ValueError("tls_cert and tls_key go together")
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca),
                private_key=_read(tls_key),
                certificate_chain=_read(tls_cert))
            if tls_server_name:
                options.append(("grpc.ssl_target_name_override",
                                tls_server_name))
            self._channel = grpc.secure_channel(self.target, creds, options)
        else:
            self._channel = grpc.insecure_channel(self.target, options)
        try:
            grpc.channel_ready_future(self._channel).result(
                timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            self._channel.close()
            raise DistilleryError(
                "UNAVAILABLE",
                f"cannot reach the coordinator at {self.target} within "
                f"{connect_timeout:g} s ({'TLS' if tls_ca else 'plaintext'})"
            ) from None
        self._stub = pb_grpc.ClientServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ submit

    def submit(self, rows: _rows.Rows, *, teacher: str, model: str,
               samples: int = 1, template: Optional[str] = None,
               system: Optional[str] = None,
               max_tokens: Optional[int] = None,
               temperature: Optional[float] = None,
               top_p: Optional[float] = None, seed: Optional[int] = None,
               budget_usd: Optional[float] = None, mode: str = "online",
               deadline_s: Optional[float] = None,
               source: Optional[str] = None,
               verify: Optional[str] = None,
               answer_field: Optional[str] = None,
               until_correct: Optional[int] = None,
               max_samples: Optional[int] = None,
               logprobs: Optional[int] = None,
               json_schema: Union[None, str, os.PathLike, Dict[str, Any]] = None,
               ) -> Job:
        """Submits a prompt set; returns the new job.

        `rows`: a path to a JSONL file, a list or any iterable of dicts (a
        Hugging Face Dataset), or a pandas DataFrame. With `template` (Jinja2
        text, strict), rows are dataset rows (see distillery.rows);
        without, each row is a prompt line. The rows are streamed: a bad row
        raises RowError naming it, a line the coordinator refuses raises
        DistilleryError with its message ("line N: ..."), and either way
        nothing is stored.

        As the CLI's submit flags: `verify` ("math", "exact" or
        "regex:PATTERN") with `answer_field`, `until_correct` and
        `max_samples` (adaptive sampling); `logprobs` (top K, 1-20);
        `json_schema` (a path to a JSON Schema file, or the schema as a
        dict).
        """
        if mode not in _MODES:
            raise ValueError(f"mode {mode!r}: use online, batch or auto")
        spec = types_pb2.JobSpec(teacher=teacher, model=model,
                                 samples=samples, mode=_MODES[mode])
        if max_tokens is not None:
            spec.params.max_tokens = max_tokens
        if temperature is not None:
            spec.params.temperature = temperature
        if top_p is not None:
            spec.params.top_p = top_p
        if seed is not None:
            spec.params.seed = seed
        if system is not None:
            spec.system_prompt = system
        if budget_usd is not None:
            spec.budget_usd = budget_usd
        if deadline_s is not None:
            spec.deadline_ms = int((time.time() + deadline_s) * 1000)
        if verify is not None:
            spec.verify = verify
        if answer_field is not None:
            spec.answer_field = answer_field
        if until_correct is not None:
            spec.until_correct = until_correct
        if max_samples is not None:
            spec.max_samples = max_samples
        if logprobs is not None:
            spec.params.top_logprobs = logprobs
        if json_schema is not None:
            if isinstance(json_schema, dict):
                spec.json_schema = json.dumps(json_schema)
                spec.json_schema_name = "schema"
            else:
                path = os.fspath(json_schema)
                with open(path, encoding="utf-8") as f:
                    spec.json_schema = f.read()
                name = os.path.splitext(os.path.basename(path))[0]
                name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
                spec.json_schema_name = name or "schema"
        if source is None:
            source = os.path.basename(os.fspath(rows)) \
                if isinstance(rows, (str, os.PathLike)) else "python"
        spec.source = source

        failure: List[BaseException] = []

        def requests() -> Iterator[Any]:
            request = pb.SubmitRequest(spec=spec)
            size = 0
            try:
                for line in _rows.prompt_lines(rows, template):
                    if request.lines and (
                            size + len(line) > _SUBMIT_CHUNK_BYTES or
                            len(request.lines) >= _SUBMIT_CHUNK_LINES):
                        yield request
                        request = pb.SubmitRequest()
                        size = 0
                    request.lines.append(line)
                    size += len(line) + 8
            except BaseException as e:  # noqa: BLE001 - re-raised below
                # Raising here cancels the call: the coordinator then keeps
                # nothing of the submission.
                failure.append(e)
                raise
            yield request

        try:
            response = self._stub.Submit(requests(), metadata=self._metadata)
        except grpc.RpcError as e:
            if failure:
                raise failure[0] from None
            raise _error(e) from None
        if failure:
            raise failure[0]
        return Job.from_proto(response.job)

    # ------------------------------------------------------------- jobs

    def job(self, job: JobRef) -> Job:
        """The job now."""
        return Job.from_proto(self._call(
            self._stub.GetJob, pb.GetJobRequest(job_id=_job_id(job))))

    def jobs(self) -> List[Job]:
        """Every job the coordinator holds."""
        return [Job.from_proto(j) for j in self._call(
            self._stub.ListJobs, pb.ListJobsRequest()).jobs]

    def watch(self, job: JobRef) -> Iterator[Job]:
        """The job now and on every change, until it ends or pauses."""
        try:
            for update in self._stub.WatchJob(
                    pb.WatchJobRequest(job_id=_job_id(job)),
                    metadata=self._metadata):
                j = Job.from_proto(update)
                yield j
                if not j.running:
                    return
        except grpc.RpcError as e:
            raise _error(e) from None

    def wait(self, job: JobRef) -> Job:
        """Follows the job until it ends or pauses; returns its last state."""
        last = self.job(job)
        for last in self.watch(job):
            pass
        return last

    def cancel(self, job: JobRef) -> Job:
        return Job.from_proto(self._call(
            self._stub.CancelJob, pb.CancelJobRequest(job_id=_job_id(job))))

    def retry(self, job: JobRef) -> Job:
        """Harvests the job's dead-lettered tasks again."""
        return Job.from_proto(self._call(
            self._stub.RetryJob, pb.RetryJobRequest(job_id=_job_id(job))))

    def resume(self, job: JobRef, budget_usd: float = 0) -> Job:
        """Resumes a job paused at its budget, with a higher one."""
        return Job.from_proto(self._call(
            self._stub.ResumeJob,
            pb.ResumeJobRequest(job_id=_job_id(job), budget_usd=budget_usd)))

    # ----------------------------------------------------------- export

    def export(self, jobs: Union[JobRef, Sequence[JobRef]],
               format: str = "openai", **filters: Any) -> Iterator[dict]:
        """The exported records as dicts, streamed, one per dataset line.

        `format`: openai, chat, sharegpt, raw, logprobs or errors. Keyword
        filters as the CLI's flags: reasoning, reasoning_key,
        include_duplicates, include_failed, finish_reasons, teachers,
        models, min_chars, max_chars, min_tokens, max_tokens, metadata (a
        dict), near_dup_threshold, verified_only, min_pass_rate,
        max_pass_rate.
        """
        request = self._export_request(jobs, format, filters)
        for chunk in self._export_chunks(request):
            for part in chunk.parts:
                for line in part.split(b"\n"):
                    if line:
                        yield json.loads(line)

    def export_to(self, jobs: Union[JobRef, Sequence[JobRef]], path: str,
                  format: str = "openai", *,
                  split: Optional[Mapping[str, float]] = None,
                  seed: int = 0, card: bool = False,
                  license: Optional[str] = None,
                  language: Union[None, str, Sequence[str]] = None,
                  pretty_name: Optional[str] = None,
                  **filters: Any) -> ExportResult:
        """Writes the export to `path` (one file per split), each whole or
        absent: written beside its destination and renamed into place.

        `split` such as {"train": 0.95, "test": 0.05} writes
        data.train.jsonl and data.test.jsonl for path data.jsonl, by a
        stable hash of each prompt's id and `seed`. `card` also writes
        README.md, a Hugging Face dataset card, in the same folder.
        """
        request = self._export_request(jobs, format, filters)
        layout = request.layout
        names = ["train"]
        if split:
            names = list(split)
            layout.split = ",".join(f"{n}={float(f)!r}"
                                    for n, f in split.items())
            layout.split_seed = seed
        paths = [split_path(path, n) for n in names] if split else [path]
        card_path = None
        if card:
            layout.card.data_files.extend(os.path.basename(p) for p in paths)
            if license:
                layout.card.license = license
            if language:
                layout.card.languages.extend(
                    [language] if isinstance(language, str) else language)
            if pretty_name:
                layout.card.pretty_name = pretty_name
            card_path = os.path.join(os.path.dirname(path), "README.md")
        targets = paths + ([card_path] if card_path else [])
        temps = []
        try:
            for target in targets:
                folder = os.path.dirname(target) or "."
                os.makedirs(folder, exist_ok=True)
                temps.append(tempfile.NamedTemporaryFile(
                    dir=folder, prefix=f".{os.path.basename(target)}.",
                    suffix=".tmp", delete=False))
            summary = None
            for chunk in self._export_chunks(request):
                for i, part in enumerate(chunk.parts):
                    temps[i].write(part)
                if chunk.HasField("summary"):
                    summary = chunk.summary
            if summary is None:
                raise DistilleryError("DATA_LOSS",
                                      "export ended without its summary")
            if card_path:
                temps[-1].write(summary.card_markdown.encode("utf-8"))
            for temp in temps:
                temp.flush()
                os.fsync(temp.fileno())
                temp.close()
            for temp, target in zip(temps, targets):
                os.replace(temp.name, target)
            temps = []
        finally:
            for temp in temps:
                temp.close()
                try:
                    os.unlink(temp.name)
                except FileNotFoundError:
                    pass
        return ExportResult(
            paths=dict(zip(names, paths)),
            records=dict(zip(names, summary.part_records)),
            card=card_path,
            duplicates_left_out=summary.duplicates_left_out,
            near_duplicates_left_out=summary.near_duplicates_left_out)

    # ---------------------------------------------------------- helpers

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _error(e) from None

    def _export_chunks(self, request: Any) -> Iterator[Any]:
        try:
            yield from self._stub.Export(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise _error(e) from None

    @staticmethod
    def _export_request(jobs: Union[JobRef, Sequence[JobRef]], format: str,
                        filters: Dict[str, Any]) -> Any:
        if isinstance(jobs, (str, Job)):
            jobs = [jobs]
        request = pb.ExportRequest(job_ids=[_job_id(j) for j in jobs])
        request.layout.format = format
        f = dict(filters)
        request.layout.reasoning = f.pop("reasoning", None) or ""
        request.layout.reasoning_key = f.pop("reasoning_key", None) or ""
        if format == "errors":
            request.failed_only = True
        request.include_duplicates = bool(f.pop("include_duplicates", False))
        request.include_failed = bool(f.pop("include_failed", False))
        reasons = f.pop("finish_reasons",
                        ("stop", "end_turn", "tool_calls", "tool_use"))
        if isinstance(reasons, str):
            reasons = [reasons]
        if "any" not in reasons and format != "errors":
            request.finish_reasons.extend(reasons)
        for key in ("teachers", "models"):
            values = f.pop(key, ())
            getattr(request, key).extend(
                [values] if isinstance(values, str) else values)
        for key in ("min_chars", "max_chars", "min_tokens", "max_tokens"):
            setattr(request, key, int(f.pop(key, 0) or 0))
        request.near_dup_threshold = float(f.pop("near_dup_threshold", 0) or 0)
        request.verified_only = bool(f.pop("verified_only", False))
        for key in ("min_pass_rate", "max_pass_rate"):
            value = f.pop(key, None)
            if value is not None:
                setattr(request, key, float(value))
        for key, value in (f.pop("metadata", None) or {}).items():
            request.metadata.add(
                key=key,
                value=value if isinstance(value, str) else _rows.dumps(value))
        if f:
            raise TypeError(f"unknown export option(s): {', '.join(sorted(f))}")
        return request
