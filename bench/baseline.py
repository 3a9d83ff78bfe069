"""The baseline for bench/ingest.py: a bare aiohttp server whose only handler reads the
body and answers 202 with a small JSON body. No auth, no parsing, no store: what
aiohttp itself costs for the same request on the same core.

    python bench/baseline.py --host 127.0.0.1 --port 9000
"""

from __future__ import annotations

import argparse

from aiohttp import web

ANSWER = {"deliveryId": "00000000-0000-0000-0000-000000000000"}


async def receive(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(ANSWER, status=202)


def create_app() -> web.Application:
    app = web.Application()
    # The receiver's route shape, so that routing costs the same.
    app.router.add_route("*", "/hooks/{path:.+}", receive)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    # access_log=None: the receiver runs without an access log too.
    web.run_app(create_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
