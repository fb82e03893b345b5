"""A Space app that starts but never becomes healthy: /health answers 503 forever."""

import os

import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def health(request):
    return JSONResponse({"status": "loading"}, status_code=503)


app = Starlette(routes=[Route("/health", health)])

if __name__ == "__main__":
    print("loading forever", flush=True)
    uvicorn.run(app, host=os.environ["HOST"], port=int(os.environ["PORT"]), log_level="warning")
