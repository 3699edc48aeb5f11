from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api.notes import router
from app.config import settings


def custom_generate_unique_id(route: APIRoute) -> str:
    return f"{route.tags[0]}-{route.name}"


app = FastAPI(title=settings.PROJECT_NAME, generate_unique_id_function=custom_generate_unique_id)
app.include_router(router)
