"""docker/compose.yaml and docker/Dockerfile, checked without a container engine
(none runs on these machines: docs/decisions/0035): the compose file against the
Compose Specification's schema (vendored, deploy/schemas/README.md) and what a
reviewer of either would look for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from aiaas import queues

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
APP_IMAGE = "aiaas:local"
INTERPOLATED = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
GROUP_COMMAND = re.compile(r"python -m aiaas\.queues (\w+)")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


def services() -> dict[str, dict[str, Any]]:
    return dict(compose()["services"])


def app_services() -> dict[str, dict[str, Any]]:
    return {name: service for name, service in services().items() if service.get("image") == APP_IMAGE}


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command", [])
    return command if isinstance(command, str) else " ".join(command)


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)

    errors = [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(compose())]

    assert errors == []


def test_the_schema_rejects_what_compose_would_reject() -> None:
    schema = json.loads((ROOT / "deploy" / "schemas" / "compose-spec.json").read_text())
    broken = compose()
    broken["services"]["web"]["restart_policy"] = "always"  # not a service field

    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_every_third_party_image_is_pinned_and_redis_is_a_bsd_licensed_release() -> None:
    images = {name: service["image"] for name, service in services().items() if service["image"] != APP_IMAGE}

    assert set(images) == {"postgres", "redis"}
    for image in images.values():
        assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+[\w.-]*", image), image
    assert images["postgres"].startswith("pgvector/pgvector:")
    assert images["redis"].startswith("redis:7.2.")


def test_the_app_runs_read_only_without_privileges() -> None:
    for name, service in app_services().items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert {entry.split(":")[0] for entry in service["tmpfs"]} == {"/tmp", "/var/lib/aiaas"}, name  # noqa: S108


def test_one_worker_per_queue_group_consumes_every_queue() -> None:
    groups = {
        name: GROUP_COMMAND.findall(command_text(service))
        for name, service in app_services().items()
        if "worker" in command_text(service)
    }

    assert groups == {f"worker-{group}": [group] for group in queues.worker_groups({})}
    consumed = [queue for group in queues.worker_groups({}).values() for queue in group]
    assert sorted(consumed) == sorted(queues.all_queues({}))
    for name in groups:
        group = name.removeprefix("worker-")
        assert f"--hostname {group}@%h" in command_text(services()[name])
        assert f"--destination {group}@" in services()[name]["healthcheck"]["test"][1]


def test_the_simulated_provider_is_registered_where_it_listens() -> None:
    provider, migrate = services()["provider"], services()["migrate"]
    port = re.search(r"--port=(\d+)", command_text(provider))

    assert port is not None
    assert "simulated_provider --host=0.0.0.0" in command_text(provider)
    assert migrate["command"] == [
        "python",
        "manage.py",
        "bootstrap",
        "--simulated-provider",
        f"http://provider:{port.group(1)}/v1",
    ]
    for name in ("web", "gateway", "beat", "worker-agents"):
        assert services()[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


def test_the_env_example_names_every_variable_compose_reads() -> None:
    read = set(INTERPOLATED.findall((DOCKER / "compose.yaml").read_text()))
    example = (DOCKER / ".env.example").read_text()
    named = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))

    assert "SECRET_KEY" in read
    assert read <= named


def stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split at each FROM."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    found: list[list[str]] = []
    for instruction in instructions:
        if instruction.startswith("FROM "):
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_the_image_is_built_in_a_stage_of_its_own_and_runs_without_compilers() -> None:
    builder, runtime = stages()
    runtime_text = "\n".join(runtime)

    assert builder[0].endswith(" AS builder")
    assert any("build-essential" in line for line in builder)
    assert any("pip install --require-hashes --no-deps -r /tmp/runtime.lock" in line for line in builder)
    assert runtime[0].endswith(" AS runtime")
    assert "apt-get" not in runtime_text
    assert "pip install" not in runtime_text
    assert "COPY --from=builder /opt/venv /opt/venv" in runtime


def test_the_image_runs_as_a_numeric_non_root_user_with_a_liveness_check() -> None:
    runtime = stages()[-1]
    user = [line for line in runtime if line.startswith("USER ")]
    healthcheck = " ".join(line for line in runtime if line.startswith(("HEALTHCHECK", 'CMD ["python"')))

    assert user == ["USER 10001:10001"]
    assert "/livez" in healthcheck
    environment = "\n".join(runtime)
    for variable in (
        "USAGE_SPOOL_DIR=/var/lib/aiaas/",
        "PROMETHEUS_MULTIPROC_DIR=/var/lib/aiaas/",
        "TMPDIR=/tmp",
    ):
        assert variable in environment
