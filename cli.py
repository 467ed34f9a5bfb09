"""The `caregraph` command: serve the API, load demo data, run migrations."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from datetime import date

import uvicorn

from runtime import phi_commands
from settings import Settings


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app import create_app
    from schema import build_schema

    settings = settings.with_overrides(
        host=args.host or settings.host,
        port=args.port or settings.port,
        demo_data=settings.demo_data and not args.no_demo_data,
    )
    where = "embedded MongoDB" if settings.mongodb_uri is None else "MONGODB_URI"
    print(
        f"CareGraph starting ({where}, billing {settings.sqlalchemy_url.split(':')[0]}, "
        f"redis {'REDIS_URL' if settings.redis_url else 'in-process'})",
        flush=True,
    )
    if args.workers > 1:
        from runtime.workers import serve_workers

        return serve_workers(settings, args.workers)
    config = uvicorn.Config(
        # The schema is built from the same settings the app runs on (limits, policy).
        create_app(settings, schema=build_schema(settings)),
        host=settings.host,
        port=settings.port,
        log_level="info",
        lifespan="on",
        # Our logging setup stays; uvicorn's access log would record query strings
        # (GET variables can hold PHI): the app logs its own access lines.
        log_config=None,
        access_log=False,
    )
    try:
        _AnnouncingServer(config, settings).run()
    except KeyboardInterrupt:
        pass  # Ctrl-C after a clean shutdown (uvicorn re-raises it): as uvicorn.run does
    return 0


class _AnnouncingServer(uvicorn.Server):
    """Says where GraphiQL is only once the socket accepts connections: printed earlier,
    a newcomer's first click would meet a refused connection while the database starts
    and demo data loads."""

    def __init__(self, config: uvicorn.Config, settings: Settings) -> None:
        super().__init__(config)
        self.settings = settings

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.settings.graphiql:
            address = f"http://{self.settings.host}:{self.settings.port}/graphql"
            print(f"GraphiQL: {address}", flush=True)


async def _demo_data(args: argparse.Namespace, settings: Settings) -> None:
    from demo.generator import load_demo_data
    from runtime.services import Services

    services = await Services.open(settings)
    try:
        if args.reset:
            (settings.data_dir / "demo-logins.json").unlink(missing_ok=True)
            for name in await services.db.list_collection_names():
                await services.db[name].delete_many({})
            async with services.engine.begin() as connection:
                from datasources.billing_tables import bills

                await connection.execute(bills.delete())
        counts = await load_demo_data(
            services,
            seed=args.seed,
            size=args.size,
            anchor=date.fromisoformat(args.anchor) if args.anchor else None,
        )
        print(counts)
    finally:
        await services.close()


async def _migrate(settings: Settings) -> None:
    from datasources.sql import create_engine, migrate

    engine = create_engine(settings.sqlalchemy_url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    print("billing schema is up to date")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="caregraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="start the GraphQL server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--no-demo-data", action="store_true", help="do not load demo data into an empty database"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (more than 1 on embedded defaults starts a redis-server)",
    )
    demo = commands.add_parser("demo-data", help="generate deterministic demo data")
    demo.add_argument("--size", choices=["small", "default", "large"], default="default")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument(
        "--anchor",
        help="ISO date the data is placed around (default: "
        "this week's Monday); fix it to reproduce a data set exactly",
    )
    demo.add_argument("--reset", action="store_true", help="delete existing data first")
    commands.add_parser("migrate", help="bring the billing SQL schema up to date")
    export = commands.add_parser("export-schema", help="write the GraphQL SDL (schema.graphql)")
    export.add_argument("--output", default="schema.graphql")
    manifest = commands.add_parser(
        "build-manifest",
        help="validate queries/ and write the trusted documents as an Apollo persisted "
        "query manifest (for clients and routers)",
    )
    manifest.add_argument("--output", default="persisted-query-manifest.json")
    from backup.cli import add_backup_commands, run_backup

    phi_commands.add_parsers(commands)
    add_backup_commands(commands)
    knowledge = commands.add_parser("knowledge", help="the medication knowledge base")
    knowledge_commands = knowledge.add_subparsers(dest="knowledge_command", required=True)
    knowledge_check = knowledge_commands.add_parser(
        "check", help="validate the knowledge files (codes, rule references, sources)"
    )
    knowledge_check.add_argument("--data-dir", help="default: the shipped knowledge/data/")
    args = parser.parse_args(argv)
    if args.command == "knowledge":
        from knowledge.cli import check_command

        return check_command(args.data_dir)

    from observability.logs import configure_logging

    settings = Settings.from_env()
    # JSON lines with request ids (observability/logs.py); CAREGRAPH_LOG_FORMAT=text
    # for the plain format.
    configure_logging(settings.ops.log_format)
    if args.command == "serve":
        return _serve(args, settings)
    elif args.command == "demo-data":
        asyncio.run(_demo_data(args, settings))
    elif args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "export-schema":
        from schema import build_schema

        with open(args.output, "w", encoding="utf-8") as output:
            output.write(build_schema(settings).as_str() + "\n")
    elif args.command == "build-manifest":
        return _build_manifest(args.output, settings)
    elif args.command == "backup":
        return run_backup(args, settings)
    elif args.command == "audit":
        return asyncio.run(phi_commands.run_audit(args, settings))
    elif args.command == "keys":
        return asyncio.run(phi_commands.run_keys(args, settings))
    return 0


def _build_manifest(output_path: str, settings: Settings) -> int:
    import json

    from persisted.manifest import ManifestError, manifest_for
    from schema import build_schema

    try:
        manifest = manifest_for(settings, build_schema(settings)._schema)
    except ManifestError as error:
        print(error, file=sys.stderr)
        return 1
    with open(output_path, "w", encoding="utf-8") as output:
        json.dump(manifest.to_json(), output, indent=2)
        output.write("\n")
    print(f"{len(manifest.documents)} trusted documents -> {output_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
