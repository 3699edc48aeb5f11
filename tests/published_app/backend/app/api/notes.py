from fastapi import APIRouter
from sqlalchemy import text

from app.db import SessionMaker

router = APIRouter(prefix="/notes", tags=["notes"])


@router.get("/count")
async def count_notes(maker: SessionMaker) -> int:
    async with maker() as session:
        return await session.scalar(text("SELECT count(*) FROM notes"))


@router.post("/")
async def create_note(key: str, maker: SessionMaker) -> str:
    async with maker.begin() as session:
        await session.execute(text("INSERT INTO notes (key) VALUES (:key)"), {"key": key})
    return key
