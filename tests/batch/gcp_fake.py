"""A local fake of the Google Cloud Batch v1 REST API, and GCS through its emulator.

Cloud Batch has no emulator. This fake serves the part of the v1 REST surface that
`GCPBatchExecutor` uses, as google-cloud-batch's REST transport calls it:

- ``POST   /v1/projects/P/locations/L/jobs?jobId=ID``   create (409 if ID exists)
- ``GET    /v1/projects/P/locations/L/jobs/ID``          get (status and task counts)
- ``GET    /v1/projects/P/locations/L/jobs``             list
- ``GET    /v1/.../jobs/ID/taskGroups/group0/tasks``     list tasks (``filter=status.state="S"``)
- ``POST   /v1/.../jobs/ID:cancel``, ``DELETE /v1/.../jobs/ID``   cancel / delete

Request bodies are parsed with the real ``batch_v1.Job.from_json(...,
ignore_unknown_fields=False)``, so a field the real API does not know fails here as it
would there (400), and responses are built with the same types. Job ids are checked
against the API's pattern. What it does not check: IAM, quotas, whether the image
exists, machine types, the allocation policy's meaning.

Each task runs as a host subprocess (in an empty directory, with only the task's
environment plus an image's ``PATH`` and ``BATCH_TASK_INDEX``/``BATCH_TASK_COUNT``),
all tasks of a job at once. `preempt` kills a running task as a Spot preemption does:
the task FAILS with exit code 50001.

GCS is `gcp-storage-emulator`, in this process (``STORAGE_EMULATOR_HOST``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from .moto_batch import image_environment

JOB_ID = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
FILTER = re.compile(r'^status\.state\s*=\s*"?([A-Z_]+)"?$')
PREEMPTED = 50001


@dataclass
class FakeTask:
    index: int
    state: str = "PENDING"
    exit_code: int | None = None
    description: str = ""
    proc: subprocess.Popen[bytes] | None = None
    killed_with: int | None = None


@dataclass
class FakeJob:
    name: str
    uid: str
    body: Any  # the batch_v1.Job as created
    tasks: list[FakeTask]
    state: str = "QUEUED"
    cancelled: bool = False
    created: float = field(default_factory=time.time)


class FakeBatch:
    """The fake service: jobs by name, a runner thread per job."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.lock = threading.Lock()
        self.created: list[dict[str, Any]] = []  # request bodies, as JSON, in order
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        fake = self

        class Handler(_Handler):
            service = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for job in list(self.jobs.values()):
            self._kill(job, None)

    # -- the service -------------------------------------------------------------------
    def create(self, parent: str, job_id: str, body: str) -> tuple[int, Any]:
        from google.cloud import batch_v1

        if not JOB_ID.match(job_id or ""):
            return _error(
                400, "INVALID_ARGUMENT", f"job_id {job_id!r} does not match {JOB_ID.pattern}"
            )
        try:
            job = batch_v1.Job.from_json(body, ignore_unknown_fields=False)
        except Exception as exc:  # what the real API answers to an unknown field
            return _error(400, "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}")
        groups = list(job.task_groups)
        if len(groups) != 1 or not groups[0].task_spec.runnables:
            return _error(400, "INVALID_ARGUMENT", "a job needs one task group with runnables")
        container = groups[0].task_spec.runnables[0].container
        if not container.image_uri or not container.commands:
            return _error(400, "INVALID_ARGUMENT", "the container needs image_uri and commands")
        name = f"{parent}/jobs/{job_id}"
        with self.lock:
            if name in self.jobs:
                return _error(409, "ALREADY_EXISTS", f"Job {name} already exists")
            count = int(groups[0].task_count or 1)
            fake = FakeJob(name, uuid.uuid4().hex, job, [FakeTask(i) for i in range(count)])
            self.jobs[name] = fake
            self.created.append(json.loads(body))
        threading.Thread(target=self._run, args=(fake,), daemon=True).start()
        return 200, self.describe(fake)

    def describe(self, fake: FakeJob) -> Any:
        from google.cloud import batch_v1

        job = batch_v1.Job(fake.body)
        job.name, job.uid = fake.name, fake.uid
        counts: dict[str, int] = {}
        for task in fake.tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
        job.status = batch_v1.JobStatus(
            state=fake.state,
            task_groups={"group0": batch_v1.JobStatus.TaskGroupStatus(counts=counts)},
        )
        job.task_groups[0].name = f"{fake.name}/taskGroups/group0"
        return json.loads(batch_v1.Job.to_json(job))

    def task_json(self, fake: FakeJob, task: FakeTask) -> Any:
        from google.cloud import batch_v1

        events = []
        if task.exit_code is not None:
            events.append(
                batch_v1.StatusEvent(
                    type_="STATUS_CHANGED",
                    description=task.description or f"Task state is updated to {task.state}",
                    task_execution=batch_v1.TaskExecution(exit_code=task.exit_code),
                    task_state=task.state,
                )
            )
        out = batch_v1.Task(
            name=f"{fake.name}/taskGroups/group0/tasks/{task.index}",
            status=batch_v1.TaskStatus(state=task.state, status_events=events),
        )
        return json.loads(batch_v1.Task.to_json(out))

    def cancel(self, name: str, delete: bool) -> tuple[int, Any]:
        fake = self.jobs.get(name)
        if fake is None:
            return _error(404, "NOT_FOUND", f"Job {name} not found")
        fake.cancelled = True
        fake.state = "DELETION_IN_PROGRESS" if delete else "CANCELLATION_IN_PROGRESS"
        self._kill(fake, None)
        operation = name.split("/jobs/")[0] + f"/operations/op-{uuid.uuid4().hex[:8]}"
        return 200, {"name": operation, "done": True}

    def preempt(self, name: str, index: int) -> None:
        """Kill task `index` of job `name` as a Spot preemption does (exit code 50001)."""
        task = self.jobs[name].tasks[index]
        task.killed_with = PREEMPTED
        if task.proc is not None:
            task.proc.kill()

    def _kill(self, fake: FakeJob, code: int | None) -> None:
        for task in fake.tasks:
            if task.proc is not None and task.proc.poll() is None:
                task.killed_with = code
                task.proc.kill()

    def _run(self, fake: FakeJob) -> None:
        spec = fake.body.task_groups[0].task_spec
        command = list(spec.runnables[0].container.commands)
        base_env = dict(spec.environment.variables)
        fake.state = "SCHEDULED"
        workdirs = []
        for task in fake.tasks:
            if fake.cancelled:
                break
            workdir = tempfile.mkdtemp(prefix="fake-gcp-batch-")
            workdirs.append(workdir)
            env = {**base_env, **image_environment(), "HOME": workdir, "TMPDIR": workdir}
            env["BATCH_TASK_INDEX"] = str(task.index)
            env["BATCH_TASK_COUNT"] = str(len(fake.tasks))
            with open(os.path.join(workdir, ".output"), "wb") as out:
                task.proc = subprocess.Popen(
                    command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            task.state = "RUNNING"
            fake.state = "RUNNING"
        for task in fake.tasks:
            if task.proc is None:
                task.state = "UNEXECUTED" if fake.cancelled else "FAILED"
                continue
            code = task.proc.wait()
            if task.killed_with is not None:
                code = task.killed_with
                task.description = "Task was preempted: the Spot VM was reclaimed"
            task.exit_code = code
            task.state = "SUCCEEDED" if code == 0 and not fake.cancelled else "FAILED"
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        if fake.cancelled:
            fake.state = "CANCELLED"
        elif all(t.state == "SUCCEEDED" for t in fake.tasks):
            fake.state = "SUCCEEDED"
        else:
            fake.state = "FAILED"


def _error(code: int, status: str, message: str) -> tuple[int, Any]:
    return code, {"error": {"code": code, "message": message, "status": status}}


class _Handler(BaseHTTPRequestHandler):
    service: FakeBatch
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _reply(self, code: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> tuple[int, Any]:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path.removeprefix("/v1/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        svc = self.service
        parts = path.split("/")
        if len(parts) == 5 and parts[4] == "jobs":  # projects/P/locations/L/jobs
            parent = "/".join(parts[:4])
            if method == "POST":
                return svc.create(parent, query.get("jobId", ""), body)
            if method == "GET":
                jobs = [svc.describe(j) for n, j in svc.jobs.items() if n.startswith(parent)]
                return 200, {"jobs": jobs}
        if len(parts) == 6 and parts[4] == "jobs":
            name = "/".join(parts)
            if method == "POST" and name.endswith(":cancel"):
                return svc.cancel(name.removesuffix(":cancel"), delete=False)
            if method == "DELETE":
                return svc.cancel(name, delete=True)
            if method == "GET":
                fake = svc.jobs.get(name)
                if fake is None:
                    return _error(404, "NOT_FOUND", f"Job {name} not found")
                return 200, svc.describe(fake)
        if len(parts) == 9 and parts[6:9:2] == ["taskGroups", "tasks"] and method == "GET":
            fake = svc.jobs.get("/".join(parts[:6]))
            if fake is None or parts[7] != "group0":
                return _error(404, "NOT_FOUND", f"{path} not found")
            wanted = None
            if query.get("filter"):
                match = FILTER.match(query["filter"])
                if match is None:
                    return _error(
                        400, "INVALID_ARGUMENT", f"unsupported filter {query['filter']!r}"
                    )
                wanted = match.group(1)
            tasks = [t for t in fake.tasks if wanted is None or t.state == wanted]
            return 200, {"tasks": [svc.task_json(fake, t) for t in tasks]}
        return _error(404, "NOT_FOUND", f"{method} {self.path} is not served by the fake")

    def do_GET(self) -> None:
        self._reply(*self._route("GET"))

    def do_POST(self) -> None:
        self._reply(*self._route("POST"))

    def do_DELETE(self) -> None:
        self._reply(*self._route("DELETE"))


@dataclass
class GCPBatch:
    """The fake Batch service, the GCS emulator, and what an executor needs to use them."""

    service: FakeBatch
    endpoint: str
    storage: str
    bucket: str

    @property
    def scratch(self) -> str:
        return f"gs://{self.bucket}/lazyflow"

    @property
    def environment(self) -> dict[str, str]:
        """What the scheduler's process and the containers need to reach GCS."""
        return {
            "STORAGE_EMULATOR_HOST": self.storage,
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",  # else gcsfs waits 60 s on gRPC
            "FSSPEC_GS_TOKEN": "anon",  # fsspec's configuration by environment (gs://)
        }

    def executor(self, **options: Any) -> Any:
        from google.auth.credentials import AnonymousCredentials

        from lazyflow_core.executors import GCPBatchExecutor

        options.setdefault("scratch", self.scratch)
        if options["scratch"].startswith("gs://"):
            options.setdefault("storage_options", {"token": "anon"})
        return GCPBatchExecutor(
            project="lf-test",
            region="us-central1",
            image="lazyflow-worker:test",
            api_endpoint=self.endpoint,
            credentials=AnonymousCredentials(),
            environment=self.environment,
            **options,
        )


@contextlib.contextmanager
def gcp_batch_server() -> Iterator[GCPBatch]:
    from gcp_storage_emulator.server import create_server

    bucket = f"lf-gcp-{os.urandom(4).hex()}"
    storage = create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
    storage.start()
    httpd = storage._api._httpd
    httpd.handle_error = lambda request, address: None  # clients that hang up early
    host, port = httpd.server_address[:2]
    service = FakeBatch()
    endpoint = service.start()
    try:
        yield GCPBatch(service, endpoint, f"http://{host}:{port}", bucket)
    finally:
        service.stop()
        storage.stop()
