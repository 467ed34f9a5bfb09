"""deploy/: the compose file and the image definition, checked as far as this machine
allows (no Docker daemon or compose plugin here): the YAML parses, every reference
resolves, the topology is the documented one, and the Dockerfile follows the rules
a linter (hadolint) would enforce for it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).parent.parent / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_compose_file_has_the_production_topology() -> None:
    services = compose()["services"]
    assert {"mongo1", "mongo2", "mongo3", "mongo-init", "postgres", "redis"} <= set(services)
    apps = [name for name, s in services.items() if "caregraph" in str(s.get("image", ""))]
    assert sorted(apps) == ["caregraph1", "caregraph2"]
    assert services["proxy"]["image"].startswith("nginx")
    for app in apps:
        env = services[app]["environment"]
        uri = env["MONGODB_URI"]
        assert "replicaSet=rs0" in uri and "w=majority" in uri
        assert all(f"mongo{i}:27017" in uri for i in (1, 2, 3))
        assert (
            env["DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["DATABASE_URL"]
        )
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["CAREGRAPH_ENV"] == "production"
        # Every instance signs and checks tokens with the same key, from the environment.
        assert env["CAREGRAPH_JWT_SECRET"].startswith("${")
    init = " ".join(services["mongo-init"]["entrypoint"])
    assert all(f"mongo{i}:27017" in init for i in (1, 2, 3)) and "rs.initiate" in init
    assert "--appendonly" in services["redis"]["command"]


def test_every_reference_in_the_compose_file_resolves() -> None:
    document = compose()
    services, volumes = document["services"], set(document.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        for dependency in depends if isinstance(depends, list) else depends.keys():
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} uses undeclared volume {source}"
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()
    # The proxy balances over exactly the app instances.
    upstreams = re.findall(r"server (\w+):8000", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstreams) == ["caregraph1", "caregraph2"]
    # Every ${VARIABLE} the file needs is listed in the example environment file.
    needed = set(re.findall(r"\$\{(\w+)", (DEPLOY / "compose.yaml").read_text()))
    listed = set(re.findall(r"^(\w+)=", (DEPLOY / "env.example").read_text(), re.M))
    assert needed <= listed, needed - listed


def test_the_dockerfile_lints() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    froms = [args for op, args in instructions if op == "FROM"]
    assert froms and all(":" in f and not f.split()[0].endswith(":latest") for f in froms)
    assert not any(op == "ADD" for op, _ in instructions)  # COPY only: no remote fetches
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].strip() not in {"root", "0"}
    assert any(op == "HEALTHCHECK" for op, _ in instructions)
    command = [args for op, args in instructions if op == "CMD"][-1]
    assert command.startswith("["), "CMD in exec form, so signals reach the server"
    # Every folder the app imports is copied into the image.
    import tomllib

    packages = tomllib.loads((DEPLOY.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    for package in packages["packages"]:
        top = package.split(".")[0]
        assert f"COPY {top} ./{top}" in text, top
    for module in packages["py-modules"]:
        assert f"{module}.py" in text, module
