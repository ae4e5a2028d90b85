"""`AWSBatchExecutor`: jobs run as AWS Batch array jobs (see `remote` for how).

The boto3 clients use the standard credential chain and honour ``AWS_ENDPOINT_URL``
(and ``AWS_ENDPOINT_URL_BATCH``); scratch is on S3 through s3fs. Monitoring costs a few
API calls per poll, not one per job:

- ``describe_jobs`` on the array *parents*, 100 per call: each gives its children's
  counts per status (``arrayProperties.statusSummary``);
- only when an array's SUCCEEDED or FAILED count changed, ``list_jobs(arrayJobId=...,
  jobStatus=...)`` names the children that ended;
- only for a child that failed, one ``describe_jobs`` and one CloudWatch Logs
  ``get_log_events`` for the reason and the tail of its log.

Failures of the infrastructure (``statusReason`` "Host EC2 ... terminated": a Spot
interruption or a scale-in; a container killed for memory; a child with no outcome)
are resubmitted on the executor's infrastructure budget, never on ``@task(retries=)``.
``resources=`` on a task becomes the array's ``resourceRequirements`` (VCPU, MEMORY in
MiB, GPU). ``shutdown(cancel=True)`` terminates every array in flight (AWS terminates
the children of a terminated parent).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ExecutorError
from .arrays import ArrayJob, Finished, chunks, memory_mib
from .remote import RemoteExecutor

log = logging.getLogger("lazyflow.executors")

LOG_TAIL_LINES = 20
"""Lines of a failed child's CloudWatch log quoted in the failure message."""

DETAILS_PER_POLL = 5
"""Failed children per poll whose reason and log are looked up (the rest: the summary)."""

_FINAL = ("SUCCEEDED", "FAILED")


class AWSBatchExecutor(RemoteExecutor):
    """Runs jobs on an AWS Batch job queue, as array jobs of a job definition.

    The job definition names the image (with lazyflow and the workflow's libraries
    installed, and the `python` given here on its PATH) and the job role (read/write on
    `scratch`); lazyflow overrides its command, adds `environment`, and sets
    resourceRequirements from ``@task(resources=...)``. Every argument is a plain value,
    so the executor can be configured from a config file's ``[executors.NAME]`` table.
    Options of the shared remote half (`bundle_seconds`, `linger`, `poll_seconds`,
    `infra_retries`, ...) are described in `RemoteExecutor`.
    """

    name = "aws_batch"
    backend = "AWS Batch"

    def __init__(
        self,
        queue: str,
        job_definition: str,
        scratch: str,
        region: str | None = None,
        *,
        endpoint_url: str | None = None,
        log_group: str = "/aws/batch/job",
        **options: Any,
    ) -> None:
        for arg, value in (("queue", queue), ("job_definition", job_definition)):
            if not isinstance(value, str) or not value:
                raise ExecutorError(
                    f"AWSBatchExecutor({arg}={value!r}): give the name or ARN of the AWS "
                    f"Batch {arg.replace('_', ' ')} to use."
                )
        super().__init__(scratch, **options)
        self.queue = queue
        self.job_definition = job_definition
        self.region = region
        self.endpoint_url = endpoint_url
        self.log_group = log_group
        self._clients: dict[str, Any] = {}

    def client(self, service: str = "batch") -> Any:
        """A boto3 client of `service` (created once; boto3 clients are thread-safe)."""
        client = self._clients.get(service)
        if client is None:
            import boto3

            client = self._clients[service] = boto3.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url
            )
        return client

    # -- submitting --------------------------------------------------------------------
    def _submit(self, name: str, prefix_url: str, size: int, resources: dict[str, Any]) -> str:
        overrides: dict[str, Any] = {"command": self.command(prefix_url)}
        if self.environment:
            overrides["environment"] = [
                {"name": k, "value": v} for k, v in sorted(self.environment.items())
            ]
        requirements = self.resource_requirements(resources)
        if requirements:
            overrides["resourceRequirements"] = requirements
        kwargs: dict[str, Any] = {
            "jobName": name[:128],
            "jobQueue": self.queue,
            "jobDefinition": self.job_definition,
            "containerOverrides": overrides,
            "tags": {"lazyflow": "1"},
        }
        if size > 1:
            kwargs["arrayProperties"] = {"size": size}
        job_id: str = self.client().submit_job(**kwargs)["jobId"]
        log.info("lazyflow: submitted AWS Batch job %s (%s, %d bundles)", job_id, name, size)
        return job_id

    @staticmethod
    def resource_requirements(resources: dict[str, Any]) -> list[dict[str, str]]:
        """``@task(resources=)`` as Batch resourceRequirements (VCPU, MEMORY in MiB, GPU)."""
        out = []
        if resources.get("vcpus"):
            out.append({"type": "VCPU", "value": f"{float(resources['vcpus']):g}"})
        memory = memory_mib(resources)
        if memory:
            out.append({"type": "MEMORY", "value": str(memory)})
        if resources.get("gpus"):
            out.append({"type": "GPU", "value": str(int(resources["gpus"]))})
        return out

    # -- monitoring --------------------------------------------------------------------
    def _describe(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunks(ids, 100):
            for job in self.client().describe_jobs(jobs=chunk)["jobs"]:
                found[job["jobId"]] = job
        return found

    def _poll(self, arrays: list[ArrayJob]) -> list[tuple[ArrayJob, list[Finished]]]:
        described = self._describe([a.job_id for a in arrays])
        details = [DETAILS_PER_POLL]
        out = []
        for array in arrays:
            job = described.get(array.job_id)
            if job is None:
                reason = f"AWS Batch no longer knows job {array.job_id}"
                out.append((array, [Finished(i, reason) for i in range(len(array.bundles))]))
                continue
            if len(array.bundles) == 1:  # submitted as a plain job
                if job["status"] in _FINAL:
                    failure = None if job["status"] == "SUCCEEDED" else self._why(job, details)
                    out.append((array, [Finished(0, failure)]))
                continue
            summary = job["arrayProperties"].get("statusSummary", {})
            finished: list[Finished] = []
            for status in _FINAL:
                count = summary.get(status, 0)
                if count == array.counts.get(status, 0):
                    continue  # no child reached this status since the last poll
                for child in self._children(array.job_id, status):
                    index = _index(child)
                    if index in array.done:
                        continue
                    failure = None if status == "SUCCEEDED" else self._why(child, details)
                    finished.append(Finished(index, failure))
                array.counts[status] = count
            out.append((array, finished))
        return out

    def _children(self, array_id: str, status: str) -> list[dict[str, Any]]:
        children: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"arrayJobId": array_id, "jobStatus": status}
        while True:
            page = self.client().list_jobs(**kwargs)
            children.extend(page.get("jobSummaryList", []))
            token = page.get("nextToken")
            if not token:
                return children
            kwargs["nextToken"] = token

    def _why(self, job: dict[str, Any], budget: list[int]) -> str:
        """Why a (child) job failed: its status reason, exit code and log's tail."""
        reason = job.get("statusReason") or "no reason given"
        container = job.get("container") or {}
        if budget[0] > 0:
            budget[0] -= 1
            try:
                job = self._describe([job["jobId"]]).get(job["jobId"], job)
            except Exception as exc:
                log.debug("lazyflow: describe_jobs failed: %s", exc)
            reason = job.get("statusReason") or reason
            container = job.get("container") or container
        kind = "preempted" if reason.startswith("Host EC2") else "failed"
        text = f"AWS Batch job {job['jobId']} {kind}: {reason}"
        if container.get("exitCode") is not None:
            text += f" (exit code {container['exitCode']})"
        if container.get("reason"):
            text += f"; container: {container['reason']}"
        tail = self._log_tail(container.get("logStreamName"))
        if tail:
            text += f"\nlast lines of its log ({self.log_group}/{container['logStreamName']}):\n"
            text += tail
        return text

    def _log_tail(self, stream: str | None) -> str:
        if not stream:
            return ""
        try:
            events = self.client("logs").get_log_events(
                logGroupName=self.log_group,
                logStreamName=stream,
                limit=LOG_TAIL_LINES,
                startFromHead=False,
            )["events"]
        except Exception as exc:
            return f"(its log could not be read: {exc})"
        return "\n".join("    " + e["message"] for e in events[-LOG_TAIL_LINES:])

    def _cancel(self, arrays: list[ArrayJob], reason: str) -> None:
        for array in arrays:
            try:
                self.client().terminate_job(jobId=array.job_id, reason=reason)
            except Exception as exc:
                log.warning("lazyflow: could not terminate AWS Batch job %s: %s", array.job_id, exc)

    # -- restarts ----------------------------------------------------------------------
    def _running(self) -> list[tuple[str, str]]:
        """lazyflow array jobs on this queue that have not ended, and their prefixes."""
        ids = []
        kwargs: dict[str, Any] = {
            "jobQueue": self.queue,
            "filters": [{"name": "JOB_NAME", "values": ["lazyflow-*"]}],
        }
        while True:
            page = self.client().list_jobs(**kwargs)
            for job in page.get("jobSummaryList", []):
                if job.get("status") not in _FINAL and ":" not in job["jobId"]:
                    ids.append(job["jobId"])
            token = page.get("nextToken")
            if not token:
                break
            kwargs["nextToken"] = token
        running = []
        for job_id, job in self._describe(ids).items():
            command = (job.get("container") or {}).get("command") or []
            if "lazyflow_core.worker" in command[:-1]:
                running.append((job_id, command[command.index("lazyflow_core.worker") + 1]))
        return running


def _index(child: dict[str, Any]) -> int:
    """A child's array index: from its summary, else from its id ("parent:index")."""
    index = (child.get("arrayProperties") or {}).get("index")
    if index is None:
        index = child["jobId"].rsplit(":", 1)[-1]
    return int(index)
