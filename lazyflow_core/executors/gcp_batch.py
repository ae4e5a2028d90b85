"""`GCPBatchExecutor`: jobs run as Google Cloud Batch jobs (see `remote` for how).

Each array of bundles is one Batch job whose single task group has one task per bundle
(the worker reads ``BATCH_TASK_INDEX``). The client is google-cloud-batch's
`BatchServiceClient` over REST (``transport="rest"``: the tested path is the production
path); scratch is on GCS through gcsfs. Monitoring costs, per poll, one ``get_job`` per
job in flight (its task group's counts per state) and, only when a job's SUCCEEDED or
FAILED count changed, ``list_tasks(filter='status.state="..."')`` for the tasks that
ended, never one ``get_task`` per task.

A task that failed without an outcome is retried on the infrastructure budget: exit code
50001 is a preempted (Spot) VM, 50002-50006 a lost, rebooted or recreated VM or a task
past its run time; any other failure of the worker itself (it exits 0 when tasks raise)
is retried the same way. Batch's own ``maxRetryCount`` is 0: lazyflow retries only the
jobs of a bundle that have no outcome. ``shutdown(cancel=True)`` cancels the jobs in
flight (``cancel_job``; deleting on versions of the client without it).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from ..errors import ExecutorError
from .arrays import ArrayJob, Finished, memory_mib
from .remote import RemoteExecutor

log = logging.getLogger("lazyflow.executors")

GROUP = "group0"
"""The name Batch gives the only task group of a job."""

INFRA_EXIT_CODES = {
    50001: "the VM was preempted",
    50002: "the VM stopped responding (task lost)",
    50003: "the VM rebooted",
    50004: "the task stopped responding",
    50005: "the task ran past its maximum run duration",
    50006: "the VM was recreated",
}

_ACTIVE = {"QUEUED", "SCHEDULED", "RUNNING"}
_ENDED = {"SUCCEEDED", "FAILED", "CANCELLED"}


class GCPBatchExecutor(RemoteExecutor):
    """Runs jobs on Google Cloud Batch in `project` / `region`, in containers of `image`.

    `image` has lazyflow (and the workflow's libraries) installed, with `python` on its
    PATH; the VMs' `service_account` needs read/write on `scratch` (and the Batch agent
    and logging roles). `machine_type`, `spot` (Spot VMs: cheap, preemptible) and
    `gpu_type` (with ``@task(resources={"gpus": n})``) shape the VMs; ``vcpus`` and
    ``memory`` of ``resources=`` become the task's compute resource. Every argument but
    `credentials` is a plain value (a config file's ``[executors.NAME]`` table works).
    """

    name = "gcp_batch"
    backend = "GCP Batch"

    def __init__(
        self,
        project: str,
        region: str,
        image: str,
        scratch: str,
        *,
        service_account: str | None = None,
        machine_type: str | None = None,
        spot: bool = False,
        gpu_type: str | None = None,
        labels: dict[str, str] | None = None,
        api_endpoint: str | None = None,
        credentials: Any = None,
        **options: Any,
    ) -> None:
        for arg, value in (("project", project), ("region", region), ("image", image)):
            if not isinstance(value, str) or not value:
                raise ExecutorError(
                    f"GCPBatchExecutor({arg}={value!r}): give the Google Cloud {arg} "
                    "(e.g. project='my-project', region='us-central1', "
                    "image='us-docker.pkg.dev/my-project/repo/worker:tag')."
                )
        super().__init__(scratch, **options)
        self.project = project
        self.region = region
        self.image = image
        self.service_account = service_account
        self.machine_type = machine_type
        self.spot = bool(spot)
        self.gpu_type = gpu_type
        self.labels = {"lazyflow": "1", **(labels or {})}
        self.api_endpoint = api_endpoint
        self.credentials = credentials
        self._client: Any = None

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def client(self) -> Any:
        """The `BatchServiceClient` (REST transport), created once."""
        if self._client is None:
            from google.cloud import batch_v1

            options = {"api_endpoint": self.api_endpoint} if self.api_endpoint else None
            self._client = batch_v1.BatchServiceClient(
                transport="rest", client_options=options, credentials=self.credentials
            )
        return self._client

    # -- submitting --------------------------------------------------------------------
    def job(self, prefix_url: str, size: int, resources: dict[str, Any]) -> Any:
        """The `batch_v1.Job` running `size` bundles of `prefix_url`."""
        from google.cloud import batch_v1

        container = batch_v1.Runnable.Container(
            image_uri=self.image, commands=self.command(prefix_url)
        )
        spec = batch_v1.TaskSpec(
            runnables=[batch_v1.Runnable(container=container)],
            max_retry_count=0,
            environment=batch_v1.Environment(variables=dict(self.environment)),
        )
        compute = {}
        if resources.get("vcpus"):
            compute["cpu_milli"] = int(float(resources["vcpus"]) * 1000)
        memory = memory_mib(resources)
        if memory:
            compute["memory_mib"] = memory
        if compute:
            spec.compute_resource = batch_v1.ComputeResource(**compute)
        job = batch_v1.Job(
            task_groups=[batch_v1.TaskGroup(task_count=size, task_spec=spec)],
            labels=self.labels,
            logs_policy=batch_v1.LogsPolicy(
                destination=batch_v1.LogsPolicy.Destination.CLOUD_LOGGING
            ),
        )
        policy = self._instance_policy(resources)
        if policy is not None or self.service_account:
            allocation = batch_v1.AllocationPolicy()
            if policy is not None:
                allocation.instances = [
                    batch_v1.AllocationPolicy.InstancePolicyOrTemplate(
                        policy=policy, install_gpu_drivers=bool(resources.get("gpus"))
                    )
                ]
            if self.service_account:
                allocation.service_account = batch_v1.ServiceAccount(email=self.service_account)
            job.allocation_policy = allocation
        return job

    def _instance_policy(self, resources: dict[str, Any]) -> Any:
        from google.cloud import batch_v1

        gpus = int(resources.get("gpus") or 0)
        if not (self.machine_type or self.spot or gpus):
            return None
        fields: dict[str, Any] = {}
        if self.machine_type:
            fields["machine_type"] = self.machine_type
        if self.spot:
            fields["provisioning_model"] = batch_v1.AllocationPolicy.ProvisioningModel.SPOT
        if gpus:
            if not self.gpu_type:
                raise ExecutorError(
                    f"a task asks for resources gpus={gpus}, but GCPBatchExecutor has no "
                    "gpu_type: pass gpu_type='nvidia-tesla-t4' (or another accelerator "
                    "available in the region)."
                )
            fields["accelerators"] = [
                batch_v1.AllocationPolicy.Accelerator(type_=self.gpu_type, count=gpus)
            ]
        policy = batch_v1.AllocationPolicy.InstancePolicy(**fields)
        return policy

    def _submit(self, name: str, prefix_url: str, size: int, resources: dict[str, Any]) -> str:
        job_id = _job_id(name)
        created = self.client().create_job(
            parent=self.parent, job=self.job(prefix_url, size, resources), job_id=job_id
        )
        log.info("lazyflow: submitted GCP Batch job %s (%d bundles)", created.name, size)
        return str(created.name)

    # -- monitoring --------------------------------------------------------------------
    def _poll(self, arrays: list[ArrayJob]) -> list[tuple[ArrayJob, list[Finished]]]:
        from google.api_core import exceptions

        out = []
        for array in arrays:
            try:
                job = self.client().get_job(name=array.job_id)
            except exceptions.NotFound:
                reason = f"GCP Batch no longer knows job {array.job_id} (deleted?)"
                out.append((array, [Finished(i, reason) for i in range(len(array.bundles))]))
                continue
            group = job.status.task_groups.get(GROUP)
            counts = dict(group.counts) if group is not None else {}
            finished: list[Finished] = []
            for state in ("SUCCEEDED", "FAILED"):
                count = int(counts.get(state, 0))
                if count == array.counts.get(state, 0):
                    continue  # no task reached this state since the last poll
                for task in self._tasks(array.job_id, state):
                    index = int(task.name.rsplit("/", 1)[-1])
                    if index not in array.done:
                        failure = None if state == "SUCCEEDED" else self._why(task)
                        finished.append(Finished(index, failure))
                array.counts[state] = count
            if job.status.state.name in _ENDED:
                # Tasks that never ran (UNEXECUTED) in a job that ended: none will finish.
                seen = array.done | {f.index for f in finished}
                why = f"GCP Batch job {array.job_id} ended {job.status.state.name} first"
                finished += [Finished(i, why) for i in range(len(array.bundles)) if i not in seen]
            out.append((array, finished))
        return out

    def _tasks(self, job_name: str, state: str) -> list[Any]:
        pager = self.client().list_tasks(
            request={
                "parent": f"{job_name}/taskGroups/{GROUP}",
                "filter": f'status.state="{state}"',
            }
        )
        return list(pager)

    def _why(self, task: Any) -> str:
        """Why a task failed: the exit code (and its meaning) and Batch's status events."""
        events = list(task.status.status_events)
        code = None
        for event in reversed(events):
            if event.task_execution and event.task_execution.exit_code:
                code = int(event.task_execution.exit_code)
                break
        meaning = INFRA_EXIT_CODES.get(code or 0)
        kind = "preempted" if code == 50001 else "failed"
        text = f"GCP Batch task {task.name} {kind}"
        if code is not None:
            text += f" with exit code {code}" + (f" ({meaning})" if meaning else "")
        descriptions = [e.description for e in events[-3:] if e.description]
        if descriptions:
            text += ": " + "; ".join(descriptions)
        return text + (
            f"\nits log is in Cloud Logging: logName=projects/{self.project}/logs/batch_task_logs"
            f' labels.task_id="{task.name.rsplit("/", 1)[-1]}"'
        )

    def _cancel(self, arrays: list[ArrayJob], reason: str) -> None:
        client = self.client()
        stop = getattr(client, "cancel_job", None) or client.delete_job
        for array in arrays:
            try:
                stop(name=array.job_id)
            except Exception as exc:
                log.warning("lazyflow: could not cancel GCP Batch job %s: %s", array.job_id, exc)

    # -- restarts ----------------------------------------------------------------------
    def _running(self) -> list[tuple[str, str]]:
        """lazyflow jobs of this project and region still queued or running."""
        running = []
        for job in self.client().list_jobs(
            request={"parent": self.parent, "filter": 'labels.lazyflow="1"'}
        ):
            if job.labels.get("lazyflow") != "1" or job.status.state.name not in _ACTIVE:
                continue
            for group in job.task_groups:
                for runnable in group.task_spec.runnables:
                    command = list(runnable.container.commands)
                    if "lazyflow_core.worker" in command[:-1]:
                        prefix = command[command.index("lazyflow_core.worker") + 1]
                        running.append((str(job.name), prefix))
        return running


def _job_id(name: str) -> str:
    """A Batch job id (``[a-z]([a-z0-9-]{0,61}[a-z0-9])?``, unique) from a job name."""
    base = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:50].rstrip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"
