"""Tiny Space app following the sandbox contract: reads PORT/HOST, serves /health and echoes its env."""

import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if os.environ.get("CRASH_ON_START") == "1":
    print("crashing on purpose", flush=True)
    sys.exit(3)


async def health(request):
    return JSONResponse({"ok": True})


async def env(request):
    keys = ["SPACE_ID", "LLM_ENGINE", "GREETING", "API_KEY", "SPACE_AUTHOR_NAME"]
    return JSONResponse({k: os.environ.get(k) for k in keys})


app = Starlette(routes=[Route("/health", health), Route("/env", env)])

if __name__ == "__main__":
    print(f"echo app starting on port {os.environ['PORT']}", flush=True)
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]), log_level="warning")
